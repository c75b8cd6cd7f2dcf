"""Client hooks: every client `monitor.aws.client` makes reports its API calls to registered handlers."""

from __future__ import annotations

from monitor import aws


def test_client_hooks_see_every_call_until_removed(aws_config) -> None:  # noqa: ANN001
    seen: list[str] = []

    def count(model, **_) -> None:  # noqa: ANN001
        seen.append(model.name)

    aws.add_client_hook("before-call", count)
    try:
        s3 = aws.client("s3", aws_config)
        s3.create_bucket(Bucket="hooked")
        s3.list_buckets()
    finally:
        aws.remove_client_hook("before-call", count)
    aws.client("s3", aws_config).list_buckets()
    assert seen == ["CreateBucket", "ListBuckets"]
