"""HERALD_* settings: parsed from the environment, refused with a reason when wrong."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import InvalidSettings, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HERALD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "var"))


def test_defaults_work_on_a_developer_machine() -> None:
    settings = Settings()
    assert settings.amqp_url.get_secret_value().startswith("amqp://guest:guest@127.0.0.1")
    assert settings.database_url.get_secret_value().endswith("/herald")
    assert settings.retry_delays == [1.0, 5.0, 30.0, 120.0, 600.0]
    assert settings.metrics_port("dispatcher") == 9103


def test_lists_are_read_as_comma_separated_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_RETRY_DELAYS", "0.5, 2,10")
    monkeypatch.setenv("HERALD_ALLOW_PRIVATE_URLS", "10.1.2.0/24,fd00::1")
    monkeypatch.setenv("HERALD_FORWARDED_ALLOW_IPS", "10.0.0.0/8, fd00::/8")
    settings = Settings()
    assert settings.retry_delays == [0.5, 2.0, 10.0]
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "fd00::/8"]
    assert settings.allow_private_urls == [
        ipaddress.ip_network("10.1.2.0/24"),
        ipaddress.ip_network("fd00::1/128"),
    ]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("HERALD_RETRY_DELAYS", "1,0,5", "positive delay"),
        ("HERALD_DEDUP_STRATEGIES", "match=sometimes", "default, aggressive or off"),
        ("HERALD_CHANNELS", "pager", "is not name=value"),
        ("HERALD_NAMESPACE", "Has Spaces", "namespace must match"),
        ("HERALD_PREFETCH", "0", "greater than or equal to 1"),
        ("HERALD_SMTP_TLS", "maybe", "'none', 'starttls' or 'tls'"),
        ("HERALD_FORWARDED_ALLOW_IPS", "ingress-nginx", "does not appear to be an IPv4 or IPv6"),
    ],
)
def test_bad_values_are_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://app:topsecret@db/herald")
    assert "topsecret" not in repr(Settings())


def test_without_a_secret_key_a_private_dev_key_is_made_once_and_reused() -> None:
    first = load_settings()
    second = load_settings()
    assert first.uses_dev_secret
    assert first.secret_key is not None
    assert second.secret_key is not None
    key = first.secret_key.get_secret_value()
    assert len(key) >= 48
    assert key == second.secret_key.get_secret_value()
    mode = stat.S_IMODE(first.dev_secret_path.stat().st_mode)
    assert mode == 0o600


VAULT_KEY = "from-the-vault-3f9c1e7a55d04b2e9a61c8f0"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("CHANGE-ME", "a placeholder"),
        ("change_me", "a placeholder"),
        ("Change Me Please", "a placeholder"),
        ("x" * 64, "a placeholder"),
        ("s3cr3t-but-only-31-bytes-long!!", "too short: 31 bytes, at least 32"),
        ("ключ-на-16-симв", "too short"),  # bytes are counted, not characters
    ],
)
def test_weak_secret_keys_are_refused_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, key: str, reason: str
) -> None:
    monkeypatch.setenv("HERALD_SECRET_KEY", key)
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    message = str(caught.value)
    assert f"HERALD_SECRET_KEY: {reason}" in message
    assert key not in message
    assert "openssl rand" in message


def test_a_32_byte_secret_key_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SECRET_KEY", "s3cr3t-and-exactly-32-bytes-long")
    assert load_settings().secret_key is not None


@pytest.mark.parametrize(
    ("audience", "issuer", "missing"),
    [
        (None, None, "HERALD_JWT_AUDIENCE and HERALD_JWT_ISSUER are not"),
        ("herald", None, "HERALD_JWT_ISSUER is not"),
        (None, "https://idp.example", "HERALD_JWT_AUDIENCE is not"),
    ],
)
def test_a_jwks_url_needs_an_audience_and_an_issuer(
    monkeypatch: pytest.MonkeyPatch, audience: str | None, issuer: str | None, missing: str
) -> None:
    monkeypatch.setenv("HERALD_JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json")
    for name, value in (("HERALD_JWT_AUDIENCE", audience), ("HERALD_JWT_ISSUER", issuer)):
        if value:
            monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings, match=missing):
        load_settings()
    monkeypatch.setenv("HERALD_JWT_AUDIENCE", "herald")
    monkeypatch.setenv("HERALD_JWT_ISSUER", "https://idp.example")
    assert load_settings().jwt_audience == "herald"


def test_a_service_with_a_weak_key_exits_saying_why() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_SECRET_KEY"] = "CHANGE-ME"
    done = subprocess.run(
        [sys.executable, "-m", "services.scheduler"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "herald scheduler: invalid settings:" in done.stderr
    assert "HERALD_SECRET_KEY: a placeholder" in done.stderr
    assert "Traceback" not in done.stderr
    assert "CHANGE-ME" not in done.stderr


def test_a_configured_secret_key_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SECRET_KEY", VAULT_KEY)
    settings = load_settings()
    assert not settings.uses_dev_secret
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == VAULT_KEY
    assert not settings.dev_secret_path.exists()


def test_the_cron_table_is_configured_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HERALD_SCHEDULES",
        '{"minute": "off", "nightly": "0 2 * * *",'
        ' "daily": {"cron": "0 8 * * *", "timezone": "Europe/Berlin", "catchup": "all"}}',
    )
    schedules = Settings().schedules
    assert schedules["minute"] is None
    nightly, daily = schedules["nightly"], schedules["daily"]
    assert nightly is not None
    assert (nightly.cron, nightly.catchup) == ("0 2 * * *", None)
    assert daily is not None
    assert (daily.timezone, daily.catchup) == ("Europe/Berlin", "all")


def test_a_schedule_name_must_make_a_tick_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SCHEDULES", '{"Every Day": "0 9 * * *"}')
    with pytest.raises(ValidationError, match="tick"):
        Settings()
    monkeypatch.setenv("HERALD_SCHEDULES", '{"daily": {"cron": "0 9 * * *", "catchup": "twice"}}')
    with pytest.raises(ValidationError, match="catchup"):
        Settings()
