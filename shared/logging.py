"""One structlog configuration for every service: JSON lines on stdout.

Per-message context (``event_id``, ``correlation_id``, ``type``) is bound with
contextvars by the consumer, so every line logged while handling a message carries
it. ``redact_secrets`` runs last before rendering so secrets never reach a log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

_SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential|signature)",
    re.IGNORECASE,
)
# user:password@ inside any URL, e.g. amqp://guest:guest@host/
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
# secrets that look like themselves wherever they appear: webhook secrets, bearer
# tokens, Telegram bot paths
_SECRET_SHAPES = re.compile(
    r"(whsec_[A-Za-z0-9+/=]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+|/bot\d+:[A-Za-z0-9_-]+)"
)
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _SECRET_SHAPES.sub(REDACTED, text)


def _scrub_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if _SECRET_KEYS.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(key, v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = _scrub_value(key, event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aio-pika, uvicorn, asyncpg) log through stdlib logging: route them
    # through the same processors so their lines are JSON and scrubbed too.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_secrets,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # httpx and httpcore log every request URL at INFO, and a Discord, Slack or Teams
    # webhook URL is itself a secret; Apprise, urllib3 and aiohttp may log theirs too
    for noisy in (
        "aiormq",
        "aio_pika",
        "httpx",
        "httpcore",
        "apprise",
        "urllib3",
        "aiohttp.client",
        "aiohttp.internal",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
