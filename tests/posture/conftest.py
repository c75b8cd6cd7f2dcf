"""Fixtures for the posture tests: a multi-account moto server, and an STS gate in front of it.

The multi-account tests use their own moto server process (`moto.server`, HTTP) started without
AWS managed policies: the shared in-process server loads ~1,000 managed policies for every
account it has ever seen, again at every reset, which would make every later test in the
session pay for this module's accounts. Roles here attach customer-managed policies instead.

The gate is a real HTTP proxy to the moto server that answers AssumeRole into chosen accounts
with STS's AccessDenied (moto assumes any role) and can hold requests for a "slow" account
until the test releases them: refusals and hangs travel over HTTP like the real thing. With
`deny_missing_roles` it also refuses, as STS does, a role that does not exist in moto's IAM.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from monitor.demo.local_aws import moto_process

DENIED_XML = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/rolewatch is not
authorized to perform: sts:AssumeRole on resource: {role}</Message></Error><RequestId>gate-1</RequestId></ErrorResponse>"""


class Gate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.denied: set[str] = set()
        self.held: set[str] = set()
        self.release = threading.Event()
        self.held_arrived = threading.Event()
        self.deny_missing_roles = False
        self.denials_served = 0
        self.assume_requests: list[dict[str, str]] = []
        self.url = ""


def _handler(gate: Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            form = dict(urllib.parse.parse_qsl(body.decode())) if body and b"Action=" in body else {}
            if form.get("Action") == "AssumeRole":
                gate.assume_requests.append(form)
                account = form.get("RoleArn", "").split(":")[4]
                if account in gate.held:
                    gate.held_arrived.set()
                    gate.release.wait(30)
                if account in gate.denied or (gate.deny_missing_roles
                                              and not role_exists(gate.upstream, form.get("RoleArn", ""))):
                    payload = DENIED_XML.format(role=form["RoleArn"]).encode()
                    self.send_response(403)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    gate.denials_served += 1
                    return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            req = urllib.request.Request(gate.upstream + self.path, data=body, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(req) as resp:
                    status, rheaders, payload = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as err:
                status, rheaders, payload = err.code, err.headers, err.read()
            self.send_response(status)
            for k, v in rheaders.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

    return Handler


@pytest.fixture(scope="session")
def org_moto_server() -> Iterator[str]:
    with moto_process(MOTO_IAM_LOAD_MANAGED_POLICIES="false") as url:
        yield url


@pytest.fixture
def org_moto(org_moto_server: str) -> str:
    """The multi-account moto endpoint, reset to empty."""
    urllib.request.urlopen(urllib.request.Request(f"{org_moto_server}/moto-api/reset", method="POST")).read()
    return org_moto_server


@pytest.fixture
def org_aws(org_moto: str):  # noqa: ANN201
    from monitor.config import AwsConfig

    return AwsConfig(region="us-east-1", endpoint_url=org_moto, max_attempts=2)


@pytest.fixture
def sts_gate(org_moto: str) -> Iterator[Gate]:
    gate = Gate(org_moto)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gate))
    server.daemon_threads = True
    gate.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        gate.release.set()
        server.shutdown()
        server.server_close()


def account_session(endpoint: str, account_id: str) -> boto3.session.Session:
    """A session acting in `account_id` (moto scopes assumed-role credentials to the role's account)."""
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/setup", RoleSessionName="setup")["Credentials"]
    return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                 aws_session_token=creds["SessionToken"], region_name="us-east-1")


def role_exists(endpoint: str, role_arn: str) -> bool:
    """Whether moto's IAM holds the role (STS answers AccessDenied for a role that does not exist)."""
    iam = account_session(endpoint, role_arn.split(":")[4]).client("iam", endpoint_url=endpoint)
    try:
        iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def trust(*principals: dict[str, Any], condition: dict[str, Any] | None = None) -> str:
    statements = []
    for p in principals:
        st: dict[str, Any] = {"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"}
        if condition:
            st["Condition"] = condition
        statements.append(st)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def provision_account(endpoint: str, account_id: str, roles: int = 3) -> boto3.session.Session:
    """An account with an audit role, `roles` workload roles and one risky vendor role."""
    sess = account_session(endpoint, account_id)
    iam = sess.client("iam", endpoint_url=endpoint)
    iam.create_role(RoleName="rolewatch-audit", AssumeRolePolicyDocument=trust({"AWS": "arn:aws:iam::123456789012:root"},
                    condition={"StringEquals": {"sts:ExternalId": "audit-ext-id-123"}}))
    for i in range(roles):
        iam.create_role(RoleName=f"app-{i}", Path="/apps/", AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))
    iam.create_role(RoleName="vendor", AssumeRolePolicyDocument=trust({"AWS": "arn:aws:iam::999999999999:root"}),
                    MaxSessionDuration=43200, Tags=[{"Key": "owner", "Value": "secops"}])
    policy = iam.create_policy(PolicyName="ReadOnlyAccessCopy", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}))
    iam.attach_role_policy(RoleName="vendor", PolicyArn=policy["Policy"]["Arn"])
    iam.put_role_policy(RoleName="vendor", PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    return sess
