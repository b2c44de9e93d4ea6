"""Engine-neutral filters, and what a Qdrant server receives for them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr
from qdrant_client import models

from services.matcher.index import (
    AnyOf,
    EdgeIndex,
    IndexFilter,
    IsEmpty,
    Match,
    MatchAny,
    QdrantClientIndex,
    Range,
    open_index,
)
from services.matcher.index._base import point_uuid
from services.matcher.index._client import client_filter
from shared.settings import Settings


def field(key: str, **kw: object) -> models.FieldCondition:
    return models.FieldCondition(key=key, **kw)  # type: ignore[arg-type]


def test_no_filter_or_an_empty_one_is_none() -> None:
    assert client_filter(None) is None
    assert client_filter(IndexFilter()) is None


def test_a_job_s_hard_filters_for_a_server() -> None:
    job = IndexFilter(
        must=(
            AnyOf(Match("remote_ok", True), MatchAny("places", ["berlin"])),
            AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=90_000)),
            MatchAny("job_types", ["full_time", "contract"]),
            Range("updated_at", gte=1_700_000_000.5),
        ),
        must_not=(Match("user_id", "u-1"),),
    )
    assert client_filter(job) == models.Filter(
        must=[
            models.Filter(
                should=[
                    field("remote_ok", match=models.MatchValue(value=True)),
                    field("places", match=models.MatchAny(any=["berlin"])),
                ]
            ),
            models.Filter(
                should=[
                    models.IsEmptyCondition(is_empty=models.PayloadField(key="desired_salary")),
                    field("desired_salary", range=models.Range(lte=90_000)),
                ]
            ),
            field("job_types", match=models.MatchAny(any=["full_time", "contract"])),
            field("updated_at", range=models.Range(gte=1_700_000_000.5)),
        ],
        must_not=[field("user_id", match=models.MatchValue(value="u-1"))],
    )


def test_conditions_need_something_to_match() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        MatchAny("job_types", [])
    with pytest.raises(ValueError, match="at least one condition"):
        AnyOf()


def test_filters_are_values() -> None:
    a = IndexFilter.all(MatchAny("places", ["berlin"]), Range("salary", gte=1))
    b = IndexFilter.all(MatchAny("places", ("berlin",)), Range("salary", gte=1))
    assert a == b
    assert hash(a) == hash(b)


def test_point_ids_are_stable_uuids() -> None:
    assert point_uuid("user-1") == point_uuid("user-1")
    assert point_uuid("user-1") != point_uuid("user-2")
    assert len(point_uuid("user-1")) == 36


def test_open_index_picks_the_server_when_a_url_is_set(tmp_path: Path) -> None:
    assert isinstance(open_index(Settings(data_dir=tmp_path)), EdgeIndex)
    server = Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:6333")
    assert isinstance(open_index(server), QdrantClientIndex)
    assert not (tmp_path / "qdrant").exists()  # nothing is opened before ensure()


async def test_the_qdrant_api_key_goes_with_every_request_to_the_server(tmp_path: Path) -> None:
    """A Qdrant server with ``service.api_key`` set refuses requests without it."""
    seen: list[str | None] = []

    async def count(request: web.Request) -> web.Response:
        seen.append(request.headers.get("api-key"))
        return web.json_response({"result": {"count": 3}, "status": "ok", "time": 0.0})

    app = web.Application()
    app.router.add_post("/collections/{name}/points/count", count)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = Settings(
            data_dir=tmp_path,
            qdrant_url=f"http://127.0.0.1:{port}",
            qdrant_api_key=SecretStr("s3cret-key"),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the client warns about a key over http
            index = open_index(settings)
            assert await index.count("jobs") == 3
        await index.close()
    finally:
        await runner.cleanup()
    assert seen == ["s3cret-key"]
