"""The one small interface every vector index implements, and what it hands back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from shared.errors import Retry

from ._filters import IndexFilter, Value

# a vector as the embedder makes it, or any sequence of floats
Vector = npt.NDArray[np.floating[Any]] | Sequence[float]
# (id, vector, payload): payload values are JSON (strings, numbers, booleans, lists)
IndexPoint = tuple[str, Vector, Mapping[str, Any]]
# the kinds of payload index ``ensure`` can create on a field filters use
FieldKind = Literal["keyword", "integer", "float", "bool"]

# payload keys the index keeps for itself; callers' keys must not start with "_"
ID_KEY = "_id"

_COLLECTION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_POINT_IDS = uuid.UUID("0b1e07a4-58f4-4a40-9a51-2c1f3b0c6d4e")


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # cosine similarity, -1 … 1
    payload: dict[str, Any]


class IndexUnavailable(Retry):
    """The index could not be reached or did not answer in time: try again later."""


class VectorIndex(Protocol):
    """Vectors with payloads in named collections, searched by cosine similarity.

    Ids are the caller's strings (a user id, a job id); upserting an id again
    replaces its vector and payload. Every method may raise :class:`IndexUnavailable`.
    """

    async def ensure(
        self, collection: str, dim: int, *, indexes: Mapping[str, FieldKind] | None = None
    ) -> None:
        """Create the collection if missing, or open it; a different ``dim`` is an
        error. ``indexes`` names payload fields worth indexing for filters."""

    async def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None: ...

    async def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    async def delete_where(self, collection: str, field: str, value: Value) -> None:
        """Delete every point whose ``field`` equals ``value`` (e.g. a user's)."""

    async def search(
        self,
        collection: str,
        vector: Vector,
        *,
        filter: IndexFilter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """The ``limit`` points most similar to ``vector`` that pass ``filter``,
        best first."""

    async def count(self, collection: str, filter: IndexFilter | None = None) -> int: ...

    async def close(self) -> None:
        """Persist what is pending and release the engine."""


def point_uuid(point_id: str) -> str:
    """Qdrant ids are integers or UUIDs; a string id maps to a stable UUID."""
    return str(uuid.uuid5(_POINT_IDS, point_id))


def check_collection(name: str) -> str:
    if not _COLLECTION.match(name):
        raise ValueError(f"collection name {name!r} must match [a-z0-9][a-z0-9_-]*")
    return name


def as_floats(vector: Vector) -> list[float]:
    values: list[float] = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
    return values


def stored_payload(point_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    reserved = [key for key in payload if key.startswith("_")]
    if reserved:
        raise ValueError(f"payload keys starting with '_' are the index's own: {reserved}")
    return {**payload, ID_KEY: point_id}


def hit(score: float, payload: Mapping[str, Any] | None) -> Hit:
    body = dict(payload or {})
    point_id = str(body.pop(ID_KEY, ""))
    return Hit(point_id, float(score), {k: v for k, v in body.items() if not k.startswith("_")})
