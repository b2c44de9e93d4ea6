"""Custom channels: found by name, imported once at start-up, built from a context.

Two sources, the second winning over the first for the same name:

- Python entry points in the ``herald.channels`` group, e.g. in a plugin's
  ``pyproject.toml``: ``[project.entry-points."herald.channels"]
  pagerduty = "herald_pagerduty:PagerDutyChannel"``;
- ``HERALD_CHANNELS=pagerduty=herald_pagerduty:PagerDutyChannel`` (``settings.channels``).

A channel class has a ``name`` equal to the name it is registered under and an
``async def send(notification, endpoint)``. It is built with
``cls.from_context(context)`` if it defines that, else with ``cls()``. Every problem
is a ``ValueError`` naming the channel, raised while the service starts rather than
at the first delivery.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from dataclasses import dataclass
from typing import cast

import aiohttp

from shared.settings import Settings

from ._base import Channel

__all__ = ["ENTRY_POINT_GROUP", "ChannelContext", "instantiate", "load_channel_classes"]

ENTRY_POINT_GROUP = "herald.channels"

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_SPEC = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})$")


@dataclass(frozen=True)
class ChannelContext:
    """What a channel may use to build itself: settings and the two HTTP sessions
    (aiohttp; ``http_guarded`` for user-supplied URLs, refusing non-public addresses
    when it connects, ``http_trusted`` for operator ones). Send through
    ``channels._http.call``: it never follows a redirect and turns transport failures
    into ``DeliveryResult``s. Used directly, aiohttp follows redirects unless given
    ``allow_redirects=False`` (each hop still checked by the guarded session)."""

    settings: Settings
    http_guarded: aiohttp.ClientSession
    http_trusted: aiohttp.ClientSession


def load_channel_classes(settings: Settings) -> dict[str, type[Channel]]:
    """Every custom channel class by name: entry points, then ``settings.channels``."""
    found: dict[str, type[Channel]] = {}
    for name, value in _entry_point_specs().items():
        if name not in settings.channels:  # config wins; a shadowed plugin is not imported
            found[name] = _load(name, value, "entry point")
    for name, spec in settings.channels.items():
        found[name] = _load(name, spec, "HERALD_CHANNELS")
    return found


def instantiate(cls: type[Channel], context: ChannelContext) -> Channel:
    from_context = getattr(cls, "from_context", None)
    if callable(from_context):
        return cast(Channel, from_context(context))
    try:
        return cls()
    except TypeError as exc:
        raise ValueError(
            f"channel {cls.name!r}: {cls.__qualname__}() needs arguments ({exc}); "
            "give it a from_context(context) classmethod"
        ) from exc


def _entry_point_specs() -> dict[str, str]:
    specs: dict[str, str] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        known = specs.setdefault(entry_point.name, entry_point.value)
        if known != entry_point.value:
            raise ValueError(
                f"channel {entry_point.name!r}: two installed packages claim it "
                f"({known!r} and {entry_point.value!r}); uninstall one or choose with "
                "HERALD_CHANNELS"
            )
    return specs


def _load(name: str, spec: str, source: str) -> type[Channel]:
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(f"channel {name!r}: {spec!r} from {source} is not 'package.module:Class'")
    module_name, attr_path = match["module"], match["attr"]
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (
            f"module {module_name!r} not found"
            if exc.name is not None and f"{module_name}.".startswith(f"{exc.name}.")
            else f"importing {module_name!r} failed: {exc}"
        )
        raise ValueError(f"channel {name!r} ({source}): {missing}") from exc
    except Exception as exc:
        raise ValueError(
            f"channel {name!r} ({source}): importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ValueError(
                f"channel {name!r} ({source}): {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    return _checked(target, f"channel {name!r} ({source}): {spec!r}", name)


def _checked(obj: object, what: str, name: str) -> type[Channel]:
    if not inspect.isclass(obj):
        raise ValueError(f"{what} is not a class")
    if not inspect.iscoroutinefunction(getattr(obj, "send", None)):
        raise ValueError(f"{what} has no 'async def send(notification, endpoint)' method")
    declared = getattr(obj, "name", None)
    if not isinstance(declared, str) or not declared:
        raise ValueError(f"{what} has no 'name' class attribute")
    if declared != name:
        raise ValueError(f"{what} is named {declared!r}; register it as {declared!r}")
    return cast(type[Channel], obj)
