-- Fragment: an AssumeRoot's role, the target account's root as monitor.events.normalise names it:
-- from targetPrincipal in the caller's partition, else the root a refusal's message names.
coalesce(
  'arn:' || coalesce(regexp_extract(userIdentity.arn, '^arn:(aws[\w-]*):', 1),
                     CASE WHEN awsRegion LIKE 'cn-%' THEN 'aws-cn'
                          WHEN awsRegion LIKE 'us-gov-%' THEN 'aws-us-gov' ELSE 'aws' END)
    || ':iam::' || regexp_extract(element_at(requestParameters, 'targetPrincipal'),
                                  '^(?:arn:aws[\w-]*:[\w-]+::)?(\d{12})(?::|$)', 1) || ':root',
  regexp_extract(errorMessage, 'on resource: (arn:aws[\w-]*:iam::\d{12}:root)(?:[.,;:)]*)(?:\s|$)', 1)
)
