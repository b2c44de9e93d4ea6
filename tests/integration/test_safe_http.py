"""SSRF at connect time: the guarded client connects only to the addresses it checked."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpcore
import httpx
import pytest
from standardwebhooks import Webhook

from services.dispatcher.channels import DeliveryResult, Outcome
from services.dispatcher.channels._http import call
from services.dispatcher.channels.webhook import WebhookChannel
from services.dispatcher.safe_http import GuardedTransport, guarded_client
from services.dispatcher.url_guard import IPAddress, UnsafeUrl
from shared.endpoints import Endpoint, new_webhook_secret
from tests.receivers import Receiver
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


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Real connections to loopback; anything else is recorded and unreachable, so the
    tests never leave the machine."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"{host} is unreachable from the tests")
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def client_with(
    resolver: ScriptedResolver,
    backend: RecordingBackend,
    allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    transport = GuardedTransport(allow, resolver=resolver, backend=backend, ssl_context=ssl_context)
    return httpx.AsyncClient(transport=transport, timeout=5.0, trust_env=False)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "2130706433"],  # the last: 127.0.0.1 as an integer
)
async def test_loopback_is_refused_without_an_allow_list(receiver: Receiver, host: str) -> None:
    async with guarded_client([], timeout=5.0) as http:
        with pytest.raises(UnsafeUrl, match="non-public"):
            await http.post(f"http://{host}:{receiver.port}/hook", content=b"x")
    assert receiver.requests == []


async def test_loopback_is_reached_when_the_operator_allows_it(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK, timeout=5.0) as http:
        response = await http.post(f"{receiver.url}/hook", content=b"ping")
    assert response.status_code == 200
    assert [(r.method, r.path, r.body) for r in receiver.requests] == [("POST", "/hook", b"ping")]


async def test_the_connection_goes_to_the_checked_address_under_the_original_name(
    receiver: Receiver,
) -> None:
    resolver, backend = ScriptedResolver(["127.0.0.1"]), RecordingBackend()
    async with client_with(resolver, backend, LOOPBACK) as http:
        response = await http.get(f"http://hooks.test:{receiver.port}/hook")
    assert response.status_code == 200
    assert resolver.lookups == ["hooks.test"]
    assert backend.connects == [("127.0.0.1", receiver.port)]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


async def test_a_rebinding_answer_cannot_reach_the_private_server(receiver: Receiver) -> None:
    # First lookup: a public address (passes); a second lookup would say 127.0.0.1.
    resolver = ScriptedResolver([str(PUBLIC)], ["127.0.0.1"])
    backend = RecordingBackend()
    async with client_with(resolver, backend) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://rebind.test:{receiver.port}/hook")
        # the one lookup made was checked, and the connection went to its answer
        assert resolver.lookups == ["rebind.test"]
        assert backend.connects == [(str(PUBLIC), receiver.port)]
        # the next connection looks up again, and that answer is checked too
        with pytest.raises(UnsafeUrl, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            await http.get(f"http://rebind.test:{receiver.port}/hook")
    assert backend.connects == [(str(PUBLIC), receiver.port)]
    assert receiver.requests == []


@pytest.mark.parametrize(
    "answer", [[str(PUBLIC), "10.0.0.5"], ["10.0.0.5", str(PUBLIC)], [str(PUBLIC), "::1"]]
)
async def test_one_private_address_among_several_refuses_the_name(
    receiver: Receiver, answer: list[str]
) -> None:
    resolver, backend = ScriptedResolver(answer), RecordingBackend()
    async with client_with(resolver, backend) as http:
        with pytest.raises(UnsafeUrl, match="non-public"):
            await http.get(f"http://mixed.test:{receiver.port}/hook")
    assert backend.connects == []  # not even the public address is tried


async def test_the_next_checked_address_is_tried_when_one_does_not_answer(
    receiver: Receiver,
) -> None:
    resolver, backend = ScriptedResolver([str(PUBLIC), "127.0.0.1"]), RecordingBackend()
    async with client_with(resolver, backend, [*LOOPBACK, ipaddress.ip_network(PUBLIC)]) as http:
        response = await http.get(f"http://two.test:{receiver.port}/hook")
    assert response.status_code == 200
    assert backend.connects == [(str(PUBLIC), receiver.port), ("127.0.0.1", receiver.port)]


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


async def test_unsafe_url_is_a_permanent_result_through_call(receiver: Receiver) -> None:
    async with guarded_client([], timeout=5.0) as http:
        result = await call(http, "POST", f"{receiver.url}/hook", content=b"x")
        other_scheme = await call(http, "GET", "ftp://example.com/file")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.PERMANENT
    assert "127.0.0.1 is a non-public address" in result.detail
    assert isinstance(other_scheme, DeliveryResult)
    assert other_scheme.outcome is Outcome.PERMANENT
    assert receiver.requests == []


async def test_a_name_that_does_not_resolve_is_transient() -> None:
    class NoAnswer:
        async def __call__(self, host: str, port: int) -> list[IPAddress]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = GuardedTransport([], resolver=NoAnswer(), backend=RecordingBackend())
    async with httpx.AsyncClient(transport=transport) as http:
        result = await call(http, "GET", "http://nowhere.test/hook")
    assert isinstance(result, DeliveryResult)
    assert result.outcome is Outcome.TRANSIENT
    assert "cannot resolve nowhere.test" in result.detail


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
        backend = RecordingBackend()
        async with client_with(
            ScriptedResolver(["127.0.0.1"]), backend, LOOPBACK, ssl_context=trusting
        ) as http:
            response = await http.get(f"https://hooks.test:{receiver.port}/hook")
            assert response.status_code == 200
            assert backend.connects == [("127.0.0.1", receiver.port)]
            # the same server by its address: the certificate does not name it
            with pytest.raises(httpx.ConnectError, match="certificate"):
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
