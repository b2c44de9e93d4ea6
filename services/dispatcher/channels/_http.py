"""One way for HTTP channels to call out: transport failures become outcomes.

The client handed to a channel decides what may be reached: for user-supplied URLs
it refuses non-public addresses at connect time (``UnsafeUrl``); this helper turns
that, timeouts and broken connections into ``DeliveryResult``s so a channel only
deals with the answers it got.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..url_guard import UnsafeUrl
from ._base import DeliveryResult


async def call(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response | DeliveryResult:
    """Send one request without following redirects; a response, or why there is none."""
    try:
        return await http.request(method, url, follow_redirects=False, **kwargs)
    except UnsafeUrl as exc:
        return DeliveryResult.permanent(exc.reason)
    except httpx.TimeoutException as exc:
        return DeliveryResult.transient(f"timeout: {type(exc).__name__}")
    except httpx.TransportError as exc:
        return DeliveryResult.transient(f"connection error: {type(exc).__name__}: {exc}")
    except httpx.InvalidURL as exc:
        return DeliveryResult.permanent(f"invalid URL: {exc}")


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when it is not one (services do answer
    errors with HTML or plain text)."""
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
