"""Which jobs a digest shows, best first (``rank_digest``), and the keys that tell
near-duplicate postings apart (``title_key``, ``company_key``). No I/O."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable

from .content import JobItem

__all__ = ["company_key", "rank_digest", "title_key"]

# words that say how senior a role is, or where, not what it is
_LEVEL_WORDS = frozenset(
    {
        "senior", "sr", "snr", "junior", "jr", "jnr", "mid", "midlevel", "middle", "level",
        "lead", "principal", "staff", "chief", "head", "entry", "experienced", "expert",
        "i", "ii", "iii", "iv", "v", "1", "2", "3", "4", "5", "l1", "l2", "l3", "l4", "l5",
        "remote", "hybrid", "onsite",
        "m", "f", "w", "d", "x", "mwd", "mfd", "fmd", "wmd", "all", "genders",
        "a", "an", "the", "and", "or", "of", "for", "with", "in", "at", "to",
    }
)  # fmt: skip
# punctuation that is part of a technology's name, kept before punctuation is dropped
_KEEP_NAMES = (
    (re.compile(r"c\+\+"), " cplusplus "),
    (re.compile(r"c#"), " csharp "),
    (re.compile(r"f#"), " fsharp "),
    (re.compile(r"\.net\b"), " dotnet "),
    (re.compile(r"\b(\w+)\.js\b"), r" \1js "),
    (re.compile(r"\bon[- ]?site\b"), " onsite "),
)
_WORD = re.compile(r"[^\W_]+")
_LEGAL_SUFFIXES = frozenset(
    {"inc", "ltd", "llc", "gmbh", "ag", "se", "plc", "corp", "co", "bv", "sa", "sas", "srl"}
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def title_key(title: str) -> tuple[str, ...]:
    """What a job title is about, ignoring case, punctuation, seniority, gender
    markers and word order: "Senior Backend Engineer (Python)" and "Backend Engineer,
    Python - Senior" have the same key."""
    text = _fold(title)
    for pattern, replacement in _KEEP_NAMES:
        text = pattern.sub(replacement, text)
    words = _WORD.findall(text)
    core = sorted({word for word in words if word not in _LEVEL_WORDS})
    return tuple(core) if core else tuple(sorted(set(words)))


def company_key(company: str) -> str:
    words = _WORD.findall(_fold(company))
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


def rank_digest(
    items: Iterable[JobItem],
    *,
    read_job_ids: set[str],
    per_company: int = 2,
    limit: int = 10,
) -> list[JobItem]:
    """The jobs a digest shows, best first.

    Jobs already read in-app are left out; near-duplicate titles at the same company
    count once (the better-scored one stays); no company has more than
    ``per_company`` places; ties keep their input order; at most ``limit`` items.
    Unscored jobs rank after every scored one.
    """
    if per_company < 1:
        raise ValueError("per_company must be at least 1")
    if limit < 0:
        raise ValueError("limit must not be negative")

    def order(pair: tuple[int, JobItem]) -> tuple[int, float, int]:
        index, item = pair
        if item.score is None or math.isnan(item.score):
            return (1, 0.0, index)
        return (0, -item.score, index)

    ranked: list[JobItem] = []
    seen_jobs: set[str] = set()
    seen_titles: set[tuple[str, tuple[str, ...]]] = set()
    per_company_count: dict[str, int] = {}
    for _, item in sorted(enumerate(items), key=order):
        if len(ranked) >= limit:
            break
        if item.job_id in read_job_ids or item.job_id in seen_jobs:
            continue
        company = company_key(item.company)
        key = (company, title_key(item.title))
        if key in seen_titles:
            continue
        seen_jobs.add(item.job_id)
        seen_titles.add(key)
        if per_company_count.get(company, 0) >= per_company:
            continue
        per_company_count[company] = per_company_count.get(company, 0) + 1
        ranked.append(item)
    return ranked
