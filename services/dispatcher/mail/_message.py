"""A notification as an e-mail: pure, no I/O.

The shape is::

    multipart/mixed                 (only when there are attachments)
    ├── multipart/alternative
    │   ├── text/plain              notification.body
    │   └── text/html               notification.html, when there is one
    └── text/calendar; method=...   invite.ics, and any other attachment

The Message-ID is derived from the delivery id, so a retry of the same delivery
carries the same id and receivers (and our outbox) can recognise the repeat.
"""

from __future__ import annotations

import email.policy
import uuid
from datetime import UTC, datetime
from email.headerregistry import (
    BaseHeader,
    ContentTypeHeader,
    HeaderRegistry,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import Policy
from email.utils import parseaddr

from ..channels._base import Notification

# RFC 5322 limit on a line, CRLF excluded
_MAX_LINE = 998


class _UnfoldedHeader(UnstructuredHeader, BaseHeader):
    """A header written on one line, exactly as given.

    The standard folder turns a word longer than a line (a signed unsubscribe URL)
    into RFC 2047 encoded-words, which mail clients cannot read in a structured
    header such as ``List-Unsubscribe``. The value is ASCII and one line long at
    most, which :func:`build_message` checks.
    """

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UnfoldedHeader)

# SMTP's CRLF line ends and 78-column folding, but with headers that must not fold
POLICY = email.policy.SMTP.clone(header_factory=_HEADERS)


def mail_domain(mail_from: str) -> str:
    """The domain of ``"Herald <herald@example.com>"``; ValueError if it has none."""
    _, address = parseaddr(mail_from)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or not domain.isascii() or "." in (domain[0], domain[-1]):
        raise ValueError(f"mail_from {mail_from!r} is not an address with a domain")
    return domain


def message_id_for(delivery: uuid.UUID, mail_from: str) -> str:
    """``<{delivery id hex}@{domain of mail_from}>``: the same on every retry."""
    return f"<{delivery.hex}@{mail_domain(mail_from)}>"


def build_message(
    notification: Notification,
    *,
    to: str,
    mail_from: str,
    message_id: str,
    date: datetime | None = None,
) -> EmailMessage:
    """The e-mail for one delivery of ``notification`` to ``to``.

    Raises ``ValueError`` for content that cannot go into a header (a line break in
    an address, an unsubscribe URL that is not one ASCII line, a malformed
    ``message_id``).
    """
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        raise ValueError(f"Message-ID must look like <id@domain>, not {message_id!r}")
    message = EmailMessage(policy=POLICY)
    message["From"] = mail_from
    message["To"] = to
    # a subject is one line; templates may leave a trailing newline or double spaces
    message["Subject"] = " ".join(notification.title.split())
    message["Date"] = date or datetime.now(UTC)
    message["Message-ID"] = message_id
    message["X-Herald-Notification-Id"] = str(notification.id)
    # RFC 3834: an automatic message; out-of-office responders leave it alone
    message["Auto-Submitted"] = "auto-generated"
    if notification.unsubscribe_url:
        value = f"<{_one_line_ascii(notification.unsubscribe_url)}>"
        if len("List-Unsubscribe: ") + len(value) > _MAX_LINE:
            raise ValueError("unsubscribe URL is too long for one header line")
        message["List-Unsubscribe"] = value
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    message.set_content(notification.body)
    if notification.html is not None:
        message.add_alternative(notification.html, subtype="html")
    for attachment in notification.attachments:
        content_type = _content_type(attachment.content_type)
        params = dict(content_type.params)
        if content_type.maintype == "text":
            params.setdefault("charset", "utf-8")
        # add_attachment turns multipart/alternative into multipart/mixed
        message.add_attachment(
            attachment.content,
            maintype=content_type.maintype,
            subtype=content_type.subtype,
            filename=attachment.filename,
            params=params,
        )
    return message


def _content_type(value: str) -> ContentTypeHeader:
    header = _HEADERS("Content-Type", value)
    if not isinstance(header, ContentTypeHeader) or header.defects:
        raise ValueError(f"attachment content type {value!r} is not a MIME type")
    return header


def _one_line_ascii(value: str) -> str:
    if not value.isascii() or any(c.isspace() or c in "<>" for c in value):
        raise ValueError("unsubscribe URL must be ASCII without spaces or angle brackets")
    return value
