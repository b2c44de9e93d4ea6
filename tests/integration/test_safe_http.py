"""SSRF at connect time: the guarded client connects only to the addresses it checked."""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standardwebhooks import Webhook

from services.dispatcher.channels import DeliveryResult, Outcome
from services.dispatcher.channels._http import BODY_MAX, Reply, call
from services.dispatcher.channels.webhook import WebhookChannel
from services.dispatcher.safe_http import guarded_client, literal_address
from services.dispatcher.url_guard import IPAddress, IPNetwork, UnsafeUrl
from shared.endpoints import Endpoint, new_webhook_secret
from tests.receivers import Drop, Receiver
from tests.receivers import Reply as Answer
from tests.support import LOOPBACK, channel_notification, self_signed_certificate

PUBLIC = ipaddress.ip_address("93.184.215.14")


class ScriptedResolver:
    """Answers each lookup with the next scripted answer, as a rebinding DNS server does."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self._answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return self._answers[min(len(self.lookups), len(self._answers)) - 1]


class RecordingSockets:
    """The guarded client's socket factory: records every address a connection is made
    to; loopback gets a real socket, anything else is unreachable, so the tests never
    leave the machine."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, address = addr_info
        host, port = address[0], address[1]
        self.connects.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise OSError(errno.ENETUNREACH, f"{host} is unreachable from the tests")
        return socket.socket(family, kind, proto)


def client_with(
    resolver: ScriptedResolver,
    sockets: RecordingSockets,
    allow: Sequence[IPNetwork] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> AbstractAsyncContextManager[aiohttp.ClientSession]:
    return guarded_client(
        allow, timeout=5.0, resolver=resolver, socket_factory=sockets, ssl_context=ssl_context
    )


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("hooks.example.com", None),
        ("1e100.net", None),
    ],
)
def test_literal_hosts_are_read_as_the_socket_layer_reads_them(
    host: str, address: str | None
) -> None:
    # yarl leaves these hosts as written, and aiohttp never hands a literal to the
    # resolver, so the guard must read every form a socket would connect to
    assert literal_address(host) == (None if address is None else ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "2130706433",  # 127.0.0.1 as an integer
        "0x7f.1",
        "127.1",
        "[fe80::1%25eth0]",
    ],
)
async def test_loopback_is_refused_without_an_allow_list(receiver: Receiver, host: str) -> None:
    async with guarded_client([], timeout=5.0) as http:
        with pytest.raises(UnsafeUrl, match="non-public"):
            await http.post(f"http://{host}:{receiver.port}/hook", data=b"x")
    assert receiver.requests == []


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "[fd00::1]", "[::1]"])
async def test_a_literal_private_address_is_refused_before_any_connection(address: str) -> None:
    sockets = RecordingSockets()
    async with client_with(ScriptedResolver([str(PUBLIC)]), sockets) as http:
        result = await call(http, "POST", f"http://{address}/hook", content=b"x")
    assert isinstance(result, DeliveryResult)
    assert (result.outcome, result.detail) == (
        Outcome.PERMANENT,
        f"{address.strip('[]')} is a non-public address",
    )
    assert sockets.connects == []


async def test_loopback_is_reached_when_the_operator_allows_it(receiver: Receiver) -> None:
    async with (
        guarded_client(LOOPBACK, timeout=5.0) as http,
        http.post(f"{receiver.url}/hook", data=b"ping") as response,
    ):
        assert response.status == 200
    assert [(r.method, r.path, r.body) for r in receiver.requests] == [("POST", "/hook", b"ping")]


async def test_the_connection_goes_to_the_checked_address_under_the_original_name(
    receiver: Receiver,
) -> None:
    resolver, sockets = ScriptedResolver(["127.0.0.1"]), RecordingSockets()
    async with client_with(resolver, sockets, LOOPBACK) as http:
        reply = await call(http, "GET", f"http://hooks.test:{receiver.port}/hook")
    assert isinstance(reply, Reply)
    assert reply.status_code == 200
    assert resolver.lookups == ["hooks.test"]
    assert sockets.connects == [("127.0.0.1", receiver.port)]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


async def test_a_name_that_resolves_to_loopback_is_refused(receiver: Receiver) -> None:
    resolver, sockets = ScriptedResolver(["127.0.0.1"]), RecordingSockets()
    async with client_with(resolver, sockets) as http:
        with pytest.raises(UnsafeUrl, match=r"inside\.test resolves to 127\.0\.0\.1"):
            await http.get(f"http://inside.test:{receiver.port}/hook")
        result = await call(http, "GET", f"http://inside.test:{receiver.port}/hook")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.PERMANENT
    assert result.detail == "inside.test resolves to 127.0.0.1, a non-public address"
    assert sockets.connects == []
    assert receiver.requests == []


async def test_a_rebinding_answer_cannot_reach_the_private_server(receiver: Receiver) -> None:
    # First lookup: a public address (passes); a second lookup would say 127.0.0.1.
    resolver = ScriptedResolver([str(PUBLIC)], ["127.0.0.1"])
    sockets = RecordingSockets()
    async with client_with(resolver, sockets) as http:
        with pytest.raises(aiohttp.ClientConnectorError):
            await http.get(f"http://rebind.test:{receiver.port}/hook")
        # the one lookup made was checked, and the connection went to its answer
        assert resolver.lookups == ["rebind.test"]
        assert sockets.connects == [(str(PUBLIC), receiver.port)]
        # the next connection looks up again (nothing is cached), and that answer is
        # checked too
        with pytest.raises(UnsafeUrl, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            await http.get(f"http://rebind.test:{receiver.port}/hook")
    assert resolver.lookups == ["rebind.test", "rebind.test"]
    assert sockets.connects == [(str(PUBLIC), receiver.port)]
    assert receiver.requests == []


@pytest.mark.parametrize(
    "answer", [[str(PUBLIC), "10.0.0.5"], ["10.0.0.5", str(PUBLIC)], [str(PUBLIC), "::1"]]
)
async def test_one_private_address_among_several_refuses_the_name(
    receiver: Receiver, answer: list[str]
) -> None:
    resolver, sockets = ScriptedResolver(answer), RecordingSockets()
    async with client_with(resolver, sockets) as http:
        with pytest.raises(UnsafeUrl, match="non-public"):
            await http.get(f"http://mixed.test:{receiver.port}/hook")
    assert sockets.connects == []  # not even the public address is tried


async def test_the_next_checked_address_is_tried_when_one_does_not_answer(
    receiver: Receiver,
) -> None:
    resolver, sockets = ScriptedResolver([str(PUBLIC), "127.0.0.1"]), RecordingSockets()
    async with client_with(resolver, sockets, [*LOOPBACK, ipaddress.ip_network(PUBLIC)]) as http:
        reply = await call(http, "GET", f"http://two.test:{receiver.port}/hook")
    assert isinstance(reply, Reply)
    assert reply.status_code == 200
    assert sockets.connects == [(str(PUBLIC), receiver.port), ("127.0.0.1", receiver.port)]


async def test_proxies_from_the_environment_are_not_used(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "proxy" is the receiver: if the client used it, the request would get a 200.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{receiver.port}")
    async with guarded_client([], timeout=5.0) as http:
        with pytest.raises(UnsafeUrl):
            await http.get("http://127.0.0.2:9/hook")
    assert receiver.requests == []


async def test_a_proxy_given_for_one_request_is_refused(receiver: Receiver) -> None:
    sockets = RecordingSockets()
    async with client_with(ScriptedResolver([str(PUBLIC)]), sockets) as http:
        with pytest.raises(UnsafeUrl, match="proxies"):
            await http.get("http://hooks.test/hook", proxy=receiver.url)
    assert sockets.connects == []
    assert receiver.requests == []


async def test_unsafe_url_is_a_permanent_result_through_call(receiver: Receiver) -> None:
    async with guarded_client([], timeout=5.0) as http:
        result = await call(http, "POST", f"{receiver.url}/hook", content=b"x")
        other_scheme = await call(http, "GET", "ftp://example.com/file")
        websocket = await call(http, "GET", "ws://example.com/socket")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.PERMANENT
    assert "127.0.0.1 is a non-public address" in result.detail
    assert isinstance(other_scheme, DeliveryResult)
    assert other_scheme.outcome is Outcome.PERMANENT
    assert isinstance(websocket, DeliveryResult)
    assert (websocket.outcome, websocket.detail) == (
        Outcome.PERMANENT,
        "scheme 'ws' is not allowed",
    )
    assert receiver.requests == []


async def test_a_name_that_does_not_resolve_is_transient() -> None:
    class NoAnswer:
        async def __call__(self, host: str, port: int) -> list[IPAddress]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    sockets = RecordingSockets()
    async with guarded_client([], timeout=5.0, resolver=NoAnswer(), socket_factory=sockets) as http:
        result = await call(http, "GET", "http://nowhere.test/hook")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.TRANSIENT
    assert "cannot resolve nowhere.test" in result.detail
    assert sockets.connects == []


# transport failures: transient, and never quoting the (secret) URL

SECRET_PATH = "/api/webhooks/1234/s3cr3t-token"


@pytest.fixture
async def allowed() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_client(LOOPBACK, timeout=0.5) as http:
        yield http


async def test_an_answer_slower_than_the_timeout_is_transient(
    receiver: Receiver, allowed: aiohttp.ClientSession
) -> None:
    receiver.script(SECRET_PATH, Answer(delay=1.0))
    result = await call(allowed, "POST", receiver.url + SECRET_PATH, content=b"x")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("timeout: ")
    assert "s3cr3t" not in result.detail
    assert len(receiver.requests) == 1


async def test_a_dropped_connection_is_transient(
    receiver: Receiver, allowed: aiohttp.ClientSession
) -> None:
    receiver.script(SECRET_PATH, Drop())
    result = await call(allowed, "POST", receiver.url + SECRET_PATH, content=b"x")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("connection error: ")
    assert "s3cr3t" not in result.detail
    assert len(receiver.requests) == 1  # a POST is not sent again on another connection


async def test_a_refused_connection_is_transient(allowed: aiohttp.ClientSession) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = await call(allowed, "POST", f"http://127.0.0.1:{port}{SECRET_PATH}", content=b"x")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("connection error: ")
    assert "s3cr3t" not in result.detail


async def test_a_huge_answer_is_read_only_up_to_the_cap(
    receiver: Receiver, allowed: aiohttp.ClientSession
) -> None:
    receiver.script("/big", Answer(200, b"x" * (BODY_MAX + 500_000)))
    reply = await call(allowed, "POST", f"{receiver.url}/big", content=b"x")
    assert isinstance(reply, Reply)
    assert (reply.status_code, len(reply.body)) == (200, BODY_MAX)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``hooks.test`` only (no IP address in it)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "DNS:hooks.test")


async def test_tls_checks_the_certificate_against_the_name_not_the_address(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with Receiver("plain", ssl_context=server_context) as receiver:
        sockets = RecordingSockets()
        async with client_with(
            ScriptedResolver(["127.0.0.1"]), sockets, LOOPBACK, ssl_context=trusting
        ) as http:
            async with http.get(f"https://hooks.test:{receiver.port}/hook") as response:
                assert response.status == 200
            assert sockets.connects == [("127.0.0.1", receiver.port)]
            # the same server by its address: the certificate does not name it
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"https://127.0.0.1:{receiver.port}/hook")
    assert len(receiver.requests) == 1


def _endpoint(url: str) -> Endpoint:
    return Endpoint(uuid.uuid4(), "u1", "webhook", url, None, new_webhook_secret())


async def test_the_webhook_channel_delivers_signed_through_the_guarded_client(
    receiver: Receiver,
) -> None:
    endpoint = _endpoint(f"{receiver.url}/hook")
    async with guarded_client(LOOPBACK, timeout=5.0) as http:
        result = await WebhookChannel(http).send(channel_notification(), endpoint)
    assert result.outcome is Outcome.DELIVERED
    (request,) = receiver.requests
    assert endpoint.secret is not None
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["data"]["title"] == "Hello"


async def test_the_webhook_channel_refuses_a_private_url_permanently(receiver: Receiver) -> None:
    async with guarded_client([], timeout=5.0) as http:
        endpoint = _endpoint(f"{receiver.url}/hook")
        result = await WebhookChannel(http).send(channel_notification(), endpoint)
    assert result.outcome is Outcome.PERMANENT
    assert "non-public" in result.detail
    assert receiver.requests == []
