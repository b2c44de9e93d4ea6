"""The vector index, for real: Qdrant Edge (the embedded default) and qdrant-client's
local mode, which runs the very code a Qdrant server is driven by. Both must answer
every filter the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from services.matcher.index import (
    AnyOf,
    EdgeIndex,
    FieldKind,
    IndexFilter,
    IsEmpty,
    Match,
    MatchAny,
    QdrantClientIndex,
    Range,
    VectorIndex,
)

DIM = 8
INDEXES: dict[str, FieldKind] = {
    "user_id": "keyword",
    "remote_ok": "bool",
    "places": "keyword",
    "desired_salary": "float",
    "job_types": "keyword",
    "updated_at": "float",
}

Opener = Callable[[], VectorIndex]


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    normed: np.ndarray = v / np.linalg.norm(v)
    return normed


# four résumés; "q" below is nearest to ada, then bob, cy, dee
RESUMES = {
    "ada": (
        unit(1.0, 0.1),
        {
            "user_id": "u-ada",
            "remote_ok": True,
            "places": ["berlin", "germany"],
            "desired_salary": 70_000.0,
            "job_types": ["full_time"],
            "updated_at": 1_700_000_000.0,
        },
    ),
    "bob": (
        unit(1.0, 0.4),
        {
            "user_id": "u-bob",
            "remote_ok": False,
            "places": ["paris", "france"],
            "job_types": ["contract", "part_time"],
            "updated_at": 1_710_000_000.0,
        },
    ),
    "cy": (
        unit(1.0, 0.9),
        {
            "user_id": "u-cy",
            "remote_ok": False,
            "places": ["berlin", "germany"],
            "desired_salary": 95_000.0,
            "job_types": [],
            "updated_at": 1_720_000_000.0,
        },
    ),
    "dee": (
        unit(0.2, 1.0),
        {
            "user_id": "u-dee",
            "remote_ok": True,
            "places": [],
            "desired_salary": None,
            "job_types": ["full_time", "contract"],
            "updated_at": 1_730_000_000.0,
        },
    ),
}
Q = unit(1.0, 0.0)


@pytest.fixture(params=["edge", "local"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "edge":
        return lambda: EdgeIndex(tmp_path / "qdrant")
    return lambda: QdrantClientIndex.local(str(tmp_path / "local"))


@pytest.fixture
async def index(opener: Opener) -> AsyncIterator[VectorIndex]:
    index = opener()
    await index.ensure("resumes", DIM, indexes=INDEXES)
    await index.upsert("resumes", [(k, v, p) for k, (v, p) in RESUMES.items()])
    yield index
    await index.close()


async def ids(index: VectorIndex, filter: IndexFilter | None = None, limit: int = 10) -> list[str]:
    return [h.id for h in await index.search("resumes", Q, filter=filter, limit=limit)]


async def test_search_returns_the_nearest_first_with_payload(index: VectorIndex) -> None:
    hits = await index.search("resumes", Q, limit=2)
    assert [h.id for h in hits] == ["ada", "bob"]
    assert hits[0].score == pytest.approx(float(Q @ RESUMES["ada"][0]), abs=1e-5)
    assert hits[0].score > hits[1].score
    assert hits[0].payload == RESUMES["ada"][1]  # booleans, lists and floats as given
    assert await ids(index) == ["ada", "bob", "cy", "dee"]


async def test_a_score_threshold_drops_the_weak(index: VectorIndex) -> None:
    threshold = float(Q @ RESUMES["cy"][0]) - 1e-4
    assert [h.id for h in await index.search("resumes", Q, score_threshold=threshold)] == [
        "ada",
        "bob",
        "cy",
    ]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Match("remote_ok", True), ["ada", "dee"]),
        (Match("remote_ok", False), ["bob", "cy"]),
        (Match("user_id", "u-cy"), ["cy"]),
        (Match("places", "berlin"), ["ada", "cy"]),
        (MatchAny("places", ["paris", "germany"]), ["ada", "bob", "cy"]),
        (MatchAny("job_types", ["contract"]), ["bob", "dee"]),
        (Range("desired_salary", gte=80_000), ["cy"]),
        (Range("desired_salary", lte=80_000), ["ada"]),
        (Range("updated_at", gte=1_710_000_000.0), ["bob", "cy", "dee"]),
        (IsEmpty("desired_salary"), ["bob", "dee"]),  # absent or null
        (IsEmpty("job_types"), ["cy"]),  # empty list
        (IsEmpty("places"), ["dee"]),
        (AnyOf(Match("remote_ok", True), MatchAny("places", ["paris"])), ["ada", "bob", "dee"]),
        (
            AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=80_000)),
            ["ada", "bob", "dee"],
        ),
    ],
)
async def test_each_condition(index: VectorIndex, condition: object, expected: list[str]) -> None:
    assert await ids(index, IndexFilter.all(condition)) == expected  # type: ignore[arg-type]


async def test_a_job_s_hard_filters_together(index: VectorIndex) -> None:
    """An on-site Berlin contract paying up to 90,000: remote or in Berlin; no salary
    asked or at most 90,000; contract work accepted, or no job type named."""
    job = IndexFilter.all(
        AnyOf(Match("remote_ok", True), MatchAny("places", ["berlin"])),
        AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=90_000)),
        AnyOf(IsEmpty("job_types"), MatchAny("job_types", ["contract"])),
    )
    assert await ids(index, job) == ["dee"]
    assert await index.count("resumes", job) == 1


async def test_must_not_excludes(index: VectorIndex) -> None:
    not_berlin = IndexFilter(must_not=(Match("places", "berlin"),))
    assert await ids(index, not_berlin) == ["bob", "dee"]
    assert await ids(index, IndexFilter()) == ["ada", "bob", "cy", "dee"]


async def test_count(index: VectorIndex) -> None:
    assert await index.count("resumes") == 4
    assert await index.count("resumes", IndexFilter.all(Match("remote_ok", True))) == 2


async def test_upserting_an_id_again_replaces_it(index: VectorIndex) -> None:
    payload = {**RESUMES["dee"][1], "remote_ok": False}
    await index.upsert("resumes", [("dee", unit(1.0, 0.0), payload)])
    hits = await index.search("resumes", Q, limit=1)
    assert hits[0].id == "dee"
    assert hits[0].payload["remote_ok"] is False
    assert await index.count("resumes") == 4


async def test_delete_and_delete_where(index: VectorIndex) -> None:
    await index.delete("resumes", ["ada", "nobody"])
    assert await ids(index) == ["bob", "cy", "dee"]
    await index.delete_where("resumes", "user_id", "u-cy")
    assert await ids(index) == ["bob", "dee"]
    await index.delete_where("resumes", "remote_ok", True)
    assert await ids(index) == ["bob"]
    await index.delete("resumes", [])
    assert await index.count("resumes") == 1


async def test_data_survives_a_restart(opener: Opener) -> None:
    first = opener()
    await first.ensure("resumes", DIM, indexes=INDEXES)
    await first.upsert("resumes", [(k, v, p) for k, (v, p) in RESUMES.items()])
    await first.delete_where("resumes", "user_id", "u-bob")
    await first.close()

    second = opener()
    try:
        await second.ensure("resumes", DIM, indexes=INDEXES)
        assert await ids(second) == ["ada", "cy", "dee"]
        only_remote = IndexFilter.all(Match("remote_ok", True))
        assert await ids(second, only_remote) == ["ada", "dee"]
        with pytest.raises(ValueError, match="8-d"):
            await second.ensure("resumes", DIM + 1)
    finally:
        await second.close()


async def test_collections_are_apart(index: VectorIndex) -> None:
    await index.ensure("jobs", DIM)
    await index.upsert("jobs", [("job-1", unit(1.0), {"title": "Python developer"})])
    assert await ids(index) == ["ada", "bob", "cy", "dee"]
    hits = await index.search("jobs", Q)
    assert [(h.id, h.payload) for h in hits] == [("job-1", {"title": "Python developer"})]


async def test_payload_keys_starting_with_underscore_are_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="_id"):
        await index.upsert("resumes", [("x", Q, {"_id": "forged"})])


async def test_bad_collection_names_are_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="collection name"):
        await index.ensure("../escape", DIM)


async def test_an_edge_collection_must_be_ensured_first(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path)
    try:
        with pytest.raises(LookupError, match="ensure"):
            await index.search("resumes", Q)
    finally:
        await index.close()


async def test_an_edge_shard_serves_one_process(tmp_path: Path) -> None:
    first, second = EdgeIndex(tmp_path), EdgeIndex(tmp_path)
    await first.ensure("resumes", DIM)
    try:
        with pytest.raises(RuntimeError, match="HERALD_QDRANT_URL"):
            await second.ensure("resumes", DIM)
    finally:
        await second.close()
        await first.close()


async def test_edge_search_after_optimize_still_answers(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path)
    try:
        await index.ensure("resumes", DIM, indexes=INDEXES)
        await index.upsert("resumes", [(k, v, p) for k, (v, p) in RESUMES.items()])
        await index.optimize("resumes")
        assert await ids(index, IndexFilter.all(Match("remote_ok", True))) == ["ada", "dee"]
    finally:
        await index.close()
