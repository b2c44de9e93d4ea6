"""E-mail against real receivers: an aiosmtpd server on a free port, a local HTTP
server that answers like SendGrid (``tests.receivers``), and the outbox directory.

What arrives is parsed with the standard library's ``email`` package, as a mail
client would.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
import pytest
import structlog.testing
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from services.dispatcher.channels import Notification, Outcome, delivery_id
from services.dispatcher.channels.email import EmailChannel
from services.dispatcher.mail import (
    OutboxTransport,
    SendGridTransport,
    SmtpPool,
    build_message,
    build_transport,
    message_id_for,
    outbox_name,
    owner_prefix,
)
from services.dispatcher.safe_http import trusted_client
from shared.endpoints import Endpoint
from shared.settings import Settings
from tests.receivers import Receiver, Reply
from tests.support import eventually, free_port, meeting_invite, self_signed_certificate

MAIL_FROM = "Herald <herald@jobs.example.com>"
RECIPIENT = "ada@example.org"
UNSUBSCRIBE = "https://herald.example.com/v1/unsubscribe?token=" + "x7-Yz_" * 30
PASSWORD = "s3cret-Pa55"


# -- the SMTP server ----------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    peer: Any


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it was sent and answers as told.

    ``answer(reply, at=...)`` makes the next RCPT or DATA get ``reply`` instead of
    250; ``drop_next`` closes the connection at the next MAIL command, like a server
    that timed the connection out just as it was reused; ``noops`` are the answers
    to the next NOOP commands.
    """

    received: list[Received] = field(default_factory=list)
    mail_peers: list[Any] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=lambda: {"rcpt": [], "data": []})
    drop_next: int = 0
    noops: list[str] = field(default_factory=list)
    queued: int = 0

    def answer(self, reply: str, *, at: str = "data") -> None:
        self.replies[at].append(reply)

    @property
    def connections_used(self) -> int:
        """Distinct client connections that carried at least one MAIL command."""
        return len(set(self.mail_peers))

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str
    ) -> str:
        if self.noops:
            return self.noops.pop(0)
        return "250 OK"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.drop_next:
            self.drop_next -= 1
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing"
        self.mail_peers.append(session.peer)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.replies["rcpt"]:
            return self.replies["rcpt"].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.replies["data"]:
            return self.replies["data"].pop(0)
        assert isinstance(envelope.original_content, bytes)
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert envelope.mail_from is not None
        self.received.append(Received(envelope.mail_from, envelope.rcpt_tos, parsed, session.peer))
        self.queued += 1
        return f"250 2.0.0 Ok: queued as Q{self.queued:04d}"


class CountingController(Controller):
    """Counts the connections the server accepted (after its own start-up probe)."""

    connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return server

    def start(self) -> None:
        super().start()
        self.connections = 0


@dataclass
class SmtpServer:
    port: int
    handler: Recorder
    options: dict[str, Any]
    controller: CountingController | None = None

    def start(self) -> None:
        self.controller = CountingController(
            self.handler, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def restart(self) -> None:
        """Stop (closing every client connection) and start again on the same port."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)

    @property
    def connections(self) -> int:
        assert self.controller is not None
        return self.controller.connections


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), Recorder(), {})
    server.start()
    yield server
    server.stop()


PoolTo = Callable[..., SmtpPool]


@pytest.fixture
async def pool_to(smtp_server: SmtpServer) -> AsyncIterator[PoolTo]:
    """Makes pools to ``smtp_server`` (``pool_to(size=1, check_after=0.0)``; the
    timeout is 5 s unless given) and closes each when the test ends."""
    pools: list[SmtpPool] = []

    def make(**options: Any) -> SmtpPool:
        pools.append(SmtpPool("127.0.0.1", smtp_server.port, **({"timeout": 5.0} | options)))
        return pools[-1]

    yield make
    for made in pools:
        await made.close()


@pytest.fixture
def pool(pool_to: PoolTo) -> SmtpPool:
    return pool_to(size=3)


def make_notification(**fields: Any) -> Notification:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "u1",
        "type": "match.found",
        "title": "Neue Stelle: Python-Entwickler·in in Zürich",
        "body": "Senior Python engineer at Acme\n\nView: https://jobs.example.com/1",
        "priority": "normal",
        "created_at": datetime.now(UTC),
        "html": "<p>Senior Python engineer at <b>Acme</b></p>",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    return Notification(**(values | fields))


def email_endpoint(address: str | None = RECIPIENT) -> Endpoint:
    return Endpoint(uuid.uuid4(), "u1", "email", None, None, None, address=address)


def message(n: int = 0, to: str = RECIPIENT) -> EmailMessage:
    return build_message(
        make_notification(title=f"Message {n}"),
        to=to,
        mail_from=MAIL_FROM,
        message_id=f"<m{n}-{uuid.uuid4().hex}@jobs.example.com>",
    )


# -- SMTP: content --------------------------------------------------------------------


async def test_multipart_alternative_arrives_with_unsubscribe_headers(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    channel = EmailChannel(pool, MAIL_FROM)
    notification = make_notification()
    endpoint = email_endpoint()

    result = await channel.send(notification, endpoint)

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert result.provider_id == "Q0001"
    (got,) = smtp_server.handler.received
    assert got.mail_from == "herald@jobs.example.com"
    assert got.rcpt_tos == [RECIPIENT]
    mail = got.message
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert str(mail["Subject"]) == "Neue Stelle: Python-Entwickler·in in Zürich"
    assert mail["Message-ID"] == message_id_for(
        delivery_id(notification.id, endpoint.id), MAIL_FROM
    )
    assert mail["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Herald-Notification-Id"] == str(notification.id)


async def test_the_same_delivery_sent_twice_has_the_same_message_id(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    channel = EmailChannel(pool, MAIL_FROM)
    notification, endpoint = make_notification(), email_endpoint()

    first = await channel.send(notification, endpoint)
    again = await channel.send(notification, endpoint)
    other = await channel.send(notification, email_endpoint("bob@example.org"))

    assert first.outcome is again.outcome is other.outcome is Outcome.DELIVERED
    ids = [r.message["Message-ID"] for r in smtp_server.handler.received]
    assert ids[0] == ids[1] != ids[2]


async def test_a_meeting_invite_arrives_as_a_calendar_attachment(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    invite = meeting_invite(uid="interview-7@herald", attendee_email=RECIPIENT)
    channel = EmailChannel(pool, MAIL_FROM)

    result = await channel.send(make_notification(attachments=(invite,)), email_endpoint())

    assert result.outcome is Outcome.DELIVERED, result.detail
    mail = smtp_server.handler.received[0].message
    assert mail.get_content_type() == "multipart/mixed"
    (attachment,) = mail.iter_attachments()
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar.events[0].uid == "interview-7@herald"


async def test_an_endpoint_without_an_address_fails_permanently(pool: SmtpPool) -> None:
    result = await EmailChannel(pool, MAIL_FROM).send(make_notification(), email_endpoint(None))
    assert result.outcome is Outcome.PERMANENT
    assert "no address" in result.detail


def test_a_sender_without_a_domain_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="domain"):
        EmailChannel(OutboxTransport(tmp_path), "Herald")


# -- SMTP: outcomes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "reply", "outcome", "code"),
    [
        ("data", "451 4.3.0 Temporary local problem, try again", Outcome.TRANSIENT, 451),
        ("rcpt", "450 4.2.1 Mailbox busy", Outcome.TRANSIENT, 450),
        ("data", "554 5.7.1 Message rejected as spam", Outcome.PERMANENT, 554),
        ("rcpt", "550 5.1.1 <ada@example.org>: user unknown", Outcome.PERMANENT, 550),
    ],
)
async def test_smtp_replies_decide_the_outcome(
    smtp_server: SmtpServer, pool: SmtpPool, at: str, reply: str, outcome: Outcome, code: int
) -> None:
    smtp_server.handler.answer(reply, at=at)

    result = await pool.send(message(), to=RECIPIENT)

    assert result.outcome is outcome
    assert result.status_code == code
    assert str(code) in result.detail
    assert smtp_server.handler.received == []
    # the refusal left the connection usable: the next message goes over it
    assert (await pool.send(message(1), to=RECIPIENT)).outcome is Outcome.DELIVERED
    assert smtp_server.connections == 1


async def test_nobody_listening_is_transient() -> None:
    pool = SmtpPool("127.0.0.1", free_port(), timeout=2.0)
    try:
        result = await pool.send(message(), to=RECIPIENT)
    finally:
        await pool.close()
    assert result.outcome is Outcome.TRANSIENT
    assert "connection" in result.detail.lower()


async def test_a_server_that_never_answers_is_a_transient_timeout() -> None:
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = SmtpPool("127.0.0.1", port, timeout=0.5)
    try:
        result = await pool.send(message(), to=RECIPIENT)
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
    assert connected.is_set()
    assert result.outcome is Outcome.TRANSIENT
    assert "timeout" in result.detail.lower()


@pytest.mark.parametrize(
    "address",
    ["ada@example.org> NOTIFY=NEVER", "Ada <ada@example.org>", "ada@example.org\r\nRCPT TO:<x@y>"],
)
async def test_an_address_that_is_not_a_plain_mailbox_is_permanent(
    smtp_server: SmtpServer, pool: SmtpPool, address: str
) -> None:
    result = await EmailChannel(pool, MAIL_FROM).send(make_notification(), email_endpoint(address))
    assert result.outcome is Outcome.PERMANENT
    assert smtp_server.handler.received == []


# -- SMTP: the pool --------------------------------------------------------------------


async def test_ten_messages_in_a_row_share_one_connection(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    results = [await pool.send(message(n), to=RECIPIENT) for n in range(10)]

    assert all(r.outcome is Outcome.DELIVERED for r in results)
    assert len(smtp_server.handler.received) == 10
    assert smtp_server.handler.connections_used == 1
    assert smtp_server.connections == 1
    assert pool.idle == 1


async def test_ten_messages_at_once_use_at_most_pool_size_connections(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    results = await asyncio.gather(*(pool.send(message(n), to=RECIPIENT) for n in range(10)))

    assert all(r.outcome is Outcome.DELIVERED for r in results), results
    assert sorted(str(r.message["Subject"]) for r in smtp_server.handler.received) == sorted(
        f"Message {n}" for n in range(10)
    )
    assert smtp_server.connections <= pool.size == 3
    assert smtp_server.handler.connections_used == smtp_server.connections
    # queue ids are the server's, one per message
    assert len({r.provider_id for r in results}) == 10


async def test_a_restarted_server_is_reconnected_to_transparently(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    assert (await pool.send(message(1), to=RECIPIENT)).outcome is Outcome.DELIVERED
    await smtp_server.restart()

    result = await pool.send(message(2), to=RECIPIENT)

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert [str(r.message["Subject"]) for r in smtp_server.handler.received] == [
        "Message 1",
        "Message 2",
    ]
    assert smtp_server.connections == 1  # on the new server


async def test_a_connection_dropped_when_reused_is_replaced_within_the_send(
    smtp_server: SmtpServer, pool_to: PoolTo
) -> None:
    # check_after high: no NOOP first, so the drop shows up in the middle of the send
    pool = pool_to(size=1, check_after=3600)
    assert (await pool.send(message(1), to=RECIPIENT)).outcome is Outcome.DELIVERED
    smtp_server.handler.drop_next = 1

    result = await pool.send(message(2), to=RECIPIENT)

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert len(smtp_server.handler.received) == 2
    assert smtp_server.connections == 2


async def test_a_fresh_connection_dropped_is_transient_not_retried_forever(
    smtp_server: SmtpServer, pool_to: PoolTo
) -> None:
    pool = pool_to(size=1, check_after=3600)
    assert (await pool.send(message(1), to=RECIPIENT)).outcome is Outcome.DELIVERED
    smtp_server.handler.drop_next = 2  # the reused connection, then the new one

    result = await pool.send(message(2), to=RECIPIENT)

    assert result.outcome is Outcome.TRANSIENT
    assert smtp_server.connections == 2
    assert (await pool.send(message(3), to=RECIPIENT)).outcome is Outcome.DELIVERED


async def test_an_idle_connection_failing_noop_is_replaced(
    smtp_server: SmtpServer, pool_to: PoolTo
) -> None:
    pool = pool_to(size=1, check_after=0.0)
    for n in range(3):
        assert (await pool.send(message(n), to=RECIPIENT)).outcome is Outcome.DELIVERED
    assert smtp_server.connections == 1
    smtp_server.handler.noops.append("421 4.4.2 Idle too long, closing")

    result = await pool.send(message(3), to=RECIPIENT)

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert smtp_server.connections == 2
    assert smtp_server.handler.noops == []


async def test_a_recently_used_connection_is_reused_without_noop(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    smtp_server.handler.noops.append("421 4.4.2 closing")  # would cost a connection
    for n in range(3):
        assert (await pool.send(message(n), to=RECIPIENT)).outcome is Outcome.DELIVERED
    assert smtp_server.handler.noops == ["421 4.4.2 closing"]
    assert smtp_server.connections == 1


async def test_connections_idle_too_long_are_closed(
    smtp_server: SmtpServer, pool_to: PoolTo
) -> None:
    pool = pool_to(size=2, idle_timeout=0.3)
    assert (await pool.send(message(1), to=RECIPIENT)).outcome is Outcome.DELIVERED
    assert pool.idle == 1
    await eventually(lambda: pool.idle == 0, timeout=3, what="idle connection closed")
    assert (await pool.send(message(2), to=RECIPIENT)).outcome is Outcome.DELIVERED
    assert smtp_server.handler.connections_used == 2


async def test_close_closes_every_connection_and_refuses_more(
    smtp_server: SmtpServer, pool: SmtpPool
) -> None:
    await asyncio.gather(*(pool.send(message(n), to=RECIPIENT) for n in range(5)))
    assert pool.idle == smtp_server.connections

    await pool.close()

    assert pool.idle == 0
    result = await pool.send(message(9), to=RECIPIENT)
    assert result.outcome is Outcome.TRANSIENT
    assert "closed" in result.detail


# -- SMTP: AUTH and TLS ---------------------------------------------------------------


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"herald"
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False: the server answers 535 itself
    return AuthResult(success=ok, handled=False)


# aiosmtpd warns about AUTH without TLS, which is what these tests want to exercise
plain_auth = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    server = SmtpServer(
        free_port(),
        Recorder(),
        {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False},
    )
    server.start()
    yield server
    server.stop()


@plain_auth
async def test_auth_with_the_right_password_delivers(auth_server: SmtpServer) -> None:
    pool = SmtpPool("127.0.0.1", auth_server.port, username="herald", password=SecretStr(PASSWORD))
    try:
        with structlog.testing.capture_logs() as logs:
            for n in range(2):
                assert (await pool.send(message(n), to=RECIPIENT)).outcome is Outcome.DELIVERED
    finally:
        await pool.close()
    assert len(auth_server.handler.received) == 2
    assert auth_server.connections == 1  # logged in once, then reused
    assert logs  # the new connection was logged, without the password
    assert PASSWORD not in repr(logs)
    assert PASSWORD not in repr(pool)


@plain_auth
async def test_auth_with_a_wrong_password_is_permanent(auth_server: SmtpServer) -> None:
    pool = SmtpPool(
        "127.0.0.1", auth_server.port, username="herald", password=SecretStr("wrong-password")
    )
    try:
        result = await pool.send(message(), to=RECIPIENT)
    finally:
        await pool.close()
    assert result.outcome is Outcome.PERMANENT
    assert result.status_code == 535
    assert "wrong-password" not in result.detail
    assert auth_server.handler.received == []


@plain_auth
async def test_without_credentials_a_server_requiring_auth_refuses(
    auth_server: SmtpServer,
) -> None:
    pool = SmtpPool("127.0.0.1", auth_server.port)
    try:
        result = await pool.send(message(), to=RECIPIENT)
    finally:
        await pool.close()
    assert result.outcome is Outcome.PERMANENT
    assert result.status_code == 530


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "IP:127.0.0.1")


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_modes_encrypt_and_verify_the_certificate(
    mode: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    context = server_context(certificate)
    options: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        else {"ssl_context": context}
    )
    server = SmtpServer(free_port(), Recorder(), options)
    await asyncio.to_thread(server.start)
    try:
        # not trusted: the certificate is checked, so the connection is refused
        untrusted = SmtpPool("127.0.0.1", server.port, tls=mode, timeout=5.0)  # type: ignore[arg-type]
        refused = await untrusted.send(message(0), to=RECIPIENT)
        await untrusted.close()
        assert refused.outcome is Outcome.TRANSIENT
        assert server.handler.received == []

        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        pool = SmtpPool("127.0.0.1", server.port, tls=mode, timeout=5.0)  # type: ignore[arg-type]
        try:
            result = await pool.send(message(1), to=RECIPIENT)
        finally:
            await pool.close()
        assert result.outcome is Outcome.DELIVERED, result.detail
        assert len(server.handler.received) == 1
    finally:
        await asyncio.to_thread(server.stop)


async def test_tls_none_does_not_upgrade_even_when_offered(certificate: tuple[Path, Path]) -> None:
    # the server offers STARTTLS with a certificate nobody trusts: "none" must not try
    server = SmtpServer(free_port(), Recorder(), {"tls_context": server_context(certificate)})
    await asyncio.to_thread(server.start)
    pool = SmtpPool("127.0.0.1", server.port, tls="none", timeout=5.0)
    try:
        result = await pool.send(message(), to=RECIPIENT)
    finally:
        await pool.close()
        await asyncio.to_thread(server.stop)
    assert result.outcome is Outcome.DELIVERED, result.detail


# -- choosing a transport ---------------------------------------------------------------


async def test_settings_choose_smtp_then_sendgrid_then_the_outbox(tmp_path: Path) -> None:
    async with trusted_client(timeout=5) as http:
        smtp = build_transport(
            Settings(smtp_host="mail.example.com", smtp_pool_size=7, data_dir=tmp_path), http
        )
        assert isinstance(smtp, SmtpPool)
        assert (smtp.host, smtp.port, smtp.size) == ("mail.example.com", 25, 7)
        sendgrid = build_transport(
            Settings(sendgrid_api_key=SecretStr("SG.key"), data_dir=tmp_path), http
        )
        assert isinstance(sendgrid, SendGridTransport)
        outbox = build_transport(Settings(data_dir=tmp_path), http)
        assert isinstance(outbox, OutboxTransport)
        assert outbox.directory == tmp_path / "outbox"


# -- the outbox -----------------------------------------------------------------------


async def test_outbox_writes_one_eml_per_delivery_and_a_resend_overwrites_it(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox"
    channel = EmailChannel(OutboxTransport(outbox), MAIL_FROM)
    notification, endpoint = make_notification(), email_endpoint()
    expected_id = message_id_for(delivery_id(notification.id, endpoint.id), MAIL_FROM)

    first = await channel.send(notification, endpoint)
    changed = Notification(**(notification.__dict__ | {"body": "Second attempt"}))
    again = await channel.send(changed, endpoint)
    other = await channel.send(notification, email_endpoint("bob@example.org"))

    assert first.outcome is again.outcome is other.outcome is Outcome.DELIVERED
    name = outbox_name(expected_id, notification.user_id)
    assert first.provider_id == again.provider_id == name
    assert other.provider_id != first.provider_id
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        [name, str(other.provider_id)]
    )  # no temporary files left behind either
    parsed = email.message_from_bytes((outbox / name).read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == expected_id
    assert parsed["To"] == RECIPIENT
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert "Second attempt" in plain.get_content()
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"


async def test_the_outbox_forgets_every_file_of_one_user_and_only_theirs(
    tmp_path: Path,
) -> None:
    """Erasure finds a user's mail by its name, in a directory that several
    dispatchers may share: no index to keep, none to lose."""
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    channel = EmailChannel(transport, MAIL_FROM)
    for _ in range(3):
        await channel.send(make_notification(user_id="erased-ada"), email_endpoint())
        await channel.send(make_notification(user_id="bob"), email_endpoint("bob@example.org"))
    (outbox / f".{owner_prefix('erased-ada')}x.eml.123.tmp").write_text("half")
    assert len(list(outbox.iterdir())) == 7

    assert await transport.forget("erased-ada") == 4
    left = list(outbox.iterdir())
    assert len(left) == 3
    assert all(RECIPIENT not in p.read_text() and "bob@" in p.read_text() for p in left)
    assert await transport.forget("erased-ada") == 0


async def test_an_outbox_that_cannot_be_written_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = await OutboxTransport(blocker / "outbox").send(message(), to=RECIPIENT)
    assert result.outcome is Outcome.TRANSIENT
    assert "outbox" in result.detail


# -- SendGrid -------------------------------------------------------------------------

API_KEY = "SG.test-key.0123456789"


@pytest.fixture
async def sendgrid() -> AsyncIterator[Receiver]:
    async with Receiver("sendgrid") as receiver:
        yield receiver


def sent(sendgrid: Receiver, key: str = API_KEY) -> list[Any]:
    """The payloads SendGrid was sent, each request checked as SendGrid checks it."""
    for request in sendgrid.requests:
        assert (request.method, request.path) == ("POST", "/v3/mail/send")
        assert request.headers["authorization"] == f"Bearer {key}"
    return [request.json() for request in sendgrid.requests]


async def test_sendgrid_accepts_with_202_and_reports_its_message_id(
    sendgrid: Receiver,
) -> None:
    async with trusted_client(timeout=5) as http:
        channel = EmailChannel(SendGridTransport(http, SecretStr(API_KEY), sendgrid.url), MAIL_FROM)
        notification, endpoint = make_notification(), email_endpoint()

        result = await channel.send(notification, endpoint)

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert result.provider_id == "sg00000001"
    (payload,) = sent(sendgrid)
    assert payload["personalizations"] == [{"to": [{"email": RECIPIENT}]}]
    assert payload["from"] == {"email": "herald@jobs.example.com", "name": "Herald"}
    assert payload["subject"] == notification.title
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    headers = payload["headers"]
    assert headers["X-Herald-Message-Id"] == message_id_for(
        delivery_id(notification.id, endpoint.id), MAIL_FROM
    )
    assert headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_sendgrid_429_is_transient_with_retry_after(sendgrid: Receiver) -> None:
    sendgrid.script(
        "/v3/mail/send",
        Reply(429, b'{"errors":[{"message":"too many"}]}', {"Retry-After": "7"}),
    )
    async with trusted_client(timeout=5) as http:
        transport = SendGridTransport(http, SecretStr(API_KEY), sendgrid.url)
        result = await transport.send(message(), to=RECIPIENT)
        retried = await transport.send(message(), to=RECIPIENT)

    assert result.outcome is Outcome.TRANSIENT
    assert result.status_code == 429
    assert result.retry_after == 7.0
    assert "too many" in result.detail
    assert retried.outcome is Outcome.DELIVERED
    assert len(sent(sendgrid)) == 2


async def test_sendgrid_bad_request_is_permanent_with_its_reason(sendgrid: Receiver) -> None:
    body = {"errors": [{"message": "Invalid from email address", "field": "from"}]}
    sendgrid.script("/v3/mail/send", Reply(400, body))
    async with trusted_client(timeout=5) as http:
        result = await SendGridTransport(http, SecretStr(API_KEY), sendgrid.url).send(
            message(), to=RECIPIENT
        )
    assert result.outcome is Outcome.PERMANENT
    assert result.status_code == 400
    assert "Invalid from email address" in result.detail
    assert len(sent(sendgrid)) == 1


async def test_sendgrid_wrong_key_fails_without_revealing_it(sendgrid: Receiver) -> None:
    wrong = "SG.wrong-key.secret"
    refused = {"errors": [{"message": "The provided authorization grant is invalid"}]}
    sendgrid.script("/v3/mail/send", Reply(401, refused))
    async with trusted_client(timeout=5) as http:
        transport = SendGridTransport(http, SecretStr(wrong), sendgrid.url)
        result = await transport.send(message(), to=RECIPIENT)
    assert result.outcome is Outcome.PERMANENT
    assert result.status_code == 401
    assert wrong not in result.detail
    assert wrong not in repr(transport)
    assert len(sent(sendgrid, key=wrong)) == 1  # the key it was given, refused


async def test_sendgrid_unreachable_is_transient() -> None:
    async with trusted_client(timeout=2) as http:
        transport = SendGridTransport(http, SecretStr(API_KEY), f"http://127.0.0.1:{free_port()}")
        result = await transport.send(message(), to=RECIPIENT)
    assert result.outcome is Outcome.TRANSIENT
