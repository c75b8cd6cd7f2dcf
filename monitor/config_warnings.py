"""Settings that validate but are probably mistakes, for `check-config` to point out.

They are not errors: a region newer than the installed botocore is still reachable, and a trail
folder may be mounted only where the service runs. But a typo'd region otherwise shows up only as
"Could not connect to the endpoint URL" at the first cycle, and a mistyped folder as a failed source.
"""

from __future__ import annotations

import functools

from monitor.config import Config


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition this botocore knows (CloudTrail and STS are in all of them)."""
    import boto3

    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for service in ("sts", "cloudtrail")
        for region in session.get_available_regions(service, partition_name=partition)
    )


def _region_keys(cfg: Config) -> list[tuple[str, str]]:
    keys = [("aws.region", cfg.aws.region)]
    keys += [(f"organization.regions[{i}]", r) for i, r in enumerate(cfg.organization.regions)]
    for i, source in enumerate(cfg.sources):
        keys += [(f"sources[{i}].regions[{j}]", r) for j, r in enumerate(getattr(source, "regions", None) or [])]
    return keys


def config_warnings(cfg: Config) -> list[str]:
    """`dotted.key: why it looks wrong`, one per suspicious setting."""
    out: list[str] = []
    if cfg.aws.endpoint_url is None:  # moto and LocalStack take any region name
        import botocore

        out += [f"{key}: {region!r} is not a region botocore {botocore.__version__} knows "
                "(a typo, or a region newer than this botocore)"
                for key, region in _region_keys(cfg) if region not in known_regions()]
    for i, source in enumerate(cfg.sources):
        if source.type == "local" and source.enabled and not cfg.resolve_path(source.path).exists():
            out.append(f"sources[{i}].path: {cfg.resolve_path(source.path)} does not exist "
                       "(the source fails every cycle until it does)")
    return out
