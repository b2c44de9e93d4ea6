"""Wire the dispatcher: HTTP clients, mail transport, channels, renderer, the
intake and delivery handlers on the bus, and the releaser of held deliveries.

One notification's path, file by file: a handler in ``intake/<family>.py`` words
it, ``planning.py`` decides everything about it once and records it,
``delivery.py`` sends it (here, or through the delivery queue), through the
channel in ``channels/<name>.py`` that ``build_channels`` below picked."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import structlog

from shared import endpoint_sealing
from shared.bus import Handler, catalog
from shared.runner import Background, Runtime
from shared.sealing import Sealer
from shared.settings import Settings
from shared.webhook_hosts import webhook_hosts

from . import retention
from .channels import Channel
from .channels.apprise_bridge import AppriseChannel
from .channels.discord import DiscordChannel
from .channels.email import EmailChannel
from .channels.inapp import InAppChannel
from .channels.registry import ChannelContext, instantiate, load_channel_classes
from .channels.slack import SlackChannel
from .channels.teams import TeamsChannel
from .channels.telegram import TelegramChannel
from .channels.webhook import WebhookChannel
from .delivery import DeliveryDeps, on_delivery_due
from .erasure import forget_mail_here
from .inline import InlineSlots
from .intake import IntakeDeps, applications, digests, jobs, matches, requests, users
from .mail import MailTransport, OutboxTransport, build_transport
from .metrics import DispatcherMetrics
from .outcomes import Outcomes
from .planning import Planner
from .ratelimit import RateLimiter
from .recipient_cache import RecipientCache
from .releaser import run_releaser
from .rendering import Renderer
from .safe_http import guarded_client, trusted_client

log = structlog.get_logger("herald.dispatcher")

# Waits a rate-limited delivery can be parked for, without spending an attempt.
# Urgent sends in flight at once per replica, apart from everything else.
URGENT_PREFETCH = 8
DEFER_STEPS = catalog.DELIVERY_DEFER_STEPS


def build_channels(
    context: ChannelContext, mail: MailTransport, pool: asyncpg.Pool
) -> dict[str, Channel]:
    """The built-in channels that are configured, then custom ones (which may
    replace a built-in of the same name). A channel left out is reported as
    skipped by the delivery stage."""
    s, guarded = context.settings, context.http_guarded
    hosts = webhook_hosts(s)
    channels: dict[str, Channel] = {
        "email": EmailChannel(mail, s.mail_from),
        "inapp": InAppChannel(pool),
        "webhook": WebhookChannel(guarded),
        "discord": DiscordChannel(guarded, hosts["discord"]),
        "slack": SlackChannel(guarded, hosts["slack"]),
        "teams": TeamsChannel(guarded, hosts["teams"]),
        "apprise": AppriseChannel.from_context(context),
    }
    if s.telegram_bot_token is not None:
        channels["telegram"] = TelegramChannel(
            context.http_trusted, s.telegram_bot_token.get_secret_value(), s.telegram_api_url
        )
    for name, cls in load_channel_classes(s).items():
        channels[name] = instantiate(cls, context)
    return channels


def subscribe(runtime: Runtime, intake: IntakeDeps, delivery: DeliveryDeps) -> None:
    bus, settings = runtime.bus, runtime.settings

    def on(handler: Callable[..., Awaitable[None]]) -> Handler:
        return functools.partial(handler, deps=intake)

    bus.subscribe(
        catalog.DISPATCHER_USERS,
        {
            "user.signed_up": on(users.on_user_signed_up),
            "user.deleted": on(users.on_user_deleted),
            "meeting.scheduled": on(applications.on_meeting_changed),
            "meeting.cancelled": on(applications.on_meeting_changed),
        },
    )
    bus.subscribe(
        catalog.DISPATCHER_NOTIFICATIONS,
        {
            "notification.requested": on(requests.on_notification_requested),
            "notification.cancel_requested": on(requests.on_notification_cancel_requested),
            "match.found": on(matches.on_match_found),
            "application.status_changed": on(applications.on_application_status_changed),
            "reminder.due": on(applications.on_reminder_due),
            "digest.due": on(digests.on_digest_due),
        },
        priorities=True,
    )
    bus.subscribe(
        catalog.DISPATCHER_JOBS,
        {
            "job.posted": on(jobs.on_job_posted),
            "job.updated": on(jobs.on_job_posted),
            "job.closed": on(jobs.on_job_closed),
            "job.expired": on(jobs.on_job_expired),
        },
    )
    bus.subscribe(catalog.DISPATCHER_TICKS, {"tick.daily": on(retention.on_daily_tick)})
    bus.subscribe(
        catalog.DISPATCHER_DELIVERIES,
        {"delivery.due": functools.partial(on_delivery_due, deps=delivery)},
        priorities=True,
        retry_delays=settings.delivery_retry_delays,
        defer_steps=DEFER_STEPS,
    )
    bus.subscribe(
        catalog.DISPATCHER_URGENT,
        {"delivery.urgent": functools.partial(on_delivery_due, deps=delivery)},
        prefetch=URGENT_PREFETCH,
        retry_delays=settings.delivery_retry_delays,
        defer_steps=DEFER_STEPS,
    )


def configured(settings: Settings) -> dict[str, str]:
    """What the start-up log says about mail (never a secret)."""
    if settings.smtp_host:
        return {"mail": f"smtp {settings.smtp_host}:{settings.smtp_port}"}
    if settings.sendgrid_api_key:
        return {"mail": "sendgrid"}
    return {"mail": f"outbox {settings.outbox_dir}"}


# how the cache's listening connection shows in pg_stat_activity
LISTENER = "herald-dispatcher-recipients"


def recipient_cache(
    settings: Settings, metrics: DispatcherMetrics, service: str
) -> RecipientCache | None:
    if not settings.recipient_cache_seconds:
        return None
    dsn = settings.database_url.get_secret_value()
    return RecipientCache(
        lambda: asyncpg.connect(dsn, timeout=10, server_settings={"application_name": LISTENER}),
        metrics,
        service,
        ttl=settings.recipient_cache_seconds,
    )


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    settings = runtime.settings
    metrics = DispatcherMetrics.on(runtime.metrics)
    renderer = Renderer(settings.templates_dir)
    async with (
        guarded_client(settings.allow_private_urls, timeout=settings.http_timeout) as guarded,
        trusted_client(timeout=settings.http_timeout) as trusted,
    ):
        context = ChannelContext(settings, guarded, trusted)
        mail = build_transport(settings, trusted)
        try:
            channels = build_channels(context, mail, runtime.pool)
            log.info("channels_ready", channels=sorted(channels), **configured(settings))
            sealer = Sealer.from_settings(settings)
            grace = settings.plaintext_grace_seconds
            await endpoint_sealing.prepare(runtime.pool, sealer, grace=grace)
            inline = InlineSlots(settings.inline_deliveries, settings.drain_timeout)
            delivery = DeliveryDeps(
                pool=runtime.pool,
                bus=runtime.bus,
                channels=channels,
                settings=settings,
                sealer=sealer,
                outcomes=Outcomes(
                    pool=runtime.pool,
                    bus=runtime.bus,
                    metrics=metrics,
                    disable_after=settings.disable_after_failures,
                ),
                limiter=RateLimiter(runtime.pool, settings.recipient_rate_per_minute),
                inline=inline if settings.inline_deliveries else None,
            )
            cache = recipient_cache(settings, metrics, runtime.name)
            intake = IntakeDeps(
                pool=runtime.pool,
                bus=runtime.bus,
                planner=Planner(
                    renderer=renderer,
                    settings=settings,
                    metrics=metrics,
                    deliveries=delivery,
                    service=runtime.bus.service,
                ),
                deliveries=delivery,
                settings=settings,
                metrics=metrics,
                mail=mail,
                sealer=sealer,
                recipient_cache=cache,
            )
            subscribe(runtime, intake, delivery)
            if isinstance(mail, OutboxTransport):
                runtime.bus.listen(["user.deleted"], forget_mail_here(mail))
            background = [
                run_releaser(runtime.pool, runtime.bus),
                inline.run(),
                endpoint_sealing.keep_sealed(runtime.pool, sealer, grace=grace),
            ]
            yield background + ([cache.run()] if cache else [])
        finally:
            await mail.close()
