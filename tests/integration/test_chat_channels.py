"""The four chat channels over real HTTP against local receivers that answer like
Discord, Slack, Telegram and Teams, including their failures."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from services.dispatcher.channels._base import Channel, Notification, Outcome
from services.dispatcher.channels._http import TEXT_MAX
from services.dispatcher.channels._text import ELLIPSIS, utf16_len
from services.dispatcher.channels.discord import DiscordChannel, embed_text_length
from services.dispatcher.channels.slack import SlackChannel
from services.dispatcher.channels.teams import PAYLOAD_MAX_BYTES, TeamsChannel
from services.dispatcher.channels.telegram import TelegramChannel
from services.dispatcher.safe_http import guarded_client
from shared.endpoints import Endpoint
from shared.logging import scrub
from shared.webhook_hosts import WebhookHosts
from tests.receivers import Behaviour, Drop, Receiver, Reply, receivers
from tests.support import LOCAL_CHAT_HOST, LOOPBACK

TIMEOUT = 0.5
TOKEN = "123456789:AAH-test_token_0123456789abcdefghijk"
CHAT_ID = "-100777"

Start = Callable[[str], Awaitable[Receiver]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    async with receivers() as start:
        yield start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The client the chat channels get in production, allowed to reach the receivers."""
    async with guarded_client(LOOPBACK, timeout=TIMEOUT) as client:
        yield client


def local_hosts(kind: str) -> WebhookHosts:
    """The host list an operator would give a chat type to reach the receivers."""
    return WebhookHosts.parse(kind, [LOCAL_CHAT_HOST])


def notification(body: str = "Python & asyncio.\n\nApply soon.", **kw: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "u1",
        "type": "match.found",
        "title": "New match: Backend <Engineer>",
        "body": body,
        "priority": "high",
        "created_at": datetime(2026, 11, 23, 10, tzinfo=UTC),
        "data": {"fields": {"Company": "ACME"}},
        "link": "https://jobs.example/j/1",
    }
    return Notification(**(fields | kw))


def long_body(chars: int = 20_000) -> str:
    text, n = "", 0
    while len(text) < chars:
        n += 1
        text += f"Paragraph {n}: " + "a match & <more> 😀 words " * (n % 9 + 1) + "\n\n"
    return text[:chars]


@dataclass(frozen=True)
class Case:
    """One channel: how to reach it at a receiver, and what that service answers."""

    kind: str
    path: str
    rate_limited: Reply  # 429 telling to wait 7 s, as the service says it
    refused: Reply  # a 4xx that is permanent but leaves the endpoint alone
    gone: tuple[Reply, ...]  # answers meaning the endpoint no longer exists

    def build(self, http: aiohttp.ClientSession, receiver: Receiver) -> tuple[Channel, Endpoint]:
        url = receiver.url + self.path
        channel: Channel
        match self.kind:
            case "discord":
                channel = DiscordChannel(http, local_hosts("discord"))
            case "slack":
                channel = SlackChannel(http, local_hosts("slack"))
            case "teams":
                channel = TeamsChannel(http, local_hosts("teams"))
            case _:
                channel = TelegramChannel(http, TOKEN, receiver.url)
                url = ""
        chat_id = CHAT_ID if self.kind == "telegram" else None
        return channel, Endpoint(uuid.uuid4(), "u1", self.kind, url or None, chat_id, None)


async def reach(
    case: Case, start: Start, http: aiohttp.ClientSession, *script: Behaviour
) -> tuple[Receiver, Channel, Endpoint]:
    """A receiver for ``case`` that answers with ``script`` first, and the channel
    and endpoint that reach it."""
    receiver = await start(case.kind)
    receiver.script(case.path, *script)
    channel, endpoint = case.build(http, receiver)
    return receiver, channel, endpoint


def telegram_error(status: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(status, body)


CASES = [
    Case(
        "discord",
        "/api/webhooks/1234/hooktoken",
        Reply(
            429,
            {"message": "You are being rate limited.", "retry_after": 7.0},
            {"retry-after": "7"},
        ),
        Reply(400, {"message": "Invalid Form Body", "code": 50035}),
        (Reply(404, {"message": "Unknown Webhook", "code": 10015}),),
    ),
    Case(
        "slack",
        "/services/T000/B000/XXXX",
        Reply(429, "rate_limited", {"retry-after": "7"}),
        Reply(404, "channel_not_found"),
        (Reply(404, "no_service"), Reply(410, "channel_is_archived"), Reply(403, "invalid_token")),
    ),
    Case(
        "telegram",
        f"/bot{TOKEN}/sendMessage",
        telegram_error(429, "Too Many Requests: retry after 7", retry_after=7),
        telegram_error(400, "Bad Request: can't parse entities"),
        (
            telegram_error(403, "Forbidden: bot was blocked by the user"),
            telegram_error(400, "Bad Request: chat not found"),
        ),
    ),
    Case(
        "teams",
        "/webhookb2/abc@def/IncomingWebhook/123/456",
        Reply(429, "", {"retry-after": "7"}),
        Reply(400, "Bad payload received by generic incoming webhook."),
        (Reply(410, "Gone"),),
    ),
]
BY_KIND = {case.kind: case for case in CASES}


def check_payload(kind: str, request_body: Any, query: dict[str, str]) -> None:
    """The receiver got what that service accepts."""
    if kind == "discord":
        assert query == {"wait": "true"}
        [embed] = request_body["embeds"]
        assert embed["title"] == "New match: Backend <Engineer>"
        assert embed["url"] == "https://jobs.example/j/1"
        assert embed["fields"] == [{"name": "Company", "value": "ACME", "inline": False}]
    elif kind == "slack":
        assert request_body["text"] == "New match: Backend &lt;Engineer&gt;"
        types = [b["type"] for b in request_body["blocks"]]
        assert types == ["header", "section", "section", "actions"]
    elif kind == "telegram":
        assert request_body["chat_id"] == CHAT_ID
        assert request_body["parse_mode"] == "HTML"
        assert request_body["link_preview_options"] == {"is_disabled": True}
        assert request_body["text"].startswith("<b>New match: Backend &lt;Engineer&gt;</b>\n\n")
    else:
        assert request_body["type"] == "message"
        content = request_body["attachments"][0]["content"]
        assert content["body"][0]["text"] == "New match: Backend <Engineer>"
        assert content["actions"][0]["url"] == "https://jobs.example/j/1"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_delivered_with_the_provider_id(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(case, start, http)
    result = await channel.send(notification(), endpoint)
    assert result.outcome is Outcome.DELIVERED, result.detail
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == case.path
    assert request.headers["content-type"] == "application/json"
    check_payload(case.kind, request.json(), request.query)
    expected_ids = {"discord": "1300000000000000001", "telegram": "1"}
    assert result.provider_id == expected_ids.get(case.kind)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_rate_limited_is_transient_with_retry_after(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    _, channel, endpoint = await reach(case, start, http, case.rate_limited)
    result = await channel.send(notification(), endpoint)
    assert (result.outcome, result.status_code, result.retry_after) == (Outcome.TRANSIENT, 429, 7.0)
    # the next attempt goes through
    assert (await channel.send(notification(), endpoint)).outcome is Outcome.DELIVERED


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    case: Case, status: int, start: Start, http: aiohttp.ClientSession
) -> None:
    _, channel, endpoint = await reach(case, start, http, Reply(status, "upstream trouble"))
    result = await channel.send(notification(), endpoint)
    assert (result.outcome, result.status_code) == (Outcome.TRANSIENT, status)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_an_answer_slower_than_the_timeout_is_transient(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(case, start, http, Reply(delay=TIMEOUT + 0.5))
    result = await channel.send(notification(), endpoint)
    assert result.outcome is Outcome.TRANSIENT
    assert "timeout" in result.detail
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_a_dropped_connection_is_transient(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    _, channel, endpoint = await reach(case, start, http, Drop())
    result = await channel.send(notification(), endpoint)
    assert result.outcome is Outcome.TRANSIENT
    assert "connection error" in result.detail


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_other_client_errors_are_permanent(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    _, channel, endpoint = await reach(case, start, http, case.refused)
    result = await channel.send(notification(), endpoint)
    assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, False)
    assert result.status_code == case.refused.status


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_gone_answers_mark_the_endpoint_gone(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    _, channel, endpoint = await reach(case, start, http, *case.gone)
    for answer in case.gone:
        result = await channel.send(notification(), endpoint)
        assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, True), answer
        assert result.status_code == answer.status


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_an_endpoint_without_address_is_refused_without_a_call(
    case: Case, start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, _ = await reach(case, start, http)
    result = await channel.send(
        notification(), Endpoint(uuid.uuid4(), "u1", case.kind, None, None, None)
    )
    assert result.outcome is Outcome.PERMANENT
    assert receiver.requests == []


# 20,000 characters: truncated or split, and always accepted


async def test_discord_long_body_is_truncated_within_the_limits(
    start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(BY_KIND["discord"], start, http)
    body = long_body()
    assert (await channel.send(notification(body), endpoint)).outcome is Outcome.DELIVERED
    [embed] = receiver.requests[0].json()["embeds"]
    assert len(embed["description"]) <= 4096
    assert embed_text_length(embed) <= 6000
    assert embed["description"].endswith(ELLIPSIS)
    assert body.startswith(embed["description"].removesuffix(ELLIPSIS))


async def test_slack_long_body_is_split_into_sections_and_truncated(
    start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(BY_KIND["slack"], start, http)
    assert (await channel.send(notification(long_body()), endpoint)).outcome is Outcome.DELIVERED
    blocks = receiver.requests[0].json()["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert len(sections) > 1
    assert len(blocks) <= 50
    assert all(utf16_len(s) <= 3000 for s in sections)
    assert sum(utf16_len(s) for s in sections) <= 12_000
    assert sections[-1].endswith(ELLIPSIS)
    assert "&amp;" in sections[0]
    assert "<" not in "".join(sections)


async def test_teams_long_body_is_truncated_under_the_size_limit(
    start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(BY_KIND["teams"], start, http)
    body = long_body() * 3
    assert (await channel.send(notification(body), endpoint)).outcome is Outcome.DELIVERED
    [request] = receiver.requests
    assert len(request.body) <= PAYLOAD_MAX_BYTES
    text = request.json()["attachments"][0]["content"]["body"][1]["text"]
    assert text.endswith(ELLIPSIS)
    assert body.startswith(text.removesuffix(ELLIPSIS))


class ShownText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ("b", "a")
        self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        self.text += data


def shown(html_text: str) -> str:
    parser = ShownText()
    parser.feed(html_text)
    parser.close()
    assert parser.depth == 0
    return parser.text


async def test_telegram_long_body_is_sent_as_several_messages_in_order(
    start: Start, http: aiohttp.ClientSession
) -> None:
    receiver, channel, endpoint = await reach(BY_KIND["telegram"], start, http)
    body = long_body()
    result = await channel.send(notification(body), endpoint)
    assert result.outcome is Outcome.DELIVERED
    texts = [shown(r.json()["text"]) for r in receiver.requests]
    assert len(texts) >= 5
    assert all(0 < utf16_len(t) <= 4096 for t in texts)
    assert " ".join(texts).split() == (
        ["New", "match:", "Backend", "<Engineer>", *body.split(), "https://jobs.example/j/1"]
    )
    assert result.provider_id == ",".join(str(i) for i in range(1, len(texts) + 1))


async def test_telegram_waits_out_a_short_rate_limit_between_parts(
    start: Start, http: aiohttp.ClientSession
) -> None:
    ok = Reply(200, {"ok": True, "result": {"message_id": 10}})
    wait = telegram_error(429, "Too Many Requests", retry_after=1)
    receiver, channel, endpoint = await reach(BY_KIND["telegram"], start, http, ok, wait)
    result = await channel.send(notification(long_body(6000)), endpoint)
    assert result.outcome is Outcome.DELIVERED
    first, limited, retried = receiver.requests
    assert limited.json()["text"] == retried.json()["text"] != first.json()["text"]
    assert retried.at - limited.at >= 1.0
    assert result.provider_id is not None
    assert result.provider_id.split(",")[0] == "10"


async def test_telegram_a_later_part_failing_says_what_was_sent(
    start: Start, http: aiohttp.ClientSession
) -> None:
    ok = Reply(200, {"ok": True, "result": {"message_id": 10}})
    receiver, channel, endpoint = await reach(
        BY_KIND["telegram"], start, http, ok, Reply(502, "Bad Gateway")
    )
    result = await channel.send(notification(long_body(6000)), endpoint)
    assert result.outcome is Outcome.TRANSIENT
    assert "part 2 of 2" in result.detail
    assert "sent as 10" in result.detail
    assert len(receiver.requests) == 2


async def test_telegram_token_stays_out_of_results_and_logs(
    start: Start, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    case = BY_KIND["telegram"]
    receiver, channel, endpoint = await reach(
        case,
        start,
        http,
        Drop(),
        Reply(delay=TIMEOUT + 0.5),
        telegram_error(500, f"Internal error at /bot{TOKEN}/sendMessage"),
        *case.gone,
    )
    caplog.set_level(logging.DEBUG)
    results = [await channel.send(notification(), endpoint) for _ in range(5)]
    results.append(
        await channel.send(
            notification(), Endpoint(uuid.uuid4(), "u1", "telegram", None, None, None)
        )
    )
    unreachable = TelegramChannel(http, TOKEN, "http://127.0.0.1:1")
    results.append(await unreachable.send(notification(), case.build(http, receiver)[1]))
    assert [r.outcome for r in results].count(Outcome.TRANSIENT) == 4
    for result in results:
        assert TOKEN not in result.detail
        assert TOKEN.split(":")[1] not in result.detail
    # aiohttp logs no request lines (httpx logged each URL); whatever is logged,
    # scrubbed as the log pipeline scrubs it, must not carry the token
    assert all(TOKEN.split(":")[1] not in scrub(r.getMessage()) for r in caplog.records)


async def test_teams_legacy_connector_failure_inside_http_200(
    start: Start, http: aiohttp.ClientSession
) -> None:
    failed = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error {} with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef"
    answers = Reply(200, failed.format(429)), Reply(200, failed.format(400))
    _, channel, endpoint = await reach(BY_KIND["teams"], start, http, *answers)
    throttled = await channel.send(notification(), endpoint)
    refused = await channel.send(notification(), endpoint)
    assert (throttled.outcome, throttled.status_code) == (Outcome.TRANSIENT, 429)
    assert (refused.outcome, refused.status_code) == (Outcome.PERMANENT, 400)


async def test_discord_retry_after_from_the_body_alone(
    start: Start, http: aiohttp.ClientSession
) -> None:
    limited = {"message": "You are being rate limited.", "retry_after": 0.35, "global": False}
    _, channel, endpoint = await reach(BY_KIND["discord"], start, http, Reply(429, limited))
    result = await channel.send(notification(), endpoint)
    assert (result.outcome, result.retry_after) == (Outcome.TRANSIENT, 0.35)


# answers built to stall the dispatcher, and hosts that are not the vendor's


async def test_a_crafted_1_mib_teams_answer_is_judged_from_its_first_kib(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """ "delivery failed" over and over, and no "HTTP error": a pattern that went back
    over the rest at every repeat took minutes on this, on the only event loop."""
    crafted = "Webhook message delivery failed " * (1024 * 1024 // 32)
    hidden = "x" * TEXT_MAX + "Webhook message delivery failed: HTTP error 429"
    _, channel, endpoint = await reach(
        BY_KIND["teams"], start, http, Reply(200, crafted), Reply(200, hidden)
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await channel.send(notification(), endpoint)
    assert loop.time() - began < 1.0  # generous: it takes milliseconds
    assert (result.outcome, result.status_code) == (Outcome.DELIVERED, 200)
    # a failure named past the prefix is not looked for
    beyond = await channel.send(notification(), endpoint)
    assert (beyond.outcome, beyond.status_code) == (Outcome.DELIVERED, 200)


@pytest.mark.parametrize("kind", ["discord", "slack", "teams"])
async def test_a_host_off_the_list_is_refused_without_a_call(
    kind: str, start: Start, http: aiohttp.ClientSession
) -> None:
    """An endpoint stored before its host left the list fails for good, and says why."""
    receiver, _, endpoint = await reach(BY_KIND[kind], start, http)
    vendor_only = {
        "discord": DiscordChannel(http, WebhookHosts.parse(kind, ["discord.com"])),
        "slack": SlackChannel(http, WebhookHosts.parse(kind, ["hooks.slack.com"])),
        "teams": TeamsChannel(http, WebhookHosts.parse(kind, ["*.webhook.office.com"])),
    }[kind]
    result = await vendor_only.send(notification(), endpoint)
    assert (result.outcome, result.endpoint_gone) == (Outcome.PERMANENT, False)
    assert f"127.0.0.1 is not a {kind} webhook host" in result.detail
    assert receiver.requests == []
