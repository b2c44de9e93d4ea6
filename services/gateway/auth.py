"""Who is calling: end users by bearer JWT, systems and operators by API key.

    AuthError(detail)              401: no credential, or one we do not accept
    └── KeysUnavailable            503: the identity provider's JWKS cannot be fetched

A user's token is a JWT whose ``sub`` is the user id the product told Herald about
(``user.signed_up``). By default it is HS256 with ``HERALD_SECRET_KEY``; with
``HERALD_JWT_JWKS_URL`` set it is RS256, signed by a key of that set, and HS256 is
no longer accepted (one issuer per deployment, so a leaked Herald secret cannot mint
tokens the identity provider never issued). ``exp`` and ``sub`` are required;
``aud`` and ``iss`` are checked when configured. A token holds until its ``exp``
plus ``LEEWAY_SECONDS`` (clock skew): that is also when a live stream opened with it
is closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from shared.apikeys import KEY_PREFIX, ApiKey
from shared.settings import Settings

LEEWAY_SECONDS = 30
MAX_USER_ID = 256


class AuthError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class KeysUnavailable(AuthError):
    pass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (``user_id``) or an API key (``key``)."""

    kind: Literal["user", "key"]
    user_id: str | None = None
    key: ApiKey | None = None
    # Unix time the credential stops being accepted: a user token's; an API key
    # holds until revoked (None)
    valid_until: float | None = None

    @property
    def rate_key(self) -> str:
        return (
            f"u:{self.user_id}" if self.kind == "user" else f"k:{self.key.id if self.key else ''}"
        )


@dataclass(frozen=True)
class UserToken:
    user_id: str
    # its exp plus the leeway, Unix seconds
    valid_until: float


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


class TokenVerifier:
    """Checks users' JWTs; one per application (it caches the JWKS)."""

    def __init__(self, settings: Settings) -> None:
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._jwks: jwt.PyJWKClient | None = None
        self._secret: str | None = None
        if settings.jwt_jwks_url:
            # keys are fetched once and kept 5 minutes; an unknown kid (a rotation)
            # fetches again at most every 30 s
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, timeout=5)
        else:
            assert settings.secret_key is not None  # load_settings always fills it
            self._secret = settings.secret_key.get_secret_value()

    async def user_id(self, token: str) -> str:
        return (await self.verify(token)).user_id

    async def verify(self, token: str) -> UserToken:
        key: Any
        if self._jwks is not None:
            algorithms = ["RS256"]
            try:
                # PyJWKClient fetches with urllib: off the event loop
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientConnectionError as exc:
                raise KeysUnavailable("the identity provider's keys cannot be fetched") from exc
            except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
                raise AuthError("the token is not signed by a known key") from exc
            key = signing_key.key
        else:
            algorithms, key = ["HS256"], self._secret
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the token is not valid: {exc}") from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_USER_ID:
            raise AuthError("the token's sub is not a user id")
        # required and checked to be a number by decode
        return UserToken(subject, float(claims["exp"]) + LEEWAY_SECONDS)
