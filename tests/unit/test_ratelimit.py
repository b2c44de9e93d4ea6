"""Which rate-limit buckets a delivery draws on (services/dispatcher/ratelimit.py);
the reservations themselves run against PostgreSQL in tests/integration."""

from __future__ import annotations

import uuid

import pytest

from services.dispatcher.ratelimit import CHANNEL_LIMITS, Limit, limits_for, target_key
from shared.endpoints import Endpoint

RECIPIENT = Limit(30, 60.0)


def endpoint(
    type_: str,
    *,
    user_id: str = "u1",
    id_: uuid.UUID | None = None,
    url: str | None = None,
    chat_id: str | None = None,
) -> Endpoint:
    url = url if url is not None or chat_id else f"https://example.com/hook/{uuid.uuid4().hex}"
    return Endpoint(id_ or uuid.uuid4(), user_id, type_, url, chat_id, None)


@pytest.mark.parametrize(
    ("limit", "interval"),
    [(Limit(30, 60.0), 2.0), (Limit(1, 1.0), 1.0), (Limit(30, 1.0), 1 / 30), (Limit(4, 1.0), 0.25)],
)
def test_interval_is_the_period_shared_by_the_rate(limit: Limit, interval: float) -> None:
    assert limit.interval == pytest.approx(interval)


def test_every_delivery_counts_against_its_recipient() -> None:
    for type_ in ("email", "inapp", "webhook", "apprise", "discord", "slack", "teams", "telegram"):
        keys = limits_for(endpoint(type_, user_id="alice"), RECIPIENT)
        assert keys["user:alice"] == RECIPIENT


def test_recipients_have_buckets_of_their_own() -> None:
    alice = limits_for(endpoint("webhook", user_id="alice"), RECIPIENT)
    bob = limits_for(endpoint("webhook", user_id="bob"), RECIPIENT)
    assert set(alice) == {"user:alice"}
    assert set(bob) == {"user:bob"}


@pytest.mark.parametrize(
    ("type_", "limit"),
    [
        ("discord", Limit(30, 60.0)),  # about 30 a minute per webhook
        ("slack", Limit(1, 1.0)),
        ("teams", Limit(4, 1.0)),
    ],
)
def test_chat_webhooks_are_limited_per_endpoint(type_: str, limit: Limit) -> None:
    e = endpoint(type_, user_id="alice")
    assert limits_for(e, RECIPIENT) == {"user:alice": RECIPIENT, target_key(e): limit}


def test_two_endpoints_for_one_webhook_share_its_bucket() -> None:
    one = endpoint("discord", url="https://discord.com/api/webhooks/1/abc")
    two = endpoint("discord", user_id="u2", url="https://discord.com/api/webhooks/1/abc")
    assert target_key(one) == target_key(two)
    # and the key does not carry the URL, which is a secret
    assert "abc" not in target_key(one)


def test_two_endpoints_of_one_type_do_not_share_a_bucket() -> None:
    one, two = endpoint("discord"), endpoint("discord")
    assert set(limits_for(one, RECIPIENT)) & set(limits_for(two, RECIPIENT)) == {"user:u1"}


def test_telegram_is_limited_per_chat_and_per_bot() -> None:
    e = endpoint("telegram", user_id="alice", chat_id="-100777")
    assert limits_for(e, RECIPIENT) == {
        "user:alice": RECIPIENT,
        target_key(e): Limit(1, 1.0),  # about one message a second per chat
        "telegram": Limit(30, 1.0),  # about 30 a second for the whole bot
    }


def test_every_telegram_endpoint_shares_the_bot_bucket() -> None:
    a = limits_for(endpoint("telegram", user_id="alice", chat_id="1"), RECIPIENT)
    b = limits_for(endpoint("telegram", user_id="bob", chat_id="2"), RECIPIENT)
    assert set(a) & set(b) == {"telegram"}


@pytest.mark.parametrize("type_", ["email", "inapp", "webhook", "apprise", "my_custom_channel"])
def test_channels_without_published_limits_get_only_the_recipient_limit(type_: str) -> None:
    assert type_ not in CHANNEL_LIMITS
    assert limits_for(endpoint(type_, user_id="alice"), RECIPIENT) == {"user:alice": RECIPIENT}


def test_the_recipient_limit_passed_in_is_the_one_used() -> None:
    strict = Limit(2, 60.0)
    assert limits_for(endpoint("slack"), strict)["user:u1"] == strict


@pytest.mark.parametrize("type_", ["email", "inapp", "webhook", "discord", "slack", "telegram"])
def test_without_a_recipient_limit_only_the_providers_limits_remain(type_: str) -> None:
    """Urgent messages skip the per-recipient budget, never the provider's limits."""
    e = endpoint(type_, user_id="alice")
    keys = limits_for(e, None)
    assert "user:alice" not in keys
    assert keys == {k: v for k, v in limits_for(e, RECIPIENT).items() if k != "user:alice"}
