"""The AMQP libraries whose internals the bus relies on, at the versions it was
tested with.

``_pipeline`` and ``_acks`` write publish and ack frames onto an aiormq channel's
write queue, keeping delivery tags and confirmation futures as aiormq does, and
``_pipeline`` encodes content headers byte for byte as pamqp does. A release that
changed how aiormq numbers tags or guards its channel could match confirms to the
wrong messages, the one failure Herald must never have. So both are pinned to the
minor versions tested (pyproject.toml), and a bus refuses to start on any other
rather than fall back in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

# package -> the minor version the bus's private paths were written and tested against
TESTED = {"aiormq": "7.2", "pamqp": "4.0"}


class UntestedLibrary(RuntimeError):
    """An AMQP library at a version the bus was not tested with."""


def check_versions(installed: Callable[[str], str] = version) -> None:
    """Raise ``UntestedLibrary`` naming each package whose minor version is not the
    tested one."""
    wrong = []
    for package, minor in TESTED.items():
        try:
            found = installed(package)
        except PackageNotFoundError:
            found = "none"
        if found != minor and not found.startswith(f"{minor}."):
            wrong.append(f"{package} {found} (tested: {minor}.x)")
    if wrong:
        raise UntestedLibrary(
            "the event bus writes AMQP frames the way these libraries' tested versions "
            f"do, and will not run on others: {', '.join(wrong)}. Install the versions "
            "pyproject.toml pins, or test the bus against the new ones and move the pins."
        )
