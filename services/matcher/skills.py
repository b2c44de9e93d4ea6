"""Skills named in résumés and job texts, found with a real skill vocabulary.

The vocabulary is the gazetteer of the MIT-licensed ``skill-extractor`` package
(about 31,000 skill names collected from job postings: "python", "accounts payable
(ap)", "ventilator management", "tig welding"). Only its data file is used; its
own pipeline confirms each gazetteer hit with a MiniLM embedding of the hit's
±20-word context and a small classifier: one model run per candidate, about
190 ms per posting on a 2-core machine with the packaged int8 MiniLM (some 14
candidates each), against under a millisecond for the steps below, and more than
embedding the posting itself. Herald does not run it; instead:

- **Matching** is FlashText-like: case-insensitive, whole tokens, longest match
  wins, no overlaps. Tokens are runs of letters, digits and ``_`` or single other
  characters, so "C++", "C#", ".NET", "node.js" and "a/b testing" are found, "go"
  is never found inside "google" and "java" never inside "javascript". Spacing
  between tokens is compared as "some space" or "none". One pass over the text with
  a set of every entry's token prefixes: a few KB of text take well under a
  millisecond or two.
- **Generic words are left out.** The gazetteer is built from postings, so it also
  holds ordinary words that postings use as headings or filler ("able",
  "accuracy", "actions", "agency", "communication", "schedules"). Matched in ordinary
  prose, they flood every text with the same "skills", which then say nothing
  about fit and fill the explanation of a match with noise ("missing: accuracy").
  ``generic_skills.txt`` beside this module lists them (see its header for how it
  was made). Explicit skills sent by the product are never filtered.
- **Short names that are ordinary words** in lower case ("Go", "Swift", "Epic",
  "Rust") count only when written exactly so and not as the first word of a
  sentence; one-letter entries are not looked for at all.
- **Canonical names**: lower case, single spaces; a trailing part in parentheses
  is dropped ("accounts payable (ap)" → "accounts payable", which is then also
  found written without it); hyphen and space variants are one skill
  ("a/b-testing" → "a/b testing"); and a short table of common aliases ("js" →
  "javascript", "k8s" → "kubernetes", "postgres" → "postgresql") applies when
  its target is in the vocabulary. Initialisms in parentheses are not made
  aliases: too many collide ("crm" is also "cardiovascular renal metabolism
  (crm)"). Explicit skills go through the same canonicalisation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from importlib import metadata, resources
from pathlib import Path
from typing import Final

__all__ = ["SkillExtractor", "VocabularyMissing", "load_vocabulary"]

_TOKEN: Final = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")
_PARENTHETICAL: Final = re.compile(r"^(?P<head>.+?)\s*\((?P<inner>[^()]+)\)$")
_SENTENCE_END: Final = frozenset(".!?:;\n*-\u2013\u2014\u2022\u00b7")  # with dashes and bullets

_GENERIC_FILE: Final = Path(__file__).with_name("generic_skills.txt")

ALIASES: Final[Mapping[str, str]] = {
    "js": "javascript",
    "golang": "go",
    "k8s": "kubernetes",
    "postgres": "postgresql",
    "nodejs": "node.js",
    "reactjs": "react",
    "react.js": "react",
    "vuejs": "vue.js",
    "sklearn": "scikit-learn",
    "ms excel": "excel",
    "microsoft excel": "excel",
}
"""Common short or alternative names → the vocabulary's name (applied only when the
target is in the vocabulary)."""

CASED: Final[Mapping[str, str]] = {
    "go": "Go",
    "swift": "Swift",
    "epic": "Epic",
    "rust": "Rust",
}
"""Names that are ordinary words or letters in lower case: matched only in exactly
this spelling and not at the start of a sentence."""


class VocabularyMissing(RuntimeError):
    """The ``skill-extractor`` package (its gazetteer) is not installed."""


def load_vocabulary() -> list[str]:
    """The gazetteer of the installed ``skill-extractor`` distribution: a JSON list
    of skill names. Read from the distribution's files without importing its code."""
    try:
        dist = metadata.distribution("skill-extractor")
    except metadata.PackageNotFoundError as exc:
        raise VocabularyMissing("pip install skill-extractor (its skills.json)") from exc
    for file in dist.files or ():
        if file.name == "skills.json" and "skill_extractor" in file.parts:
            with open(Path(str(file.locate())), encoding="utf-8") as fh:
                return list(json.load(fh))
    try:  # an editable or unusual install: ask the package itself
        ref = resources.files("skill_extractor") / "data" / "skills.json"
        return list(json.loads(ref.read_text(encoding="utf-8")))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise VocabularyMissing("skill-extractor is installed without skills.json") from exc


def load_generic(path: Path = _GENERIC_FILE) -> frozenset[str]:
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.add(_norm(line))
    return frozenset(words)


def _norm(name: str) -> str:
    """Lower case, tokens spaced as in the text ("node . js" and "node.js" differ),
    whitespace runs as one space."""
    return " ".join(name.lower().split())


def _tokens(name: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(name)]


def _phrase(text: str, spans: list[tuple[int, int]], i: int, j: int) -> str:
    """Tokens i..j of ``text`` joined as they were spaced (a space where there was
    any whitespace, nothing where they touched)."""
    parts = [text[spans[i][0] : spans[i][1]]]
    for k in range(i + 1, j + 1):
        if spans[k][0] > spans[k - 1][1]:
            parts.append(" ")
        parts.append(text[spans[k][0] : spans[k][1]])
    return "".join(parts)


def _key(name: str) -> str:
    low = _norm(name)
    return _phrase(low, _tokens(low), 0, len(_tokens(low)) - 1) if low else ""


class SkillExtractor:
    """Finds skills in text with the gazetteer; build once per process (loading
    takes a fraction of a second) and share: it is read-only."""

    def __init__(
        self,
        vocabulary: Iterable[str] | None = None,
        *,
        generic: Iterable[str] | None = None,
        aliases: Mapping[str, str] = ALIASES,
    ) -> None:
        names = load_vocabulary() if vocabulary is None else list(vocabulary)
        skip = load_generic() if generic is None else frozenset(_norm(g) for g in generic)
        self._canonical: dict[str, str] = {}
        self._match: dict[str, str] = {}
        self._prefixes: set[str] = set()
        self._build(names, skip, aliases)

    # -- building ------------------------------------------------------------------

    def _build(self, names: list[str], skip: frozenset[str], aliases: Mapping[str, str]) -> None:
        canonical: dict[str, str] = {}
        for raw in names:
            key = _key(raw)
            if not key:
                continue
            head = _strip_parenthetical(key)
            canonical.setdefault(key, head)
            canonical.setdefault(head, head)
        # hyphen and space variants are one skill, named with spaces when that exists
        for key, name in list(canonical.items()):
            spaced = name.replace("-", " ")
            if spaced != name and spaced in canonical:
                canonical[key] = canonical[spaced]
        for alias, target in aliases.items():
            t = _key(target)
            if t in canonical:
                canonical[_key(alias)] = canonical[t]
        self._canonical = canonical
        # what the text matcher looks for: everything but the generic words (by key
        # or by canonical name)
        self._match = {key: name for key, name in canonical.items() if _wanted(key, name, skip)}
        prefixes: set[str] = set()
        for key in self._match:
            spans = _tokens(key)
            for j in range(len(spans)):
                prefixes.add(_phrase(key, spans, 0, j))
        self._prefixes = prefixes

    # -- public ----------------------------------------------------------------------

    def __len__(self) -> int:
        """How many names (entries and aliases) the matcher looks for."""
        return len(self._match)

    def canonical(self, name: str) -> str:
        """The vocabulary's name for ``name`` (aliases resolved), or ``name``
        normalised when the vocabulary does not know it."""
        key = _key(name)
        return self._canonical.get(key, key)

    def extract(self, text: str) -> frozenset[str]:
        """Canonical names of the skills mentioned in ``text``."""
        low = text.lower()
        spans = _tokens(low)
        n = len(spans)
        found: set[str] = set()
        same_length = len(low) == len(text)
        i = 0
        while i < n:
            best: tuple[int, str] | None = None
            phrase = ""
            for j in range(i, n):
                s, e = spans[j]
                if j == i:
                    phrase = low[s:e]
                else:
                    phrase += (" " if s > spans[j - 1][1] else "") + low[s:e]
                if phrase not in self._prefixes:
                    break
                name = self._match.get(phrase)
                if name is not None:
                    best = (j, name)
            if best is None and same_length:
                best = self._cased(text, spans, i)
            if best is not None:
                found.add(best[1])
                i = best[0] + 1
            else:
                i += 1
        return frozenset(found)

    def merge(self, extracted: Iterable[str], explicit: Iterable[str]) -> frozenset[str]:
        """Extracted skills plus explicit ones (from an event's ``skills[]``) under
        their canonical names; explicit names the vocabulary does not know are kept,
        normalised."""
        merged = set(extracted)
        for name in explicit:
            canonical = self.canonical(name)
            if canonical:
                merged.add(canonical)
        return frozenset(merged)

    def _cased(self, text: str, spans: list[tuple[int, int]], i: int) -> tuple[int, str] | None:
        s, e = spans[i]
        word = text[s:e]
        key = word.lower()
        if CASED.get(key) != word or key not in self._canonical:
            return None
        # the first word of a sentence is capitalised whatever it means
        before = text[:s].rstrip(" \t")
        if not before or before[-1] in _SENTENCE_END:
            return None
        return i, self._canonical[key]


def _wanted(key: str, name: str, skip: frozenset[str]) -> bool:
    """Whether the text matcher looks for ``key``: not a generic word (nor one with
    an exclamation mark: "go!", "action!"), not a cased name, not a single letter."""
    bare = key.rstrip("!?.")
    return len(key) > 1 and key not in CASED and bare not in CASED and not {key, name, bare} & skip


def _strip_parenthetical(key: str) -> str:
    """The key without a trailing part in parentheses: "accounts payable (ap)" gives
    "accounts payable"; other keys as they are."""
    m = _PARENTHETICAL.match(key)
    return m["head"].strip() if m is not None and m["head"].strip() else key
