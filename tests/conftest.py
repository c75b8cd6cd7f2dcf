"""Shared fixtures: a real moto server over HTTP, the public CloudTrail samples, temp state."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.demo.local_aws import local_aws

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# never reach real AWS from a test, whatever the developer's environment holds
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"


@pytest.fixture(autouse=True)
def _secrets_registered_stay_with_their_test() -> Iterator[None]:
    """The redactor's registry of known secrets is process-wide (the service registers for its whole
    life). A value one test registers must not mask another test's output: which tests share a
    worker process depends on how xdist deals them out."""
    from monitor import redact

    with redact._known_lock:
        before = set(redact._known)
    yield
    with redact._known_lock:
        redact._known.intersection_update(before)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 and a free port; yields its endpoint URL."""
    with local_aws() as url:
        yield url


@pytest.fixture
def moto(moto_server: str) -> Iterator[str]:
    """The moto endpoint, reset to empty before the test."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    yield moto_server


@pytest.fixture
def aws_config(moto: str):  # noqa: ANN201
    from monitor.config import AwsConfig

    return AwsConfig(region="us-east-1", endpoint_url=moto, max_attempts=3)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"public CloudTrail samples not found at {SHARED_DATA} (expected ../shared/data beside the repo)")
    return SHARED_DATA


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def public_records(shared_data: Path) -> dict[str, list[dict]]:
    """Every record in ../shared/data/*.events.jsonl, by dataset name."""
    return {p.name.removesuffix(".events.jsonl"): load_jsonl(p) for p in sorted(shared_data.glob("*.events.jsonl"))}


@pytest.fixture
def state(tmp_path: Path):  # noqa: ANN201
    from monitor.state.sqlite import SqliteState

    st = SqliteState(tmp_path / "state.db")
    yield st
    st.close()
