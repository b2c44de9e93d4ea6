"""Which hosts a chat webhook URL (Discord, Slack, Teams) may name.

A chat endpoint is meant to reach its vendor. Left open, it is a way for any user to
make Herald post to a server of their choosing and read its answer: the SSRF guard
keeps that server on the public internet, nothing else would keep it off the user's
own machine. So each chat type has a list of hosts, one setting each
(``HERALD_DISCORD_WEBHOOK_HOSTS``, ...), defaulting to the vendor's webhook hosts;
an operator adds a Slack-compatible server (Mattermost, Rocket.Chat) to the Slack
list. The gateway refuses an endpoint outside the list when it is created; the
dispatcher refuses to send to one (a list can shrink after endpoints were stored).
Both ask ``WebhookHosts.refusal``.

An entry is a host name (``hooks.slack.com``), or ``*.`` and a domain for any name
below it (``*.webhook.office.com``; not the domain itself). A URL must use https,
unless its entry starts with ``http://``, which allows plain http too (an internal
server, a test receiver). Ports are not restricted.

The host is taken as ``urllib.parse`` reads it, and a URL that parsers could read
differently (user info, a backslash, whitespace or control characters) is refused
before it is compared, so the host judged here is the host connected to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["HostPattern", "WebhookHosts", "parse_entry", "webhook_hosts"]

# one DNS label: letters, digits and inner hyphens (IP literals fit too)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_ENTRY = re.compile(
    rf"^(?P<scheme>https?://)?(?P<wildcard>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*)$"
)
# what two URL parsers may read differently, so the host could not be trusted
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of a list: a host, or (``wildcard``) any name below a domain."""

    host: str
    wildcard: bool = False
    plain_http: bool = False

    def matches(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        return ("http://" if self.plain_http else "") + ("*." if self.wildcard else "") + self.host


def parse_entry(entry: str) -> HostPattern:
    """``"*.example.com"``, ``"http://chat.internal"`` as a ``HostPattern``;
    ``ValueError`` naming the entry when it is neither a host nor ``*.`` a domain."""
    match = _ENTRY.match(entry.strip().lower().removesuffix("."))
    if match is None:
        raise ValueError(
            f"{entry!r} is not a host name, '*.' and a domain, or either after 'http://'"
        )
    return HostPattern(
        match["host"], wildcard=bool(match["wildcard"]), plain_http=match["scheme"] == "http://"
    )


@dataclass(frozen=True)
class WebhookHosts:
    """The hosts one type of chat endpoint may name, and the one rule applied to them."""

    kind: str
    patterns: tuple[HostPattern, ...]

    @classmethod
    def parse(cls, kind: str, entries: Iterable[str]) -> WebhookHosts:
        return cls(kind, tuple(parse_entry(e) for e in entries))

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be a ``kind`` endpoint, or None when it may.

        The reason names the host at most, never the URL (its path is a secret).
        """
        if _AMBIGUOUS.search(url):
            return f"a {self.kind} webhook URL cannot contain spaces or backslashes"
        malformed = f"a {self.kind} webhook URL must be an https URL with a host"
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme, (parts.hostname or "").removesuffix(".")
        except ValueError:  # an unclosed IPv6 bracket
            return malformed
        if "@" in parts.netloc:
            return f"a {self.kind} webhook URL cannot carry user info"
        if scheme not in ("http", "https") or not host:
            return malformed
        if not _HOST.match(host):
            return f"{host} is not a {self.kind} webhook host"
        allowing = [p for p in self.patterns if p.matches(host)]
        if not allowing:
            return f"{host} is not a {self.kind} webhook host (allowed: {self.described()})"
        if scheme == "http" and not any(p.plain_http for p in allowing):
            return f"a {self.kind} webhook URL must use https"
        return None

    def described(self) -> str:
        return ", ".join(str(p) for p in self.patterns) or "none"


def webhook_hosts(settings: Settings) -> dict[str, WebhookHosts]:
    """Each chat type's list, by endpoint type; a type not in it has none."""
    return {
        "discord": WebhookHosts.parse("discord", settings.discord_webhook_hosts),
        "slack": WebhookHosts.parse("slack", settings.slack_webhook_hosts),
        "teams": WebhookHosts.parse("teams", settings.teams_webhook_hosts),
    }
