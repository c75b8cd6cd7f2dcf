"""`rolewatch demo` end to end, as a user runs it: a subprocess, no AWS credentials."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from monitor.demo import synth

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_a_real_cycle_and_prints_what_it_ingested(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("MOTO_")}
    env["AWS_PROFILE"] = "a-profile-that-does-not-exist"  # the demo must not try to use it
    proc = subprocess.run([sys.executable, "-m", "monitor", "demo", "--days", "16", "--workdir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = re.search(r"cycle \w+: ([\d,]+) AssumeRole-family records stored, ([\d,]+) skipped", out)
    assert stored, out
    assert int(stored.group(1).replace(",", "")) > 1000 and stored.group(2) == "0"
    for account in synth.DEMO_ACCOUNTS:
        assert re.search(rf"source s3:acme-org-cloudtrail-logs/ {account} us-east-1: ok, [\d,]+ new records", out), out
    # the log group holds the last day: read first, it stores records the bucket then does not store again
    from_logs = re.search(r"source cloudwatch_logs:aws-cloudtrail-logs us-east-1: ok, ([\d,]+) new records", out)
    assert from_logs and int(from_logs.group(1).replace(",", "")) > 0, out
    assert re.search(r"111122223333\s+/cross-account/CrossAccountDeveloperRole\s+\d+\s+\d+\s+1\n", out), out
    assert "planted incidents: denied_burst, role_enumeration" in out
    assert re.search(r"findings: \d+", out)
    caught = re.search(r"planted incidents caught: (\d+)/(\d+)", out)
    assert caught and int(caught.group(2)) >= 4 and caught.group(1) == caught.group(2), out
    assert re.search(r"planted incidents caught: .*\bbreak_glass_use\b", out), out
    # nothing secret: not the ExternalId the trail carries, not a session token
    everything = out + proc.stderr
    assert synth.external_id(7) not in everything
    assert "IQoJb3JpZ2lu" not in everything
    assert (tmp_path / "rolewatch.toml").is_file() and (tmp_path / "state.db").is_file()


def test_a_workdir_that_cannot_be_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "monitor", "demo", "--workdir", str(blocker / "demo")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"rolewatch demo: --workdir {blocker / 'demo'}: cannot create folder {blocker / 'demo'}: " \
        "Not a directory\n"
