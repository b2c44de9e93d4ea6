"""Code blocks of docs/*.md, found by the ``<!-- test: NAME -->`` comment right above
their fence, so tests run exactly what the documentation shows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTEGRATING = ROOT / "docs" / "integrating.md"
_BLOCK = re.compile(r"<!-- test: ([\w-]+) -->\n```\w*\n(.*?)\n```", re.S)


def snippets(path: Path = INTEGRATING) -> dict[str, str]:
    return dict(_BLOCK.findall(path.read_text(encoding="utf-8")))


def snippet(name: str, path: Path = INTEGRATING, **replace: str) -> str:
    """The block ``name``, with each key of ``replace`` swapped for its value (the
    docs name the defaults of a local platform; tests run against their own)."""
    code = snippets(path)[name]
    for old, new in replace.items():
        assert old in code, f"{old!r} is not in the {name} snippet"
        code = code.replace(old, new)
    return code
