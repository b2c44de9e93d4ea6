"""Apprise as a channel: any Apprise URL (``json://``, ``ntfy://``, ``discord://``, ...).

SSRF, honestly: Apprise makes its own connections (``requests``, ``smtplib``, raw
sockets) which the connect-time guard of ``safe_http`` cannot reach. So before each
send, the host the URL names (plain web targets such as ``json://``, ``xml://``,
``form://``; self-hosted services such as ``gotify://``, ``ntfy://host/``; the SMTP
server of ``mailto://``) is resolved and checked with ``UrlGuard``. That is a check
*before* the request, not at connect time: a DNS rebinding attacker who answers the
two lookups differently can still get through, and so can a proxy configured in the
environment, which ``requests`` honours. Services at a fixed vendor host
(``discord://``, ``tgram://``, ``slack://``, ntfy's cloud mode, ...) name no host of
their own and are not checked. Where untrusted users must not reach the internal
network under any circumstances, do not enable this channel for them.

What the URL may say is narrowed: redirects are never followed (a 3xx could point
anywhere, past the check), Apprise's own retries are off (the dispatcher retries on
its schedule), and socket timeouts are capped at ``timeout``.

Secrets: Apprise URLs carry tokens and passwords. Nothing here logs the URL or puts
it in a result; the loggers of Apprise and of urllib3 (under ``requests``) are held
at WARNING, since their debug lines include the URLs requested (webhook tokens in the
path).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import apprise

from shared.endpoints import Endpoint
from shared.errors import Retry

from ..url_guard import UnsafeUrl, UrlGuard
from ._base import DeliveryResult, Notification
from .registry import ChannelContext

# their debug lines carry request URLs, tokens included
QUIETED_LOGGERS = ("apprise", "urllib3")


class AppriseChannel:
    name: ClassVar[str] = "apprise"

    def __init__(self, guard: UrlGuard, *, timeout: float) -> None:
        self._guard = guard
        self._timeout = timeout
        self._asset = apprise.AppriseAsset(
            secure_logging=True,
            http_redirects=False,
            storage_mode=apprise.PersistentStoreMode.MEMORY,
            service_timeout=timeout,
        )
        _keep_apprise_quiet()

    @classmethod
    def from_context(cls, context: ChannelContext) -> AppriseChannel:
        settings = context.settings
        return cls(UrlGuard(settings.allow_private_urls), timeout=settings.http_timeout)

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        if not endpoint.url:
            return DeliveryResult.permanent("apprise endpoint has no url")
        service = apprise.Apprise.instantiate(endpoint.url, asset=self._asset)
        if service is None:
            scheme = endpoint.url.partition("://")[0] if "://" in endpoint.url else ""
            return DeliveryResult.permanent(f"not a usable Apprise URL (scheme {scheme!r})")
        self._narrow(service)
        host = target_host(service)
        if host is not None:
            try:
                await self._guard.check(f"http://[{host}]/" if ":" in host else f"http://{host}/")
            except UnsafeUrl as exc:
                return DeliveryResult.permanent(exc.reason)
            except Retry as exc:
                return DeliveryResult.transient(exc.reason)
        notifier = apprise.Apprise(asset=self._asset)
        notifier.add(service)
        result = await notifier.async_notify(
            body=_body(notification),
            title=notification.title,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=self._timeout,
        )
        if result:
            return DeliveryResult.delivered(f"{service.service_name}: accepted")
        if result.status == apprise.AppriseResultStatus.TIMEOUT:
            return DeliveryResult.transient(f"{service.service_name}: timed out")
        return DeliveryResult.transient(f"{service.service_name}: not accepted")

    def _narrow(self, service: apprise.NotifyBase) -> None:
        """Override what the user's URL may have asked for (``?redirect=yes``,
        ``?retry=9``, ``?rto=3600``)."""
        service.redirects = False
        service.retry = 0
        service.socket_connect_timeout = min(service.socket_connect_timeout, self._timeout)
        service.socket_read_timeout = min(service.socket_read_timeout, self._timeout)


def target_host(service: apprise.NotifyBase) -> str | None:
    """The host the service will connect to when the URL chooses it, else None."""
    host = getattr(service, "smtp_host", None)  # mailto://: the SMTP server, not the domain
    if not host:
        if getattr(service, "mode", None) == "cloud":  # the vendor's service; host is a topic
            return None
        host = service.host if "host" in service.template_tokens else None
    return host.strip("[]") if isinstance(host, str) and host.strip("[]") else None


def _body(notification: Notification) -> str:
    return f"{notification.body}\n\n{notification.link}" if notification.link else notification.body


def _keep_apprise_quiet() -> None:
    for name in QUIETED_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
