"""Answers built to stall or crash the dispatcher, as a user's own server can send
them to a chat endpoint: every channel judges them from a bounded prefix, in linear
time, and never raises. The dispatcher reads every answer on its one event loop, so
a slow parse here would stall every delivery at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from services.dispatcher.channels._base import (
    DeliveryResult,
    Outcome,
    parse_retry_after,
    wait_seconds,
)
from services.dispatcher.channels._http import BODY_MAX, TEXT_MAX, Reply, json_object
from services.dispatcher.channels.discord import discord_outcome
from services.dispatcher.channels.slack import slack_outcome
from services.dispatcher.channels.teams import failed_delivery_status, teams_outcome
from services.dispatcher.channels.telegram import telegram_outcome

MIB = 1024 * 1024
# generous: each parse takes about a millisecond; the quadratic Teams pattern took
# seconds at 128 KiB and minutes at 1 MiB
QUICK = 1.0

# a JSON number with more digits than a float holds (fewer than int() refuses)
HUGE = "1" + "0" * 400
HOSTILE: dict[str, bytes] = {
    "repeated telltale": b"Webhook message delivery failed " * (MIB // 32),
    "nested arrays": b"[" * MIB,
    "nested objects": b'{"a":' * (MIB // 5),
    "one long word": b"x" * MIB,
    "many numbers": b"[" + b"1," * (MIB // 2 - 1) + b"1]",
    "huge waits": (
        f'{{"retry_after": {HUGE}, "parameters": {{"retry_after": {HUGE}}}}}'.encode() + b" " * MIB
    ),
}
OUTCOMES: dict[str, Callable[[Reply], DeliveryResult]] = {
    "discord": discord_outcome,
    "slack": slack_outcome,
    "teams": teams_outcome,
    "telegram": telegram_outcome,
}


def reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, CIMultiDictProxy(CIMultiDict(headers or {})), body)


@pytest.mark.parametrize("channel", OUTCOMES)
@pytest.mark.parametrize("body", HOSTILE)
@pytest.mark.parametrize("status", [200, 400, 429, 503])
def test_a_hostile_answer_is_judged_quickly_and_without_raising(
    channel: str, body: str, status: int
) -> None:
    began = time.perf_counter()
    result = OUTCOMES[channel](reply(status, HOSTILE[body], {"retry-after": "9" * 4000}))
    assert time.perf_counter() - began < QUICK
    assert result.outcome is (Outcome.DELIVERED if status == 200 else result.outcome)
    assert result.retry_after is None or result.retry_after < float("inf")
    assert len(result.detail) < 400  # an answer's text is quoted, never all of it


def test_the_teams_scan_is_linear_in_the_text_it_is_given() -> None:
    """Past the prefix too: the scan itself must not go back over the text."""
    text = "delivery failed " * (256 * 1024 // 16)
    began = time.perf_counter()
    assert failed_delivery_status(text) is None
    assert time.perf_counter() - began < QUICK
    assert failed_delivery_status(text + "HTTP error 429") == 429


def test_teams_reads_the_failure_only_in_the_first_text_max_bytes() -> None:
    telltale = b"Webhook message delivery failed: Teams returned HTTP error 429"
    assert teams_outcome(reply(200, telltale)).status_code == 429
    beyond = teams_outcome(reply(200, b"x" * TEXT_MAX + telltale))
    assert (beyond.outcome, beyond.status_code) == (Outcome.DELIVERED, 200)


def test_an_error_word_beyond_the_text_prefix_is_not_read() -> None:
    result = slack_outcome(reply(404, b" " * TEXT_MAX + b"no_service"))
    assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, False)


@pytest.mark.parametrize("charset", ["idna", "punycode", "zlib_codec", "utf-7", "utf-16"])
def test_the_charset_an_answer_declares_cannot_make_reading_it_raise(charset: str) -> None:
    answer = Reply(400, CIMultiDictProxy(CIMultiDict()), b"\xff\xfe no_service", charset)
    assert slack_outcome(answer).outcome is Outcome.PERMANENT
    assert teams_outcome(answer).outcome is Outcome.PERMANENT


def test_json_is_read_from_the_first_body_max_bytes_only() -> None:
    padded = b'{"pad": "' + b"x" * BODY_MAX + b'", "id": "1"}'
    assert json_object(reply(200, padded)) == {}
    assert json_object(reply(200, b'{"id": "1"}')) == {"id": "1"}


def test_json_nested_past_the_parser_is_no_json() -> None:
    with pytest.raises(ValueError, match="nested"):
        reply(200, b"[" * 100_000).json()
    assert json_object(reply(200, b"[" * 100_000)) == {}


@pytest.mark.parametrize("value", ["²", "٣٠", "9" * 100, "1" * 65])
def test_retry_after_headers_that_are_no_delay_are_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (7, 7.0),
        (0.35, 0.35),
        (-3, 0.0),
        (int(HUGE), None),
        (float("inf"), None),
        (float("nan"), None),
        (True, None),
        ("7", None),
        (None, None),
    ],
)
def test_a_wait_in_an_answer_is_finite_seconds_or_nothing(
    value: object, seconds: float | None
) -> None:
    assert wait_seconds(value) == seconds
