"""How a receiver's HTTP answer becomes delivered, retry later, or give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dispatcher.channels._base import Outcome, classify_http, parse_retry_after

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (408, Outcome.TRANSIENT),
        (425, Outcome.TRANSIENT),
        (429, Outcome.TRANSIENT),
        (500, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
        (301, Outcome.PERMANENT),
        (400, Outcome.PERMANENT),
        (401, Outcome.PERMANENT),
        (404, Outcome.PERMANENT),
        (410, Outcome.PERMANENT),
    ],
)
def test_status_codes_decide_the_outcome(status: int, outcome: Outcome) -> None:
    result = classify_http(status, None)
    assert result.outcome is outcome
    assert result.status_code == status


def test_redirects_are_refused_with_a_reason() -> None:
    assert "redirects are not followed" in classify_http(302, None).detail


def test_retry_after_in_seconds_is_carried_on_a_transient_result() -> None:
    assert classify_http(429, "120").retry_after == 120.0


def test_retry_after_as_an_http_date_becomes_seconds_from_now() -> None:
    later = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, NOW) == pytest.approx(90.0)


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Sun, 01 Jan 2023 00:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None
