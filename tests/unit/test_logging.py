"""Secrets never reach a log line, whatever shape they arrive in."""

from __future__ import annotations

import json
import logging

import structlog
from pydantic import SecretStr

from shared.logging import REDACTED, configure_logging, redact_secrets, scrub


def test_passwords_inside_urls_are_hidden_but_the_rest_stays_readable() -> None:
    assert scrub("amqp://guest:s3cret@rabbit:5672/") == f"amqp://guest:{REDACTED}@rabbit:5672/"
    assert scrub("postgresql://app:pw@db/herald") == f"postgresql://app:{REDACTED}@db/herald"
    assert scrub("http://example.com/path") == "http://example.com/path"


def test_secret_shapes_are_hidden_anywhere_in_text() -> None:
    text = "sent with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw and Bearer abc.def-ghi"
    out = scrub(text)
    assert "whsec_" not in out
    assert "abc.def-ghi" not in out
    assert "sent with" in out
    assert "bot123456:AAH-secret_x" not in scrub(
        "POST https://api.telegram.org/bot123456:AAH-secret_x/sendMessage"
    )


def test_secret_keys_and_secret_values_are_redacted_recursively() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "delivering",
            "api_key": "hk_live_123",
            "settings": {"smtp_password": "pw", "smtp_host": "mail"},
            "token": SecretStr("t"),
            "headers": [{"authorization": "Basic xyz"}],
            "password": None,
        },
    )
    assert event["api_key"] == REDACTED
    assert event["settings"] == {"smtp_password": REDACTED, "smtp_host": "mail"}
    assert event["token"] == REDACTED
    assert event["headers"] == [{"authorization": REDACTED}]
    # nothing to hide is shown as nothing, not as a redaction
    assert event["password"] is None


def test_configured_logger_writes_json_without_the_secret(capsys: object) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # it also quiets some libraries' loggers: later tests expect their records again
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    configure_logging("test", "info")
    try:
        structlog.contextvars.bind_contextvars(event_id="e1", correlation_id="c1")
        structlog.get_logger("t").info(
            "connecting", url="amqp://guest:hunter2@localhost/", secret_key="k"
        )
        out = capsys.readouterr().out.strip().splitlines()[-1]  # type: ignore[attr-defined]
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.handlers[:], level = saved
        root.setLevel(level)
        for name in list(logging.root.manager.loggerDict):
            logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))
    line = json.loads(out)
    assert "hunter2" not in out
    assert line["secret_key"] == REDACTED
    assert line["event_id"] == "e1"
    assert line["correlation_id"] == "c1"
    assert line["service"] == "test"
    assert line["level"] == "info"
