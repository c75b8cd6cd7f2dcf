"""Web-identity (OIDC) trust: which issuer a Federated principal names, and whether a statement
pins the token to one tenant of it.

An issuer shared by many customers (GitHub Actions, GitLab.com, Terraform Cloud, Buildkite,
Cognito identity pools) signs tokens for anyone who signs up; the role is only as narrow as the
condition on the claim that names the tenant (`sub`, or `aud` for Cognito). An issuer scoped to
one tenant by its URL (an EKS cluster, a CircleCI organization, a Bitbucket workspace, a GitHub
enterprise issuer) still admits every workload of that tenant when the subject is open.

A condition pins the tenant only when it is positive and cannot pass without the key: String
Equals / EqualsIgnoreCase / Like, optionally `ForAnyValue:`. `...IfExists`, negated operators,
`Null` and `ForAllValues:` (true when the key is absent; IAM Access Analyzer calls it overly
permissive on a single-valued key) do not. Values are ORed, so one open value opens the clause;
clauses are ANDed, so one pinning clause is enough. `*` and `?` are wildcards under StringLike
only: under StringEquals they are literal characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.policy.conditions import UnsupportedOperator, parse_operator
from monitor.policy.model import PrincipalRef, Statement

WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"
_OIDC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/(?P<url>.+)$")
_PINNING_BASES = {"StringEquals", "StringEqualsIgnoreCase", "StringLike"}
# stands for "anything from here on" where a StringLike wildcard cuts a value short; the tenant
# patterns exclude it from their segments and their end-of-value alternative cannot match before it
_OPEN = "\x00"


@dataclass(frozen=True)
class Issuer:
    """One known OIDC issuer: `claim` is the condition key's suffix that can name the tenant."""

    provider: str  # as the Federated principal names it (the provider URL without https://)
    claim: str
    shared: bool  # anyone can obtain a token; else the URL already pins one tenant
    who: str  # whom an open trust admits, for the finding's title
    tenant: tuple[re.Pattern[str], ...]  # a value (cut at its first wildcard) that matches names one tenant
    literal_pins: bool = True  # False where the token's owner shapes the subject (GitHub templates)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.claim}"


def _rx(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


# a custom GitHub subject template may start with any claim; only these name the owner or repository
# (`environment:prod`, `job_workflow_ref:...` or `context:...` alone can be minted by another owner)
_GITHUB = _rx(r"(?:repo|repository):[^/:\x00]+(?:[/:]|$)",
              r"(?:repository_owner|repository_owner_id|repository_id):[^:\x00]+(?::|$)")
_EKS_RE = re.compile(r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/id/[^/]+$", re.IGNORECASE)
_CIRCLECI_RE = re.compile(r"^oidc\.circleci\.com/org/[^/]+$", re.IGNORECASE)
_BITBUCKET_RE = re.compile(r"^api\.bitbucket\.org/2\.0/workspaces/[^/]+/pipelines-config/identity/oidc$",
                           re.IGNORECASE)
_GITHUB_ENTERPRISE_RE = re.compile(r"^token\.actions\.githubusercontent\.com/[^/]+$", re.IGNORECASE)


def issuer_of(principal: PrincipalRef) -> Issuer | None:
    """The known issuer a Federated principal trusts; None for SAML, unknown or self-hosted issuers."""
    if principal.kind != "Federated":
        return None
    value = principal.value.strip()
    if value.lower() == "cognito-identity.amazonaws.com":
        return Issuer(value, "aud", True, "any Cognito identity pool",
                      _rx(r"[^:\x00]+:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"))
    m = _OIDC_ARN_RE.match(value)
    if not m:
        return None
    url = m.group("url")
    host = url.lower()
    if host == "token.actions.githubusercontent.com":
        return Issuer(url, "sub", True, "any GitHub repository's workflows", _GITHUB,
                      literal_pins=False)
    if host == "gitlab.com":
        return Issuer(url, "sub", True, "any GitLab.com project's pipelines",
                      _rx(r"project_path:[^/:\x00]+(?:[/:]|$)"))
    if host == "app.terraform.io":
        return Issuer(url, "sub", True, "any Terraform Cloud organization's runs",
                      _rx(r"organization:[^:\x00]+(?::|$)"))
    if host == "agent.buildkite.com":
        return Issuer(url, "sub", True, "any Buildkite organization's pipelines",
                      _rx(r"organization:[^:\x00]+(?::|$)"))
    if _GITHUB_ENTERPRISE_RE.match(url):
        return Issuer(url, "sub", False,
                      "any repository of its GitHub enterprise", _GITHUB, literal_pins=False)
    if _EKS_RE.match(url):
        return Issuer(url, "sub", False, "any service account of its EKS cluster",
                      _rx(r"system:serviceaccount:[^:\x00]+(?::|$)"))
    if _CIRCLECI_RE.match(url):
        return Issuer(url, "sub", False, "any project of its CircleCI organization",
                      _rx(r"org/[^/\x00]+/project/[^/\x00]+(?:/|$)"))
    if _BITBUCKET_RE.match(url):
        return Issuer(url, "sub", False, "any repository of its Bitbucket workspace",
                      _rx(r"\{[^}\x00]+\}"))
    return None


def pins_tenant(issuer: Issuer, value: str, like: bool) -> bool:
    """Whether a policy value for `issuer.key` admits only tokens of one tenant."""
    cut = min((i for i in (value.find("*"), value.find("?")) if i >= 0), default=-1) if like else -1
    if cut < 0 and issuer.literal_pins:  # the subject format is fixed: a whole value names one workload
        return True
    probe = value if cut < 0 else value[:cut] + _OPEN
    return any(p.match(probe) for p in issuer.tenant)


@dataclass
class TenantCheck:
    """How one Allow statement conditions one issuer's tokens."""

    pinned: bool
    open_values: list[str]  # values of the tenant key under a pinning operator that do not pin
    condition_keys: list[str]  # "Operator key" for every condition of the statement, as written


def check_statement(issuer: Issuer, statement: Statement) -> TenantCheck:
    open_values: list[str] = []
    pinned = False
    keys: list[str] = []
    for operator, clauses in statement.conditions.items():
        keys.extend(f"{operator} {k}" for k in clauses)
        try:
            op = parse_operator(operator)
        except UnsupportedOperator:
            continue
        if not op.narrows or op.base not in _PINNING_BASES:
            continue
        for key, values in clauses.items():
            if key.lower() != issuer.key.lower():  # condition keys compare case-insensitively
                continue
            loose = [v for v in values if not pins_tenant(issuer, v, op.base == "StringLike")]
            if values and not loose:
                pinned = True
            open_values.extend(loose)
    return TenantCheck(pinned, open_values, keys)
