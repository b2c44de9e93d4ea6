"""The index through qdrant-client: a Qdrant server (``HERALD_QDRANT_URL``), which
any number of matcher replicas can share, or qdrant-client's local mode.

Local mode (``QdrantClientIndex.local(path)``, or ``":memory:"``) keeps every point
in Python, searches by brute force, evaluates filters in Python and blocks the event
loop while it does; it is here as a reference for the benchmark and for the tests of
this module's translation, not as the embedded default (that is Qdrant Edge).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ._base import (
    FieldKind,
    Hit,
    IndexPoint,
    IndexUnavailable,
    Vector,
    as_floats,
    check_collection,
    hit,
    point_uuid,
    stored_payload,
)
from ._filters import IndexFilter, Value, translate

__all__ = ["QdrantClientIndex", "client_filter"]

T = TypeVar("T")

_SCHEMA: dict[FieldKind, models.PayloadSchemaType] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
}


class QdrantClientIndex:
    def __init__(self, client: AsyncQdrantClient, *, local: bool = False) -> None:
        self._client = client
        self._local = local

    @classmethod
    def server(
        cls, url: str, *, api_key: str | None = None, timeout: int = 10
    ) -> QdrantClientIndex:
        # no version check: it is a blocking request made by the constructor
        return cls(
            AsyncQdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
        )

    @classmethod
    def local(cls, path: str) -> QdrantClientIndex:
        if path == ":memory:":
            return cls(AsyncQdrantClient(location=":memory:"), local=True)
        return cls(AsyncQdrantClient(path=path), local=True)

    async def ensure(
        self, collection: str, dim: int, *, indexes: Mapping[str, FieldKind] | None = None
    ) -> None:
        name = check_collection(collection)
        if not await self._do(self._client.collection_exists(name)):
            try:
                await self._do(
                    self._client.create_collection(
                        name,
                        vectors_config=models.VectorParams(
                            size=dim, distance=models.Distance.COSINE
                        ),
                    )
                )
            except UnexpectedResponse as exc:
                if exc.status_code != 409:  # another replica created it first
                    raise
        info = await self._do(self._client.get_collection(name))
        params = info.config.params.vectors
        size = params.size if isinstance(params, models.VectorParams) else None
        if size != dim:
            raise ValueError(f"collection {name!r} holds {size}-d vectors, not {dim}-d")
        if self._local:
            return  # local mode has no payload indexes (and warns about them)
        for field, kind in (indexes or {}).items():
            if field not in info.payload_schema:
                await self._do(
                    self._client.create_payload_index(name, field, _SCHEMA[kind], wait=True)
                )

    async def upsert(self, collection: str, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(
                id=point_uuid(pid), vector=as_floats(vector), payload=stored_payload(pid, payload)
            )
            for pid, vector, payload in points
        ]
        await self._do(self._client.upsert(collection, structs, wait=True))

    async def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            selector = models.PointIdsList(points=[point_uuid(i) for i in ids])
            await self._do(self._client.delete(collection, selector, wait=True))

    async def delete_where(self, collection: str, field: str, value: Value) -> None:
        where = models.Filter(must=[_CLIENT.match(field, value)])
        await self._do(
            self._client.delete(collection, models.FilterSelector(filter=where), wait=True)
        )

    async def search(
        self,
        collection: str,
        vector: Vector,
        *,
        filter: IndexFilter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        response = await self._do(
            self._client.query_points(
                collection,
                query=as_floats(vector),
                query_filter=client_filter(filter),
                limit=limit,
                score_threshold=score_threshold,
                with_payload=True,
            )
        )
        return [hit(p.score, p.payload) for p in response.points]

    async def count(self, collection: str, filter: IndexFilter | None = None) -> int:
        result = await self._do(
            self._client.count(collection, count_filter=client_filter(filter), exact=True)
        )
        return result.count

    async def close(self) -> None:
        await self._client.close()

    async def _do(self, call: Awaitable[T]) -> T:
        """The one place server errors become Herald's: unreachable, timed out,
        overloaded or failing (5xx, 429) is worth a retry; anything else is not."""
        try:
            return await call
        except (ResponseHandlingException, httpx.TransportError) as exc:
            raise IndexUnavailable(f"qdrant: {exc}") from exc
        except UnexpectedResponse as exc:
            if exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429):
                raise IndexUnavailable(f"qdrant answered {exc.status_code}") from exc
            raise


class _ClientDialect:
    def match(self, field: str, value: Value) -> Any:
        return models.FieldCondition(key=field, match=models.MatchValue(value=value))

    def match_any(self, field: str, values: tuple[str, ...] | tuple[int, ...]) -> Any:
        return models.FieldCondition(key=field, match=models.MatchAny(any=list(values)))

    def range(self, field: str, gte: float | None, lte: float | None) -> Any:
        return models.FieldCondition(key=field, range=models.Range(gte=gte, lte=lte))

    def is_empty(self, field: str) -> Any:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=field))

    def clause(self, must: list[Any], should: list[Any], must_not: list[Any]) -> Any:
        return models.Filter(must=must or None, should=should or None, must_not=must_not or None)


_CLIENT = _ClientDialect()


def client_filter(filter: IndexFilter | None) -> models.Filter | None:
    """``filter`` as qdrant-client's model (what a server receives)."""
    if filter is None or not (filter.must or filter.must_not):
        return None
    built: models.Filter = translate(filter, _CLIENT)
    return built
