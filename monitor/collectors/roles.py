"""Role inventory of one account: ListRoles (paginated), then per role GetRole (RoleLastUsed and
tags: ListRoles returns neither), ListAttachedRolePolicies and ListRolePolicies (paginated).

GetRole returns every tag of a role (IAM allows at most 50), so ListRoleTags would only repeat
it. A role deleted between ListRoles and GetRole is skipped with a notice; any other error ends
the account's inventory (the caller reports the account) rather than leaving it half-known.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from monitor.aws import client as make_client
from monitor.config import AwsConfig
from monitor.policy.model import PolicyError, load_document
from monitor.posture.model import RoleInfo, parse_time

ROLE_WORKERS = 4  # per account; IAM's request rate is per account


def _items(pages: Any, key: str) -> list[Any]:
    return [item for page in pages for item in page[key]]


def describe_role(iam: Any, listed: dict[str, Any]) -> RoleInfo:
    name = listed["RoleName"]
    role = iam.get_role(RoleName=name)["Role"]
    last_used = role.get("RoleLastUsed") or {}
    trust = role.get("AssumeRolePolicyDocument") or listed.get("AssumeRolePolicyDocument")
    return RoleInfo(
        arn=role["Arn"],
        name=name,
        account_id=role["Arn"].split(":")[4],
        path=role.get("Path", "/"),
        role_id=role.get("RoleId"),
        create_date=parse_time(role.get("CreateDate")),
        last_used=parse_time(last_used.get("LastUsedDate")),
        last_used_region=last_used.get("Region"),
        max_session_duration=int(role.get("MaxSessionDuration") or 3600),
        trust_policy=load_document(trust) if trust else {},
        attached_policies=[p["PolicyArn"] for p in _items(
            iam.get_paginator("list_attached_role_policies").paginate(RoleName=name), "AttachedPolicies")],
        inline_policies=_items(iam.get_paginator("list_role_policies").paginate(RoleName=name), "PolicyNames"),
        tags={t["Key"]: t.get("Value", "") for t in role.get("Tags") or []},
    )


def collect_roles(session: Any, aws: AwsConfig, *, notices: list[str] | None = None,
                  workers: int = ROLE_WORKERS, page_size: int | None = None) -> list[RoleInfo]:
    iam = make_client("iam", aws, sess=session)
    pages = {"PaginationConfig": {"PageSize": page_size}} if page_size else {}
    listed = _items(iam.get_paginator("list_roles").paginate(**pages), "Roles")

    def one(entry: dict[str, Any]) -> RoleInfo | None:
        try:
            return describe_role(iam, entry)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                if notices is not None:
                    notices.append(f"role {entry.get('Arn')} disappeared during the inventory; skipped")
                return None
            raise
        except PolicyError as exc:
            if notices is not None:
                notices.append(f"role {entry.get('Arn')}: trust policy not readable: {exc}")
            return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rolewatch-iam") as pool:
        roles = list(pool.map(one, listed))
    return [r for r in roles if r is not None]
