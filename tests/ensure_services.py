"""Make sure RabbitMQ and PostgreSQL answer before the tests run.

If one does not, try the command that starts it on a Debian machine; if it still
does not answer, say exactly what to do and fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

AMQP_URL = os.environ.get("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("HERALD_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/herald")


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _postgres_start() -> list[str] | None:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions or not shutil.which("pg_ctlcluster"):
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]


def _rabbitmq_start() -> list[str] | None:
    return ["rabbitmq-server", "-detached"] if shutil.which("rabbitmq-server") else None


SERVICES = {
    "PostgreSQL": (
        _address(DATABASE_URL, 5432),
        _postgres_start,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "RabbitMQ": (_address(AMQP_URL, 5672), _rabbitmq_start, "rabbitmq-server -detached"),
}


def main() -> int:
    missing = []
    for name, ((host, port), start, advice) in SERVICES.items():
        if _answers(host, port):
            print(f"{name} answers on {host}:{port}")
            continue
        command = start()
        if command is not None:
            print(f"{name} does not answer on {host}:{port}; running: {' '.join(command)}")
            subprocess.run(command, check=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _answers(host, port):
                time.sleep(1)
        if _answers(host, port):
            print(f"{name} started and answers on {host}:{port}")
        else:
            missing.append((name, host, port, advice))
    for name, host, port, advice in missing:
        print(
            f"\n{name} is not reachable on {host}:{port} and could not be started here.\n"
            f"  Start it with:  {advice}\n"
            f"  or point the tests at another server with "
            f"{'HERALD_DATABASE_URL' if name == 'PostgreSQL' else 'HERALD_AMQP_URL'}.",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
