"""The one interface every way of sending mail implements."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

from ..channels._base import DeliveryResult


class MailTransport(Protocol):
    """Hands a built message to whatever carries it (SMTP, SendGrid, the outbox).

    ``send`` never raises for delivery problems: it reports them as a transient or
    permanent ``DeliveryResult``. ``close`` releases what the transport holds open.
    """

    async def send(self, message: EmailMessage, *, to: str) -> DeliveryResult: ...

    async def close(self) -> None: ...
