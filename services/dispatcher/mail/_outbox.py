"""Mail as ``.eml`` files in a directory: what a checkout without SMTP does.

One file per delivery, named after its owner and the Message-ID (which is derived
from the delivery id), written to a temporary file and renamed into place: a retry
replaces the file instead of adding a second one, and a reader never sees half a
message. The owner part, a digest of the user id, is what lets erasure find every
file of a user (``forget``) in a directory any number of dispatchers share.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from email.message import EmailMessage
from pathlib import Path

from ..channels._base import DeliveryResult
from ._message import POLICY

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def owner_prefix(owner: str) -> str:
    """The start of the name of every file of ``owner``: a digest of the user id
    (any id, safe in a file name), then a dot."""
    return hashlib.sha256(owner.encode()).hexdigest()[:32] + "."


def outbox_name(message_id: str, owner: str | None = None) -> str:
    """``<abc@example.com>`` → ``abc@example.com.eml``, after ``owner_prefix``
    when the mail has an owner."""
    stem = _UNSAFE.sub("_", message_id.strip().strip("<>"))
    if not stem.strip("._"):
        raise ValueError(f"Message-ID {message_id!r} gives no file name")
    return f"{owner_prefix(owner) if owner else ''}{stem}.eml"


class OutboxTransport:
    """A ``MailTransport`` that writes each message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"OutboxTransport({self.directory})"

    async def send(
        self, message: EmailMessage, *, to: str, owner: str | None = None
    ) -> DeliveryResult:
        message_id = message["Message-ID"]
        if not message_id:
            return DeliveryResult.permanent("message has no Message-ID to name its file")
        try:
            name = outbox_name(str(message_id), owner)
        except ValueError as exc:
            return DeliveryResult.permanent(str(exc))
        data = message.as_bytes(policy=POLICY)
        try:
            await asyncio.to_thread(self._write, name, data)
        except OSError as exc:
            return DeliveryResult.transient(f"cannot write to the outbox: {exc}")
        return DeliveryResult.delivered(f"written to {self.directory / name}", provider_id=name)

    async def forget(self, owner: str) -> int:
        """Delete every file of ``owner`` (and any half-written one); how many."""
        return await asyncio.to_thread(self._forget, owner_prefix(owner))

    async def close(self) -> None:
        """Nothing is held open between messages."""

    def _forget(self, prefix: str) -> int:
        if not self.directory.is_dir():
            return 0
        removed = 0
        # a temporary file is ".<name>.<random>.tmp" (``_write``)
        for pattern in (f"{prefix}*.eml", f".{prefix}*.tmp"):
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
