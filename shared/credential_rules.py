"""What Herald accepts as a credential in its settings, as pure checks.

Each check raises ``ValueError`` with a reason that never repeats the value (the
settings' errors reach a terminal or a pod's log). ``shared.settings`` applies them.
"""

from __future__ import annotations

import base64
import re

# HS256 keys and link signatures are only as strong as the key: RFC 7518 §3.2 asks
# for at least as many bytes as the hash has (32 for SHA-256).
MIN_SECRET_KEY_BYTES = 32
# in HERALD_ENCRYPTION_KEYS: the key derived from HERALD_SECRET_KEY
DERIVED_KEY = "derived"

# Values that example files, tutorials and our own docs show; a deployment that
# copied one has a key every reader of those files knows. Compared case-insensitively
# with separators dropped, so "change_me" and "Change Me" are caught too.
_PLACEHOLDERS = frozenset(
    {
        "changeme",
        "changemeplease",
        "replaceme",
        "secret",
        "secretkey",
        "yoursecretkey",
        "mysecretkey",
        "supersecret",
        "password",
        "herald",
        "heraldsecretkey",
        "todo",
        "xxxxxxxx",
        "example",
        "test",
        "dev",
        "development",
    }
)
# Telegram's own rule for a webhook's secret_token
_TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def is_placeholder(key: str) -> bool:
    folded = re.sub(r"[\s_\-.]", "", key).lower()
    # "xxxx…", "0000…": one character repeated is no key either
    return folded in _PLACEHOLDERS or len(set(folded)) <= 1


def check_secret_key(key: str) -> None:
    if is_placeholder(key):
        raise ValueError(
            "a placeholder from an example; anyone who read it "
            "can mint tokens and unsubscribe links. Generate one: openssl rand -hex 32"
        )
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ValueError(
            f"too short: {len(key.encode())} bytes, at least {MIN_SECRET_KEY_BYTES} "
            "needed. Generate one: openssl rand -hex 32"
        )


def check_fernet_keys(keys: list[str]) -> None:
    for position, text in enumerate(keys, start=1):
        if text == DERIVED_KEY:
            continue
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                f"encryption key {position} is not a Fernet key (url-safe base64 of 32 "
                'bytes, as `herald keys generate` prints) nor "derived"'
            )


def check_telegram_secret(token: str) -> None:
    if not _TELEGRAM_SECRET.match(token):
        raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
