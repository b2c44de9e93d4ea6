"""E-mail: one message per delivery, handed to the configured mail transport.

The Message-ID comes from the delivery id, so every retry of a delivery carries the
same one. The recipient is the endpoint's ``address``.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import ClassVar

from shared.endpoints import Endpoint

from ..mail import MailTransport, build_message, mail_domain, message_id_for
from ._base import DeliveryResult, Notification, sent_as


def is_bare_address(address: str) -> bool:
    """``local@domain`` and nothing else: no display name, brackets or line breaks,
    which SMTP clients would otherwise quietly cut down to some other address."""
    _, parsed = parseaddr(address)
    local, at, domain = parsed.rpartition("@")
    return (
        parsed == address
        and bool(local and at and domain)
        and not any(c.isspace() for c in address)
    )


class EmailChannel:
    name: ClassVar[str] = "email"

    def __init__(self, transport: MailTransport, mail_from: str) -> None:
        mail_domain(mail_from)  # a sender without a domain is a configuration error
        self._transport = transport
        self._mail_from = mail_from

    def __repr__(self) -> str:
        return f"EmailChannel({self._transport!r})"

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.address:
            return DeliveryResult.permanent("e-mail endpoint has no address")
        if not is_bare_address(endpoint.address):
            return DeliveryResult.permanent(f"not a plain e-mail address: {endpoint.address!r}")
        message_id = message_id_for(sent_as(notification, endpoint), self._mail_from)
        try:
            message = build_message(
                notification, to=endpoint.address, mail_from=self._mail_from, message_id=message_id
            )
        except ValueError as exc:
            return DeliveryResult.permanent(f"cannot build the message: {exc}")
        return await self._transport.send(message, to=endpoint.address, owner=notification.user_id)
