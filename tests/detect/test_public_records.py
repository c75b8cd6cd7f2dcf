"""Every real public record through every detector: no crash, and the findings a responder expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import Config
from monitor.detect.context import DetectionContext
from monitor.detect.engine import DETECTORS, run_detectors
from monitor.events.normalise import RecordError, normalise
from monitor.events.schema import frame_from_rows
from monitor.findings import FINDING_FIELDS, SEVERITY_RANK
from monitor.posture.model import Posture, RoleInfo


def _rows(records):
    out = []
    for r in records:
        try:
            out.append(normalise(r))
        except RecordError:
            continue
    return out


@pytest.fixture(scope="module")
def all_events(public_records):
    return frame_from_rows([row for recs in public_records.values() for row in _rows(recs)])


def test_every_detector_runs_on_every_public_record(all_events):
    # an inventory that covers some of the accounts so unused_role and likely_cause run too
    role = RoleInfo(arn="arn:aws:iam::123837392027:role/stratus-red-team-leave-org-role",
                    name="stratus-red-team-leave-org-role", account_id="123837392027",
                    create_date=datetime(2020, 1, 1, tzinfo=UTC),
                    trust_policy={"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"AWS": "arn:aws:iam::123837392027:root"}}]})
    posture = Posture(roles={role.arn: role}, accounts=["123837392027"])
    ctx = DetectionContext(now=datetime(2025, 1, 1, tzinfo=UTC), posture=posture)
    res = run_detectors(all_events, ctx, Config())
    assert set(DETECTORS) | {"trust_policy", "least_privilege"} >= {f.detector for f in res.findings}
    for f in res.findings:
        assert list(f.to_dict()) == list(FINDING_FIELDS)
        assert f.count >= 0 and len(f.event_ids) <= 100
    # bert-jan was refused again and again on five stratus roles within minutes: enumeration, high
    [bert] = [f for f in res.findings if f.detector == "failed_assume_role" and "bert-jan" in (f.principal_arn or "")]
    assert bert.severity == "high" and bert.details["enumeration"] is True and bert.count == 13
    # AWS services (ec2, rds, lambda, inspector...) never show up as off-hours or unusual
    for f in res.findings:
        if f.detector in ("off_hours", "unusual_source_ip", "first_time_principal"):
            assert f.details["principal_type"] != "AWSService"
    # nothing but the enumeration is high on this mixed bag of samples
    high = [f.detector for f in res.findings if f.rank >= SEVERITY_RANK["high"] and f.detector in DETECTORS]
    assert high == ["failed_assume_role"]


def test_each_dataset_alone(public_records):
    detectors = set()
    for name, recs in public_records.items():
        df = frame_from_rows(_rows(recs))
        res = run_detectors(df, DetectionContext(now=datetime(2025, 1, 1, tzinfo=UTC)), Config())
        fingerprints = [f.fingerprint for f in res.findings]
        assert len(set(fingerprints)) == len(fingerprints), name  # one finding per fingerprint
        for f in res.findings:  # each finding is about this dataset's own events, and counts them all
            assert f.event_ids and set(f.event_ids) <= set(df["event_id"]), (name, f.detector)
            assert f.count >= len(f.event_ids), (name, f.detector)
        detectors |= {f.detector for f in res.findings}
    assert {"failed_assume_role", "off_hours"} <= detectors  # the datasets alone still find something


def test_docs_cross_account_pair_is_one_event(public_records):
    from monitor.config import parse_config

    df = frame_from_rows(_rows(public_records["aws_docs_examples"]))
    assert df["shared_event_id"].value_counts().max() == 2  # both copies are in the sample
    every_day_is_off = parse_config({"detectors": {"off_hours": {"business_days": ["sun"]}}})
    res = run_detectors(df, DetectionContext(now=datetime(2025, 1, 1, tzinfo=UTC)), every_day_is_off)
    ec2dev = [f for f in res.findings if (f.role_arn or "").endswith("role/EC2-dev")]
    assert ec2dev and all(f.count == 1 for f in ec2dev)
    assert all(f.principal_arn == "arn:aws:iam::777788889999:user/JohnDoe" for f in ec2dev)
