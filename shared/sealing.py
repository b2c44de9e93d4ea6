"""Credentials sealed at rest: Fernet (AES-128-CBC + HMAC-SHA256) under keys that
can be rotated.

    sealer = Sealer.from_settings(settings)
    token = sealer.seal(url, bound_to=f"{endpoint_id}/url")
    url = sealer.unseal(token, bound_to=f"{endpoint_id}/url")

``HERALD_ENCRYPTION_KEYS`` lists the keys: the first seals, every one opens
(``MultiFernet``). So a new key is added last everywhere, then moved first, then
``herald keys rotate`` reseals every row under it, and then the old one can be
dropped: one rolling restart per step, so no pod ever meets a value sealed under a
key it lacks (``shared.cli.ROTATION``). Without the setting one key is
derived from ``HERALD_SECRET_KEY`` (HKDF-SHA256), so a workstation needs nothing
more; the word ``derived`` in the list stands for that key, which is how a
deployment moves from it to keys of its own.

A sealed value is bound to where it is stored (the endpoint's id and column): a
token copied into another row or column no longer opens, so whoever can write the
table but lacks the key cannot send one user's secret to another's URL.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.credential_rules import DERIVED_KEY
from shared.errors import HeraldError
from shared.settings import Settings

# the derivation's purpose: keys made from the secret key for other uses never match
_INFO = b"herald/channel-endpoints/sealing/v1"
_SEPARATOR = "\x00"


class CannotUnseal(HeraldError):
    """No configured key opens this value, or it was moved from where it was sealed:
    the keys are misconfigured (one was dropped before ``herald keys rotate``)."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key HKDF derives from the secret key."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


def generate_key() -> str:
    return Fernet.generate_key().decode()


class Sealer:
    def __init__(self, keys: Sequence[bytes], *, derived: bool = False) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        # True when the only key is the derived one (nothing configured)
        self.derived = derived

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None

        def derive() -> bytes:
            if secret is None:
                raise ValueError(f'"{DERIVED_KEY}" needs HERALD_SECRET_KEY')
            return derived_key(secret)

        configured = [k.get_secret_value() for k in settings.encryption_keys]
        if not configured:
            return cls([derive()], derived=True)
        return cls([derive() if k == DERIVED_KEY else k.encode() for k in configured])

    def seal(self, plain: str, *, bound_to: str) -> str:
        return self._fernet.encrypt(f"{bound_to}{_SEPARATOR}{plain}".encode()).decode()

    def unseal(self, token: str, *, bound_to: str) -> str:
        try:
            text = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise CannotUnseal(f"no configured key opens the sealed {_column(bound_to)}") from exc
        place, _, plain = text.partition(_SEPARATOR)
        if place != bound_to:
            raise CannotUnseal(f"a sealed {_column(bound_to)} was moved from where it was sealed")
        return plain

    def reseal(self, token: str) -> str:
        """The same value sealed under the first key (``MultiFernet.rotate``)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise CannotUnseal("no configured key opens a sealed value") from exc


def _column(bound_to: str) -> str:
    # "<id>/url" → "url": errors name the column, never a value
    return bound_to.rpartition("/")[2] or "value"
