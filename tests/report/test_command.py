"""`rolewatch report` end to end: online from a real SQLite state, offline from real trail files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.report.tables import SNAPSHOT_NAMESPACE
from monitor.state.sqlite import SqliteState
from tests.report import org


@pytest.fixture
def state_config(tmp_path: Path) -> Path:
    st = SqliteState(tmp_path / "state.db")
    assert st.add_events(org.events()) == len(org.events())
    for sf in org.findings():
        st.upsert_finding(sf.finding, sf.status, org.NOW)
    st.close()
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n[report]\noutput_dir = "out"\n')
    return cfg


def _report(cfg: Path, *extra: str) -> int:
    return main(["report", "--config", str(cfg), "--since", "2026-11-02T00:00:00Z", "--until", "2026-11-09",
                 *extra])


def test_online_report_from_state_and_changes_next_time(state_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert _report(state_config, "--format", "json", "--output", str(out)) == 0
    doc = json.loads(out.read_text())
    # no IAM inventory in this state: roles are those the trail names
    assert doc["summary"]["roles"] == 5  # Dev, Vendor, Admin, Lambda, Ghost
    assert doc["summary"]["successful_assumptions"] == 10
    assert doc["summary"]["failed_attempts"] == 3
    assert doc["summary"]["open_findings"] == 4
    assert doc["meta"]["previous_report"] is None
    st = SqliteState(tmp_path / "state.db")
    snap = st.get_json(SNAPSHOT_NAMESPACE, "all")
    assert set(snap["roles"]) == {r["role_arn"] for r in doc["sections"]["roles"]}
    # a role disappears from the next report's data: the change section says so
    st.put_json(SNAPSHOT_NAMESPACE, "all", {**snap, "roles": {**snap["roles"], "arn:aws:iam::1:role/Gone": {
        "account_id": "1", "trusted": [], "unused": False}}})
    st.close()
    assert _report(state_config, "--format", "json", "--output", str(out)) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["previous_report"] is not None
    assert doc["sections"]["changes"] == [
        {"change": "removed_role", "account_id": "1", "role_arn": "arn:aws:iam::1:role/Gone", "detail": ""}]


def test_default_output_goes_to_the_configured_folder(state_config: Path, capsys) -> None:
    assert _report(state_config, "--format", "md") == 0
    written = state_config.parent / "out" / "rolewatch-access-review-2026-11-09.md"
    assert written.exists() and "## Summary" in written.read_text()
    assert "5 roles" in capsys.readouterr().err


def test_output_folders_on_the_way_are_created(state_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "reviews" / "2026" / "r.md"
    assert _report(state_config, "--format", "md", "--output", str(out)) == 0
    assert out.read_text().startswith("# rolewatch access review")


def test_an_empty_output_dir_means_no_folder_so_output_is_required(state_config: Path, tmp_path: Path,
                                                                   monkeypatch, capsys) -> None:
    state_config.write_text(state_config.read_text().replace('output_dir = "out"', 'output_dir = ""'))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert _report(state_config, "--format", "md") == 2
    assert capsys.readouterr().err == (
        'rolewatch report: [report] output_dir is "" (no folder): give --output PATH, or --output - for html/md/json\n')
    assert list(cwd.iterdir()) == []
    st = SqliteState(tmp_path / "state.db")
    assert st.get_json(SNAPSHOT_NAMESPACE, "all") is None  # refused before the review: no snapshot kept
    st.close()
    assert _report(state_config, "--format", "md", "--output", "-") == 0
    assert capsys.readouterr().out.startswith("# rolewatch access review")


def test_account_filter_keeps_its_own_snapshot(state_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert _report(state_config, "--format", "json", "--output", str(out), "--account", org.DEV) == 0
    assert json.loads(out.read_text())["summary"]["roles"] == 0
    st = SqliteState(tmp_path / "state.db")
    assert st.get_json(SNAPSHOT_NAMESPACE, f"accounts:{org.DEV}") is not None
    assert st.get_json(SNAPSHOT_NAMESPACE, "all") is None
    st.close()


def test_markdown_to_stdout(state_config: Path, capsys) -> None:
    assert _report(state_config, "--format", "md", "--output", "-") == 0
    assert capsys.readouterr().out.startswith("# rolewatch access review")


@pytest.mark.parametrize("args", [["--since", "yesterday-ish"], ["--since", "2026-11-09", "--until", "2026-11-01"]])
def test_bad_times_are_usage_errors(args: list[str], capsys, tmp_path: Path) -> None:
    assert main(["report", "--format", "json", "--output", str(tmp_path / "x.json"), *args]) == 2
    assert "rolewatch report:" in capsys.readouterr().err


def test_default_period_is_the_last_30_days(tmp_path: Path) -> None:
    import argparse

    from monitor.report.command import cmd_report

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "s.db"}"\n')
    out = tmp_path / "r.json"
    args = argparse.Namespace(config=str(cfg), since=None, until=None, format="json", output=str(out), account=[],
                              trail=[], iam_snapshot=[])
    assert cmd_report(args, now=datetime(2026, 11, 29, 12, tzinfo=UTC)) == 0
    meta = json.loads(out.read_text())["meta"]
    assert (meta["since"], meta["until"]) == ("2026-10-30T12:00:00Z", "2026-11-29T12:00:00Z")


def test_offline_over_a_real_trail(shared_data: Path, public_records: dict, tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    trail = shared_data / "s3_layout" / "invictus"
    rc = main(["report", "--trail", str(trail), "--since", "2023-07-01", "--until", "2023-08-01", "--format", "json",
               "--output", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    records = public_records["invictus_aws_dataset"]
    failed = sum(1 for r in records if r.get("errorCode"))
    assert doc["summary"]["failed_attempts"] == failed == 13
    assert doc["summary"]["successful_assumptions"] == len(records) - failed
    assert doc["meta"]["source"] == "offline"


def test_offline_with_an_iam_snapshot(tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    trail.write_text(json.dumps({
        "eventVersion": "1.08", "eventID": "e-1", "eventTime": "2026-11-03T10:00:00Z", "eventName": "AssumeRole",
        "eventSource": "sts.amazonaws.com", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10",
        "recipientAccountId": org.PROD,
        "userIdentity": {"type": "IAMUser", "arn": org.DEV_USER, "accountId": org.DEV, "principalId": "AIDA1"},
        "requestParameters": {"roleArn": org.DEV_ROLE, "roleSessionName": "s", "externalId": org.EXTERNAL_ID},
        "responseElements": {"credentials": {"accessKeyId": "ASIA1", "expiration": "Nov 3, 2026 11:00:00 AM"},
                             "assumedRoleUser": {"arn": f"arn:aws:sts::{org.PROD}:assumed-role/X/s"}},
    }) + "\nnot json\n")
    snapshot = tmp_path / "iam.json"
    snapshot.write_text(json.dumps({"RoleDetailList": [
        {"Arn": org.DEV_ROLE, "RoleName": "CrossAccountDeveloperRole", "Path": "/cross-account/",
         "CreateDate": "2024-01-01T00:00:00Z",
         "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
             "AWS": org.DEV_USER}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {
                 "sts:ExternalId": org.EXTERNAL_ID}}}]},
         "RoleLastUsed": {"LastUsedDate": "2026-11-03T10:00:00Z", "Region": "us-east-1"}},
        {"Arn": org.LEGACY_ROLE, "RoleName": "LegacyRole", "Path": "/", "CreateDate": "2020-01-01T00:00:00Z",
         "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": org.DEV},
                                                     "Action": "sts:AssumeRole"}]}},
        {"RoleName": "broken"},
    ]}))
    out = tmp_path / "r.md"
    rc = main(["report", "--trail", str(trail), "--iam-snapshot", str(snapshot), "--since", "2026-11-02",
               "--until", "2026-11-09", "--format", "md", "--output", str(out)])
    assert rc == 0
    text = out.read_text()
    assert org.EXTERNAL_ID not in text
    assert "| unused_roles | 1 |" in text and "| cross_account_roles | 2 |" in text
    assert "| roles_to_remove | 1 |" in text
    assert "1 unreadable trail records or files were skipped" in text


def test_online_with_the_stored_posture_matches_the_golden_review(state_config: Path, tmp_path: Path,
                                                                  review) -> None:
    from monitor.posture.store import save_posture

    st = SqliteState(tmp_path / "state.db")
    save_posture(st, org.posture())
    st.close()
    out = tmp_path / "r.json"
    assert _report(state_config, "--format", "json", "--output", str(out)) == 0
    summary = json.loads(out.read_text())["summary"]
    golden = dict(zip(review.sections["summary"]["metric"], review.sections["summary"]["value"], strict=True))
    changes = {"new_roles", "new_trusted_principals", "newly_unused_roles", "removed_roles"}
    # the same facts through the real state and posture store; no previous report there, so no changes
    assert {k: v for k, v in summary.items() if k not in changes} == {
        k: int(v) for k, v in golden.items() if k not in changes}
    assert all(summary[k] == 0 for k in changes)
