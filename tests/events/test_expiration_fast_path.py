"""The strptime-free parse of `credentials.expiration` agrees with strptime on every input."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from monitor.events.normalise import _EXPIRATION_FORMATS, parse_expiration

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))


@given(moments, st.sampled_from(_EXPIRATION_FORMATS), st.booleans())
def test_agrees_with_strptime(moment: datetime, fmt: str, unpadded: bool) -> None:
    text = moment.strftime(fmt)
    if unpadded:  # CloudTrail writes `Jul 5, 2021 1:18:34 PM`
        text = text.replace(" 0", " ")
    assert parse_expiration(text) == datetime.strptime(text, fmt).replace(tzinfo=UTC) == moment


def test_impossible_dates_and_hours_are_null() -> None:
    assert parse_expiration("Feb 30, 2021 1:00:00 PM") is None
    assert parse_expiration("Jul 5, 2021 13:18:34 PM") is None
    assert parse_expiration("Jul 5, 2021 12:00:00 AM") == datetime(2021, 7, 5, 0, 0, tzinfo=UTC)
