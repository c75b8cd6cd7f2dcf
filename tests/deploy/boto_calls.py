"""Find every boto3 client call in the code, statically, and name the IAM action it needs.

A client is recognised where it is made: any call whose function name ends in `client` with a
botocore service name as its first literal argument (`client("s3", aws)`, `boto3.client("sts")`,
`session.client("iam")`, `_client(session, "ssm")`). What it is assigned to (a name or
`self.attr`) is then that service's client. Code that receives a client as a parameter (the usual
shape of a collector) is matched by name: a receiver called `client`, `*_client`, `self.client` or
named after a service (`s3`, `iam`, `ddb`...) calling a method that is an operation of exactly one
service the project creates clients for; where two services share an operation name
(`start_query` is both CloudWatch Logs and CloudTrail Lake) the module's file name decides.
Paginators and waiters count as the operation they call.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import boto3

# receiver names that mean "a client of this service"
ALIASES = {"ddb": "dynamodb", "dynamo": "dynamodb", "analyzer": "accessanalyzer", "access_analyzer": "accessanalyzer",
           "ct": "cloudtrail", "orgs": "organizations", "sm": "secretsmanager"}
# where the IAM action is not "<prefix>:<OperationName>"
S3_ACTIONS = {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadObject": "GetObject",
              "HeadBucket": "ListBucket", "ListObjectVersions": "ListBucketVersions"}
# Access Analyzer's V2 finding APIs are authorised by the V1 actions (Service Authorization Reference)
ACCESS_ANALYZER_ACTIONS = {"ListFindingsV2": "ListFindings", "GetFindingV2": "GetFinding"}
NOT_OPERATIONS = {"get_paginator", "get_waiter", "can_paginate", "close", "meta", "exceptions"}


@dataclass(frozen=True)
class Call:
    service: str  # boto3 client name
    method: str  # snake_case method, or the paginator/waiter name
    file: str
    line: int
    kind: str = "call"  # call | paginator | waiter

    @property
    def action(self) -> str:
        return iam_action(self.service, self.operation)

    @property
    def operation(self) -> str:
        c = service_client(self.service)
        if self.kind == "waiter":
            return c.get_waiter(self.method).config.operation
        return c.meta.method_to_api_mapping[self.method]


@functools.cache
def available_services() -> frozenset[str]:
    return frozenset(boto3.session.Session().get_available_services())


@functools.cache
def service_client(service: str):  # noqa: ANN201
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@functools.cache
def operations(service: str) -> frozenset[str]:
    return frozenset(service_client(service).meta.method_to_api_mapping)


def iam_action(service: str, operation: str) -> str:
    prefix = service_client(service).meta.service_model.signing_name
    if prefix == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    elif prefix == "access-analyzer":
        operation = ACCESS_ANALYZER_ACTIONS.get(operation, operation)
    return f"{prefix}:{operation}"


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _created_service(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if not name.lower().endswith("client"):
        return None
    for arg in node.args[:2]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in available_services():
            return arg.value
    return None


def _name_service(receiver: str) -> str | None:
    last = receiver.split(".")[-1].lstrip("_").removesuffix("_client")
    if last in ALIASES:
        return ALIASES[last]
    return last if last in available_services() and last != "client" else None


def _looks_like_client(receiver: str) -> bool:
    last = receiver.split(".")[-1].lstrip("_")
    return last == "client" or last.endswith("_client") or _name_service(receiver) is not None


def _stem_services(file: str) -> set[str]:
    """Services a module is named after: collectors/athena.py, cloudtrail_lake.py, logs_insights.py."""
    stem = Path(file).stem
    parts = {stem, *stem.split("_")}
    return {ALIASES.get(p, p) for p in parts if ALIASES.get(p, p) in available_services()}


class Scan:
    def __init__(self, files: Iterable[Path], root: Path) -> None:
        self.trees = {str(p.relative_to(root)): ast.parse(p.read_text(), str(p)) for p in files}
        self.created: dict[str, set[str]] = {}  # file -> services it makes clients for
        # file -> receiver text -> [(line, scope, service)]: `self.x` bindings hold file-wide,
        # plain names within their function, the nearest assignment above the call winning
        self.bindings: dict[str, dict[str, list[tuple[int, int, str]]]] = {}
        for file, tree in self.trees.items():
            made: set[str] = set()
            bound: dict[str, list[tuple[int, int, str]]] = {}
            for scope, node in _nodes_with_scope(tree):
                svc = _created_service(node)
                if svc:
                    made.add(svc)
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    svc = _created_service(node.value)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        r = _receiver(t)
                        if svc and r:
                            bound.setdefault(r, []).append((node.lineno, 0 if "." in r else scope, svc))
            self.created[file], self.bindings[file] = made, bound
        self.project_services = set().union(*self.created.values())
        self.calls: list[Call] = []
        self.ambiguous: list[str] = []
        for file, tree in self.trees.items():
            for scope, node in _nodes_with_scope(tree):
                self._visit(file, scope, node)

    def _bound(self, file: str, receiver: str, scope: int, line: int) -> str | None:
        options = [(ln, svc) for ln, sc, svc in self.bindings[file].get(receiver, [])
                   if (sc == 0 or sc == scope) and ("." in receiver or ln <= line)]
        return max(options)[1] if options else None

    def _resolve(self, file: str, scope: int, line: int, receiver: str, method: str, kind: str) -> str | None:
        bound = self._bound(file, receiver, scope, line)
        if bound:
            return bound
        named = _name_service(receiver)
        if named:
            return named
        if not _looks_like_client(receiver):
            return None
        hints = _stem_services(file)
        candidates = sorted(s for s in self.project_services | hints if self._has(s, method, kind))
        if len(candidates) > 1:
            hinted = [s for s in candidates if s in hints]
            if len(hinted) == 1:
                return hinted[0]
            self.ambiguous.append(f"{file}: {receiver}.{method} could be any of {candidates}")
            return None
        return candidates[0] if candidates else None

    @staticmethod
    def _has(service: str, method: str, kind: str) -> bool:
        c = service_client(service)
        if kind == "paginator":
            return method in operations(service) and c.can_paginate(method)
        if kind == "waiter":
            return method in c.waiter_names
        return method in operations(service)

    def _visit(self, file: str, scope: int, node: ast.AST) -> None:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return
        method = node.func.attr
        receiver = _receiver(node.func.value)
        if receiver is None:
            return
        kind = "call"
        if method in ("get_paginator", "get_waiter"):
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                return
            kind, method = ("paginator" if method == "get_paginator" else "waiter"), arg.value
        elif method in NOT_OPERATIONS or method.startswith("_"):
            return
        svc = self._resolve(file, scope, node.lineno, receiver, method, kind)
        if svc and self._has(svc, method, kind):
            self.calls.append(Call(svc, method, file, node.lineno, kind))


def _nodes_with_scope(tree: ast.AST) -> Iterable[tuple[int, ast.AST]]:
    """Every node with the id of its innermost enclosing function (0 at module level)."""
    stack: list[tuple[int, ast.AST]] = [(0, tree)]
    while stack:
        scope, node = stack.pop()
        yield scope, node
        inner = id(node) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else scope
        stack.extend((inner, child) for child in ast.iter_child_nodes(node))


def scan(root: Path, packages: Iterable[str], exclude: Iterable[str] = ()) -> Scan:
    excluded = [root / e for e in exclude]
    files = sorted(
        p for pkg in packages for p in (root / pkg).rglob("*.py")
        if not any(p.is_relative_to(e) for e in excluded)
    )
    return Scan(files, root)
