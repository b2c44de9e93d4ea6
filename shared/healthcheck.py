"""``python -m shared.healthcheck``: is this container's Herald service ready?

The container image's health check, and the one Docker Compose runs. One image runs
any of the four services, so the check finds out which one runs here, or is told:

    python -m shared.healthcheck              every Herald service running here
    python -m shared.healthcheck dispatcher   that one
    python -m shared.healthcheck --live       /healthz (alive) instead of /readyz

It asks each service's own port (the gateway's, or a worker's metrics port, from the
same ``HERALD_*`` settings the service read) for ``/readyz`` — bus connected and
database answering — and exits 0 when every one answers 200, 1 otherwise, with one
line per service. Only the standard library and the settings are imported: it runs
every few seconds in every container.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.settings import Settings

__all__ = ["SERVICES", "probe", "probe_url", "running_services"]

SERVICES = ("gateway", "scheduler", "matcher", "dispatcher")

# a service bound to every address is asked on loopback
_ANY = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def probe_url(settings: Settings, service: str, path: str = "/readyz") -> str:
    """Where ``service`` answers ``path``, as seen from inside its container."""
    if service == "gateway":
        host, port = settings.gateway_host, settings.gateway_port
    else:
        host, port = settings.metrics_host, settings.metrics_port(service)
    host = _ANY.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def running_services(cmdlines: Iterable[Sequence[str]]) -> list[str]:
    """The Herald services among these command lines (``python -m services.<name>``),
    in a fixed order, each once."""
    found: set[str] = set()
    for argv in cmdlines:
        for flag, module in itertools.pairwise(argv):
            if flag == "-m" and module.startswith("services."):
                found.add(module.removeprefix("services."))
    return [name for name in SERVICES if name in found]


def _process_cmdlines(proc: Path = Path("/proc")) -> list[list[str]]:
    cmdlines = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # it exited, or is not ours to read
            continue
        cmdlines.append([part.decode(errors="replace") for part in raw.split(b"\0") if part])
    return cmdlines


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """``(ok, what happened)`` for one GET of ``url``."""
    # no proxy: a container's HTTP_PROXY must not carry a loopback probe away
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200, str(response.status)
    except urllib.error.HTTPError as exc:
        return False, str(exc.code)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(reason) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.healthcheck",
        description="Exit 0 when every named Herald service (default: every one running "
        "here) answers /readyz with 200.",
    )
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(SERVICES))
    parser.add_argument("--live", action="store_true", help="probe /healthz, not /readyz")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per probe")
    args = parser.parse_args(argv)
    unknown = [name for name in args.services if name not in SERVICES]
    if unknown:
        parser.error(f"no Herald service {unknown[0]!r} (choose from {', '.join(SERVICES)})")

    services = list(dict.fromkeys(args.services)) or running_services(_process_cmdlines())
    if not services:
        print("unhealthy: no Herald service runs here", file=sys.stderr)
        return 1
    settings = Settings()
    path = "/healthz" if args.live else "/readyz"
    healthy = True
    for name in services:
        url = probe_url(settings, name, path)
        ok, outcome = probe(url, args.timeout)
        healthy = healthy and ok
        print(f"{name} {'ok' if ok else 'unhealthy'}: {url} {outcome}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
