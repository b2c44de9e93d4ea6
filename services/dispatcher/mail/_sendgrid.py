"""SendGrid's v3 Mail Send API as the carrier of a built message.

The API takes parts, not a MIME message, so the message is taken apart again:
sender, subject, the text and HTML alternatives, attachments (base64) and every
header that is not one the API sets itself. SendGrid writes its own Message-ID;
ours travels as ``X-Herald-Message-Id`` (and as a custom argument, which SendGrid's
event webhook reports back). 202 means accepted; ``X-Message-Id`` in the answer is
SendGrid's id for it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage
from typing import Any

import aiohttp
from pydantic import SecretStr

from ..channels._base import DeliveryResult, Outcome, classify_http
from ..channels._http import Reply, call

# Headers the API writes itself, or refuses ("reserved"); the rest are passed on.
_NOT_PASSED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "received",
        "dkim-signature",
        "x-sg-id",
        "x-sg-eid",
    }
)

MESSAGE_ID_HEADER = "X-Herald-Message-Id"


def sendgrid_payload(message: EmailMessage, *, to: str) -> dict[str, Any]:
    """The Mail Send request body for ``message`` to ``to``."""
    sender = _sender(message)
    content: list[dict[str, str]] = []
    for subtype in ("plain", "html"):  # the API wants text/plain first
        part = message.get_body((subtype,))
        if part is not None and part.get_content_type() == f"text/{subtype}":
            content.append({"type": f"text/{subtype}", "value": part.get_content()})
    headers = {
        name: str(value) for name, value in message.items() if name.lower() not in _NOT_PASSED
    }
    message_id = message["Message-ID"]
    if message_id:
        headers[MESSAGE_ID_HEADER] = str(message_id)
    payload: dict[str, Any] = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": sender.addr_spec}
        | ({"name": sender.display_name} if sender.display_name else {}),
        "subject": str(message["Subject"] or ""),
        "content": content,
        "headers": headers,
    }
    if message_id:
        payload["custom_args"] = {"herald_message_id": str(message_id).strip("<>")}
    attachments = [_attachment(part) for part in message.iter_attachments()]
    if attachments:
        payload["attachments"] = attachments
    return payload


def _sender(message: EmailMessage) -> Address:
    header = message["From"]
    if isinstance(header, AddressHeader) and len(header.addresses) == 1:
        return header.addresses[0]
    raise ValueError("the message needs exactly one From address")


def _attachment(part: EmailMessage) -> dict[str, str]:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)  # a leaf part decodes to bytes
    content_type = part.get_content_type()
    method = part.get_param("method")
    if isinstance(method, str):  # text/calendar: the method makes it an invitation
        content_type += f"; method={method}"
    return {
        "content": base64.b64encode(data).decode("ascii"),
        "filename": part.get_filename() or "attachment",
        "type": content_type,
        "disposition": "attachment",
    }


class SendGridTransport:
    """A ``MailTransport`` over SendGrid's HTTP API.

    ``http`` belongs to the caller, who also closes it; ``api_url`` is the operator's
    (``https://api.sendgrid.com``, or the EU one), so no SSRF check applies.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_key: SecretStr,
        api_url: str = "https://api.sendgrid.com",
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._url = api_url.rstrip("/") + "/v3/mail/send"

    def __repr__(self) -> str:
        return f"SendGridTransport({self._url})"

    async def send(
        self, message: EmailMessage, *, to: str, owner: str | None = None
    ) -> DeliveryResult:
        try:
            payload = sendgrid_payload(message, to=to)
        except ValueError as exc:
            return DeliveryResult.permanent(f"cannot send through SendGrid: {exc}")
        answer = await call(
            self._http,
            "POST",
            self._url,
            json=payload,
            headers={"authorization": f"Bearer {self._api_key.get_secret_value()}"},
        )
        if isinstance(answer, DeliveryResult):
            return answer
        result = classify_http(answer.status_code, answer.headers.get("retry-after"))
        if answer.status_code in (401, 403):  # our API key, not the recipient
            result = DeliveryResult.misconfigured(
                f"SendGrid {answer.status_code}: the API key was refused", answer.status_code
            )
        if answer.status_code == 202:
            return DeliveryResult.delivered(
                "SendGrid 202", 202, provider_id=answer.headers.get("x-message-id")
            )
        reason = _errors(answer)
        if reason and result.outcome is not Outcome.DELIVERED:
            result = dataclasses.replace(result, detail=f"{result.detail}: {reason}")
        return result

    async def forget(self, owner: str) -> int:
        """Nothing is kept: the mail went on to the provider."""
        return 0

    async def close(self) -> None:
        """Nothing of its own to close: the HTTP client is the caller's."""


def _errors(answer: Reply) -> str:
    """SendGrid's ``{"errors": [{"message": ...}]}``, shortened; empty if absent."""
    with contextlib.suppress(ValueError):
        body = answer.json()
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            messages = [
                str(e.get("message"))
                for e in body["errors"]
                if isinstance(e, dict) and e.get("message")
            ]
            return "; ".join(messages)[:300]
    return ""
