"""`rolewatch once` and `rolewatch status` summarise an organisation S3 source's account/region
units: real cycles against the moto server over HTTP, a real SQLite file, an injected clock."""

from __future__ import annotations

import argparse
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import aws
from monitor.cli import build_parser
from monitor.collectors.s3 import S3Collector
from monitor.config import Config, parse_config
from monitor.schedule import run_once
from monitor.status import cmd_status
from tests.collectors.conftest import record
from tests.service.test_schedule import FakeClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ORG = "AWSLogs/o-abc123def4/"
SOURCE = "s3:trail/" + ORG
DELIVERING = ("111111111111", "222222222222")


@pytest.fixture
def s3(aws_config: Any) -> Any:
    client = aws.client("s3", aws_config)
    client.create_bucket(Bucket="trail")
    return client


def deliver(s3: Any, account: str, at: datetime) -> None:
    key = f"{ORG}{account}/CloudTrail/us-east-1/{at:%Y/%m/%d}/{account}_CloudTrail_us-east-1_{at:%H%M}.json.gz"
    rec = record(f"{account}-{at:%H%M}", time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(json.dumps({"Records": [rec]}).encode()))


def config(tmp_path: Path, endpoint: str, accounts: list[str]) -> Config:
    # listed accounts with no trail under the prefix are failed units: the way an organisation
    # loses sight of a member whose trail was deleted
    return parse_config({
        "state": {"path": str(tmp_path / "state.db")},
        "aws": {"endpoint_url": endpoint, "max_attempts": 2},
        "sources": [{"type": "s3", "bucket": "trail", "prefix": ORG, "accounts": accounts,
                     "regions": ["us-east-1"]}],
        "report": {"output_dir": str(tmp_path / "reports"), "formats": ["json"]},
    })


def once(cfg: Config, at: datetime, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_once(cfg, build_parser().parse_args(["once", "--posture", "never", "--no-notify"]),
                    clock=FakeClock(at))
    return code, capsys.readouterr().out


def status(tmp_path: Path, at: datetime, capsys: pytest.CaptureFixture[str], *, as_json: bool) -> Any:
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    assert cmd_status(argparse.Namespace(config=str(cfg), json=as_json), now=at) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_one_failed_unit_of_three_is_counted_and_named(tmp_path: Path, moto: str, s3: Any, capsys) -> None:
    for account in DELIVERING:
        deliver(s3, account, NOW - timedelta(minutes=10))
    cfg = config(tmp_path, moto, [*DELIVERING, "333333333333"])
    code, out = once(cfg, NOW, capsys)
    assert code == 1, out  # a failed unit fails the cycle, as before
    named = f"failed 333333333333: no trail under s3://trail/{ORG} for account 333333333333"
    assert "    units: 2 ok, 0 partial, 1 failed of 3" in out and f"    {named}" in out
    assert f"  {SOURCE}  " in out and "  partial  2 stored, 0 skipped, 2 delivered" in out

    text = status(tmp_path, NOW, capsys, as_json=False)
    assert "    units: 2 ok, 0 partial, 1 failed of 3" in text and f"    {named}" in text
    assert f"  {SOURCE}: partial " in text and "2 records, 2 delivered" in text

    src = status(tmp_path, NOW, capsys, as_json=True)["sources"][SOURCE]
    assert src["units"] == {"total": 3, "ok": 2, "partial": 0, "failed": 1}
    assert [u["account"] for u in src["failed_units"]] == ["333333333333"] and src["partial_units"] == []
    assert (src["status"], src["records"], src["delivered"]) == ("partial", 2, 2)
    assert src["account"] is None  # the source is many units, not the first row's account any more


def test_the_unit_that_lags_most_is_the_oldest_checkpoint(tmp_path: Path, moto: str, s3: Any, capsys,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for account in DELIVERING:
        deliver(s3, account, NOW - timedelta(minutes=10))
    cfg = config(tmp_path, moto, list(DELIVERING))
    assert once(cfg, NOW, capsys)[0] == 0
    later = NOW + timedelta(minutes=5)
    for account in DELIVERING:
        deliver(s3, account, later - timedelta(minutes=1))
    real = S3Collector.reader

    def reader(fh: Any, name: str, origin: str) -> Any:
        if "/222222222222/" in name:  # a reader bug on this account's object: its checkpoint stays put
            raise RuntimeError("reader bug")
        return real(fh, name, origin)

    monkeypatch.setattr(S3Collector, "reader", staticmethod(reader))
    assert once(cfg, later, capsys)[0] == 1
    src = status(tmp_path, later, capsys, as_json=True)["sources"][SOURCE]
    [failed] = src["failed_units"]
    oldest = src["oldest_checkpoint"]
    assert (oldest["account"], oldest["status"], oldest["at"]) == ("222222222222", "failed", failed["start"])
    assert oldest["at"] < src["end"]  # behind the unit that was read up to this cycle's end
    text = status(tmp_path, later, capsys, as_json=False)
    assert f"    oldest checkpoint: 222222222222/us-east-1 at {failed['start']} (failed)" in text


def test_many_failed_units_are_capped_in_text_and_listed_in_full_in_json(tmp_path: Path, moto: str, s3: Any,
                                                                       capsys) -> None:
    deliver(s3, DELIVERING[0], NOW - timedelta(minutes=10))
    missing = [f"9000000000{i:02d}" for i in range(25)]
    code, out = once(config(tmp_path, moto, [DELIVERING[0], *missing]), NOW, capsys)
    assert code == 1
    assert "    units: 1 ok, 0 partial, 25 failed of 26" in out
    assert sum(line.strip().startswith("failed 9000000000") for line in out.splitlines()) == 20
    assert "      ... and 5 more failed unit(s)" in out
    # the per-unit errors the cycle reports are capped the same way
    assert sum(line.startswith("error: ") for line in out.splitlines()) == 20
    assert "... and 5 more error(s)" in out

    text = status(tmp_path, NOW, capsys, as_json=False)
    assert sum(line.strip().startswith("failed 9000000000") for line in text.splitlines()) == 20
    assert "      ... and 5 more failed unit(s)" in text
    assert sum(line.lstrip().startswith("error: ") for line in text.splitlines()) == 20  # under the collect job
    src = status(tmp_path, NOW, capsys, as_json=True)
    assert len(src["sources"][SOURCE]["failed_units"]) == 25
    assert len(src["jobs"]["collect"]["errors"]) == 25


def test_the_run_record_keeps_a_capped_list_of_error_messages(tmp_path: Path, moto: str, s3: Any, capsys,
                                                            monkeypatch) -> None:
    import monitor.schedule

    monkeypatch.setattr(monitor.schedule, "MAX_STORED_ERRORS", 10)
    deliver(s3, DELIVERING[0], NOW - timedelta(minutes=10))
    missing = [f"9000000000{i:02d}" for i in range(25)]
    assert once(config(tmp_path, moto, [DELIVERING[0], *missing]), NOW, capsys)[0] == 1
    errors = status(tmp_path, NOW, capsys, as_json=True)["jobs"]["collect"]["errors"]
    assert len(errors) == 11 and errors[-1] == "... and 15 more"
    assert all("9000000000" in e for e in errors[:10])


def logs_config(tmp_path: Path, endpoint: str, groups: list[str]) -> Config:
    return parse_config({
        "state": {"path": str(tmp_path / "state.db")},
        "aws": {"endpoint_url": endpoint, "max_attempts": 2},
        "sources": [{"type": "cloudwatch_logs", "log_groups": groups, "requests_per_second": 1000}],
        "report": {"output_dir": str(tmp_path / "reports"), "formats": ["json"]},
    })


def test_a_single_log_group_source_keeps_its_one_line(tmp_path: Path, moto: str, aws_config: Any, capsys) -> None:
    from tests.collectors.test_cloudwatch_logs import put, ts

    now = datetime.now(UTC).replace(microsecond=0)  # CloudWatch Logs refuses events older than 14 days
    t = now - timedelta(minutes=10)
    put(aws.client("logs", aws_config), "trail-logs", "s1", [(t, json.dumps(record("cw1", time=ts(t))))])
    assert once(logs_config(tmp_path, moto, ["trail-logs"]), now, capsys)[0] == 0
    text = status(tmp_path, now, capsys, as_json=False)
    section = text.split("sources (last coverage):\n", 1)[1].splitlines()
    assert section[0].startswith("  cloudwatch_logs:trail-logs us-east-1: ok ")
    assert section[0].endswith("1 records, 1 delivered (log group trail-logs)")
    # the log group is the source: no "units: 1 ok ... of 1", no checkpoint named by a region alone
    assert not section[1:] or not section[1].startswith("    "), text


def test_a_source_of_several_log_groups_counts_them(tmp_path: Path, moto: str, aws_config: Any, capsys) -> None:
    from tests.collectors.test_cloudwatch_logs import put, ts

    now = datetime.now(UTC).replace(microsecond=0)
    t = now - timedelta(minutes=10)
    put(aws.client("logs", aws_config), "trail-a", "s1", [(t, json.dumps(record("cwa", time=ts(t))))])
    code, _ = once(logs_config(tmp_path, moto, ["trail-a", "trail-missing"]), now, capsys)
    assert code == 1
    text = status(tmp_path, now, capsys, as_json=False)
    assert "    units: 1 ok, 0 partial, 1 failed of 2" in text
    assert "      failed us-east-1: log group trail-missing" in text
