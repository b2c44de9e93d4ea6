"""The gateway's pure rules: token checks, cursors, body limits' wiring, and that no
/v1 route was left without a rate limit."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import SecretStr, ValidationError

from services.gateway.app import create_app
from services.gateway.auth import AuthError, TokenVerifier
from services.gateway.inbox import BadCursor, Cursor
from services.gateway.routes.alerts import AlertFields
from services.gateway.routes.preferences import Preferences, PreferencesPatch
from shared.settings import Settings

SECRET = "unit-secret-" + "0123456789abcdef" * 4
# routes that take their limit inside (streams authenticate from the query string too)
LIMITED_INSIDE = {"/v1/me/notifications/stream", "/v1/me/notifications/ws"}


def _settings(**overrides: object) -> Settings:
    return Settings(secret_key=SecretStr(SECRET), **overrides)  # type: ignore[arg-type]


def test_every_v1_route_declares_a_rate_limit() -> None:
    app = create_app(_settings())
    unlimited = []
    for route in app.routes:
        if not isinstance(route, APIRoute | APIWebSocketRoute) or not route.path.startswith("/v1"):
            continue
        if route.path in LIMITED_INSIDE:
            continue
        calls = [d.call for d in route.dependant.dependencies]
        if not any(hasattr(call, "herald_rate_limit") for call in calls):
            unlimited.append(route.path)
    assert unlimited == []


async def test_a_good_hs256_token_names_its_user() -> None:
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 60}, SECRET, "HS256")
    assert await TokenVerifier(_settings()).user_id(token) == "ada"


@pytest.mark.parametrize(
    ("claims", "key", "algorithm"),
    [
        ({"sub": "ada", "exp": 1}, SECRET, "HS256"),  # long expired
        ({"sub": "ada"}, SECRET, "HS256"),  # no expiry
        ({"exp": 4_000_000_000}, SECRET, "HS256"),  # no subject
        ({"sub": "", "exp": 4_000_000_000}, SECRET, "HS256"),
        ({"sub": "x" * 257, "exp": 4_000_000_000}, SECRET, "HS256"),
        ({"sub": "ada", "exp": 4_000_000_000}, "another-secret-0123456789abcdef0", "HS256"),
        ({"sub": "ada", "exp": 4_000_000_000}, SECRET, "HS512"),  # not the configured one
        ({"sub": "ada", "exp": 4_000_000_000}, None, "none"),
    ],
)
async def test_bad_tokens_are_refused(
    claims: dict[str, object], key: str | None, algorithm: str
) -> None:
    token = jwt.encode(claims, key, algorithm)
    with pytest.raises(AuthError):
        await TokenVerifier(_settings()).user_id(token)


async def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = TokenVerifier(_settings(jwt_audience="herald", jwt_issuer="https://idp"))
    good = {"sub": "ada", "exp": int(time.time()) + 60, "aud": "herald", "iss": "https://idp"}
    assert await verifier.user_id(jwt.encode(good, SECRET, "HS256")) == "ada"
    for wrong in ({"aud": "other"}, {"iss": "https://evil"}, {"aud": None}):
        claims = {k: v for k, v in {**good, **wrong}.items() if v is not None}
        with pytest.raises(AuthError):
            await verifier.user_id(jwt.encode(claims, SECRET, "HS256"))


def test_a_cursor_round_trips_and_strangers_are_refused() -> None:
    cursor = Cursor(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in (
        "",
        "x",
        "bm90IGpzb24",
        cursor.encode()[:-3],
        "WyIyMDI2LTExLTIzVDEyOjAwOjAwIiwgIngiXQ",
    ):
        with pytest.raises(BadCursor):
            Cursor.decode(bad)


@pytest.mark.parametrize(
    ("start", "end"), [("22:00", "07:00"), ("00:00", "23:59"), ("13:30", "13:31")]
)
def test_quiet_hours_may_span_midnight(start: str, end: str) -> None:
    prefs = Preferences.model_validate({"quiet_hours": {"start": start, "end": end}})
    assert prefs.quiet_hours is not None


@pytest.mark.parametrize(
    "body",
    [
        {"quiet_hours": {"start": "24:00", "end": "07:00"}},
        {"quiet_hours": {"start": "7:00", "end": "08:00"}},
        {"timezone": "Europe/Atlantis"},
        {"min_match_score": float("nan")},
        {"channels": {"fax": True}},
    ],
)
def test_bad_preferences_do_not_validate(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Preferences.model_validate(body)
    with pytest.raises(ValidationError):
        PreferencesPatch.model_validate(body)


def test_a_patch_may_clear_quiet_hours_but_nothing_else() -> None:
    assert PreferencesPatch.model_validate({"quiet_hours": None}).model_fields_set == {
        "quiet_hours"
    }
    with pytest.raises(ValidationError):
        PreferencesPatch.model_validate({"timezone": None})


def test_alert_keywords_are_trimmed_and_deduplicated() -> None:
    alert = AlertFields.model_validate({"keywords": [" python", "python ", "go"]})
    assert alert.keywords == ["python", "go"]
    with pytest.raises(ValidationError):
        AlertFields.model_validate({"keywords": ["  "]})
