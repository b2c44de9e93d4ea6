"""What the benchmarks share: a free port, the broker's queues as rabbitmqctl lists
them, and SIGTERM unwinding like Ctrl-C so their clean-up runs."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rabbit_queues(prefix: str) -> list[str] | None:
    """Queues whose name starts with ``prefix``; None when rabbitmqctl cannot say."""
    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name", "--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [q.strip() for q in out.splitlines() if q.strip().startswith(prefix)]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM unwinds like Ctrl-C, so the clean-up in ``finally`` runs."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
