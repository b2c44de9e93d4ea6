"""What each chat channel sends, within each service's limits, and how it reads the
answers; built by pure functions, so no I/O here."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from services.dispatcher.channels._base import Notification, Outcome
from services.dispatcher.channels._http import Reply
from services.dispatcher.channels._text import ELLIPSIS, utf16_len
from services.dispatcher.channels.discord import (
    EMBED_TOTAL_MAX,
    discord_outcome,
    discord_payload,
    embed_text_length,
)
from services.dispatcher.channels.slack import slack_outcome, slack_payload
from services.dispatcher.channels.teams import (
    PAYLOAD_MAX_BYTES,
    encode,
    teams_outcome,
    teams_payload,
)
from services.dispatcher.channels.telegram import telegram_messages, telegram_outcome

CREATED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FIELDS = {"fields": [{"name": "Company", "value": "ACME & Co", "inline": True}, ["Score", 93]]}


def notification(
    title: str = "New match: Backend <Engineer> & more",
    body: str = "Why it matched: Python & asyncio.\n\nApply soon.",
    *,
    priority: str = "normal",
    link: str | None = "https://jobs.example/j/1?src=a&b=c",
    data: dict[str, Any] | None = None,
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        user_id="u1",
        type="match.found",
        title=title,
        body=body,
        priority=priority,
        created_at=CREATED,
        data=FIELDS if data is None else data,
        link=link,
    )


def long_body(chars: int) -> str:
    """Paragraphs of words with a few awkward characters, ``chars`` long."""
    unit = "Senior engineer 😀 in Zürich & <remote>, salary 90-110k. "
    text = ""
    paragraph = 0
    while len(text) < chars:
        paragraph += 1
        text += unit * (paragraph % 7 + 1) + "\n\n"
    return text[:chars]


def words(text: str) -> list[str]:
    return text.replace(ELLIPSIS, " ").split()


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """An answer as ``call`` hands it over: a dict body as JSON, anything else as text."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or "").encode()
    return Reply(status, CIMultiDictProxy(CIMultiDict(headers or {})), raw)


# Discord


def test_discord_embed_carries_the_notification() -> None:
    payload = discord_payload(notification(priority="urgent"))
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["title"] == "New match: Backend <Engineer> & more"
    assert embed["description"] == "Why it matched: Python & asyncio.\n\nApply soon."
    assert embed["url"] == "https://jobs.example/j/1?src=a&b=c"
    assert embed["timestamp"] == "2026-11-23T10:00:00+00:00"
    assert embed["footer"]["text"] == "Herald · match.found"
    assert embed["fields"] == [
        {"name": "Company", "value": "ACME & Co", "inline": True},
        {"name": "Score", "value": "93", "inline": False},
    ]


def test_discord_colour_follows_priority() -> None:
    colours = {
        p: discord_payload(notification(priority=p))["embeds"][0]["color"]
        for p in ("low", "normal", "high", "urgent")
    }
    assert len(set(colours.values())) == 4
    assert discord_payload(notification(priority="odd"))["embeds"][0]["color"] == colours["normal"]


def test_discord_leaves_out_what_is_empty() -> None:
    [embed] = discord_payload(notification(title="", body="", link=None, data={}))["embeds"]
    assert "title" not in embed
    assert "description" not in embed
    assert "url" not in embed
    assert "fields" not in embed


def test_discord_fields_never_empty() -> None:
    [embed] = discord_payload(notification(data={"fields": {"": None}}))["embeds"]
    assert embed["fields"][0]["name"].strip("\u200b") == ""
    assert embed["fields"][0]["name"]
    assert embed["fields"][0]["value"]


@pytest.mark.parametrize("size", [0, 255, 256, 257, 1500, 4096, 4097, 6000, 20_000])
def test_discord_embed_stays_within_every_limit(size: int) -> None:
    fields = [{"name": f"n{i} " + "N" * size, "value": "V " * size} for i in range(40)]
    payload = discord_payload(
        notification(
            title="T " * size, body=long_body(size), data={"fields": fields, "footer": "F" * size}
        )
    )
    [embed] = payload["embeds"]
    assert len(embed.get("title", "")) <= 256
    assert len(embed.get("description", "")) <= 4096
    assert len(embed["footer"]["text"]) <= 2048
    assert len(embed.get("fields", [])) <= 25
    for field in embed.get("fields", []):
        assert 0 < len(field["name"]) <= 256
        assert 0 < len(field["value"]) <= 1024
    assert embed_text_length(embed) <= EMBED_TOTAL_MAX


def test_discord_long_body_is_truncated_with_an_ellipsis() -> None:
    body = long_body(20_000)
    [embed] = discord_payload(notification(body=body))["embeds"]
    assert embed["description"].endswith(ELLIPSIS)
    assert body.startswith(embed["description"].removesuffix(ELLIPSIS))
    assert 4000 < len(embed["description"]) <= 4096


def test_discord_delivered_with_the_message_id() -> None:
    result = discord_outcome(response(200, {"id": "1300000000000000001"}))
    assert result.outcome is Outcome.DELIVERED
    assert result.provider_id == "1300000000000000001"


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"retry-after": "3"}, {"message": "You are being rate limited.", "retry_after": 2.5}, 3.0),
        ({}, {"message": "You are being rate limited.", "retry_after": 1.25}, 1.25),
        ({"retry-after": "7"}, {}, 7.0),
        ({}, {}, None),
    ],
)
def test_discord_rate_limit_waits_as_long_as_discord_says(
    headers: dict[str, str], body: dict[str, Any], wait: float | None
) -> None:
    result = discord_outcome(response(429, body, headers))
    assert result.outcome is Outcome.TRANSIENT
    assert result.retry_after == wait


def test_discord_unknown_webhook_is_gone() -> None:
    result = discord_outcome(response(404, {"message": "Unknown Webhook", "code": 10015}))
    assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, True)
    assert "Unknown Webhook" in result.detail


def test_discord_other_errors_are_classified_by_status() -> None:
    bad = discord_outcome(response(400, {"message": "Invalid Form Body", "code": 50035}))
    assert (bad.outcome, bad.endpoint_gone) == (Outcome.PERMANENT, False)
    assert "Invalid Form Body" in bad.detail
    assert discord_outcome(response(404, "not found")).endpoint_gone is False
    assert discord_outcome(response(502, "bad gateway")).outcome is Outcome.TRANSIENT


# Slack


def test_slack_blocks_carry_the_notification_escaped() -> None:
    payload = slack_payload(notification())
    assert payload["text"] == "New match: Backend &lt;Engineer&gt; &amp; more"
    header, section, fields, actions = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "New match: Backend <Engineer> & more"},
    }
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "Why it matched: Python &amp; asyncio.\n\nApply soon.",
    }
    assert [f["text"] for f in fields["fields"]] == ["*Company*\nACME &amp; Co", "*Score*\n93"]
    [button] = actions["elements"]
    assert button["url"] == "https://jobs.example/j/1?src=a&b=c"
    assert button["text"] == {"type": "plain_text", "text": "Open"}


def test_slack_without_link_or_fields_has_no_button_or_fields() -> None:
    payload = slack_payload(notification(link=None, data={}))
    assert [b["type"] for b in payload["blocks"]] == ["header", "section"]


def test_slack_always_has_fallback_text() -> None:
    assert slack_payload(notification(title="", body=""))["text"]


@pytest.mark.parametrize("size", [0, 149, 150, 151, 2999, 3000, 3001, 12_000, 20_000])
def test_slack_blocks_stay_within_limits(size: int) -> None:
    fields = {f"name {i}": "v & " * size for i in range(15)}
    payload = slack_payload(
        notification(title="H" * size, body=long_body(size), data={"fields": fields})
    )
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    total = 0
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
            total += utf16_len(block["text"]["text"])
        elif block["type"] == "section" and "text" in block:
            assert 0 < utf16_len(block["text"]["text"]) <= 3000
            total += utf16_len(block["text"]["text"])
        elif block["type"] == "section":
            assert len(block["fields"]) <= 10
            assert all(utf16_len(f["text"]) <= 2000 for f in block["fields"])
            total += sum(utf16_len(f["text"]) for f in block["fields"])
    assert total <= 12_000
    assert utf16_len(payload["text"]) <= 3000


def test_slack_long_body_is_split_over_sections_then_truncated() -> None:
    body = long_body(20_000)
    sections = [
        b["text"]["text"]
        for b in slack_payload(notification(body=body, data={}))["blocks"]
        if b["type"] == "section"
    ]
    assert len(sections) > 1
    sent = html.unescape("\n\n".join(sections))
    assert sent.endswith(ELLIPSIS)
    assert words(sent) == words(body)[: len(words(sent))]


@pytest.mark.parametrize(
    ("status", "text", "outcome", "gone"),
    [
        (200, "ok", Outcome.DELIVERED, False),
        (400, "invalid_payload", Outcome.PERMANENT, False),
        (403, "action_prohibited", Outcome.PERMANENT, False),
        (403, "invalid_token", Outcome.PERMANENT, True),
        (404, "channel_not_found", Outcome.PERMANENT, False),
        (404, "no_service", Outcome.PERMANENT, True),
        (410, "channel_is_archived", Outcome.PERMANENT, True),
        (429, "rate_limited", Outcome.TRANSIENT, False),
        (500, "rollup_error", Outcome.TRANSIENT, False),
    ],
)
def test_slack_answers(status: int, text: str, outcome: Outcome, gone: bool) -> None:
    result = slack_outcome(response(status, text))
    assert (result.outcome, result.endpoint_gone, result.status_code) == (outcome, gone, status)
    if outcome is not Outcome.DELIVERED:
        assert text in result.detail


def test_slack_rate_limit_honours_retry_after() -> None:
    assert slack_outcome(response(429, "rate_limited", {"retry-after": "30"})).retry_after == 30.0


# Telegram


class Tags(HTMLParser):
    """Checks a Telegram HTML text: tags balanced, and the text Telegram shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text = ""
        self.bold = ""
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text += data
        if "b" in self.open:
            self.bold += data


def parsed(message: str) -> Tags:
    tags = Tags()
    tags.feed(message)
    tags.close()
    assert tags.open == []
    return tags


def test_telegram_text_is_bold_title_escaped_body_and_link() -> None:
    [message] = telegram_messages(notification())
    assert message == (
        "<b>New match: Backend &lt;Engineer&gt; &amp; more</b>\n\n"
        "Why it matched: Python &amp; asyncio.\n\nApply soon.\n\n"
        '<a href="https://jobs.example/j/1?src=a&amp;b=c">https://jobs.example/j/1?src=a&amp;b=c</a>'
    )
    tags = parsed(message)
    assert tags.hrefs == ["https://jobs.example/j/1?src=a&b=c"]
    assert tags.bold == "New match: Backend <Engineer> & more"


def test_telegram_escapes_quotes_in_the_link_attribute() -> None:
    [message] = telegram_messages(notification(link='https://x.example/?q="a"'))
    assert parsed(message).hrefs == ['https://x.example/?q="a"']


def test_telegram_empty_notification_still_sends_text() -> None:
    assert telegram_messages(notification(title="", body="", link=None)) == ["match.found"]


@pytest.mark.parametrize("size", [4000, 4096, 4097, 9000, 20_000])
def test_telegram_long_text_is_split_into_valid_messages(size: int) -> None:
    body = long_body(size)
    messages = telegram_messages(notification(body=body))
    shown = [parsed(m).text for m in messages]
    assert all(0 < utf16_len(text) <= 4096 for text in shown)
    assert len(messages) >= sum(utf16_len(text) for text in shown) / 4096
    title = "New match: Backend <Engineer> & more"
    assert words(" ".join(shown)) == words(title) + words(body) + [
        "https://jobs.example/j/1?src=a&b=c"
    ]


def test_telegram_very_long_body_is_truncated_not_sent_as_a_flood() -> None:
    body = long_body(200_000)
    note = notification(body=body)
    messages = [parsed(m) for m in telegram_messages(note)]
    assert 8 <= len(messages) <= 10
    before, after = " ".join(m.text for m in messages).split(ELLIPSIS)
    title = words(note.title)
    assert words(before)[: len(title)] == title
    kept = words(before)[len(title) :]
    assert kept == words(body)[: len(kept)]
    assert len(" ".join(kept)) > 7 * 4096
    assert after.split() == [note.link]
    assert messages[-1].hrefs == [note.link]


def test_telegram_title_and_link_stay_well_formed_when_cut() -> None:
    title = "Title " * 1000  # longer than one message
    link = "https://jobs.example/" + "p" * 5000
    messages = telegram_messages(notification(title=title, body="", link=link))
    tags = [parsed(m) for m in messages]
    assert all(utf16_len(t.text) <= 4096 for t in tags)
    assert " ".join(t.bold for t in tags).split() == title.split()
    assert {href for t in tags for href in t.hrefs} == {link}


def test_telegram_delivered_with_the_message_id() -> None:
    result = telegram_outcome(response(200, {"ok": True, "result": {"message_id": 42}}))
    assert (result.outcome, result.provider_id) == (Outcome.DELIVERED, "42")


def test_telegram_rate_limit_waits_retry_after() -> None:
    answer = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 17",
        "parameters": {"retry_after": 17},
    }
    result = telegram_outcome(response(429, answer))
    assert (result.outcome, result.retry_after) == (Outcome.TRANSIENT, 17.0)


@pytest.mark.parametrize(
    ("status", "description", "gone"),
    [
        (403, "Forbidden: bot was blocked by the user", True),
        (403, "Forbidden: bot was kicked from the group chat", True),
        (400, "Bad Request: chat not found", True),
        (400, "Bad Request: can't parse entities", False),
        (401, "Unauthorized", False),
    ],
)
def test_telegram_refusals_are_permanent(status: int, description: str, gone: bool) -> None:
    answer = {"ok": False, "error_code": status, "description": description}
    result = telegram_outcome(response(status, answer))
    assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, gone)
    assert description in result.detail


def test_telegram_group_migrated_to_supergroup_is_gone_with_the_new_id() -> None:
    answer = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1001234},
    }
    result = telegram_outcome(response(400, answer))
    assert result.endpoint_gone
    assert "-1001234" in result.detail


def test_telegram_server_errors_are_transient() -> None:
    assert telegram_outcome(response(502, "Bad Gateway")).outcome is Outcome.TRANSIENT


# Teams


def card(payload: dict[str, Any]) -> dict[str, Any]:
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    content: dict[str, Any] = attachment["content"]
    return content


def test_teams_adaptive_card_carries_the_notification() -> None:
    payload = teams_payload(notification())
    assert payload["type"] == "message"
    content = card(payload)
    assert (content["type"], content["version"]) == ("AdaptiveCard", "1.4")
    title, body, facts = content["body"]
    assert title == {
        "type": "TextBlock",
        "text": "New match: Backend <Engineer> & more",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
    }
    assert body == {
        "type": "TextBlock",
        "text": "Why it matched: Python & asyncio.\n\nApply soon.",
        "wrap": True,
    }
    assert facts == {
        "type": "FactSet",
        "facts": [{"title": "Company", "value": "ACME & Co"}, {"title": "Score", "value": "93"}],
    }
    assert content["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://jobs.example/j/1?src=a&b=c"}
    ]


def test_teams_without_link_has_no_action() -> None:
    assert "actions" not in card(teams_payload(notification(link=None, data={})))


@pytest.mark.parametrize("size", [0, 10_000, 26_000, 27_000, 28_000, 60_000])
def test_teams_payload_stays_under_the_size_limit(size: int) -> None:
    fields = {f"fact {i}": "\x01 é 😀 " * (size // 40) for i in range(30)}
    body = long_body(size)
    payload = teams_payload(notification(body=body, data={"fields": fields}))
    assert len(encode(payload)) <= PAYLOAD_MAX_BYTES
    texts = [e["text"] for e in card(payload)["body"] if e["type"] == "TextBlock"]
    if body:
        assert body.startswith(texts[1].removesuffix(ELLIPSIS))
        assert len(texts[1]) >= min(len(body), 1000)


def test_teams_long_body_is_truncated_to_nearly_the_limit() -> None:
    payload = teams_payload(notification(body=long_body(20_000) * 2, data={}))
    size = len(encode(payload))
    assert PAYLOAD_MAX_BYTES - 16 <= size <= PAYLOAD_MAX_BYTES
    assert json.loads(encode(payload)) == payload


@pytest.mark.parametrize(
    ("status", "text", "outcome", "code"),
    [
        (200, "1", Outcome.DELIVERED, 200),
        (202, "", Outcome.DELIVERED, 202),
        (
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi",
            Outcome.TRANSIENT,
            429,
        ),
        (
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 502 with ContextId x",
            Outcome.TRANSIENT,
            502,
        ),
        (
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 with ContextId x",
            Outcome.PERMANENT,
            413,
        ),
        (400, "Bad payload received by generic incoming webhook.", Outcome.PERMANENT, 400),
        (503, "", Outcome.TRANSIENT, 503),
    ],
)
def test_teams_answers(status: int, text: str, outcome: Outcome, code: int) -> None:
    result = teams_outcome(response(status, text))
    assert (result.outcome, result.status_code) == (outcome, code)
    if outcome is not Outcome.DELIVERED and text:
        assert re.sub(r"\s+", " ", text)[:100] in result.detail


def test_slack_limits_hold_for_the_escaped_text() -> None:
    """``&`` is five characters once escaped; the limits count it so."""
    payload = slack_payload(notification(body="&" * 20_000, data={}))
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections)
    assert sum(len(s) for s in sections) <= 12_000
    sent = html.unescape("".join(sections))
    assert sent.endswith(ELLIPSIS)
    assert set(sent.removesuffix(ELLIPSIS)) == {"&"}
    assert len(sent) > 2000
