"""The e-mail built for a notification, read back the way a mail client reads it."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from typing import Any

import icalendar
import pytest

from services.dispatcher.channels import Attachment, Notification, delivery_id
from services.dispatcher.mail import build_message, mail_domain, message_id_for, sendgrid_payload
from tests.support import meeting_invite

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MAIL_FROM = "Herald <herald@jobs.example.com>"
UNSUBSCRIBE = "https://herald.example.com/v1/unsubscribe?token=" + "a1B2-c3_D4." * 20


def make_notification(**fields: Any) -> Notification:
    values: dict[str, Any] = {
        "id": uuid.UUID("0b7f3c52-8a3e-4f5e-9a57-0e6a3b1b9c11"),
        "user_id": "u1",
        "type": "match.found",
        "title": "3 new jobs match your profile",
        "body": "Senior Python engineer at Acme\n\nView: https://jobs.example.com/1",
        "priority": "normal",
        "created_at": NOW,
        "html": "<p>Senior Python engineer at <b>Acme</b></p>",
    }
    return Notification(**(values | fields))


def built(notification: Notification | None = None, **kwargs: Any) -> EmailMessage:
    """Build, serialise to bytes as it goes on the wire, and parse again."""
    options: dict[str, Any] = {
        "to": "ada@example.org",
        "mail_from": MAIL_FROM,
        "message_id": "<abc123@jobs.example.com>",
        "date": NOW,
    } | kwargs
    message = build_message(notification or make_notification(), **options)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text(part: MIMEPart | None) -> str:
    """A text part's content with the wire's CRLF line ends read as newlines."""
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_text_and_html_are_alternatives_of_one_message() -> None:
    message = built()
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert text(parts[0]).rstrip("\n") == make_notification().body
    assert "<b>Acme</b>" in text(parts[1])


def test_without_html_the_message_is_plain_text() -> None:
    message = built(make_notification(html=None))
    assert message.get_content_type() == "text/plain"
    assert "Senior Python engineer at Acme" in text(message)


def test_headers_name_sender_recipient_subject_date_and_ids() -> None:
    message = built()
    assert message["From"].addresses[0].addr_spec == "herald@jobs.example.com"
    assert message["From"].addresses[0].display_name == "Herald"
    assert str(message["To"]) == "ada@example.org"
    assert str(message["Subject"]) == "3 new jobs match your profile"
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == "<abc123@jobs.example.com>"
    assert message["X-Herald-Notification-Id"] == "0b7f3c52-8a3e-4f5e-9a57-0e6a3b1b9c11"
    assert message["Auto-Submitted"] == "auto-generated"


def test_one_click_unsubscribe_headers_keep_a_long_url_intact() -> None:
    message = build_message(
        make_notification(unsubscribe_url=UNSUBSCRIBE),
        to="ada@example.org",
        mail_from=MAIL_FROM,
        message_id="<abc123@jobs.example.com>",
    )
    raw = message.as_bytes()
    # one line, no RFC 2047 encoded-words, even though longer than 78 columns
    assert f"List-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_unsubscribe_url_means_no_list_headers() -> None:
    message = built()
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "url", ["https://x.example/u?t=a b", "https://x.example/ü", "https://x.example/>evil"]
)
def test_an_unsubscribe_url_that_cannot_be_one_header_line_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe URL"):
        built(make_notification(unsubscribe_url=url))


def test_non_ascii_subject_sender_name_and_body_round_trip() -> None:
    title = "Nouvel emploi : Développeur·se Python à Zürich — 95 % 🚀"
    message = build_message(
        make_notification(title=title, body="Grüße aus Köln ✓", html="<p>Grüße ✓</p>"),
        to="ada@example.org",
        mail_from="Héraut Émile <herald@jobs.example.com>",
        message_id="<abc123@jobs.example.com>",
    )
    raw = message.as_bytes()
    # headers go out as 7-bit ASCII (RFC 2047), whatever the body does
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == title
    assert parsed["From"].addresses[0].display_name == "Héraut Émile"
    assert isinstance(parsed, EmailMessage)
    assert text(parsed.get_body(("plain",))).rstrip("\n") == "Grüße aus Köln ✓"
    assert "Grüße ✓" in text(parsed.get_body(("html",)))


def test_a_title_with_line_breaks_becomes_one_subject_line() -> None:
    message = built(make_notification(title="Interview\r\nBcc: evil@example.com  tomorrow\n"))
    assert str(message["Subject"]) == "Interview Bcc: evil@example.com tomorrow"
    assert message["Bcc"] is None


def test_an_attachment_wraps_the_alternatives_in_multipart_mixed() -> None:
    invite = meeting_invite(uid="meeting-42@herald")
    message = built(make_notification(attachments=(invite,)))
    assert message.get_content_type() == "multipart/mixed"
    body, attachment = message.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.is_attachment()
    data = attachment.get_payload(decode=True)
    assert data == invite.content
    calendar = icalendar.Calendar.from_ical(data)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar.walk("VEVENT")[0]["UID"]) == "meeting-42@herald"


def test_several_attachments_keep_their_types_and_names() -> None:
    pdf = Attachment("offer.pdf", "application/pdf", b"%PDF-1.7 ...")
    notes = Attachment("notes.txt", "text/plain", "Grüße".encode())
    message = built(make_notification(attachments=(pdf, notes)))
    attachments = list(message.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in attachments] == [
        ("offer.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
    ]
    assert attachments[0].get_payload(decode=True) == b"%PDF-1.7 ..."
    assert text(attachments[1]) == "Grüße"


def test_a_malformed_attachment_type_is_refused() -> None:
    with pytest.raises(ValueError, match="content type"):
        built(make_notification(attachments=(Attachment("x", "not a type", b""),)))


def test_message_id_comes_from_the_delivery_and_the_sender_domain() -> None:
    notification_id, endpoint_id = uuid.uuid4(), uuid.uuid4()
    first = message_id_for(delivery_id(notification_id, endpoint_id), MAIL_FROM)
    again = message_id_for(delivery_id(notification_id, endpoint_id), MAIL_FROM)
    other = message_id_for(delivery_id(notification_id, uuid.uuid4()), MAIL_FROM)
    assert first == again != other
    assert first == f"<{delivery_id(notification_id, endpoint_id).hex}@jobs.example.com>"


@pytest.mark.parametrize("mail_from", ["Herald", "herald@", "Herald <@example.com>", ""])
def test_a_sender_without_a_domain_is_refused(mail_from: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        mail_domain(mail_from)


@pytest.mark.parametrize("message_id", ["abc@example.com", "<abc>", ""])
def test_a_malformed_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        built(message_id=message_id)


def test_sendgrid_request_carries_the_same_content_and_headers() -> None:
    invite = Attachment("invite.ics", "text/calendar; method=CANCEL", b"BEGIN:VCALENDAR\r\n")
    message = build_message(
        make_notification(
            title="Entretien annulé", unsubscribe_url=UNSUBSCRIBE, attachments=(invite,)
        ),
        to="ada@example.org",
        mail_from="Héraut <herald@jobs.example.com>",
        message_id="<abc123@jobs.example.com>",
    )
    payload = sendgrid_payload(message, to="ada@example.org")
    assert payload["personalizations"] == [{"to": [{"email": "ada@example.org"}]}]
    assert payload["from"] == {"email": "herald@jobs.example.com", "name": "Héraut"}
    assert payload["subject"] == "Entretien annulé"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["content"][0]["value"].rstrip("\n") == make_notification().body
    headers = payload["headers"]
    assert headers["X-Herald-Message-Id"] == "<abc123@jobs.example.com>"
    assert headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["X-Herald-Notification-Id"] == str(make_notification().id)
    assert not {"From", "To", "Subject", "Message-ID", "Content-Type"} & set(headers)
    assert payload["attachments"] == [
        {
            "content": "QkVHSU46VkNBTEVOREFSDQo=",
            "filename": "invite.ics",
            "type": "text/calendar; method=CANCEL",
            "disposition": "attachment",
        }
    ]
