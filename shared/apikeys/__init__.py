"""API keys for systems and operators: what they may do (``_policy``, no I/O) and
how they are stored, checked, listed, revoked and rotated (``_store``)."""

from ._policy import (
    ALIASES,
    GUARDED_TYPES,
    KEY_PREFIX,
    MAX_GRACE,
    SCOPES,
    ApiKey,
    canonical_scopes,
    check_event_types,
    parse_duration,
)
from ._store import (
    LAST_USED_RESOLUTION,
    KeyNotRotatable,
    KeyRecord,
    UnknownKey,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    rotate_api_key,
    verify_api_key,
)

__all__ = [
    "ALIASES",
    "GUARDED_TYPES",
    "KEY_PREFIX",
    "LAST_USED_RESOLUTION",
    "MAX_GRACE",
    "SCOPES",
    "ApiKey",
    "KeyNotRotatable",
    "KeyRecord",
    "UnknownKey",
    "canonical_scopes",
    "check_event_types",
    "create_api_key",
    "list_api_keys",
    "parse_duration",
    "revoke_api_key",
    "rotate_api_key",
    "verify_api_key",
]
