"""Moved to ``shared.url_guard``: the gateway checks users' URLs too. Kept so the
dispatcher's imports (and anything written against them) keep working."""

from shared.url_guard import (
    IPAddress,
    IPNetwork,
    UnsafeUrl,
    UrlGuard,
    embedded_ipv4,
    is_forbidden,
)

__all__ = ["IPAddress", "IPNetwork", "UnsafeUrl", "UrlGuard", "embedded_ipv4", "is_forbidden"]
