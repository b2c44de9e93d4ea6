"""Who may call the gateway: users by JWT (HS256 by default, RS256 from a JWKS),
systems and operators by API keys with scopes."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.receivers import Receiver, Reply
from tests.support import free_port

__all__ = ["gateway", "gateway_factory"]


async def test_a_user_token_opens_that_users_preferences(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        answer = await client.get("/v1/me/preferences")
    assert answer.status_code == 200
    assert answer.json()["email_enabled"] is True
    assert answer.json()["timezone"] == "UTC"


async def test_missing_or_bad_credentials_are_refused_without_detail_leaks(
    gateway: Gateway,
) -> None:
    user = await gateway.user()
    assert gateway.settings.secret_key is not None
    secret = gateway.settings.secret_key.get_secret_value()
    now = int(time.time())
    tokens = {
        "expired": jwt.encode({"sub": user, "exp": now - 3600}, secret, "HS256"),
        "another key": jwt.encode({"sub": user, "exp": now + 60}, "x" * 32, "HS256"),
        "no expiry": jwt.encode({"sub": user}, secret, "HS256"),
        "no subject": jwt.encode({"exp": now + 60}, secret, "HS256"),
        "unsigned": jwt.encode({"sub": user, "exp": now + 60}, None, "none"),
        "garbage": "not-a-jwt",
        "unknown API key": "hk_" + "A" * 43,
    }
    async with gateway.client() as client:
        missing = await client.get("/v1/me/preferences")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        for what, token in tokens.items():
            answer = await client.get(
                "/v1/me/preferences", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 401, what
            assert token not in answer.text
            assert secret not in answer.text


async def test_rs256_tokens_are_checked_against_the_configured_jwks(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    async with Receiver("plain") as idp:
        idp.script("/.well-known/jwks.json", *[Reply(200, jwks)] * 10)
        gw = await gateway_factory(
            jwt_jwks_url=f"{idp.url}/.well-known/jwks.json",
            jwt_audience="herald",
            jwt_issuer="https://idp.example",
        )
        user = await gw.user()
        claims = {
            "sub": user,
            "exp": int(time.time()) + 60,
            "aud": "herald",
            "iss": "https://idp.example",
        }

        def rs256(key: rsa.RSAPrivateKey, **changes: object) -> str:
            return jwt.encode({**claims, **changes}, key, "RS256", headers={"kid": "k1"})

        cases = {
            "signed by the provider": (rs256(signing_key), 200),
            "signed by a stranger": (rs256(stranger_key), 401),
            "another audience": (rs256(signing_key, aud="other"), 401),
            "another issuer": (rs256(signing_key, iss="https://evil.example"), 401),
            "HS256 with Herald's secret": (gw.token(user, aud="herald"), 401),
        }
        async with gw.client() as client:
            for what, (token, expected) in cases.items():
                answer = await client.get(
                    "/v1/me/preferences", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == expected, what
        assert idp.to("/.well-known/jwks.json")  # the keys came from the provider


async def test_keys_reach_what_their_scopes_allow_and_users_reach_no_operations(
    gateway: Gateway,
) -> None:
    user = await gateway.user()
    writer = await gateway.as_key("events:write")
    admin = await gateway.as_key("admin")
    person = gateway.as_user(user)
    async with writer, admin, person:
        for client in (writer, person):
            assert (await client.get("/v1/admin/queues")).status_code == 403
            assert (await client.get("/v1/admin/parked")).status_code == 403
            assert (await client.delete(f"/v1/users/{user}")).status_code == 403
            assert (await client.post("/v1/admin/parked/replay", json={})).status_code == 403
        assert (await admin.get("/v1/admin/queues")).status_code == 200
        # keys act for systems, not for a user: /v1/me is for user tokens
        assert (await writer.get("/v1/me/preferences")).status_code == 403
        # and a user cannot publish events as a system
        event = {"specversion": "1.0", "id": "e1", "source": "t", "type": "user.deleted",
                 "data": {"user_id": user}}  # fmt: skip
        answer = await person.post(
            "/v1/events", json=event, headers={"content-type": "application/cloudevents+json"}
        )
        assert answer.status_code == 403


async def test_keys_made_with_the_old_scope_name_still_publish(gateway: Gateway) -> None:
    async with await gateway.as_key("events:publish") as client:
        answer = await client.post(
            "/v1/events",
            content=json.dumps({"user_id": "u-legacy", "email": "legacy@example.com"}),
            headers={
                "content-type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": "legacy-1",
                "ce-source": "tests",
                "ce-type": "user.signed_up",
            },
        )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": ["legacy-1"], "duplicates": []}


async def test_a_bearer_api_key_works_like_the_header(gateway: Gateway) -> None:
    key = await gateway.api_key("admin")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        answer = await client.get("/v1/admin/queues", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200


async def test_an_unreachable_identity_provider_is_a_503_not_a_401(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    # nothing listens there: the keys cannot be fetched, which says nothing about the token
    gw = await gateway_factory(
        jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json",
        jwt_audience="herald",
        jwt_issuer="https://idp.example",
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"sub": "ada", "exp": int(time.time()) + 60}, key, "RS256", headers={"kid": "k1"}
    )
    async with gw.client({"Authorization": f"Bearer {token}"}) as client:
        answer = await client.get("/v1/me/preferences")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
