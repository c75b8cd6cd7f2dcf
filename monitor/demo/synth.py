"""A seeded, deterministic CloudTrail trail generator with planted, labelled incidents.

Behind `rolewatch synth`, `rolewatch demo` and the benchmarks. The trail looks like what an
organisation's trail bucket holds: the S3 delivery layout, `{"Records": [...]}` gzip files of
100 records, about 1.6 KB per record, about 10% AssumeRole-family events (about 15% of them
denied, shaped like real denials) and the rest the usual S3, KMS, EC2, IAM, Lambda and STS mix.

What makes it useful for detection work is that the normal population behaves the way the
detectors assume normal behaviour looks, so every planted incident is the only thing of its
kind in the trail:
- every (principal, role) pair people use is seen on the first business day (the learning
  period of `unusual_source_ip` / `first_time_principal` sees all of them);
- each principal keeps to its own addresses inside one stable network (office, VPN, CI);
- people work weekdays 08:30-17:30 in `timezone`; AWS services assume roles around the clock;
- background denials: a principal is denied on one role only and at most once per hour, so
  no accidental bursts or enumerations;
- sessions last at most an hour;
- no one assumes a role `watched_role`'s default globs match (the owner's `BreakGlassRole` is
  used once, by the planted incident).

The unit of work is one (region, hour): records for every account are produced together
(a cross-account call writes two copies, one per account, sharing `sharedEventID`) from an
RNG seeded by (seed, region, hour), so output is byte-identical whatever the number of worker
processes. Records are built from templates and serialised with orjson; a million records
take seconds, not minutes (see README "Demo and synthetic trails").
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

DEMO_ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-2", "us-east-2",
           "eu-north-1", "ap-northeast-1", "ca-central-1", "sa-east-1")
TIMEZONE = "Europe/Berlin"
WORK_START, WORK_END = (8, 30), (17, 30)  # local; strictly inside the detectors' 08:00-18:00
LEARNING_DAYS = 14
ASSUME_ROLE_SHARE = 0.10
FAILED_SHARE = 0.15
DEFAULT_RECORDS_PER_ACCOUNT_DAY = 1500
OUTSIDE_ACCOUNT = "999988887777"  # an account outside the organisation (the role enumerator)

DEV_ROLE_PATH, DEV_ROLE_NAME = "/cross-account/", "CrossAccountDeveloperRole"
DEV_USER = "DevUser"
UNUSED_ROLE = "LegacyBackupRole"
# the owner account's emergency role: trusted to one person, with MFA, and used only in the planted incident
BREAK_GLASS_ROLE = "BreakGlassRole"
BREAK_GLASS_USER = "carol"
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
SSO_ROLE_NAME = "AWSReservedSSO_PowerUserAccess_5f3c9a1b2d4e6f70"
HUMAN_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
               "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yves")
CI_REPOS = ("acme/payments-api", "acme/web-frontend", "acme/infra-live", "acme/data-pipeline")


# --------------------------------------------------------------------------- spec and population


@dataclass(frozen=True)
class TrailSpec:
    """What to generate. `end` is exclusive; the trail covers [end - days, end)."""

    days: int
    accounts: tuple[str, ...]
    end: datetime
    regions: tuple[str, ...] = ("us-east-1",)
    records: int | None = None  # total records (all event types); None: a realistic volume
    seed: int = 7
    timezone: str = TIMEZONE
    learning_days: int = LEARNING_DAYS
    records_per_file: int = 100

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def total_records(self) -> int:
        if self.records is not None:
            return self.records
        return self.days * len(self.accounts) * DEFAULT_RECORDS_PER_ACCOUNT_DAY


def make_spec(days: int, accounts: int | Iterable[str] = 2, *, end: datetime | str | None = None,
              regions: int | Iterable[str] = 1, records: int | None = None, seed: int = 7,
              timezone: str = TIMEZONE, learning_days: int = LEARNING_DAYS,
              records_per_file: int = 100) -> TrailSpec:
    """A spec from friendly arguments: counts or explicit ids, ISO strings or datetimes."""
    if days < 1:
        raise ValueError("days must be >= 1")
    account_ids = account_ids_for(accounts, seed) if isinstance(accounts, int) else tuple(accounts)
    region_ids = tuple(REGIONS[: max(1, min(regions, len(REGIONS)))]) if isinstance(regions, int) else tuple(regions)
    if records_per_file < 1:
        raise ValueError("records_per_file must be >= 1")
    return TrailSpec(days=days, accounts=account_ids, end=parse_end(end), regions=region_ids, records=records,
                     seed=seed, timezone=timezone, learning_days=learning_days,
                     records_per_file=records_per_file)


def parse_end(end: datetime | str | None) -> datetime:
    """A date means the end of that day; a datetime is taken as is; None: now, floored to the hour."""
    if end is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if isinstance(end, datetime):
        return end.astimezone(UTC) if end.tzinfo else end.replace(tzinfo=UTC)
    text = end.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC) + timedelta(days=1)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def account_ids_for(count: int, seed: int) -> tuple[str, ...]:
    if count < 1:
        raise ValueError("accounts must be >= 1")
    rng = random.Random(f"accounts:{seed}")
    ids = list(DEMO_ACCOUNTS[:count])
    while len(ids) < count:
        candidate = f"{_rr(rng, 10**11, 10**12):012d}"
        if candidate not in ids and candidate != OUTSIDE_ACCOUNT:
            ids.append(candidate)
    return tuple(ids)


def external_id(seed: int) -> str:
    """The ExternalId DevUser presents to CrossAccountDeveloperRole (a secret: never print it)."""
    return "rwx-" + hashlib.sha256(f"external-id:{seed}".encode()).hexdigest()[:24]


def role_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:role{path}{name}"


@dataclass
class Principal:
    """A caller of AssumeRole-family APIs with its stable habits."""

    key: str  # what the detectors group by (normalise's principal_key)
    kind: str  # iam_user | saml | ci | service | dev_user
    account: str
    identity: dict[str, Any]  # userIdentity of the caller's own copy
    ips: tuple[str, ...]  # its own addresses (a service: its service name)
    user_agent: str
    roles: tuple[str, ...]  # role ARNs it normally assumes
    fail_role: str | None = None  # the one role it is sometimes denied on
    session_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Population:
    accounts: tuple[str, ...]
    roles: dict[str, list[str]]  # account -> role ARNs (all roles the scenario has)
    principals: list[Principal]
    by_account: dict[str, dict[str, list[Principal]]]  # account -> kind -> principals
    background_actors: dict[str, list[tuple[dict[str, Any], str, str]]]  # account -> (identity, ip, ua)


USER_AGENTS = {
    "cli": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22 prompt/off command/sts.assume-role",
    "cli_mac": "aws-cli/2.17.2 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 "
               "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#sts.assume-role",
    "boto3": "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0-1016-aws md/arch#x86_64 lang/python#3.11.8 "
             "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "terraform": "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 "
                 "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1",
    "gha": "aws-sdk-nodejs/2.1583.0 linux/v20.11.1 configure-aws-credentials-for-github-actions promise",
    "console": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/123.0.0.0 Safari/537.36",
    "sso": "aws-internal/3 aws-sdk-java/1.12.677 Linux/5.10.213-179.855.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/"
           "25.402-b08 java/1.8.0_402 vendor/Oracle_Corporation cfg/retry-mode/standard",
}


def _office_ip(account_index: int, n: int, octet: int) -> str:
    """Two stable addresses per principal: slots 0-119 on an office /24 (alternating per account),
    further slots on VPC-endpoint private /24s (100 principals each)."""
    if n < 120:
        return f"{('203.0.113', '198.51.100')[account_index % 2]}.{10 + n * 2 + octet}"
    n -= 120
    return f"10.{20 + account_index % 200}.{n // 100 % 250}.{10 + (n % 100) * 2 + octet}"


def _human_slot(i: int) -> int:
    return i if i < 110 else 120 + i  # 110-119: reserved for DevUser and the planted newcomer


def _id(prefix: str, text: str, n: int = 17) -> str:
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
    return prefix + digest[:n]


def build_population(spec: TrailSpec) -> Population:
    """Who calls what. Sized so each person makes at most a few calls per working hour."""
    ar_per_account_hour = spec.total_records * ASSUME_ROLE_SHARE / max(1, len(spec.accounts)) / (spec.days * 9.0)
    n_humans = max(4, math.ceil(ar_per_account_hour * 0.35 / 2.0))
    n_saml = max(3, math.ceil(ar_per_account_hour * 0.15 / 2.0))
    accounts = spec.accounts
    roles: dict[str, list[str]] = {}
    principals: list[Principal] = []
    by_account: dict[str, dict[str, list[Principal]]] = {}
    background: dict[str, list[tuple[dict[str, Any], str, str]]] = {}
    for ai, acct in enumerate(accounts):
        admin = role_arn(acct, "AdminRole")
        audit = role_arn(acct, "ReadOnlyAuditRole")
        deploy = role_arn(acct, "DeployRole")
        gha = role_arn(acct, "GitHubActionsRole")
        sso = role_arn(acct, SSO_ROLE_NAME, SSO_ROLE_PATH)
        lam = role_arn(acct, "payments-lambda-role", "/service-role/")
        ec2 = role_arn(acct, "app-ec2-instance-role")
        acct_roles = [admin, audit, deploy, gha, sso, lam, ec2, role_arn(acct, UNUSED_ROLE)]
        if ai == 0:
            acct_roles.insert(0, role_arn(acct, DEV_ROLE_NAME, DEV_ROLE_PATH))
            # no principal's `roles`: the normal population never touches it (every use is watched_role news)
            acct_roles.append(role_arn(acct, BREAK_GLASS_ROLE))
        roles[acct] = acct_roles
        kinds: dict[str, list[Principal]] = defaultdict(list)
        for i in range(n_humans):
            name = HUMAN_NAMES[i % len(HUMAN_NAMES)] + ("" if i < len(HUMAN_NAMES) else f"{i // len(HUMAN_NAMES)}")
            arn = f"arn:aws:iam::{acct}:user/{name}"
            ident = {"type": "IAMUser", "principalId": _id("AIDA", arn), "arn": arn, "accountId": acct,
                     "accessKeyId": _id("AKIA", arn + ":key", 16), "userName": name}
            if i % 5 == 4:  # some people work over IPv6; one /64 each
                ips: tuple[str, ...] = (f"2001:db8:{ai:x}:{i:x}::a1", f"2001:db8:{ai:x}:{i:x}::b2")
            else:
                ips = (_office_ip(ai, _human_slot(i), 0), _office_ip(ai, _human_slot(i), 1))
            primary = (audit, deploy, admin)[i % 3]
            my_roles = (primary,) if i % 2 else (primary, audit if primary != audit else deploy)
            fail_role = admin if admin not in my_roles else deploy if deploy not in my_roles else audit
            p = Principal(key=arn, kind="iam_user", account=acct, identity=ident, ips=ips,
                          user_agent=USER_AGENTS["cli_mac" if i % 3 else "cli"], roles=my_roles,
                          fail_role=fail_role, session_name=name)
            kinds["iam_user"].append(p)
        issuer = f"https://portal.sso.eu-central-1.amazonaws.com/saml/assertion/{_id('', acct, 20).lower()}"
        provider = f"arn:aws:iam::{acct}:saml-provider/AWSSSO_{_id('', acct + 'sso', 16).lower()}_DO_NOT_DELETE"
        for i in range(n_saml):
            email = f"{HUMAN_NAMES[(i + 7) % len(HUMAN_NAMES)]}{i // len(HUMAN_NAMES) or ''}@acme.example"
            ident = {"type": "SAMLUser", "principalId": f"{_id('', issuer, 24)}:{email}", "userName": email,
                     "identityProvider": _id('', issuer, 24)}
            p = Principal(key=f"{ident['identityProvider']}:{email}", kind="saml", account=acct, identity=ident,
                          ips=(_office_ip(ai, 100_000 + i, 0), _office_ip(ai, 100_000 + i, 1)),
                          user_agent=USER_AGENTS["sso"], roles=(sso,), session_name=email,
                          extra={"provider": provider, "issuer": issuer})
            kinds["saml"].append(p)
        oidc = f"arn:aws:iam::{acct}:oidc-provider/token.actions.githubusercontent.com"
        for i, repo in enumerate(CI_REPOS[:2 + ai % 3]):
            sub = f"repo:{repo}:ref:refs/heads/main"
            ident = {"type": "WebIdentityUser", "principalId": f"{oidc}:sts.amazonaws.com:{sub}", "userName": sub,
                     "identityProvider": oidc}
            p = Principal(key=f"{oidc}:{sub}", kind="ci", account=acct, identity=ident,
                          ips=(f"198.18.{ai % 250}.{20 + i * 2}", f"198.18.{ai % 250}.{21 + i * 2}"),
                          user_agent=USER_AGENTS["gha"], roles=(gha, deploy), session_name="GitHubActions",
                          extra={"sub": sub, "oidc": oidc})
            kinds["ci"].append(p)
        for svc, role, session in (("lambda.amazonaws.com", lam, "payments-settlement"),
                                   ("lambda.amazonaws.com", lam, "payments-webhook"),
                                   ("ec2.amazonaws.com", ec2, f"i-0{_id('', acct + 'ec2', 16).lower()}")):
            p = Principal(key=svc, kind="service", account=acct,
                          identity={"type": "AWSService", "invokedBy": svc}, ips=(svc,), user_agent=svc,
                          roles=(role,), session_name=session)
            kinds["service"].append(p)
        if ai >= 1:
            arn = f"arn:aws:iam::{acct}:user/{DEV_USER}"
            ident = {"type": "IAMUser", "principalId": _id("AIDA", arn), "arn": arn, "accountId": acct,
                     "accessKeyId": _id("AKIA", arn + ":key", 16), "userName": DEV_USER}
            dev_role = role_arn(accounts[0], DEV_ROLE_NAME, DEV_ROLE_PATH)
            p = Principal(key=arn, kind="dev_user", account=acct, identity=ident,
                          ips=(_office_ip(ai, 118, 0), _office_ip(ai, 118, 1)), user_agent=USER_AGENTS["boto3"],
                          roles=(dev_role,), fail_role=dev_role, session_name=f"{DEV_USER}-session")
            kinds["dev_user"].append(p)
        by_account[acct] = dict(kinds)
        for plist in kinds.values():
            principals.extend(plist)
        background[acct] = _background_actors(acct, kinds)
    return Population(accounts=accounts, roles=roles, principals=principals, by_account=by_account,
                      background_actors=background)


def _session_arn(role: str, session: str) -> str:
    account = role.split(":")[4]
    return f"arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[1]}/{session}"


def _session_identity(role: str, session: str, mfa: bool = False) -> dict[str, Any]:
    account = role.split(":")[4]
    role_id = _id("AROA", role)
    return {
        "type": "AssumedRole", "principalId": f"{role_id}:{session}", "arn": _session_arn(role, session),
        "accountId": account, "accessKeyId": _id("ASIA", role + session, 16),
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": role, "accountId": account,
                              "userName": role.rsplit("/", 1)[1]},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2024-01-01T00:00:00Z", "mfaAuthenticated": "true" if mfa else "false"},
        },
    }


def _background_actors(acct: str, kinds: dict[str, list[Principal]]) -> list[tuple[dict[str, Any], str, str]]:
    """Identities that make the non-AssumeRole calls: the sessions people and services hold."""
    actors = []
    for p in kinds.get("iam_user", []) + kinds.get("saml", []) + kinds.get("ci", []):
        for role in p.roles:
            if role.split(":")[4] == acct:
                actors.append((_session_identity(role, p.session_name), p.ips[0], p.user_agent))
    for p in kinds.get("service", []):
        actors.append((_session_identity(p.roles[0], p.session_name), p.ips[0], USER_AGENTS["boto3"]))
    return actors


# --------------------------------------------------------------------------- record templates


def _rr(rng: random.Random, a: int, b: int | None = None) -> int:
    """randrange without its per-call overhead (the generator's hot path draws millions)."""
    return int(rng.random() * a) if b is None else a + int(rng.random() * (b - a))


_MMSS = [f"{s // 60:02d}:{s % 60:02d}Z" for s in range(3600)]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"


def _key_id(rng: random.Random, prefix: str = "ASIA") -> str:
    return prefix + base64.b32encode(rng.getrandbits(80).to_bytes(10, "big")).decode()[:16]


_TOKEN_BLOB = base64.b64encode(random.Random("token-blob").randbytes(6000)).decode()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _session_token(rng: random.Random) -> str:
    # fake, but shaped like a real STS token (prefix IQoJ), so redaction is exercised
    start = _rr(rng, 0, len(_TOKEN_BLOB) - 700)
    return "IQoJb3JpZ2luX2VjE" + _TOKEN_BLOB[start:start + 600]


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _expiration(dt: datetime) -> str:
    """CloudTrail's `Jul 5, 2021, 1:18:34 PM` form."""
    hour12 = dt.hour % 12 or 12
    return f"{_MONTHS[dt.month - 1]} {dt.day}, {dt.year}, {hour12}:{dt.minute:02d}:{dt.second:02d} " \
           f"{'AM' if dt.hour < 12 else 'PM'}"


_TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "sts.amazonaws.com"}
_TLS_BY_HOST: dict[str, dict[str, str]] = {}


def _tls(host: str) -> dict[str, str]:
    tls = _TLS_BY_HOST.get(host)
    if tls is None:
        tls = _TLS_BY_HOST[host] = {**_TLS, "clientProvidedHostHeader": host}
    return tls


_MFA_ROLES = ("AdminRole", BREAK_GLASS_ROLE)  # their trust policies require MFA (monitor.demo.scenario)


@dataclass
class Call:
    """One AssumeRole-family API call, before it becomes one or two records."""

    principal: Principal
    role: str
    when: datetime
    region: str
    failed: bool = False
    ip: str | None = None
    duration: int | None = None
    event_name: str = "AssumeRole"
    session_name: str | None = None
    identity: dict[str, Any] | None = None  # overrides the principal's (chained calls)
    external_id_ok: bool = True
    issued_key: str | None = None  # the temporary key this call hands out (a chained call signs with it)


def call_records(call: Call, rng: random.Random, ext_id: str) -> list[dict[str, Any]]:
    """One call -> its records: one copy, or two (caller's and role owner's) when cross-account."""
    p = call.principal
    role_account = call.role.split(":")[4]
    identity = call.identity or p.identity
    caller_account = identity.get("accountId") or role_account
    ip = call.ip or p.ips[_rr(rng, len(p.ips))]
    session = call.session_name or p.session_name
    ev: dict[str, Any] = {
        "eventVersion": "1.08", "userIdentity": identity, "eventTime": _ts(call.when),
        "eventSource": "sts.amazonaws.com", "eventName": call.event_name, "awsRegion": call.region,
        "sourceIPAddress": ip, "userAgent": p.user_agent,
    }
    if call.failed:
        caller_arn = identity.get("arn")
        ev["errorCode"] = "AccessDenied"
        ev["errorMessage"] = (f"User: {caller_arn} is not authorized to perform: sts:{call.event_name} "
                              f"on resource: {call.role}")
        ev["requestParameters"] = None
        ev["responseElements"] = None
    else:
        duration = call.duration or 3600
        expires = call.when + timedelta(seconds=duration)
        key = call.issued_key or _key_id(rng)
        role_id = _id("AROA", call.role)
        req: dict[str, Any] = {"roleArn": call.role, "roleSessionName": session}
        resp: dict[str, Any] = {
            "credentials": {"accessKeyId": key, "sessionToken": _session_token(rng), "expiration": _expiration(expires)},
            "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}", "arn": _session_arn(call.role, session)},
        }
        if call.duration:
            req["durationSeconds"] = call.duration
        if call.event_name == "AssumeRoleWithSAML":
            req["principalArn"] = p.extra["provider"]
            req["durationSeconds"] = duration
            resp.update({"subjectType": "persistent", "issuer": p.extra["issuer"],
                         "audience": "https://signin.aws.amazon.com/saml", "nameQualifier": _id("", p.extra["issuer"], 28),
                         "subject": p.session_name})
        elif call.event_name == "AssumeRoleWithWebIdentity":
            req["durationSeconds"] = duration
            resp.update({"subjectFromWebIdentityToken": p.extra["sub"], "provider": p.extra["oidc"],
                         "audience": "sts.amazonaws.com"})
        if p.kind == "dev_user":
            req["externalId"] = ext_id if call.external_id_ok else "wrong-" + ext_id[-6:]
        if p.kind == "iam_user" and call.role.rsplit("/", 1)[1] in _MFA_ROLES:
            req["serialNumber"] = f"arn:aws:iam::{caller_account}:mfa/{p.session_name}"
            req["tokenCode"] = "HIDDEN_DUE_TO_SECURITY_REASONS"
        ev["requestParameters"] = req
        ev["responseElements"] = resp
        ev["resources"] = [{"accountId": role_account, "type": "AWS::IAM::Role", "ARN": call.role}]
    ev.update({"requestID": _uuid(rng), "eventID": _uuid(rng), "readOnly": True, "eventType": "AwsApiCall",
               "managementEvent": True, "recipientAccountId": role_account, "eventCategory": "Management"})
    if identity.get("type") != "AWSService":
        ev["tlsDetails"] = _TLS
    if caller_account == role_account:
        return [ev]
    # cross-account: the caller's trail has the full identity, the role owner's only the account
    shared = _uuid(rng)
    ev["sharedEventID"] = shared
    owner = dict(ev)
    owner["userIdentity"] = {"type": "AWSAccount", "principalId": identity.get("principalId"),
                             "accountId": caller_account}
    caller_copy = dict(ev)
    caller_copy["eventID"] = _uuid(rng)
    caller_copy["recipientAccountId"] = caller_account
    return [owner, caller_copy]


# background (non-AssumeRole) event kinds: (weight, builder)
def _bg_s3(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    bucket = f"acme-{acct[-4:]}-{('data', 'logs', 'artifacts')[_rr(rng, 3)]}-{region}"
    key = f"{('exports', 'uploads', 'builds', 'reports')[_rr(rng, 4)]}/2024/{_rr(rng, 1, 13):02d}/" \
          f"{rng.getrandbits(48):012x}.{('parquet', 'json', 'zip', 'csv')[_rr(rng, 4)]}"
    put = rng.random() < 0.3
    ev = {
        "eventSource": "s3.amazonaws.com", "eventName": "PutObject" if put else "GetObject",
        "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key,
                              **({"x-amz-server-side-encryption": "aws:kms"} if put else {})},
        "responseElements": {"x-amz-server-side-encryption": "aws:kms"} if put else None,
        "additionalEventData": {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                "bytesTransferredIn": _rr(rng, 100, 90000) if put else 0,
                                "SSEApplied": "SSE_KMS", "AuthenticationMethod": "AuthHeader",
                                "x-amz-id-2": base64.b64encode(rng.randbytes(48)).decode(),
                                "bytesTransferredOut": 0 if put else _rr(rng, 100, 900000)},
        "readOnly": not put, "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": acct, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
        "eventType": "AwsApiCall", "managementEvent": False, "eventCategory": "Data",
        "tlsDetails": _tls(f"{bucket}.s3.{region}.amazonaws.com"),
    }
    return ev


@functools.cache
def _kms_key(acct: str, region: str) -> str:
    return f"arn:aws:kms:{region}:{acct}:key/{_uuid(random.Random(acct + region))}"


def _bg_kms(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    key_arn = _kms_key(acct, region)
    decrypt = rng.random() < 0.7
    return {
        "eventSource": "kms.amazonaws.com", "eventName": "Decrypt" if decrypt else "GenerateDataKey",
        "requestParameters": {"encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::acme-{acct[-4:]}-data-{region}/"
                                                    f"exports/{rng.getrandbits(40):010x}.parquet"},
                              "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                              **({} if decrypt else {"keyId": key_arn, "keySpec": "AES_256"})},
        "responseElements": None, "readOnly": True,
        "resources": [{"accountId": acct, "type": "AWS::KMS::Key", "ARN": key_arn}],
        "eventType": "AwsApiCall", "managementEvent": True, "eventCategory": "Management",
        "tlsDetails": _tls(f"kms.{region}.amazonaws.com"),
    }


def _bg_ec2(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    name = ("DescribeInstances", "DescribeSecurityGroups", "DescribeVolumes", "DescribeSubnets")[_rr(rng, 4)]
    return {
        "eventSource": "ec2.amazonaws.com", "eventName": name,
        "requestParameters": {"filterSet": {"items": [{"name": "tag:Environment", "valueSet": {"items": [
            {"value": ("production", "staging")[_rr(rng, 2)]}]}}]}, "maxResults": 1000,
            "instancesSet": {}} if name == "DescribeInstances" else {"maxResults": 1000, "filterSet": {}},
        "responseElements": None, "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
        "eventCategory": "Management", "tlsDetails": _tls(f"ec2.{region}.amazonaws.com"),
    }


_TRUST_ENCODED = ("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C"
                  "%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3A"
                  "AssumeRole%22%7D%5D%7D")


def _bg_iam(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    roll = rng.random()
    role_name = ("DeployRole", "ReadOnlyAuditRole", "payments-lambda-role", "AdminRole")[_rr(rng, 4)]
    if roll < 0.02:  # rare, and a trap for byte-level pre-filters: mentions sts:AssumeRole, is not one
        name, req = "UpdateAssumeRolePolicy", {"roleName": role_name, "policyDocument": _TRUST_ENCODED}
        read_only = False
    elif roll < 0.55:
        name, req, read_only = "GetRole", {"roleName": role_name}, True
    else:
        name, req, read_only = "ListAttachedRolePolicies", {"roleName": role_name}, True
    return {
        "eventSource": "iam.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        "requestParameters": req, "responseElements": None, "readOnly": read_only, "eventType": "AwsApiCall",
        "managementEvent": True, "eventCategory": "Management", "tlsDetails": _tls("iam.amazonaws.com"),
    }


def _bg_lambda(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    fn = ("payments-settlement", "payments-webhook", "report-builder")[_rr(rng, 3)]
    name = ("GetFunction20150331v2", "ListFunctions20150331", "GetFunctionConfiguration20150331v2")[_rr(rng, 3)]
    return {
        "eventSource": "lambda.amazonaws.com", "eventName": name,
        "requestParameters": {"functionName": f"arn:aws:lambda:{region}:{acct}:function:{fn}"}
        if name != "ListFunctions20150331" else {"maxItems": 50},
        "responseElements": None, "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
        "eventCategory": "Management", "tlsDetails": _tls(f"lambda.{region}.amazonaws.com"),
    }


def _bg_sts(rng: random.Random, acct: str, region: str, actor: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    # an STS call that is not AssumeRole-family: collectors must not keep it
    return {
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "requestParameters": None,
        "responseElements": None, "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
        "eventCategory": "Management", "tlsDetails": _TLS,
    }


_BACKGROUND = ((0.36, _bg_s3), (0.24, _bg_kms), (0.18, _bg_ec2), (0.08, _bg_iam), (0.09, _bg_lambda), (0.05, _bg_sts))
_BG_CUM = []
_acc = 0.0
for _w, _fn in _BACKGROUND:
    _acc += _w
    _BG_CUM.append((_acc, _fn))


def background_record(rng: random.Random, acct: str, region: str, event_time: str,
                      actors: list[tuple[dict[str, Any], str, str]]) -> dict[str, Any]:
    actor = actors[_rr(rng, len(actors))]
    roll = rng.random() * _acc
    builder = next(fn for cum, fn in _BG_CUM if roll <= cum)
    body = builder(rng, acct, region, actor)
    ev = {"eventVersion": "1.09", "userIdentity": actor[0], "eventTime": event_time,
          "eventSource": body.pop("eventSource"), "eventName": body.pop("eventName"),
          "awsRegion": body.pop("awsRegion", region), "sourceIPAddress": actor[1], "userAgent": actor[2]}
    ev.update(body)
    ev["requestID"] = _uuid(rng)
    ev["eventID"] = _uuid(rng)
    ev["recipientAccountId"] = acct
    return ev


# --------------------------------------------------------------------------- the plan


@dataclass
class Unit:
    """One (region, hour) of trail: its record budget and the calls forced into it."""

    index: int
    region: str
    hour: datetime
    n_records: int
    n_failed: int
    business: bool
    forced: list[tuple[Call, str | None]] = field(default_factory=list)  # (call, incident id or None)


def is_work_time(local: datetime) -> bool:
    if local.weekday() >= 5:
        return False
    hm = (local.hour, local.minute)
    return WORK_START <= hm < WORK_END


def _hour_weight(hour: datetime, tz: ZoneInfo) -> tuple[float, bool]:
    local = hour.astimezone(tz)
    mid = local + timedelta(minutes=30)
    business = is_work_time(local.replace(minute=30)) or is_work_time(mid)
    return (0.3 + (1.0 if business else 0.0)), business


def plan(spec: TrailSpec, population: Population) -> tuple[list[Unit], list[dict[str, Any]]]:
    """Split the record budget over (region, hour) units; place warm-up calls and incidents."""
    tz = ZoneInfo(spec.timezone)
    hours = [spec.start + timedelta(hours=h) for h in range(spec.days * 24)]
    region_w = [1.0 / (1 + i) for i in range(len(spec.regions))]
    cells = []
    for hour in hours:
        w, business = _hour_weight(hour, tz)
        for ri, region in enumerate(spec.regions):
            cells.append((region, hour, w * region_w[ri], business))
    total_w = sum(c[2] for c in cells)
    total = spec.total_records
    # largest remainder, so the budgets add up to exactly `total`
    raw = [total * c[2] / total_w for c in cells]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: total - sum(counts)]:
        counts[i] += 1
    ar_total = sum(c * ASSUME_ROLE_SHARE for c in counts)
    # background denials only in the first region (STS's global endpoint logs there), so a person's
    # at-most-one-denial-per-hour holds across regions
    first_region = spec.regions[0]
    ar_business = sum(c * ASSUME_ROLE_SHARE for c, cell in zip(counts, cells, strict=True)
                      if cell[3] and cell[0] == first_region) or 1.0
    fail_rate = min(0.6, FAILED_SHARE * ar_total / ar_business)
    units = [Unit(index=i, region=c[0], hour=c[1], n_records=n, n_failed=0, business=c[3])
             for i, (c, n) in enumerate(zip(cells, counts, strict=True))]
    carry = 0.0
    for u in units:
        if u.business and u.region == first_region:
            carry += u.n_records * ASSUME_ROLE_SHARE * fail_rate
            u.n_failed = int(carry)
            carry -= u.n_failed
    by_key = {(u.region, u.hour): u for u in units}
    _place_warmup(spec, population, units, tz)
    labels = plant_incidents(spec, population, by_key, tz)
    return units, labels


def _place_warmup(spec: TrailSpec, pop: Population, units: list[Unit], tz: ZoneInfo) -> None:
    """Every normal (principal, role) pair once on the first working morning of the first region."""
    first = [u for u in units if u.business and u.region == spec.regions[0]]
    if not first:
        return
    rng = random.Random(f"warmup:{spec.seed}")
    slot = 0
    for p in pop.principals:
        if p.kind == "service":
            continue
        roles = p.roles[:1] if p.kind == "ci" else p.roles
        for role in roles:
            unit = first[min(slot // 20, len(first) - 1)]
            when = unit.hour + timedelta(minutes=5 + (slot % 20) * 2, seconds=_rr(rng, 60))
            for call in _calls_for(p, role, when, unit.region, rng):
                unit.forced.append((call, None))
            slot += 1


def _calls_for(p: Principal, role: str, when: datetime, region: str, rng: random.Random,
               **kw: Any) -> list[Call]:
    """The call(s) a principal makes to use a role; CI is a web-identity call then a chained one."""
    if p.kind == "ci":
        key = _key_id(rng)
        first = Call(p, p.roles[0], when, region, event_name="AssumeRoleWithWebIdentity", duration=3600,
                     session_name="GitHubActions", issued_key=key, **kw)
        session = {**_session_identity(p.roles[0], "GitHubActions"), "accessKeyId": key}
        chained = Call(p, p.roles[1], when + timedelta(seconds=20 + _rr(rng, 40)), region,
                       identity=session, session_name="GitHubActions")
        return [first, chained]
    if p.kind == "saml":
        return [Call(p, role, when, region, event_name="AssumeRoleWithSAML", duration=3600, **kw)]
    return [Call(p, role, when, region, **kw)]


def _incident_days(spec: TrailSpec, tz: ZoneInfo) -> tuple[list[date], bool]:
    """Working days (local) to plant on, latest first; and whether they are past the learning period."""
    learned_from = (spec.start + timedelta(days=spec.learning_days + 1)).astimezone(tz).date()
    last = (spec.end - timedelta(hours=1)).astimezone(tz).date()
    first = spec.start.astimezone(tz).date() + timedelta(days=1)
    days = []
    d = last
    if datetime.combine(d + timedelta(days=1), datetime.min.time(), tz) > spec.end:
        d -= timedelta(days=1)  # the final day is partial: do not plant in its future
    while d >= first:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    after = [d for d in days if d >= learned_from]
    return (after or days), bool(after)


def plant_incidents(spec: TrailSpec, pop: Population, by_key: dict[tuple[str, datetime], Unit],
                    tz: ZoneInfo) -> list[dict[str, Any]]:
    """Put the labelled incidents into their units; return their labels (event ids filled in later)."""
    days, learned = _incident_days(spec, tz)
    if not days:
        return []
    rng = random.Random(f"incidents:{spec.seed}")
    owner = pop.accounts[0]
    kinds = pop.by_account[owner]
    humans = kinds["iam_user"]
    region = spec.regions[0]
    labels: list[dict[str, Any]] = []

    def at(day: date, hh: int, mm: int) -> datetime:
        return datetime(day.year, day.month, day.day, hh, mm, _rr(rng, 60), tzinfo=tz).astimezone(UTC)

    def put(label: dict[str, Any], calls: list[Call]) -> None:
        label["id"] = f"incident-{len(labels) + 1}"
        label["_calls"] = len(calls)
        for c in calls:
            unit = by_key.get((c.region, c.when.replace(minute=0, second=0, microsecond=0)))
            if unit is None:
                return
        for c in calls:
            by_key[(c.region, c.when.replace(minute=0, second=0, microsecond=0))].forced.append((c, label["id"]))
        label["first_seen"] = _ts(min(c.when for c in calls))
        label["last_seen"] = _ts(max(c.when for c in calls))
        label["event_ids"] = []
        label["shared_event_ids"] = []
        labels.append(label)

    d1 = days[0]
    d2 = days[1] if len(days) > 1 else days[0]
    dev = pop.by_account[pop.accounts[1]]["dev_user"][0] if len(pop.accounts) > 1 else None
    # 1. a burst of denied attempts: DevUser with a wrong ExternalId, 6 tries in 4 minutes
    if dev is not None:
        t0 = at(d1, 10, 14)
        ip = dev.ips[0]
        calls = [Call(dev, dev.roles[0], t0 + timedelta(seconds=40 * i), region, failed=True, ip=ip)
                 for i in range(6)]
        put({"incident": "denied_burst", "detector": "failed_assume_role", "severity": "high",
             "account_id": owner, "role_arn": dev.roles[0], "principal": dev.key, "source_ip": ip,
             "details": {"attempts": 6, "cause": "ExternalId mismatch"}}, calls)
    # 2. role enumeration from outside the organisation: one principal denied on 5 roles in 3 minutes
    recon_arn = f"arn:aws:iam::{OUTSIDE_ACCOUNT}:user/recon"
    recon = Principal(key=recon_arn, kind="outsider", account=OUTSIDE_ACCOUNT,
                      identity={"type": "IAMUser", "principalId": _id("AIDA", recon_arn), "arn": recon_arn,
                                "accountId": OUTSIDE_ACCOUNT, "accessKeyId": _id("AKIA", recon_arn, 16),
                                "userName": "recon"},
                      ips=("192.0.2.66",), user_agent=USER_AGENTS["boto3"].replace("retry-mode#legacy",
                                                                                    "retry-mode#standard"),
                      roles=())
    targets = ["AdminRole", "OrganizationAccountAccessRole", "DeployRole", "terraform", "ReadOnlyAuditRole"]
    t0 = at(d1, 13, 2)
    calls = [Call(recon, role_arn(owner, name), t0 + timedelta(seconds=35 * i), region, failed=True)
             for i, name in enumerate(targets)]
    put({"incident": "role_enumeration", "detector": "failed_assume_role", "severity": "high",
         "account_id": owner, "role_arn": None, "roles": [c.role for c in calls], "principal": recon_arn,
         "source_ip": recon.ips[0], "details": {"enumeration": True, "distinct_roles": len(targets)}}, calls)
    # 3. long session: a person asks for 12 hours on a role they use every day
    p = humans[1 % len(humans)]
    calls = [Call(p, p.roles[0], at(d1, 15, 40), region, duration=43200, ip=p.ips[0])]
    put({"incident": "long_session", "detector": "long_session", "severity": "low", "account_id": owner,
         "role_arn": p.roles[0], "principal": p.key, "source_ip": p.ips[0],
         "details": {"duration_seconds": 43200}}, calls)
    # 4. a 3 a.m. (local) session by a person, from their usual address, on their usual role
    p = humans[0]
    night = d1 - timedelta(days=1) if d1.weekday() > 0 else d1
    calls = [Call(p, p.roles[0], at(night, 3, 7), region, ip=p.ips[0])]
    put({"incident": "night_session", "detector": "off_hours", "severity": "low", "account_id": owner,
         "role_arn": p.roles[0], "principal": p.key, "source_ip": p.ips[0],
         "details": {"local_time": "03:07", "timezone": spec.timezone}}, calls)
    if learned:
        # 5. success from a never-seen address after the learning period (cross-account: high)
        if dev is not None:
            ip = "192.0.2.201"
            calls = [Call(dev, dev.roles[0], at(d2, 11, 23), region, ip=ip)]
            put({"incident": "new_source_ip", "detector": "unusual_source_ip", "severity": "high",
                 "account_id": owner, "role_arn": dev.roles[0], "principal": dev.key, "source_ip": ip,
                 "details": {"cross_account": True}}, calls)
        # 6. a principal never seen before, from the office network
        arn = f"arn:aws:iam::{owner}:user/contractor-zed"
        newbie = Principal(key=arn, kind="iam_user", account=owner,
                           identity={"type": "IAMUser", "principalId": _id("AIDA", arn), "arn": arn,
                                     "accountId": owner, "accessKeyId": _id("AKIA", arn, 16),
                                     "userName": "contractor-zed"},
                           ips=(_office_ip(0, 119, 0),), user_agent=USER_AGENTS["cli"],
                           roles=(role_arn(owner, "ReadOnlyAuditRole"),), session_name="contractor-zed")
        calls = [Call(newbie, newbie.roles[0], at(d2, 14, 51), region)]
        put({"incident": "first_time_principal", "detector": "first_time_principal", "severity": "medium",
             "account_id": owner, "role_arn": newbie.roles[0], "principal": arn, "source_ip": newbie.ips[0],
             "details": {}}, calls)
    # 7. break-glass: the one person the role trusts uses it once, with MFA, from the office, in working hours
    # (its first use, so it is also the start of the role's learning period: only watched_role reports it)
    holder = next((h for h in humans if h.session_name == BREAK_GLASS_USER), None)
    if holder is not None:
        glass = role_arn(owner, BREAK_GLASS_ROLE)
        calls = [Call(holder, glass, at(d2, 9, 48), region, ip=holder.ips[0])]
        put({"incident": "break_glass_use", "detector": "watched_role", "severity": "high", "account_id": owner,
             "role_arn": glass, "principal": holder.key, "source_ip": holder.ips[0],
             "details": {"mfa": True}}, calls)
    return labels


# --------------------------------------------------------------------------- generation


def _unit_rng(spec: TrailSpec, unit: Unit) -> random.Random:
    return random.Random(f"{spec.seed}:{unit.region}:{unit.hour.isoformat()}")


def generate_unit(spec: TrailSpec, pop: Population, unit: Unit,
                  ext_id: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[tuple[str, str | None]]]]:
    """Records of one (region, hour) for every account, time-ordered; plus incident id -> (eventID, sharedEventID)."""
    rng = _unit_rng(spec, unit)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    incident_events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    span = 3600
    end_cut = spec.end

    def when() -> datetime:
        return unit.hour + timedelta(seconds=_rr(rng, span))

    ours = set(pop.accounts)
    n_ar = 0
    for call, incident in unit.forced:
        # a caller outside the trail's accounts: only the role owner's copy exists here
        recs = [r for r in call_records(call, rng, ext_id) if r["recipientAccountId"] in ours]
        for r in recs:
            out[r["recipientAccountId"]].append(r)
            if incident:
                incident_events[incident].append((r["eventID"], r.get("sharedEventID")))
        n_ar += len(recs)
    ar_budget = round(unit.n_records * ASSUME_ROLE_SHARE)
    # denials first: each by a different principal, on that principal's one "no" role
    failable = [p for a in pop.accounts for p in pop.by_account[a].get("iam_user", []) + pop.by_account[a].get(
        "dev_user", [])]
    failed_made = 0
    if unit.business and unit.n_failed and failable:
        order = rng.sample(range(len(failable)), len(failable))
        for idx in order:
            if failed_made >= unit.n_failed or n_ar >= ar_budget:
                break
            p = failable[idx]
            recs = call_records(Call(p, p.fail_role or p.roles[0], when(), unit.region, failed=True,
                                     external_id_ok=False), rng, ext_id)
            for r in recs:
                out[r["recipientAccountId"]].append(r)
            failed_made += len(recs)
            n_ar += len(recs)
    # successes
    services = [p for a in pop.accounts for p in pop.by_account[a].get("service", [])]
    people = {k: [p for a in pop.accounts for p in pop.by_account[a].get(k, [])]
              for k in ("iam_user", "saml", "ci", "dev_user")}
    mix = [("service", 0.25), ("iam_user", 0.35), ("saml", 0.15), ("ci", 0.10), ("dev_user", 0.15)]
    mix = [(k, w) for k, w in mix if (services if k == "service" else people[k])]
    total_w = sum(w for _, w in mix)
    while n_ar < ar_budget:
        if not unit.business:
            kind = "service"
        else:
            roll = rng.random() * total_w
            kind = mix[-1][0]
            for k, w in mix:
                roll -= w
                if roll <= 0:
                    kind = k
                    break
        pool = services if kind == "service" else people[kind]
        if not pool:
            break
        p = pool[_rr(rng, len(pool))]
        role = p.roles[_rr(rng, len(p.roles))] if kind != "ci" else p.roles[0]
        t = when()
        if kind == "service":
            calls = [Call(p, role, t, unit.region, duration=None, session_name=p.session_name)]
        else:
            calls = _calls_for(p, role, t, unit.region, rng)
        for c in calls:
            for r in call_records(c, rng, ext_id):
                out[r["recipientAccountId"]].append(r)
                n_ar += 1
    # everything else
    n_bg = max(0, unit.n_records - n_ar)
    accts = pop.accounts
    hour_prefix = unit.hour.strftime("%Y-%m-%dT%H:")
    for _ in range(n_bg):
        acct = accts[_rr(rng, len(accts))]
        event_time = hour_prefix + _MMSS[int(rng.random() * 3600)]
        out[acct].append(background_record(rng, acct, unit.region, event_time, pop.background_actors[acct]))
    result = {}
    for acct, recs in out.items():
        recs = [r for r in recs if r["eventTime"] < _ts(end_cut)] if unit.hour + timedelta(hours=1) > end_cut else recs
        recs.sort(key=lambda r: r["eventTime"])
        result[acct] = recs
    return result, incident_events


@dataclass
class Trail:
    spec: TrailSpec
    population: Population
    units: list[Unit]
    labels: list[dict[str, Any]]
    ext_id: str


def prepare(spec: TrailSpec) -> Trail:
    pop = build_population(spec)
    units, labels = plan(spec, pop)
    return Trail(spec=spec, population=pop, units=units, labels=labels, ext_id=external_id(spec.seed))


def generate(days: int = 7, accounts: int | Iterable[str] = 2, *, end: datetime | str | None = None,
             regions: int | Iterable[str] = 1, records: int | None = None, seed: int = 7,
             spec: TrailSpec | None = None,
             labels_out: list[dict[str, Any]] | None = None) -> Iterator[tuple[str, str, datetime, list[dict[str, Any]]]]:
    """Yield (account, region, hour, records) in time order. Records are read-only (nested parts are shared).

    Pass `labels_out` (a list) to receive the planted incidents' labels, complete once iteration ends.
    """
    spec = spec or make_spec(days, accounts, end=end, regions=regions, records=records, seed=seed)
    trail = prepare(spec)
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for unit in trail.units:
        per_account, inc = generate_unit(spec, trail.population, unit, trail.ext_id)
        for k, v in inc.items():
            events[k].extend(v)
        for acct in spec.accounts:
            if per_account.get(acct):
                yield acct, unit.region, unit.hour, per_account[acct]
    if labels_out is not None:
        labels_out.extend(finish_labels(trail.labels, events))


def finish_labels(labels: list[dict[str, Any]], events: dict[str, list[tuple[str, str | None]]]) -> list[dict[str, Any]]:
    out = []
    for label in labels:
        lab = {k: v for k, v in label.items() if not k.startswith("_")}
        pairs = events.get(label["id"], [])
        lab["event_ids"] = sorted({e for e, _ in pairs})
        lab["shared_event_ids"] = sorted({s for _, s in pairs if s})
        out.append(lab)
    return out


# --------------------------------------------------------------------------- S3 layout writer


def file_key(account: str, region: str, records: list[dict[str, Any]], rng: random.Random,
             prefix: str = "") -> str:
    """The delivery key of a file: dated by its delivery time (last event, rounded up to 5 minutes)."""
    last = datetime.strptime(records[-1]["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    delivered = last + timedelta(minutes=5 - last.minute % 5) - timedelta(seconds=last.second)
    suffix = base64.b32encode(rng.getrandbits(80).to_bytes(10, "big")).decode()[:16]
    return (f"{prefix}AWSLogs/{account}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_{suffix}.json.gz")


def encode_file(records: list[dict[str, Any]]) -> bytes:
    from isal import igzip

    return igzip.compress(orjson.dumps({"Records": records}), 2, mtime=0)


def unit_files(spec: TrailSpec, per_account: dict[str, list[dict[str, Any]]], unit: Unit,
               prefix: str = "") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Chunk one unit's records into delivery files of `records_per_file`."""
    rng = random.Random(f"files:{spec.seed}:{unit.region}:{unit.hour.isoformat()}")
    n = spec.records_per_file
    for acct in spec.accounts:
        recs = per_account.get(acct) or []
        for i in range(0, len(recs), n):
            chunk = recs[i:i + n]
            yield file_key(acct, unit.region, chunk, rng, prefix), chunk


_WORKER: dict[str, Any] = {}


def _worker_init(spec: TrailSpec, out: str) -> None:
    _WORKER["trail"] = prepare(spec)
    _WORKER["out"] = Path(out)


def _write_units(indices: list[int]) -> tuple[int, int, int, dict[str, list[tuple[str, str | None]]]]:
    trail: Trail = _WORKER["trail"]
    out: Path = _WORKER["out"]
    files = records = size = 0
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    made_dirs: set[Path] = set()
    for i in indices:
        unit = trail.units[i]
        per_account, inc = generate_unit(trail.spec, trail.population, unit, trail.ext_id)
        for k, v in inc.items():
            events[k].extend(v)
        for key, chunk in unit_files(trail.spec, per_account, unit):
            path = out / key
            if path.parent not in made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(path.parent)
            data = encode_file(chunk)
            path.write_bytes(data)
            files += 1
            records += len(chunk)
            size += len(data)
    return files, records, size, dict(events)


@dataclass
class WriteStats:
    files: int
    records: int
    compressed_bytes: int
    seconds: float
    labels: list[dict[str, Any]]


def write_s3_layout(out: str | Path, spec: TrailSpec, *, workers: int | None = None) -> WriteStats:
    """Write the trail under `out` in the S3 delivery layout, on `workers` processes (default: all cores)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trail = prepare(spec)
    n_units = len(trail.units)
    workers = max(1, min(workers or os.cpu_count() or 1, n_units))
    batches = [list(range(i, min(i + 24, n_units))) for i in range(0, n_units, 24)]
    totals = [0, 0, 0]
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    if workers == 1:
        _worker_init(spec, str(out))
        results: Iterable[Any] = map(_write_units, batches)
        results = list(results)
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(spec, str(out))) as pool:
            results = list(pool.map(_write_units, batches))
    for files, records, size, inc in results:
        totals[0] += files
        totals[1] += records
        totals[2] += size
        for k, v in inc.items():
            events[k].extend(v)
    labels = finish_labels(trail.labels, events)
    return WriteStats(files=totals[0], records=totals[1], compressed_bytes=totals[2],
                      seconds=time.perf_counter() - started, labels=labels)


def write_labels(path: str | Path, labels: list[dict[str, Any]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for label in labels:
            fh.write(json.dumps(label, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- CLI


def make_folder(path: Path) -> str | None:
    """Create a destination folder and its parents; why it cannot be (a usage error), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create folder {path}: {exc.strerror or exc}"
    return None


def _destination_problem(args: argparse.Namespace) -> str | None:
    # checked before generating anything: the labels are written last, after the whole trail
    if problem := make_folder(Path(args.out)):
        return f"--out {args.out}: {problem}"
    if args.labels:
        if Path(args.labels).is_dir():
            return f"--labels {args.labels}: is a directory"
        if problem := make_folder(Path(args.labels).parent):
            return f"--labels {args.labels}: {problem}"
    return None


def cmd_synth(args: argparse.Namespace) -> int:
    try:
        spec = make_spec(args.days, args.accounts, end=args.end, regions=args.regions, records=args.records,
                         seed=args.seed, records_per_file=args.records_per_file)
    except ValueError as exc:
        print(f"rolewatch synth: {exc}", file=sys.stderr)
        return 2
    if problem := _destination_problem(args):
        print(f"rolewatch synth: {problem}", file=sys.stderr)
        return 2
    stats = write_s3_layout(args.out, spec)
    if args.labels:
        write_labels(args.labels, stats.labels)
    rate = stats.records / stats.seconds if stats.seconds else 0.0
    print(f"wrote {stats.records:,} records in {stats.files:,} files ({stats.compressed_bytes / 1e6:.1f} MB gzip) "
          f"to {args.out} in {stats.seconds:.1f} s ({rate:,.0f} records/s)", file=sys.stderr)
    print(f"accounts: {', '.join(spec.accounts)}; regions: {', '.join(spec.regions)}; "
          f"{spec.start:%Y-%m-%dT%H:%MZ} .. {spec.end:%Y-%m-%dT%H:%MZ}; "
          f"{len(stats.labels)} planted incidents" + (f" (labels: {args.labels})" if args.labels else ""),
          file=sys.stderr)
    return 0
