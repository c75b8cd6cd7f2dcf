"""The cycle: store once per event across kills and restarts, lock, coverage, detection and alert seams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.detect.engine import DetectionResult
from monitor.findings import Finding, fingerprint
from monitor.pipeline import KILL_HOOK_ENV, load_events, run_cycle
from monitor.posture.model import Posture
from monitor.state.base import StateLockedError
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import make_config, record, write_jsonl, write_records_file

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2023, 7, 10, 13, 0, tzinfo=UTC)


def write_config(tmp_path: Path, sources: list[dict]) -> Path:
    # these tests are about the cycle: without AWS behind them, `once`'s posture job would try the real one,
    # and its retention job would prune their 2023 events as it is due at the first run
    lines = [f'[state]\npath = "{tmp_path / "state.db"}"\n',
             '[schedule]\nposture = { enabled = false }\nreport = { enabled = false }\n'
             'retention = { enabled = false }\n']
    for s in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
    path = tmp_path / "rolewatch.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def many_files(trail: Path, files: int, per_file: int) -> set[str]:
    ids = set()
    for f in range(files):
        recs = [record(f"ev-{f:03d}-{i}") for i in range(per_file)]
        recs.append(record(f"ev-{max(f - 1, 0):03d}-0"))  # each file repeats one earlier event
        write_records_file(trail / f"{f:03d}.json.gz", recs)
        ids.update(r["eventID"] for r in recs)
    return ids


def once(config: Path, env_extra: dict[str, str] | None = None, *,
         store_max_batches: int | None = None) -> subprocess.CompletedProcess:
    """`rolewatch once` in its own process; `store_max_batches` caps the batches per transaction there."""
    env = {k: v for k, v in os.environ.items() if k != KILL_HOOK_ENV}
    env.update(env_extra or {})
    code = "import sys; import monitor.pipeline as p; from monitor.cli import main; "
    if store_max_batches is not None:
        code += f"p.STORE_MAX_BATCHES = {store_max_batches}; "
    code += "sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "once", "-c", str(config), "--no-notify"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def stored_ids(tmp_path: Path) -> list[str]:
    st = SqliteState(tmp_path / "state.db")
    try:
        return list(st.load_events()["event_id"])
    finally:
        st.close()


@pytest.mark.parametrize(("kill_at", "store_max_batches", "committed_files"), [
    ("after_commit:1", 2, 100),  # the first transaction: the first two 50-file batches
    ("before_commit:1", 2, 0),  # both batches of the transaction are lost together
    ("before_commit:1", None, 0),  # the default: all three batches share one transaction
])
def test_killed_mid_cycle_then_rerun_stores_every_event_exactly_once(tmp_path: Path, kill_at: str,
                                                                     store_max_batches: int | None,
                                                                     committed_files: int) -> None:
    trail = tmp_path / "trail"
    expected = many_files(trail, files=130, per_file=3)  # 50 files per batch: three batches
    cfg = write_config(tmp_path, [{"type": "local", "path": str(trail)}])

    killed = once(cfg, {KILL_HOOK_ENV: kill_at}, store_max_batches=store_max_batches)
    assert killed.returncode == -9, killed.stderr[-2000:]
    after_kill = stored_ids(tmp_path)
    assert len(after_kill) == len({i for i in expected if int(i[3:6]) < committed_files})
    st = SqliteState(tmp_path / "state.db")
    try:  # a file's processed mark commits with its records, never without them
        assert sorted(st.processed_files(f"local:{trail}")) == [f"{f:03d}.json.gz" for f in range(committed_files)]
    finally:
        st.close()

    rerun = once(cfg, store_max_batches=store_max_batches)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(expected) - len(after_kill)} new event(s)" in rerun.stdout
    final = stored_ids(tmp_path)
    assert sorted(final) == sorted(expected)  # every event, none twice (event_id is the primary key)

    third = once(cfg)
    assert "0 new event(s)" in third.stdout


def test_killed_s3_cycle_resumes_without_loss(tmp_path: Path, aws_config) -> None:
    from monitor import aws

    s3 = aws.client("s3", aws_config)
    s3.create_bucket(Bucket="trail")
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    expected = set()
    for region in ("us-east-1", "us-west-2"):  # two units of 60 objects: batches of 50 + 10 each
        for f in range(60):
            recs = [record(f"s3-{region}-{f:02d}-{i}", time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                    for i in range(2)]
            expected.update(r["eventID"] for r in recs)
            s3.put_object(Bucket="trail", Key=f"AWSLogs/111122223333/CloudTrail/{region}/{day}/{f:02d}.json",
                          Body=json.dumps({"Records": recs}).encode())
    cfg = write_config(tmp_path, [{"type": "s3", "bucket": "trail"}])
    cfg.write_text(cfg.read_text() + f'[aws]\nendpoint_url = "{aws_config.endpoint_url}"\n')
    # three batches per transaction: the first holds all of us-east-1 and the first 50 objects of us-west-2
    killed = once(cfg, {KILL_HOOK_ENV: "after_commit:1"}, store_max_batches=3)
    assert killed.returncode == -9
    assert len(stored_ids(tmp_path)) == 220
    st = SqliteState(tmp_path / "state.db")
    assert st.get_checkpoint("s3:trail/", "111122223333/us-east-1") is not None  # finished with its files
    assert st.get_checkpoint("s3:trail/", "111122223333/us-west-2") is None  # the unit did not finish
    assert len(st.processed_files("s3:trail/")) == 110
    st.close()
    rerun = once(cfg, store_max_batches=3)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "20 new event(s)" in rerun.stdout
    assert sorted(stored_ids(tmp_path)) == sorted(expected)


def test_state_lock_turns_into_a_clear_exit(tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "t" / "x.jsonl", [record("a")])
    cfg_path = write_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")}])
    holder = SqliteState(tmp_path / "state.db")
    with holder.lock("cycle"):
        with pytest.raises(StateLockedError):
            run_cycle(make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")}]), holder, now=NOW)
        assert main(["once", "-c", str(cfg_path)]) == 1
        err = capsys.readouterr().err
        assert "another cycle is running" in err and f"pid {os.getpid()}" in err
    assert main(["once", "-c", str(cfg_path)]) == 0
    holder.close()


def test_once_prints_a_summary_and_checks_its_time_flags(tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "t" / "x.jsonl", [record("a"), record("b"), "not json"])
    cfg_path = write_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")}])
    assert main(["once", "-c", str(cfg_path), "--no-notify"]) == 0
    out = capsys.readouterr().out
    assert "2 new event(s), 1 skipped, 0 finding(s)" in out
    assert f"local:{tmp_path / 't'}" in out and "2 stored, 1 skipped, 1 delivered" in out
    assert main(["once", "-c", str(cfg_path), "--since", "yesterday"]) == 2
    assert "--since: not an ISO 8601 time" in capsys.readouterr().err
    assert main(["once", "-c", str(cfg_path), "--since", "2023-07-10T00:00:00Z", "--until", "2023-07-09"]) == 2


def test_owner_copy_arriving_in_a_later_cycle_is_merged_at_load(tmp_path: Path, state) -> None:
    trail = tmp_path / "t"
    owner = record("owner-copy", sharedEventID="shared-1", recipientAccountId="111122223333",
                   userIdentity={"type": "AWSAccount", "principalId": "AIDAEXAMPLE", "accountId": "444455556666"})
    caller = record("caller-copy", sharedEventID="shared-1", recipientAccountId="444455556666")
    write_jsonl(trail / "1.jsonl", [owner])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(trail)}])
    run_cycle(cfg, state, now=NOW)
    assert load_events(state)["principal_arn"].isna().all()
    write_jsonl(trail / "2.jsonl", [caller])
    run_cycle(cfg, state, now=NOW)
    merged = load_events(state).set_index("event_id")
    assert merged.loc["owner-copy", "principal_arn"] == "arn:aws:iam::444455556666:user/DevUser"
    assert merged.loc["owner-copy", "principal_type"] == "IAMUser"
    assert merged.loc["owner-copy", "is_cross_account"]


def test_detection_findings_baselines_and_notify(tmp_path: Path, state, monkeypatch) -> None:
    write_jsonl(tmp_path / "t" / "x.jsonl", [record("a", time="2023-07-10T12:00:00Z")])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")}])
    seen: dict = {}
    finding = Finding("failed_assume_role", "high", "burst", fingerprint("failed_assume_role", "x"),
                      first_seen="2023-07-10T12:00:00Z", last_seen="2023-07-10T12:00:00Z", event_ids=["a"])
    quiet = Finding("off_hours", "low", "night", fingerprint("off_hours", "y"))

    def fake_detectors(events, ctx, config):  # noqa: ANN001, ANN202
        seen["events"], seen["ctx"] = list(events["event_id"]), ctx
        return DetectionResult(findings=[finding], suppressed=[quiet], baselines={"ip": {"n": 1}},
                               notices=["unused_role skipped: no IAM inventory"])

    sent: list = []  # what the cycle queued with its findings, one list per cycle that notified
    delivered: list = []
    monkeypatch.setattr("monitor.detect.engine.run_detectors", fake_detectors)
    monkeypatch.setattr("alerts.dispatch.queue", lambda f, st, c, now: sent.append(f))
    monkeypatch.setattr("alerts.dispatch.notify", lambda f, st, c, now: delivered.append(f) or {"sent": len(f)})
    posture = Posture(accounts=["111122223333"])
    res = run_cycle(cfg, state, now=NOW, posture=posture)
    assert seen["events"] == ["a"]
    assert seen["ctx"].now == NOW and seen["ctx"].posture is posture
    assert seen["ctx"].data_start == NOW - timedelta(hours=24)
    assert [f.fingerprint for f in res.findings] == [finding.fingerprint]
    assert [f.fingerprint for f in res.suppressed] == [quiet.fingerprint]
    assert "unused_role skipped: no IAM inventory" in res.notices
    assert state.get_finding(finding.fingerprint).status == "open"
    assert state.get_finding(quiet.fingerprint).status == "suppressed"
    assert state.get_json("baselines", "ip") == {"n": 1}
    assert [(f.fingerprint, is_new, prev) for f, is_new, prev in sent[0]] == [(finding.fingerprint, True, None)]

    # the same finding again, unchanged: stored state kept, not reported as new or updated
    res2 = run_cycle(cfg, state, now=NOW)
    assert res2.findings == []
    assert sent[1][0][1] is False and sent[1][0][2].fingerprint == finding.fingerprint
    assert seen["ctx"].baselines == {"ip": {"n": 1}}
    run_cycle(cfg, state, now=NOW, notify=False)
    assert len(sent) == 2
    assert delivered == [[], []]  # the backlog is delivered each cycle that notifies; the findings were queued


def test_detection_failure_keeps_stored_events_and_is_reported(tmp_path: Path, state, monkeypatch) -> None:
    write_jsonl(tmp_path / "t" / "x.jsonl", [record("a")])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")}])

    def broken(events, ctx, config):  # noqa: ANN001, ANN202
        raise RuntimeError("detector bug")

    monkeypatch.setattr("monitor.detect.engine.run_detectors", broken)
    res = run_cycle(cfg, state, now=NOW)
    assert res.events_new == 1
    assert res.errors == ["detection/alerts: RuntimeError: detector bug"]
    assert state.runs()[0]["status"] == "partial"


def test_no_sources_is_a_notice_not_an_error(tmp_path: Path, state) -> None:
    res = run_cycle(make_config(tmp_path, []), state, now=NOW)
    assert res.errors == [] and res.events_new == 0
    assert "no enabled sources configured: nothing collected" in res.notices
    assert state.runs()[0]["status"] == "ok"


def test_coverage_is_stored_per_run(tmp_path: Path, state) -> None:
    write_jsonl(tmp_path / "t" / "x.jsonl", [record("a"), record("b", eventID=None)])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "t")},
                                 {"type": "local", "path": str(tmp_path / "missing")}])
    res = run_cycle(cfg, state, now=NOW)
    stored = state.coverage(res.run_id)
    assert [(c.status, c.records, c.skipped) for c in stored] == [("ok", 1, 1), ("failed", 0, 0)]
    assert stored == res.coverage
    run = state.runs()[0]
    assert run["run_id"] == res.run_id and run["stats"]["events_new"] == 1 and run["stats"]["skipped"] == 1
