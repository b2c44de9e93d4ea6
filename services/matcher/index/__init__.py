"""The matcher's vector index: one small interface, two engines.

- :class:`EdgeIndex` — the default: Qdrant Edge embedded in the matcher, data under
  ``<HERALD_DATA_DIR>/qdrant``. One process at a time.
- :class:`QdrantClientIndex` — a Qdrant server when ``HERALD_QDRANT_URL`` is set
  (required for more than one matcher replica); also qdrant-client's local mode.

``open_index(settings)`` picks one. Filters are engine-neutral (:class:`IndexFilter`).
"""

from __future__ import annotations

from shared.settings import Settings

from ._base import FieldKind, Hit, IndexPoint, IndexUnavailable, Vector, VectorIndex
from ._client import QdrantClientIndex
from ._edge import EdgeIndex
from ._filters import AnyOf, Condition, IndexFilter, IsEmpty, Match, MatchAny, Range, Value

__all__ = [
    "AnyOf",
    "Condition",
    "EdgeIndex",
    "FieldKind",
    "Hit",
    "IndexFilter",
    "IndexPoint",
    "IndexUnavailable",
    "IsEmpty",
    "Match",
    "MatchAny",
    "QdrantClientIndex",
    "Range",
    "Value",
    "Vector",
    "VectorIndex",
    "open_index",
]


def open_index(settings: Settings) -> VectorIndex:
    """A Qdrant server if ``HERALD_QDRANT_URL`` is set, else the embedded index under
    the data dir. Nothing is opened until ``ensure``."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key
        return QdrantClientIndex.server(
            settings.qdrant_url, api_key=key.get_secret_value() if key else None
        )
    return EdgeIndex(settings.data_dir / "qdrant")
