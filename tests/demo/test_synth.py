"""The trail generator: deterministic, shaped like real CloudTrail, labels that match the records."""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from monitor.cli import build_parser, main
from monitor.config import WatchedRoleConfig
from monitor.demo import synth
from monitor.detect.watched_role import watched_by
from monitor.events.normalise import is_assume_role_record, normalise

END = "2026-11-27"


@pytest.fixture(scope="module")
def trail() -> tuple[list[tuple[str, str, datetime, list[dict]]], list[dict]]:
    labels: list[dict] = []
    spec = synth.make_spec(21, 2, end=END, records=12_000, seed=11)
    chunks = list(synth.generate(spec=spec, labels_out=labels))
    return chunks, labels


def _records(trail) -> list[dict]:  # noqa: ANN001
    return [r for _, _, _, recs in trail[0] for r in recs]


def _read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json.gz"))}


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path: Path) -> None:
    spec = synth.make_spec(3, 2, end=END, records=3000, seed=5)
    a = synth.write_s3_layout(tmp_path / "a", spec, workers=1)
    b = synth.write_s3_layout(tmp_path / "b", spec, workers=2)
    files_a, files_b = _read_tree(tmp_path / "a"), _read_tree(tmp_path / "b")
    assert files_a and files_a == files_b
    assert a.labels == b.labels
    other = _read_tree(synth.write_s3_layout(tmp_path / "c", synth.make_spec(3, 2, end=END, records=3000, seed=6),
                                             workers=1) and tmp_path / "c")
    assert other != files_a


def test_s3_layout_names_sizes_and_counts(tmp_path: Path) -> None:
    spec = synth.make_spec(2, 2, end=END, records=2500, regions=2, records_per_file=50)
    stats = synth.write_s3_layout(tmp_path, spec, workers=1)
    files = sorted(tmp_path.rglob("*.json.gz"))
    assert stats.records == 2500 and stats.files == len(files)
    total = 0
    for f in files:
        parts = f.relative_to(tmp_path).parts
        assert parts[0] == "AWSLogs" and parts[2] == "CloudTrail" and parts[3] in spec.regions
        account, region = parts[1], parts[3]
        assert f.name.startswith(f"{account}_CloudTrail_{region}_{parts[4]}{parts[5]}{parts[6]}T")
        recs = json.loads(gzip.decompress(f.read_bytes()))["Records"]
        assert 1 <= len(recs) <= 50
        assert {r["recipientAccountId"] for r in recs} == {account}
        assert {r["awsRegion"] for r in recs if r["eventSource"] != "iam.amazonaws.com"} == {region}
        total += len(recs)
    assert total == 2500


def test_every_assume_role_record_normalises(trail) -> None:  # noqa: ANN001
    rows = [normalise(r) for r in _records(trail) if is_assume_role_record(r)]
    assert rows
    for row in rows:
        assert row["role_arn"] and row["role_arn"].startswith("arn:aws:iam::")
        assert row["event_time"] is not None
        assert row["principal_key"]
    types = Counter(r["principal_type"] for r in rows)
    assert {"IAMUser", "AWSAccount", "AWSService", "SAMLUser", "WebIdentityUser", "AssumedRole"} <= set(types)


def test_cross_account_copies_share_one_shared_event_id(trail) -> None:  # noqa: ANN001
    by_shared: dict[str, list[dict]] = defaultdict(list)
    for r in _records(trail):
        if r.get("sharedEventID"):
            by_shared[r["sharedEventID"]].append(r)
    assert by_shared
    for copies in by_shared.values():
        if copies[0]["userIdentity"]["accountId"] == synth.OUTSIDE_ACCOUNT:
            # the caller's own trail is not ours: only the role owner's copy exists
            assert len(copies) == 1 and copies[0]["userIdentity"]["type"] == "AWSAccount"
            continue
        assert len(copies) == 2
        owner = [c for c in copies if c["userIdentity"]["type"] == "AWSAccount"]
        caller = [c for c in copies if c["userIdentity"]["type"] != "AWSAccount"]
        assert len(owner) == len(caller) == 1
        assert owner[0]["eventID"] != caller[0]["eventID"]
        assert owner[0]["recipientAccountId"] == normalise(owner[0])["role_account_id"]
        assert caller[0]["recipientAccountId"] == caller[0]["userIdentity"]["accountId"]
        assert owner[0]["userIdentity"]["accountId"] == caller[0]["userIdentity"]["accountId"]


def test_failed_records_look_like_real_denials(trail) -> None:  # noqa: ANN001
    failed = [r for r in _records(trail) if is_assume_role_record(r) and r.get("errorCode")]
    assert failed
    for r in failed:
        assert r["requestParameters"] is None and r["responseElements"] is None and "resources" not in r
        row = normalise(r)
        assert row["role_arn"] in r["errorMessage"] and row["principal_arn"] in r["errorMessage"]
        assert not row["success"]


def test_ratios_match_the_brief(trail) -> None:  # noqa: ANN001
    records = _records(trail)
    ar = [r for r in records if is_assume_role_record(r)]
    failed = [r for r in ar if r.get("errorCode")]
    assert 0.08 <= len(ar) / len(records) <= 0.12
    assert 0.11 <= len(failed) / len(ar) <= 0.19
    names = Counter(r["eventName"] for r in ar)
    assert names["AssumeRole"] > names["AssumeRoleWithSAML"] > 0 and names["AssumeRoleWithWebIdentity"] > 0
    sources = {r["eventSource"] for r in records}
    assert {"s3.amazonaws.com", "kms.amazonaws.com", "ec2.amazonaws.com", "iam.amazonaws.com",
            "lambda.amazonaws.com", "sts.amazonaws.com"} <= sources
    mean_size = sum(len(json.dumps(r, separators=(",", ":"))) for r in records) / len(records)
    assert 1300 <= mean_size <= 2000


def test_records_are_time_ordered_and_unique(trail) -> None:  # noqa: ANN001
    ids = [r["eventID"] for r in _records(trail)]
    assert len(ids) == len(set(ids))
    for _, _, hour, recs in trail[0]:
        times = [r["eventTime"] for r in recs]
        assert times == sorted(times)
        # a chained call follows its first call by up to a minute, possibly into the next hour
        assert hour.strftime("%Y-%m-%dT%H:%M:%SZ") <= times[0]
        assert times[-1] < (hour + timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_labels_match_the_records(trail) -> None:  # noqa: ANN001
    by_id = {r["eventID"]: r for r in _records(trail)}
    labels = trail[1]
    assert {lab["incident"] for lab in labels} == {"denied_burst", "role_enumeration", "long_session",
                                                   "night_session", "new_source_ip", "first_time_principal",
                                                   "break_glass_use"}
    tz = ZoneInfo(synth.TIMEZONE)
    for lab in labels:
        assert lab["detector"] in synth_detectors()
        assert lab["event_ids"], lab
        rows = [normalise(by_id[e]) for e in lab["event_ids"]]
        first = datetime.fromisoformat(lab["first_seen"].replace("Z", "+00:00"))
        last = datetime.fromisoformat(lab["last_seen"].replace("Z", "+00:00"))
        for row in rows:
            assert first <= row["event_time"] <= last
            assert row["principal_arn"] == lab["principal"] or row["principal_type"] == "AWSAccount"
            if lab["role_arn"]:
                assert row["role_arn"] == lab["role_arn"]
        match lab["incident"]:
            case "denied_burst":
                owner_rows = [r for r in rows if r["account_id"] == lab["account_id"]]
                assert len(owner_rows) >= 5 and not any(r["success"] for r in rows)
                assert last - first <= timedelta(minutes=10)
                assert len(lab["shared_event_ids"]) == len(owner_rows)
            case "role_enumeration":
                assert len({r["role_arn"] for r in rows}) >= 3 and not any(r["success"] for r in rows)
                assert last - first <= timedelta(minutes=10)
            case "long_session":
                assert rows[0]["duration_seconds"] == 43200
            case "night_session":
                assert rows[0]["event_time"].astimezone(tz).hour == 3 and rows[0]["success"]
            case "break_glass_use":
                (row,) = rows
                assert row["success"] and row["principal_type"] == "IAMUser"
                assert watched_by(pd.Series([row["role_arn"]]), WatchedRoleConfig().roles).notna().all()
                assert synth.is_work_time(row["event_time"].astimezone(tz))
                # the role's trust policy requires MFA: the call presents the device
                request = by_id[lab["event_ids"][0]]["requestParameters"]
                assert request["serialNumber"].endswith(f":mfa/{synth.BREAK_GLASS_USER}")
            case "new_source_ip" | "first_time_principal":
                start = first - datetime.fromisoformat("2026-11-07T00:00:00+00:00")
                assert start > timedelta(days=synth.LEARNING_DAYS)
                assert all(r["source_ip"] == lab["source_ip"] for r in rows)


def synth_detectors() -> set[str]:
    from monitor.findings import DETECTORS

    return set(DETECTORS)


def test_normal_population_triggers_nothing_planted_only(trail) -> None:  # noqa: ANN001
    """Outside the labels, no burst, no enumeration, no night work by people, no long session, no new IP."""
    labelled = {e for lab in trail[1] for e in lab["event_ids"]}
    tz = ZoneInfo(synth.TIMEZONE)
    rows = [normalise(r) for r in _records(trail) if is_assume_role_record(r) and r["eventID"] not in labelled]
    rows.sort(key=lambda r: r["event_time"])
    # nor a use of a watched (break-glass) role or of the root user: each watched_role finding is news
    used = pd.Series([r["role_arn"] or "" for r in rows if r["success"]], dtype=object)
    assert len(used) and watched_by(used, WatchedRoleConfig().roles).isna().all()
    assert not any(r["principal_type"] == "Root" for r in rows)
    start = rows[0]["event_time"]
    learned_until = start + timedelta(days=synth.LEARNING_DAYS)
    failures: dict[tuple, list[datetime]] = defaultdict(list)
    roles_failed: dict[str, set[str]] = defaultdict(set)
    networks: dict[tuple, set[str]] = defaultdict(set)
    for r in rows:
        assert (r["duration_seconds"] or 0) <= 3600
        if r["principal_type"] == "AWSService":
            continue
        local = r["event_time"].astimezone(tz)
        assert local.weekday() < 5 and 8 <= local.hour < 18, r
        if r["principal_type"] == "AWSAccount":
            continue  # the role owner's copy of a call whose caller's copy is checked
        if not r["success"]:
            failures[(r["principal_key"], r["source_ip"], r["role_arn"])].append(r["event_time"])
            roles_failed[r["principal_key"]].add(r["role_arn"])
            continue
        net = r["source_ip"].rsplit(".", 1)[0] if "." in r["source_ip"] else r["source_ip"].rsplit(":", 2)[0]
        pair = (r["role_arn"], r["principal_key"])
        if r["event_time"] > learned_until:
            assert pair in networks and net in networks[pair], r
        networks[pair].add(net)
    for times in failures.values():
        for i in range(len(times) - 4):
            assert times[i + 4] - times[i] > timedelta(minutes=10)
    assert all(len(roles) == 1 for roles in roles_failed.values())


def test_records_knob_scales_population_and_keeps_ratios() -> None:
    spec = synth.make_spec(1, 3, end=END, records=40_000, regions=2, seed=3)
    records = [r for _, _, _, recs in synth.generate(spec=spec) for r in recs]
    assert len(records) == 40_000
    ar = [r for r in records if is_assume_role_record(r)]
    assert 0.08 <= len(ar) / len(records) <= 0.12
    assert 0.11 <= sum(1 for r in ar if r.get("errorCode")) / len(ar) <= 0.19


def test_cli_synth_writes_trail_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, labels = tmp_path / "trail", tmp_path / "labels.jsonl"
    code = main(["synth", "--days", "16", "--accounts", "2", "--out", str(out), "--records", "4000",
                 "--end", END, "--labels", str(labels), "--seed", "3"])
    assert code == 0
    assert len(list(out.rglob("*.json.gz"))) > 0
    lines = [json.loads(x) for x in labels.read_text().splitlines()]
    assert len(lines) == 7 and all(lab["event_ids"] for lab in lines)
    err = capsys.readouterr().err
    assert "4,000 records" in err
    assert synth.external_id(3) not in err


def test_cli_synth_rejects_bad_counts(tmp_path: Path) -> None:
    assert main(["synth", "--days", "0", "--out", str(tmp_path)]) == 2


def test_cli_synth_creates_missing_folders_and_refuses_a_file_in_the_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, labels = tmp_path / "new" / "trail", tmp_path / "new" / "labels" / "l.jsonl"
    assert main(["synth", "--days", "1", "--accounts", "1", "--records", "50", "--end", END, "--out", str(out),
                 "--labels", str(labels)]) == 0
    assert list(out.rglob("*.json.gz")) and labels.exists()
    capsys.readouterr()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["synth", "--days", "1", "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == f"rolewatch synth: --out {blocker}: cannot create folder {blocker}: File exists\n"
    # the labels are written after the trail: their place is checked before anything is generated
    fresh = tmp_path / "fresh"
    assert main(["synth", "--days", "1", "--out", str(fresh), "--labels", str(blocker / "l.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(f"rolewatch synth: --labels {blocker / 'l.jsonl'}: cannot create folder")
    assert not list(fresh.rglob("*.json.gz"))
    assert main(["synth", "--days", "1", "--out", str(fresh), "--labels", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"rolewatch synth: --labels {tmp_path}: is a directory\n"


def test_end_parsing() -> None:
    assert synth.parse_end("2026-11-27") == datetime(2026, 11, 28, tzinfo=UTC)
    assert synth.parse_end("2026-11-27T10:00:00Z") == datetime(2026, 11, 27, 10, tzinfo=UTC)


def test_end_help_says_what_the_default_is() -> None:
    before = datetime.now(UTC)
    default = synth.parse_end(None)
    after = datetime.now(UTC)
    assert before.replace(minute=0, second=0, microsecond=0) <= default <= after and default.minute == 0
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["synth"]
    end = next(a for a in sub._actions if "--end" in a.option_strings)
    assert end.help is not None and end.help.endswith("default: now, to the hour")
    assert "today" not in end.help
