"""E-mail: building the message and the transports that carry it.

``build_transport`` picks one from the settings: SMTP when ``HERALD_SMTP_HOST`` is
set, else SendGrid when ``HERALD_SENDGRID_API_KEY`` is, else ``.eml`` files in the
outbox directory, so a fresh checkout works without a mail server.
"""

from __future__ import annotations

import aiohttp

from shared.settings import Settings

from ._message import POLICY, build_message, mail_domain, message_id_for
from ._outbox import OutboxTransport, outbox_name, owner_prefix
from ._sendgrid import SendGridTransport, sendgrid_payload
from ._smtp import SmtpPool, queue_id, smtp_outcome
from ._transport import MailTransport

__all__ = [
    "POLICY",
    "MailTransport",
    "OutboxTransport",
    "SendGridTransport",
    "SmtpPool",
    "build_message",
    "build_transport",
    "mail_domain",
    "message_id_for",
    "outbox_name",
    "owner_prefix",
    "queue_id",
    "sendgrid_payload",
    "smtp_outcome",
]


def build_transport(settings: Settings, http: aiohttp.ClientSession) -> MailTransport:
    """The transport the settings ask for; ``http`` is used by SendGrid only."""
    if settings.smtp_host:
        return SmtpPool.from_settings(settings)
    if settings.sendgrid_api_key:
        return SendGridTransport(http, settings.sendgrid_api_key, settings.sendgrid_api_url)
    return OutboxTransport(settings.outbox_dir)
