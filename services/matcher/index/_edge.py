"""The embedded index: Qdrant Edge, the Qdrant engine inside this process.

One Edge shard per collection, in ``<root>/<collection>``; writes go to the shard's
write-ahead log first, so a restart keeps them. A shard can be open in one process
only (its WAL is locked): with more than one matcher replica, use a Qdrant server.

Every engine call is blocking and runs on the index's own thread, one at a time, so
the event loop never waits on it and calls never interleave. Segments are flushed at
most every ``flush_every`` seconds after a write (and on close), which keeps the WAL
that a restart replays short.

Searches are exact: the shard is never optimised into an HNSW graph unless
``optimize()`` is called. At 100,000 résumés on two cores a filtered search takes
24 ms p50 / 44 ms p95 for the top 100 and 43 / 70 ms for the top 1,000, recall 1.0
(those with payloads read from disk; kept in memory, as they now are, the engine's
part of a top 1,000 fell from 16 / 67 to 13 / 36 ms);
after ``optimize()`` (43 s, blocking) it takes 3 ms but finds only 92 % of the true
top 100 (``bench/index.py``). Filters need payload indexes on the fields they name
(``ensure(..., indexes=...)``): without them the same search takes ~700 ms.

Qdrant Edge 0.9 does not match booleans (``MatchValue(True)`` finds nothing), so
booleans are stored as 0/1 and the keys that held them are remembered in the payload
(``_bools``) to give them back as booleans.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as edge

from ._base import (
    ID_KEY,
    FieldKind,
    Hit,
    IndexPoint,
    Vector,
    as_floats,
    check_collection,
    point_uuid,
    stored_payload,
)
from ._filters import IndexFilter, Value, translate

__all__ = ["EdgeIndex"]

T = TypeVar("T")

_BOOLS = "_bools"
_SCHEMA: dict[FieldKind, edge.PayloadSchemaType] = {
    "keyword": edge.PayloadSchemaType.Keyword,
    "integer": edge.PayloadSchemaType.Integer,
    "float": edge.PayloadSchemaType.Float,
    "bool": edge.PayloadSchemaType.Integer,  # stored as 0/1, see above
}


class EdgeIndex:
    def __init__(self, root: Path, *, flush_every: float = 5.0) -> None:
        self._root = root
        self._flush_every = flush_every
        self._shards: dict[str, edge.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        self._flushed: dict[str, float] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-index")

    async def ensure(
        self, collection: str, dim: int, *, indexes: Mapping[str, FieldKind] | None = None
    ) -> None:
        await self._call(self._ensure, check_collection(collection), dim, dict(indexes or {}))

    async def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        batch = [
            edge.Point(point_uuid(pid), as_floats(vector), _encode(stored_payload(pid, payload)))
            for pid, vector, payload in points
        ]
        await self._update(collection, edge.UpdateOperation.upsert_points(batch))

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            uuids: list[edge.PointId] = [point_uuid(i) for i in ids]
            await self._update(collection, edge.UpdateOperation.delete_points(uuids))

    async def delete_where(self, collection: str, field: str, value: Value) -> None:
        where = edge.Filter(must=[_EDGE.match(field, value)])
        await self._update(collection, edge.UpdateOperation.delete_points_by_filter(where))

    async def search(
        self,
        collection: str,
        vector: Vector,
        *,
        filter: IndexFilter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(as_floats(vector)),
            filter=_edge_filter(filter),
            score_threshold=score_threshold,
            with_payload=True,
        )
        shard = self._shard(collection)
        found = await self._call(shard.query, request)
        return [_hit(p.score, p.payload) for p in found]

    async def count(self, collection: str, filter: IndexFilter | None = None) -> int:
        shard = self._shard(collection)
        return await self._call(
            shard.count, edge.CountRequest(exact=True, filter=_edge_filter(filter))
        )

    async def optimize(self, collection: str) -> bool:
        """Merge segments and build the HNSW graph now (the engine never does it by
        itself in this mode); True if anything changed."""
        return await self._call(self._shard(collection).optimize)

    async def close(self) -> None:
        try:
            await self._call(self._close_all)
        finally:
            self._thread.shutdown(wait=True)

    # -- on the index thread

    def _ensure(self, collection: str, dim: int, indexes: dict[str, FieldKind]) -> None:
        if collection not in self._shards:
            self._shards[collection] = _open_shard(self._root / collection, dim)
            self._dims[collection] = dim
            self._flushed[collection] = time.monotonic()
        elif self._dims[collection] != dim:
            raise ValueError(f"collection {collection!r} holds {self._dims[collection]}-d vectors")
        shard = self._shards[collection]
        have = shard.info().payload_schema
        for field, kind in indexes.items():
            if field not in have:
                shard.update(edge.UpdateOperation.create_field_index(field, _SCHEMA[kind]))

    def _apply(self, collection: str, operation: edge.UpdateOperation) -> None:
        shard = self._shard(collection)
        shard.update(operation)
        now = time.monotonic()
        if now - self._flushed.get(collection, 0.0) >= self._flush_every:
            shard.flush()
            self._flushed[collection] = now

    def _close_all(self) -> None:
        shards, self._shards = self._shards, {}
        for shard in shards.values():
            shard.flush()
            shard.close()

    # -- plumbing

    def _shard(self, collection: str) -> edge.EdgeShard:
        try:
            return self._shards[collection]
        except KeyError:
            raise LookupError(f"collection {collection!r}: call ensure() first") from None

    async def _update(self, collection: str, operation: edge.UpdateOperation) -> None:
        self._shard(collection)  # fail here, not on the thread, if never ensured
        await self._call(self._apply, collection, operation)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))


def _open_shard(path: Path, dim: int) -> edge.EdgeShard:
    config = edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=dim, distance=edge.Distance.Cosine),
        # Edge's default (cold) reads every returned point's payload back from its
        # files: a job's search returns up to 1,000, and that doubled its time
        # (p95 67 against 36 ms at 100,000 résumés). A shard made cold is loaded
        # cached just the same.
        payload_memory=edge.Memory.Cached,
    )
    try:
        if (path / "edge_config.json").exists():
            return edge.EdgeShard.load(str(path), config)
        path.mkdir(parents=True, exist_ok=True)
        return edge.EdgeShard.create(str(path), config)
    except Exception as exc:
        if "WouldBlock" in str(exc):
            raise RuntimeError(
                f"{path} is open in another process: the embedded index serves one "
                "matcher; set HERALD_QDRANT_URL to run more than one"
            ) from exc
        raise


class _EdgeDialect:
    def match(self, field: str, value: Value) -> Any:
        return edge.FieldCondition(key=field, match=edge.MatchValue(_scalar(value)))

    def match_any(self, field: str, values: tuple[str, ...] | tuple[int, ...]) -> Any:
        if isinstance(values[0], str):
            return edge.FieldCondition(key=field, match=edge.MatchAny([str(v) for v in values]))
        return edge.FieldCondition(key=field, match=edge.MatchAny([int(v) for v in values]))

    def range(self, field: str, gte: float | None, lte: float | None) -> Any:
        return edge.FieldCondition(key=field, range=edge.RangeFloat(gte=gte, lte=lte))

    def is_empty(self, field: str) -> Any:
        return edge.IsEmptyCondition(key=field)

    def clause(self, must: list[Any], should: list[Any], must_not: list[Any]) -> Any:
        return edge.Filter(must=must or None, should=should or None, must_not=must_not or None)


_EDGE = _EdgeDialect()


def _edge_filter(filter: IndexFilter | None) -> edge.Filter | None:
    if filter is None or not (filter.must or filter.must_not):
        return None
    built: edge.Filter = translate(filter, _EDGE)
    return built


def _scalar(value: Value) -> str | int:
    return int(value) if isinstance(value, bool) else value


def _encode(payload: dict[str, Any]) -> dict[str, Any]:
    bools = [k for k, v in payload.items() if _has_bool(v)]
    if not bools:
        return payload
    out = {k: _bool_to_int(v) if k in bools else v for k, v in payload.items()}
    out[_BOOLS] = bools
    return out


def _hit(score: float, payload: dict[str, Any] | None) -> Hit:
    """``hit`` with the booleans given back, in one pass over the payload: a job's
    search turns up to ``HERALD_MATCH_CANDIDATES`` (1,000) of them into hits."""
    body = payload or {}
    bools = body.get(_BOOLS) or ()
    values = {
        k: _int_to_bool(v) if k in bools else v for k, v in body.items() if not k.startswith("_")
    }
    return Hit(str(body.get(ID_KEY, "")), float(score), values)


def _int_to_bool(value: object) -> object:
    return [bool(v) for v in value] if isinstance(value, list) else bool(value)


def _has_bool(value: object) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, bool) for v in value)
    return isinstance(value, bool)


def _bool_to_int(value: object) -> object:
    if isinstance(value, list):
        return [int(v) if isinstance(v, bool) else v for v in value]
    return int(value) if isinstance(value, bool) else value
