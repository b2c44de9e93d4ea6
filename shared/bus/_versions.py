"""The AMQP libraries the bus runs on, at the versions it was tested with.

The bus publishes and acks through aiormq's public channel API, but leans on
behaviour only its implementation states: ``basic_publish(wait=False)`` taking the
channel's lock in call order (a batch reaches the broker in order), confirms matched
to publishes by aiormq's own delivery tags, ``max_content_size`` on a channel, and
pamqp's encoder refusing a property before anything is written. A release that
changed how aiormq numbers tags or guards its channel could match confirms to the
wrong messages, the one failure Herald must never have. So both are pinned to the
minor versions tested (pyproject.toml), and a bus refuses to start on any other
rather than carry on in silence.
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
            "the event bus relies on how these libraries' tested versions publish and "
            f"confirm, and will not run on others: {', '.join(wrong)}. Install the versions "
            "pyproject.toml pins, or test the bus against the new ones and move the pins."
        )
