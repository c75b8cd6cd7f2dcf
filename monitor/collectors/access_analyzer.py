"""IAM Access Analyzer findings on roles: external access and unused access.

Per account and region: ListAnalyzers (paginated), then ListFindingsV2 (paginated, filtered to
`AWS::IAM::Role`) for each ACTIVE external-access analyzer (ACCOUNT / ORGANIZATION) and
unused-access analyzer (ACCOUNT_UNUSED_ACCESS / ORGANIZATION_UNUSED_ACCESS). Every status
(ACTIVE / ARCHIVED / RESOLVED) is kept: an archived finding is a decision someone made.
UnusedIAMRole findings are completed with GetFindingV2 for their `lastAccessed` date.

No analyzer of a kind -> one notice naming the account, region and the command that creates
it; rolewatch goes on without those findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from monitor.aws import client as make_client
from monitor.collectors.throttle import error_code, retry_throttled
from monitor.config import AwsConfig
from monitor.posture.model import AnalyzerFinding, parse_time

EXTERNAL_TYPES = ("ACCOUNT", "ORGANIZATION")
UNUSED_TYPES = ("ACCOUNT_UNUSED_ACCESS", "ORGANIZATION_UNUSED_ACCESS")
ROLE_FILTER = {"resourceType": {"eq": ["AWS::IAM::Role"]}}


def create_command(kind: str, region: str) -> str:
    if kind == "external":
        return f"aws accessanalyzer create-analyzer --analyzer-name rolewatch-external-access --type ACCOUNT " \
               f"--region {region}"
    return (f"aws accessanalyzer create-analyzer --analyzer-name rolewatch-unused-access --type ACCOUNT_UNUSED_ACCESS"
            f" --configuration '{{\"unusedAccess\":{{\"unusedAccessAge\":90}}}}' --region {region}")


def _pages(call: Callable[..., dict[str, Any]], key: str, sleep: Callable[[float], Any], **params: Any) -> list[Any]:
    """nextToken pagination where each page is retried on throttling (a paginator would restart)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        page = retry_throttled(lambda t=token: call(**params, **({"nextToken": t} if t else {})), sleep=sleep)
        items.extend(page.get(key, []))
        token = page.get("nextToken")
        if not token:
            return items


def _to_finding(summary: dict[str, Any], analyzer_arn: str, region: str, details: dict[str, Any]) -> AnalyzerFinding:
    return AnalyzerFinding(
        id=summary["id"],
        account_id=summary["resourceOwnerAccount"],
        region=region,
        resource_arn=summary.get("resource"),
        finding_type=summary.get("findingType") or "ExternalAccess",
        status=summary["status"],
        analyzer_arn=analyzer_arn,
        updated_at=parse_time(summary.get("updatedAt")),
        details=details,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def analyzer_findings(access_analyzer: Any, account_id: str, region: str, *, notices: list[str],
                      sleep: Callable[[float], Any]) -> list[AnalyzerFinding]:
    """Findings on roles from the analyzers of one account/region, given its accessanalyzer client."""
    try:
        analyzers = _pages(lambda **kw: access_analyzer.list_analyzers(**kw), "analyzers", sleep)
    except ClientError as exc:
        notices.append(f"account {account_id} region {region}: Access Analyzer not readable "
                       f"({error_code(exc)}); its findings are missing")
        return []
    active = [a for a in analyzers if a.get("status") == "ACTIVE"]
    missing = [kind for kind, types in (("external", EXTERNAL_TYPES), ("unused", UNUSED_TYPES))
               if not any(a["type"] in types for a in active)]
    if missing:
        what = " and ".join(f"{k}-access" for k in missing)
        commands = "; ".join(create_command(k, region) for k in missing)
        notices.append(f"account {account_id} region {region}: no active {what} analyzer; create one with: {commands}")
    out: list[AnalyzerFinding] = []
    for analyzer in active:
        if analyzer["type"] not in EXTERNAL_TYPES + UNUSED_TYPES:
            continue
        try:
            out.extend(_findings_of(access_analyzer, analyzer["arn"], region, sleep))
        except ClientError as exc:
            notices.append(f"account {account_id} region {region}: findings of analyzer {analyzer['name']} not "
                           f"readable ({error_code(exc)}); they are missing")
    return out


def _findings_of(access_analyzer: Any, arn: str, region: str, sleep: Callable[[float], Any]) -> list[AnalyzerFinding]:
    out = []
    for summary in _pages(lambda **kw: access_analyzer.list_findings_v2(**kw), "findings", sleep, analyzerArn=arn,
                          filter=ROLE_FILTER):
        details: dict[str, Any] = {}
        if summary.get("error"):
            details["error"] = summary["error"]
        if summary.get("findingType") == "UnusedIAMRole":
            full = retry_throttled(lambda s=summary: access_analyzer.get_finding_v2(analyzerArn=arn, id=s["id"]),
                                   sleep=sleep)
            for item in full.get("findingDetails", []):
                details.update(_jsonable(item))
        out.append(_to_finding(summary, arn, region, details))
    return out


def collect_analyzer_findings(session: Any, aws: AwsConfig, account_id: str, regions: list[str], *,
                              notices: list[str], sleep: Callable[[float], Any]) -> list[AnalyzerFinding]:
    found: list[AnalyzerFinding] = []
    for region in regions:
        access_analyzer = make_client("accessanalyzer", aws, sess=session, region=region)
        found.extend(analyzer_findings(access_analyzer, account_id, region, notices=notices, sleep=sleep))
    return found
