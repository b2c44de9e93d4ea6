"""SMTP over a small pool of long-lived aiosmtplib connections.

aiosmtplib has no pool of its own. Connecting, TLS and AUTH cost several round
trips, so up to ``size`` clients are kept open and reused: a semaphore bounds the
clients in use, and idle ones wait in a LIFO queue, so under light load the most
recently used one goes out again and the others age until they are closed.

A client the server dropped while idle is noticed before use (no transport, or a
failing NOOP after ``check_after`` seconds idle) and replaced. If the server drops a
reused connection during a send, the send is tried once more on a new connection:
that is the race with a server's idle timeout, and the Message-ID is the same on
both tries, so in the rare case that the first copy had been accepted, the repeat
is recognisable.

Outcomes: a 4xx reply is transient, a 5xx reply permanent (a refused recipient
too); refused connections, timeouts and disconnects are transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
import structlog
from pydantic import SecretStr

from shared.settings import Settings

from ..channels._base import DeliveryResult

log = structlog.get_logger("herald.dispatcher.smtp")

TlsMode = Literal["none", "starttls", "tls"]

# The id a server gives what it queued, as Postfix ("2.0.0 Ok: queued as 4F2A1C0D3"),
# Exim ("OK id=1rAbCd-000123-4X") and Sendmail ("2.0.0 4AB1C2x3 Message accepted
# for delivery") word it.
_QUEUE_ID = (
    re.compile(r"queued as\s+([\w.\-]+)", re.IGNORECASE),
    re.compile(r"\bid=([\w.\-]+)", re.IGNORECASE),
    re.compile(r"^(?:\d\.\d{1,3}\.\d{1,3}\s+)?([\w.\-]+)\s+Message accepted", re.IGNORECASE),
)


def queue_id(reply: str) -> str | None:
    """The server's queue id in its reply to DATA, or None if it gives none."""
    for pattern in _QUEUE_ID:
        match = pattern.search(reply)
        if match:
            return match.group(1)
    return None


# authentication required, too weak, invalid credentials, encryption required:
# the server's configuration, not the recipient
_AUTH_CODES = frozenset({530, 534, 535, 538})


def smtp_outcome(exc: Exception) -> DeliveryResult:
    """What an aiosmtplib error (or a refused address) means for the delivery."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code in _AUTH_CODES:
        return DeliveryResult.misconfigured(
            f"SMTP {exc.code}: authentication failed: {_short(exc.message)}", exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code > 0:
        detail = f"SMTP {exc.code}: {_short(exc.message)}"
        if 400 <= exc.code < 500:
            return DeliveryResult.transient(detail, status_code=exc.code)
        if exc.code >= 500:
            return DeliveryResult.permanent(detail, status_code=exc.code)
        return DeliveryResult.transient(detail, status_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError):
        return DeliveryResult.transient(f"SMTP timeout: {type(exc).__name__}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return DeliveryResult.transient(f"SMTP connection error: {_short(str(exc))}")
    if isinstance(exc, OSError):
        return DeliveryResult.transient(f"SMTP connection error: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):
        return DeliveryResult.permanent(f"address refused before sending: {_short(str(exc))}")
    # SMTPNotSupported (no SMTPUTF8 for a non-ASCII address, no AUTH offered) and the
    # like: the server and the message or configuration do not fit; trying again
    # with the same ones will not help
    return DeliveryResult.misconfigured(f"SMTP: {_short(str(exc))}")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Errors while talking to a server that say nothing about the message itself
_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    asyncio.TimeoutError,
    OSError,
)


class _Dropped(Exception):
    """A reused connection was found closed by the server during a send."""


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    since: float


class SmtpPool:
    """A ``MailTransport`` that keeps up to ``size`` SMTP connections open.

    ``tls``: ``none`` (plain; no opportunistic STARTTLS either), ``starttls``
    (required) or ``tls`` (implicit TLS, usually port 465). Certificates are
    verified against the system's trust store. ``username`` and ``password``, if
    given, log in on every new connection.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: SecretStr | None = None,
        size: int = 4,
        timeout: float = 30.0,
        idle_timeout: float = 60.0,
        check_after: float = 5.0,
        local_hostname: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an SMTP pool needs at least one connection")
        self.host = host
        self.port = port
        self.tls = tls
        self.size = size
        self._username = username
        self._password = password
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._check_after = check_after
        self._local_hostname = local_hostname
        self._slots = asyncio.Semaphore(size)
        self._idle: asyncio.LifoQueue[_Idle] = asyncio.LifoQueue()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpPool:
        if not settings.smtp_host:
            raise ValueError("HERALD_SMTP_HOST is not set")
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            size=settings.smtp_pool_size,
        )

    def __repr__(self) -> str:
        return f"SmtpPool({self.host}:{self.port}, tls={self.tls}, size={self.size})"

    @property
    def idle(self) -> int:
        """Connections open and waiting for a message."""
        return self._idle.qsize()

    async def send(
        self, message: EmailMessage, *, to: str, owner: str | None = None
    ) -> DeliveryResult:
        if self._closed:
            return DeliveryResult.transient("SMTP pool is closed")
        self._start_reaper()
        async with self._slots:
            try:
                return await self._attempt(message, to, reused_may_drop=True)
            except _Dropped:
                return await self._attempt(message, to, reused_may_drop=False)

    async def _attempt(
        self, message: EmailMessage, to: str, *, reused_may_drop: bool
    ) -> DeliveryResult:
        """One try; raises ``_Dropped`` if a reused connection turned out dead and
        ``reused_may_drop`` allows another try on a new one."""
        try:
            client, reused = await self._take()
        except Exception as exc:  # connecting, STARTTLS or AUTH failed
            return smtp_outcome(exc)
        try:
            _, reply = await client.send_message(message, recipients=[to])
        except aiosmtplib.SMTPServerDisconnected as exc:
            client.close()
            if reused and reused_may_drop:
                log.info("smtp connection dropped, reconnecting", host=self.host)
                raise _Dropped from exc
            return smtp_outcome(exc)
        except _CONNECTION_ERRORS as exc:
            # where the transaction stopped is unknown: this connection is done
            client.close()
            return smtp_outcome(exc)
        except Exception as exc:
            # a refusal (the client has sent RSET) or an unusable address; 421 means
            # the server is closing the connection
            if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421:
                client.close()
            await self._put_back(client)
            return smtp_outcome(exc)
        except BaseException:
            client.close()
            raise
        await self._put_back(client)
        return DeliveryResult.delivered(
            f"SMTP 250: {_short(reply)}", 250, provider_id=queue_id(reply)
        )

    async def forget(self, owner: str) -> int:
        """Nothing is kept: the mail went on to the provider."""
        return 0

    async def close(self) -> None:
        """Close every idle connection now; those in use close when they come back."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        while not self._idle.empty():
            await self._quit(self._idle.get_nowait().client)

    async def _take(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An open client, and whether it was reused; the caller holds a slot."""
        loop = asyncio.get_running_loop()
        while not self._idle.empty():
            idle = self._idle.get_nowait()
            idled = loop.time() - idle.since
            if not idle.client.is_connected or idled > self._idle_timeout:
                await self._quit(idle.client)
                continue
            if idled > self._check_after:
                try:
                    await idle.client.noop(timeout=min(self._timeout, 5.0))
                except (aiosmtplib.SMTPException, OSError):
                    idle.client.close()
                    continue
            return idle.client, True
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self._timeout,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            local_hostname=self._local_hostname,
        )
        password = self._password.get_secret_value() if self._password else None
        await client.connect(username=self._username, password=password)
        log.debug("smtp connection opened", host=self.host, port=self.port, tls=self.tls)
        return client

    async def _put_back(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            await self._quit(client)
            return
        self._idle.put_nowait(_Idle(client, asyncio.get_running_loop().time()))

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            client.close()
            return
        try:
            await client.quit(timeout=min(self._timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap(), name="smtp-pool-reaper"
            )

    async def _reap(self) -> None:
        """Close connections idle for longer than ``idle_timeout``, even with no
        traffic to notice them."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._idle_timeout / 2)
            keep: list[_Idle] = []
            expired: list[_Idle] = []
            while not self._idle.empty():
                idle = self._idle.get_nowait()
                fresh = loop.time() - idle.since <= self._idle_timeout
                (keep if fresh and idle.client.is_connected else expired).append(idle)
            for idle in reversed(keep):  # LIFO: put back oldest first
                self._idle.put_nowait(idle)
            for idle in expired:
                await self._quit(idle.client)
