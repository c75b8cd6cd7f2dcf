"""`rolewatch scan`: exit codes, JSON Lines schema, snapshots, S3 over real HTTP (moto server)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from monitor import scan
from monitor.cli import main
from monitor.findings import FINDING_FIELDS
from tests.assume_root import MANAGEMENT, MEMBER, ROOT_ARN, assume_root_record, refused_assume_root_record

UNTIL = "2023-07-11T00:00:00Z"


@pytest.fixture
def trail(shared_data: Path) -> Path:
    return shared_data / "s3_layout" / "invictus"


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_jsonl_schema_and_exit_0(trail, capsys):
    assert main(["scan", "--until", UNTIL, str(trail)]) == 0
    out, err = capsys.readouterr()
    findings = _jsonl(out)
    assert findings, "the invictus trail has a role-enumeration burst"
    for f in findings:
        assert list(f) == list(FINDING_FIELDS)
        assert isinstance(f["event_ids"], list) and isinstance(f["details"], dict) and isinstance(f["count"], int)
        assert f["first_seen"].endswith("Z") and f["last_seen"].endswith("Z")
    assert any(f["detector"] == "failed_assume_role" and f["severity"] == "high" for f in findings)
    assert "rolewatch scan: 55 file(s)" in err and "unused_role skipped" in err


def test_fail_on_threshold(trail, capsys):
    assert main(["scan", "--until", UNTIL, "--fail-on", "high", str(trail)]) == 3
    assert main(["scan", "--until", UNTIL, "--fail-on", "critical", str(trail)]) == 0


def test_rerun_gives_the_same_fingerprints(trail, capsys):
    main(["scan", "--until", UNTIL, str(trail)])
    first = [f["fingerprint"] for f in _jsonl(capsys.readouterr().out)]
    main(["scan", "--until", UNTIL, str(trail)])
    assert [f["fingerprint"] for f in _jsonl(capsys.readouterr().out)] == first


def test_usage_errors_exit_2(trail, tmp_path, capsys):
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert main(["scan", "--since", "yesterday", str(trail)]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors.off_hours]\ntimezone = 'Mars/Olympus'\n")
    assert main(["scan", "--config", str(bad), str(trail)]) == 2
    assert "detectors.off_hours.timezone" in capsys.readouterr().err
    snap = tmp_path / "snap.json"
    snap.write_text('{"UserDetailList": []}')
    assert main(["scan", "--iam-snapshot", str(snap), str(trail)]) == 2
    assert "RoleDetailList" in capsys.readouterr().err


def test_an_output_path_that_cannot_be_written_is_named_before_the_scan(trail, tmp_path, capsys) -> None:
    missing = tmp_path / "missing" / "out.jsonl"
    assert main(["scan", "--until", UNTIL, "--output", str(missing), str(trail)]) == 2
    err = capsys.readouterr().err
    # one line naming the path and why, printed before any file is read (no summary line)
    assert err == f"rolewatch scan: --output {missing}: folder {missing.parent} does not exist\n"
    assert not missing.parent.exists()  # not created: a typo must not grow a new tree
    assert main(["scan", "--until", UNTIL, "--output", str(tmp_path), str(trail)]) == 2
    assert capsys.readouterr().err == f"rolewatch scan: --output {tmp_path}: is a directory\n"


def test_output_dash_is_stdout_not_a_file_named_dash(trail, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "--until", UNTIL, "--output", "-", str(trail)]) == 0
    out = capsys.readouterr().out
    assert out and all(json.loads(line)["detector"] for line in out.splitlines())
    assert not (tmp_path / "-").exists()


def test_an_output_write_failure_is_one_line_and_exit_1(trail, tmp_path, capsys) -> None:
    out = tmp_path / "findings.jsonl"
    (tmp_path / "findings.jsonl.tmp").mkdir()  # where the findings are written before the rename
    assert main(["scan", "--until", UNTIL, "--output", str(out), str(trail)]) == 1
    err = capsys.readouterr().err
    assert f"rolewatch scan: cannot write {out}: Is a directory" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_a_bad_workers_value_is_a_usage_error(trail, capsys, workers: str) -> None:
    # argparse exits 2 itself; 0 used to mean "one per core" and a negative count "in-process"
    with pytest.raises(SystemExit) as exit_:
        main(["scan", "--workers", workers, str(trail)])
    assert exit_.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_since_window_and_output_file_and_table(trail, tmp_path, capsys):
    out = tmp_path / "findings.jsonl"
    assert main(["scan", "--since", "2023-07-10T12:05:00Z", "--until", UNTIL, "-o", str(out), str(trail)]) == 0
    assert capsys.readouterr().out == ""
    findings = _jsonl(out.read_text())
    assert all(f["first_seen"] >= "2023-07-10T12:05:00Z" for f in findings)
    assert main(["scan", "--until", UNTIL, "--format", "table", str(trail)]) == 0
    assert capsys.readouterr().out.startswith("SEVERITY")


def test_iam_snapshot_enables_unused_role(trail, tmp_path, capsys):
    snap = tmp_path / "auth.json"
    snap.write_text(json.dumps({"RoleDetailList": [
        {"Path": "/", "RoleName": "forgotten", "RoleId": "AROAX", "Arn": "arn:aws:iam::123837392027:role/forgotten",
         "CreateDate": "2020-01-01T00:00:00Z", "RoleLastUsed": {},
         "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
             {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}]}},
        {"Path": "/", "RoleName": "stratus-red-team-leave-org-role", "RoleId": "AROAY",
         "Arn": "arn:aws:iam::123837392027:role/stratus-red-team-leave-org-role", "CreateDate": "2020-01-01T00:00:00Z",
         "AssumeRolePolicyDocument": "%7B%22Statement%22%3A%5B%5D%7D"},
    ]}))
    assert main(["scan", "--until", UNTIL, "--iam-snapshot", str(snap), str(trail)]) == 0
    out, err = capsys.readouterr()
    unused = [f for f in _jsonl(out) if f["detector"] == "unused_role"]
    assert [f["role_arn"] for f in unused] == ["arn:aws:iam::123837392027:role/forgotten"]
    assert unused[0]["details"]["last_used"] == "never"
    assert "unused_role skipped" not in err


def test_s3_prefix_over_http(moto, trail, tmp_path, capsys):
    from monitor.aws import client
    from monitor.config import AwsConfig

    aws = AwsConfig(endpoint_url=moto)
    s3 = client("s3", aws)
    s3.create_bucket(Bucket="trail")
    for f in sorted(trail.rglob("*.json.gz")):
        s3.put_object(Bucket="trail", Key=str(f.relative_to(trail)), Body=f.read_bytes())
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[aws]\nendpoint_url = '{moto}'\n")
    assert main(["scan", "--config", str(cfg), "--until", UNTIL, "--fail-on", "high", "s3://trail/AWSLogs/"]) == 3
    assert any(f["detector"] == "failed_assume_role" for f in _jsonl(capsys.readouterr().out))
    assert main(["scan", "--config", str(cfg), "s3://no-such-bucket/x"]) == 1
    assert "failed" in capsys.readouterr().err


def test_bad_records_are_named_and_skipped(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text('{"eventName": "AssumeRole", "eventSource": "sts.amazonaws.com"}\nnot json\n')
    assert main(["scan", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"{f} [line 1]: record has no eventID" in err and f"{f} [line 2]: not" in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_assume_root_in_a_delivery_file_is_a_watched_role_finding(tmp_path, capsys, monkeypatch,
                                                                       workers: str) -> None:
    # the record shape of the IAM User Guide's "Track privileged tasks in AWS CloudTrail" (tests/assume_root.py)
    records = [{**assume_root_record("other"), "eventName": "GetObject", "eventSource": "s3.amazonaws.com"},
               assume_root_record("root-1", duration=900), refused_assume_root_record("root-denied")]
    folder = tmp_path / "AWSLogs" / MANAGEMENT / "CloudTrail" / "us-west-2" / "2024" / "10" / "25"
    folder.mkdir(parents=True)
    for n in range(3):  # a few files, so that two workers each read some
        (folder / f"{MANAGEMENT}_CloudTrail_us-west-2_20241025T2055Z_{n}.json.gz").write_bytes(
            gzip.compress(orjson.dumps({"Records": records if n == 0 else records[:1]})))  # CloudTrail's layout
    monkeypatch.setattr(scan, "PARALLEL_MIN_FILES", 1)  # the worker path too, not only in-process
    assert main(["scan", "--until", "2024-10-26T00:00:00Z", "--workers", workers, str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    findings = _jsonl(out)
    [watched] = [f for f in findings if f["detector"] == "watched_role"]
    assert watched["severity"] == "high" and watched["role_arn"] == ROOT_ARN and watched["account_id"] == MEMBER
    assert watched["event_ids"] == ["root-1"] and watched["details"]["assume_root"] is True
    [failed] = [f for f in findings if f["detector"] == "failed_assume_role"]
    assert failed["role_arn"] == ROOT_ARN and failed["event_ids"] == ["root-denied"]
    assert "2 AssumeRole record(s)" in err
