"""The one interface every way of sending mail implements."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

from ..channels._base import DeliveryResult


class MailTransport(Protocol):
    """Hands a built message to whatever carries it (SMTP, SendGrid, the outbox).

    ``send`` never raises for delivery problems: it reports them as a transient or
    permanent ``DeliveryResult``. ``owner`` is the user the mail is for: a transport
    that keeps mail (the outbox) files it under them, and ``forget`` removes what it
    keeps for one of them when they are erased (the others keep nothing). ``close``
    releases what the transport holds open.
    """

    async def send(
        self, message: EmailMessage, *, to: str, owner: str | None = None
    ) -> DeliveryResult: ...

    async def forget(self, owner: str) -> int: ...

    async def close(self) -> None: ...
