"""The Apprise bridge against a real local HTTP server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import pytest

from services.dispatcher.channels import Notification, Outcome
from services.dispatcher.channels.apprise_bridge import AppriseChannel
from services.dispatcher.url_guard import IPNetwork, UrlGuard
from shared.endpoints import Endpoint
from tests.receivers import ANY_PATH, Receiver, Reply
from tests.support import LOOPBACK, channel_notification


def channel(allow: Sequence[IPNetwork] = ()) -> AppriseChannel:
    return AppriseChannel(UrlGuard(allow), timeout=5.0)


def notification(link: str | None = None) -> Notification:
    return channel_notification(
        type="match", title="3 new matches", body="Senior Python engineer at Acme, 92 %", link=link
    )


def endpoint(url: str) -> Endpoint:
    return Endpoint(uuid.uuid4(), "u1", "apprise", url, None, None)


async def test_a_json_url_delivers_title_and_body(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/hook"
    result = await channel(LOOPBACK).send(notification("https://jobs.example/1"), endpoint(url))
    assert result.outcome is Outcome.DELIVERED
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    payload = request.json()
    assert payload["title"] == "3 new matches"
    assert payload["message"] == "Senior Python engineer at Acme, 92 %\n\nhttps://jobs.example/1"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433"])
async def test_a_private_host_is_refused_without_the_allow_list(
    receiver: Receiver, host: str
) -> None:
    url = f"json://{host}:{receiver.port}/hook"
    result = await channel().send(notification(), endpoint(url))
    assert result.outcome is Outcome.PERMANENT
    assert "non-public" in result.detail
    assert receiver.requests == []


async def test_the_smtp_server_of_a_mail_url_is_checked() -> None:
    url = "mailto://user:pw@example.com?smtp=127.0.0.1&to=someone@example.com"
    result = await channel().send(notification(), endpoint(url))
    assert result.outcome is Outcome.PERMANENT
    assert "127.0.0.1" in result.detail


@pytest.mark.parametrize("url", ["no-such-service://token", "json://", "not a url at all"])
async def test_an_unusable_apprise_url_is_permanent(url: str) -> None:
    result = await channel(LOOPBACK).send(notification(), endpoint(url))
    assert result.outcome is Outcome.PERMANENT
    assert "not a usable Apprise URL" in result.detail


async def test_a_server_error_is_transient(receiver: Receiver) -> None:
    receiver.script(ANY_PATH, Reply(500))
    url = f"json://127.0.0.1:{receiver.port}/hook"
    result = await channel(LOOPBACK).send(notification(), endpoint(url))
    assert result.outcome is Outcome.TRANSIENT
    assert len(receiver.requests) == 1  # Apprise's own retries are off: ours apply


async def test_redirects_are_not_followed_even_when_the_url_asks(receiver: Receiver) -> None:
    async with Receiver("plain") as inside:
        receiver.script(ANY_PATH, Reply(302, headers={"Location": f"{inside.url}/internal"}))
        url = f"json://127.0.0.1:{receiver.port}/hook?redirect=yes&retry=3"
        result = await channel(LOOPBACK).send(notification(), endpoint(url))
    assert result.outcome is not Outcome.DELIVERED
    assert len(receiver.requests) == 1
    assert inside.requests == []


async def test_secrets_in_the_url_reach_neither_the_log_nor_the_result(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(ANY_PATH, Reply(500))
    secret = "s3cret-token-in-path"
    url = f"json://user:pass-{secret}@127.0.0.1:{receiver.port}/hook/{secret}"
    caplog.set_level(logging.DEBUG)
    result = await channel(LOOPBACK).send(notification(), endpoint(url))
    assert result.outcome is Outcome.TRANSIENT
    assert receiver.requests[0].path == f"/hook/{secret}"  # it was used, just not shown
    assert secret not in caplog.text
    assert secret not in result.detail
