from __future__ import annotations

import pytest

from monitor.report.tables import Period, ReviewOptions, ReviewTables, build_review
from tests.report import org


@pytest.fixture
def review() -> ReviewTables:
    return build_review(org.events(), org.posture(), org.findings(), Period(org.SINCE, org.UNTIL),
                        org.previous_snapshot(), ReviewOptions(), now=org.NOW)
