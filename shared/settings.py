"""One frozen settings object, read once in ``main()`` and passed down.

Names are the ``HERALD_*`` contract of DESIGN §8; defaults work on a developer
machine with local RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.credential_rules import (
    check_fernet_keys,
    check_secret_key,
    check_telegram_secret,
)
from shared.webhook_hosts import parse_entry

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SCHEDULE_NAME = re.compile(r"^[a-z0-9_]{1,64}$")

CatchUp = Literal["skip", "once", "all"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class ScheduleSpec(BaseModel):
    """One entry of the scheduler's cron table: ``"0 9 * * *"`` or ``"@every 30s"``,
    in ``timezone``, with its own catch-up policy or the scheduler's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str = Field(min_length=1)
    timezone: str = "UTC"
    catchup: CatchUp | None = None


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _split_pairs(value: object) -> object:
    """``"a=x,b=y"`` → ``{"a": "x", "b": "y"}``; a mapping passes through."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, item = part.partition("=")
        if not sep or not key.strip() or not item.strip():
            raise ValueError(f"{part.strip()!r} is not name=value")
        pairs[key.strip()] = item.strip()
    return pairs


class Settings(BaseSettings):
    # a refused value is not repeated in the error: many of them are secrets
    model_config = SettingsConfigDict(
        env_prefix="HERALD_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/herald")
    namespace: str = "herald"
    data_dir: Path = Path("./var")
    qdrant_url: str | None = None
    # a Qdrant server's API key (its service.api_key), sent with every request
    qdrant_api_key: SecretStr | None = None
    embedding_model_dir: Path | None = None
    # ONNX Runtime's threads for embedding; unset: one per core it sees, which in a
    # container is the node's cores, not the CPU limit
    embedding_threads: int | None = Field(default=None, ge=1)
    # matching: score = vector weight x similarity + skills weight x skill overlap
    match_weight_vector: float = Field(default=0.7, ge=0, le=1)
    match_weight_skills: float = Field(default=0.3, ge=0, le=1)
    # below this nobody hears of a match, whatever their own minimum
    match_threshold: float = Field(default=0.5, ge=0, le=1)
    # jobs older than this are not matched to new résumés
    match_max_age_days: int = Field(default=30, ge=1)
    # a re-match is announced again (score_improved) once its score rose this much
    match_improved_by: float = Field(default=0.05, gt=0, le=1)
    # how many nearest neighbours a new job or résumé scores
    match_candidates: int = Field(default=1000, ge=1, le=100_000)
    secret_key: SecretStr | None = None
    # keys that seal channel endpoints' credentials at rest (webhook URLs and secrets):
    # Fernet keys, comma-separated, the first seals and all open; "derived" stands for
    # the key derived from secret_key, which is used alone when none are given
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # how long an endpoint's URL and secret stay in plain text beside their sealed
    # copy, for pods of a version that reads only the plain columns (a rolling
    # upgrade); the dispatcher clears them afterwards. 0: never kept
    plaintext_grace_seconds: float = Field(default=3600.0, ge=0)
    public_url: str = "http://127.0.0.1:8000"

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    mail_from: str = "Herald <herald@localhost>"
    sendgrid_api_key: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # the bot's @username (without @): users link a chat through t.me/<bot>?start=<code>
    telegram_bot_username: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
    # sent by Telegram in X-Telegram-Bot-Api-Secret-Token with every update to
    # POST /v1/telegram/webhook (`herald telegram set-webhook` registers it)
    telegram_webhook_secret: SecretStr | None = None
    sendgrid_api_url: str = "https://api.sendgrid.com"
    smtp_pool_size: int = Field(default=4, ge=1, le=100)
    # custom channels: "name=package.module:Class,..." (entry points in the
    # "herald.channels" group are found without this)
    channels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # a directory whose templates override the packaged ones, file by file
    templates_dir: Path | None = None
    http_timeout: float = Field(default=10.0, gt=0)
    # Delivery retries: seconds, minutes, then hours, about 28 h in all (like Svix).
    delivery_retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    # de-duplication per notification type: "type=default|aggressive|off,..."
    dedup_strategies: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # an endpoint failing permanently this many times in a row is disabled
    disable_after_failures: int = Field(default=5, ge=1)
    # notifications per recipient per minute, over all channels; excess waits
    recipient_rate_per_minute: int = Field(default=30, ge=1)
    # sends a dispatcher makes straight after recording them, without the delivery
    # queue (0: every delivery goes through the queue)
    inline_deliveries: int = Field(default=256, ge=0)
    # how long a recipient read for notification.requested may be served from memory
    # (changes drop it at once; this bounds changes made around the triggers); 0: off
    recipient_cache_seconds: float = Field(default=30.0, ge=0)
    allow_private_urls: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    # the hosts each chat type's webhook URLs may name (shared/webhook_hosts.py):
    # "host", "*.domain", either after "http://" to allow plain http as well
    discord_webhook_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "discord.com",
            "ptb.discord.com",
            "canary.discord.com",
            "discordapp.com",
        ]
    )
    slack_webhook_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["hooks.slack.com", "hooks.slack-gov.com"]
    )
    # legacy connectors, then Workflows (Power Automate) on Logic Apps and Power Platform
    teams_webhook_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "*.webhook.office.com",
            "*.logic.azure.com",
            "*.api.powerplatform.com",
        ]
    )

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Peers whose X-Forwarded-For names the real client (addresses or networks, "*"
    # for any): the reverse proxy or Ingress controller in front of the gateway. Rate
    # limits by client address key on that client; anyone else's header is ignored.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    # End users' bearer tokens: HS256 signed with secret_key, or, when a JWKS URL is
    # set, RS256 signed by one of its keys (an identity provider's).
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # requests per minute per caller and route (shared by every gateway replica)
    gateway_rate_per_minute: int = Field(default=60, ge=1)
    # routes that send, erase, replay or change channels
    gateway_sensitive_rate_per_minute: int = Field(default=10, ge=1)
    # POST /v1/events, per API key: systems publish far more than people click
    gateway_ingest_rate_per_minute: int = Field(default=1200, ge=1)
    # largest request body, except event ingestion (5 MiB)
    gateway_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    metrics_host: str = "127.0.0.1"
    scheduler_metrics_port: int = 9101
    matcher_metrics_port: int = 9102
    dispatcher_metrics_port: int = 9103
    # the gateway's /metrics, apart from its public API port
    gateway_metrics_port: int = 9104

    # the scheduler's cron table: entries added to (or replacing) the defaults, as JSON
    # {"name": "cron" | {"cron": ..., "timezone": ..., "catchup": ...} | "off"}
    schedules: dict[str, ScheduleSpec | None] = Field(default_factory=dict)
    # missed slots after downtime: skip them, publish the latest once, or all of them
    # (at most scheduler_catchup_limit per schedule, the most recent)
    scheduler_catchup: CatchUp = "once"
    scheduler_catchup_limit: int = Field(default=24, ge=1, le=10_000)
    # the leader renews its lease every third of this; a dead leader is replaced
    # within two lease periods
    scheduler_lease_seconds: float = Field(default=10.0, ge=1.0, le=600.0)
    # a reminder when an application has not changed for this many days (0: none)
    follow_up_days: int = Field(default=7, ge=0)
    # digests go out at this local hour in each user's time zone (unless they chose
    # another), weekly ones on this day
    digest_hour: int = Field(default=9, ge=0, le=23)
    digest_weekday: Weekday = "monday"
    # retention: notifications (and their deliveries) and parked messages older than this
    retention_days: int = Field(default=90, ge=1)
    parked_retention_days: int = Field(default=30, ge=1)
    # how far ahead of Herald's clock an event's ``time`` may be (producers' clock
    # skew); a later one is clamped to it, so a wrong clock can neither keep an
    # erasure in force for ever nor slip an old event past one
    event_time_allowance_seconds: float = Field(default=60.0, ge=0, le=7 * 86400)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Back-off steps (seconds) of the bus retry queues; one delay queue per step.
    retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [1.0, 5.0, 30.0, 120.0, 600.0]
    )
    prefetch: int = Field(default=32, ge=1, le=10_000)
    drain_timeout: float = Field(default=20.0, ge=0)
    publish_timeout: float = Field(default=10.0, gt=0)
    db_pool_max: int = Field(default=10, ge=1)

    _dev_secret: bool = PrivateAttr(default=False)

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_queue_prefix(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("namespace must match [a-z0-9][a-z0-9_-]* (at most 63 characters)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        check_secret_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _jwks_names_its_tokens(self) -> Settings:
        # Any application of the same identity provider gets tokens signed by the same
        # keys; only aud and iss tell Herald's tokens from theirs.
        if self.jwt_jwks_url:
            missing = [
                name
                for name, value in (
                    ("HERALD_JWT_AUDIENCE", self.jwt_audience),
                    ("HERALD_JWT_ISSUER", self.jwt_issuer),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"HERALD_JWT_JWKS_URL is set but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not: without them a token the "
                    "identity provider issued to any other application would be accepted"
                )
        return self

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedule_entries(cls, value: object) -> object:
        # a bare string is the cron expression; "off" removes a default schedule
        if not isinstance(value, dict):
            return value
        return {
            name: None
            if spec == "off" or spec is None
            else {"cron": spec}
            if isinstance(spec, str)
            else spec
            for name, spec in value.items()
        }

    @field_validator("schedules")
    @classmethod
    def _schedule_names(
        cls, value: dict[str, ScheduleSpec | None]
    ) -> dict[str, ScheduleSpec | None]:
        for name in value:
            if not _SCHEDULE_NAME.match(name):
                raise ValueError(
                    f"schedule name {name!r} must match [a-z0-9_]+ (it names tick.<name>)"
                )
        return value

    @field_validator("allow_private_urls", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        parts = _split_commas(value)
        if isinstance(parts, list):
            return [ipaddress.ip_network(str(p), strict=False) for p in parts]
        return parts

    @field_validator(
        "discord_webhook_hosts", "slack_webhook_hosts", "teams_webhook_hosts", mode="before"
    )
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        parts = _split_commas(value)
        if isinstance(parts, list):
            return [str(parse_entry(str(p))) for p in parts]
        return parts

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _telegram_secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_telegram_secret(value.get_secret_value())
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        check_fernet_keys([key.get_secret_value() for key in value])
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        # uvicorn would take a typo as a host name that never matches: refuse it here
        for entry in value:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator(
        "retry_delays",
        "delivery_retry_delays",
        "encryption_keys",
        "forwarded_allow_ips",
        mode="before",
    )
    @classmethod
    def _parse_lists(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("retry_delays", "delivery_retry_delays")
    @classmethod
    def _delays_positive(cls, value: list[float]) -> list[float]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("retry delays need at least one positive delay")
        return value

    @field_validator("channels", "dedup_strategies", mode="before")
    @classmethod
    def _parse_pairs(cls, value: object) -> object:
        return _split_pairs(value)

    @field_validator("dedup_strategies")
    @classmethod
    def _known_strategies(cls, value: dict[str, str]) -> dict[str, str]:
        for type_, strategy in value.items():
            if strategy not in ("default", "aggressive", "off"):
                raise ValueError(f"{type_}: strategy must be default, aggressive or off")
        return value

    @property
    def dev_secret_path(self) -> Path:
        return self.data_dir / "dev-secret-key"

    @property
    def uses_dev_secret(self) -> bool:
        return self._dev_secret

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    def metrics_port(self, service: str) -> int:
        port: int = getattr(self, f"{service}_metrics_port")
        return port


class InvalidSettings(ValueError):
    """The environment does not describe a deployment Herald can run; the message
    names each variable and why, and never the values (some are secrets)."""


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        where = f"HERALD_{field.upper()}: " if field else ""
        lines.append(f"{where}{error['msg'].removeprefix('Value error, ')}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; fill in a persistent development secret if none is
    set (``uses_dev_secret`` tells, so the caller can warn once logging is set up).
    Raises ``InvalidSettings`` for a setting that cannot be used."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidSettings(describe_errors(exc)) from None
    if settings.secret_key is None:
        settings = settings.model_copy(update={"secret_key": SecretStr(_dev_secret(settings))})
        settings._dev_secret = True
    return settings


def _dev_secret(settings: Settings) -> str:
    # Shared by every local process through the data dir, so links signed by one
    # service verify in another; never suitable for production, hence the warning.
    path = settings.dev_secret_path
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # "x" makes creation atomic: four services starting together agree on one key.
        with path.open("x") as fresh:
            path.chmod(0o600)
            fresh.write(secrets.token_urlsafe(48))
    except FileExistsError:
        pass
    return path.read_text().strip()
