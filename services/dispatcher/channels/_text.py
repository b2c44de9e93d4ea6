"""Text rules the chat channels share: fit a message into a service's length limits.

Chat services reject a message that is one character too long, so every channel cuts
its text here, by rule, before sending: ``truncate`` shortens and marks the cut with
"…"; ``split_text`` breaks a long text into pieces at paragraph, then line, then word
boundaries, and only cuts inside a word when a word alone is longer than the limit.

Services count length differently, so each function takes the ``measure`` the
service uses: ``len`` counts code points (Discord, whose API runs on Python),
``utf16_len`` UTF-16 code units (what JavaScript and Telegram's entity offsets
count; never less than code points, so it is the safe choice where a service does
not say). A measure may also count a text as it will be sent, escaped
(``lambda s: utf16_len(escape_mrkdwn(s))``); any measure that grows with the text
works, as long as every character counts at least 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Measure = Callable[[str], int]

ELLIPSIS = "…"
# truncate() prefers a word boundary, unless that would give up more than this
# share of the room it has
_WORD_BACKOFF = 0.2


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: characters outside the BMP count twice."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _fit(text: str, start: int, limit: int, measure: Measure) -> int:
    """The largest ``end`` such that ``text[start:end]`` measures at most ``limit``.

    Every character counts at least 1, so no more than ``limit`` of them can fit:
    the search never looks further, however long the text.
    """
    lo, hi = start, min(len(text), start + max(limit, 0))
    if measure(text[start:hi]) <= limit:
        return hi
    while lo < hi:  # invariant: text[start:lo] fits, text[start:hi+1] does not
        mid = (lo + hi + 1) // 2
        if measure(text[start:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def truncate(text: str, limit: int, measure: Measure = len) -> str:
    """``text`` if it fits in ``limit``, else its longest prefix that fits with "…".

    The cut goes back to the last space when that costs little, so words stay whole;
    a limit too small for the ellipsis itself gives "".
    """
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    end = _fit(text, 0, budget, measure)
    space = max(text.rfind(" ", 0, end + 1), text.rfind("\n", 0, end + 1))
    if space > 0 and space >= end * (1 - _WORD_BACKOFF):
        end = space
    return text[:end].rstrip() + ELLIPSIS


def _cut(text: str, start: int, end: int) -> int:
    """Where to end a piece that may reach ``end``: at the last paragraph break, else
    the last line break, else the last space; ``end`` itself when there is none.

    A separator may begin right at ``end`` since it is dropped between pieces.
    """
    for separator in ("\n\n", "\n"):
        at = text.rfind(separator, start, end + len(separator))
        if at > start and text[start:at].strip():
            return at
    for at in range(min(end, len(text) - 1), start, -1):
        if text[at].isspace() and text[start:at].strip():
            return at
    return end


def split_spans(text: str, limit: int, measure: Measure = len) -> list[tuple[int, int]]:
    """Where ``split_text`` cuts: ``(start, end)`` of each piece in ``text``.

    Pieces are in order and do not overlap; what lies between two of them (and
    before the first, after the last) is whitespace only.
    """
    spans: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while True:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            return spans
        reach = _fit(text, start, limit, measure)
        if reach == start:
            raise ValueError(f"{text[start]!r} alone measures more than the limit {limit}")
        end = n if reach >= n else _cut(text, start, reach)
        piece_end = len(text[start:end].rstrip()) + start
        spans.append((start, piece_end))
        start = end


def split_text(text: str, limit: int, measure: Measure = len) -> list[str]:
    """``text`` in pieces of at most ``limit`` each, cut at the best boundary.

    Only whitespace between pieces is dropped; a text that is only whitespace gives
    no pieces.
    """
    return [text[start:end] for start, end in split_spans(text, limit, measure)]


def escape_html(text: str, *, quote: bool = False) -> str:
    """Escape for Telegram's HTML parse mode.

    ``&``, ``<`` and ``>`` always (Telegram rejects them bare); ``"`` too with
    ``quote=True``, for text that goes inside an attribute such as ``href``.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def escape_mrkdwn(text: str) -> str:
    """Escape for Slack's mrkdwn: the three characters Slack uses for its own markup
    (``<url|text>``, ``<@user>``, ``&amp;``); everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    inline: bool = False


def notification_fields(data: Mapping[str, Any]) -> list[Field]:
    """The name/value pairs a producer put in ``data["fields"]``, as chat cards show them.

    Accepted shapes: a mapping ``{name: value}``, or a list of ``{"name"|"title":
    ..., "value": ..., "inline": bool}`` objects or ``[name, value]`` pairs.
    Entries of any other shape are left out; values are shown as ``str(value)``.
    """
    raw = data.get("fields")
    if isinstance(raw, Mapping):
        return [Field(str(k), _shown(v)) for k, v in raw.items()]
    if not isinstance(raw, list):
        return []
    fields: list[Field] = []
    for item in raw:
        if isinstance(item, Mapping):
            name = item.get("name", item.get("title"))
            if name is not None and "value" in item:
                fields.append(Field(str(name), _shown(item["value"]), bool(item.get("inline"))))
        elif isinstance(item, list | tuple) and len(item) == 2:
            fields.append(Field(str(item[0]), _shown(item[1])))
    return fields


def _shown(value: Any) -> str:
    return "" if value is None else str(value)
