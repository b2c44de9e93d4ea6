"""One way for HTTP channels to call out: transport failures become outcomes.

The session handed to a channel decides what may be reached: for user-supplied URLs
it refuses non-public addresses at connect time (``UnsafeUrl``); ``call`` turns that,
timeouts and broken connections into ``DeliveryResult``s, and an answer into a
``Reply`` already read (at most ``BODY_MAX`` bytes of it), so a channel only deals
with the answers it got. Redirects are never followed.

An answer comes from whoever the URL names, a user's own server included, and is
read on the dispatcher's one event loop: a parse that takes a second stalls every
delivery for that second. So what a channel learns from an answer it learns through
``Reply.text`` (the first ``TEXT_MAX`` bytes, for error words and messages) or
``Reply.json()`` (at most ``BODY_MAX`` bytes, nesting refused like any malformed
JSON), never by scanning ``Reply.body`` itself; and a pattern searched in that text
must not backtrack (literals, or classes that cannot overlap what follows them).

Chat webhook URLs are secrets (the token is in the path), so no detail made here
quotes the URL, only its host.
"""

from __future__ import annotations

import codecs
import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..url_guard import UnsafeUrl
from ._base import DeliveryResult

__all__ = ["BODY_MAX", "TEXT_MAX", "Reply", "call", "json_object"]

# more than any answer a channel reads (Discord's created message echoes an embed of
# at most 6,000 characters); a hostile receiver cannot make us hold or parse more
BODY_MAX = 64 * 1024
# what is read as text: services say what went wrong in a line or two
TEXT_MAX = 4 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, fully read: status, headers (case-insensitive), body."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes = b""
    encoding: str = "utf-8"  # the charset the answer declared, if Python knows it

    @property
    def text(self) -> str:
        """The first ``TEXT_MAX`` bytes of the body as text: all any channel scans."""
        head = self.body[:TEXT_MAX]
        try:
            return head.decode(self.encoding, errors="replace")
        except (LookupError, UnicodeError):  # "zlib" is no text encoding; "idna" raises anyway
            return head.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body (its first ``BODY_MAX`` bytes) as JSON; ``ValueError`` when it is
        not, or when it nests deeper than the parser goes."""
        try:
            return jsonlib.loads(self.body[:BODY_MAX])
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Reply | DeliveryResult:
    """Send one request without following redirects; the answer, or why there is none.

    ``json`` is sent compact, UTF-8, as ``application/json``; ``content`` as given.
    """
    if json is not None:
        content = jsonlib.dumps(
            json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        merged = CIMultiDict(headers or {})
        merged.setdefault("content-type", "application/json")
        headers = merged
    try:
        target = URL(url)
    except (ValueError, TypeError) as exc:
        return DeliveryResult.permanent(f"invalid URL: {str(exc).removeprefix('Invalid URL: ')}")
    try:
        async with session.request(
            method, target, data=content, headers=headers, params=params, allow_redirects=False
        ) as response:
            body = await _read_capped(response.content, BODY_MAX)
            return Reply(response.status, response.headers, body, _encoding(response.charset))
    except UnsafeUrl as exc:
        return DeliveryResult.permanent(exc.reason)
    except TimeoutError as exc:  # before OSError: TimeoutError is one
        return DeliveryResult.transient(f"timeout: {type(exc).__name__}")
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        return DeliveryResult.permanent(f"invalid URL: {_describe(exc, target)}")
    except (aiohttp.ClientError, OSError) as exc:
        unsafe = _unsafe_cause(exc)
        if unsafe is not None:
            return DeliveryResult.permanent(unsafe.reason)
        return DeliveryResult.transient(
            f"connection error: {type(exc).__name__}: {_describe(exc, target)}"
        )


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is left unread (and the
    connection is then closed rather than reused)."""
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _encoding(charset: str | None) -> str:
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _describe(exc: BaseException, url: URL) -> str:
    """What went wrong, without the URL: aiohttp puts the whole URL into the text of
    its URL and response errors, and a chat webhook's URL is a secret."""
    if isinstance(exc, aiohttp.InvalidURL):
        if not url.host:
            return "it has no host"
        return f"{url.host}: {exc.description or 'malformed'}"
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return f"scheme {url.scheme!r} is not allowed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{url.host}: {exc.status} {exc.message}"
    return str(exc) or str(url.host)


def _unsafe_cause(exc: BaseException) -> UnsafeUrl | None:
    """An ``UnsafeUrl`` that aiohttp wrapped into one of its own errors."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, UnsafeUrl):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def json_object(reply: Reply) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when it is not one (services do answer
    errors with HTML or plain text)."""
    try:
        parsed = reply.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
