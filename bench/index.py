"""The embedded vector index: Qdrant Edge against qdrant-client's local mode.

Loads ``--points`` résumé-like points (384-d normalised vectors drawn around a few
dozen "occupation" centres, with the payload the matcher filters on: remote flag,
places, desired salary, accepted job types, user id, update time) into each engine
through ``services.matcher.index`` — the code the matcher runs, executor hop
included — then asks ``--queries`` job-like questions: the nearest ``--limit``
résumés that pass a job's hard filters (remote or in the job's town; no salary
asked or at most the job's maximum; the job's type accepted or none named). Also
an unfiltered search and one user's point (a selective filter), and the time to
reopen the persisted data and answer the first search (a restart).

Each engine runs in a child process of its own so its RSS is its own. Latency
figures are per search; p50/p95 are medians over ``--runs`` rounds. Recall is the
share of the exact filtered top ``--limit`` (numpy, brute force) that the engine
returned. Nothing here needs RabbitMQ or PostgreSQL.

    python bench/index.py                          # both engines, 100,000 points
    python bench/index.py --engines edge --limit 1000   # as many as the matcher asks
    python bench/index.py --engines edge --optimize     # with an HNSW graph
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

DIM = 384
COLLECTION = "resumes"
INDEXES: dict[str, FieldKind] = {
    "user_id": "keyword",
    "remote_ok": "bool",
    "places": "keyword",
    "desired_salary": "float",
    "job_types": "keyword",
}
CITIES = [
    ("berlin", "germany"), ("munich", "germany"), ("hamburg", "germany"),
    ("london", "uk"), ("manchester", "uk"), ("paris", "france"), ("lyon", "france"),
    ("amsterdam", "netherlands"), ("madrid", "spain"), ("barcelona", "spain"),
    ("lisbon", "portugal"), ("warsaw", "poland"), ("krakow", "poland"),
    ("prague", "czechia"), ("vienna", "austria"), ("zurich", "switzerland"),
    ("stockholm", "sweden"), ("copenhagen", "denmark"), ("dublin", "ireland"),
    ("milan", "italy"), ("rome", "italy"), ("new york", "usa"), ("austin", "usa"),
    ("seattle", "usa"), ("toronto", "canada"), ("sydney", "australia"),
]  # fmt: skip
JOB_TYPES = ["full_time", "part_time", "contract", "internship", "temporary"]
CENTRES = 60


@dataclass
class Data:
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    # columns for the exact (numpy) answer
    remote: np.ndarray
    city: np.ndarray
    salary: np.ndarray  # nan: none asked
    types: np.ndarray  # bitmask; 0: any


def unit(rows: np.ndarray) -> np.ndarray:
    normed: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return normed


def make_data(n: int, seed: int) -> tuple[Data, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(CENTRES, DIM)))
    # real sentence embeddings are far from isotropic: each résumé sits near its
    # occupation, with a shared "résumé" direction on top
    common = unit(rng.normal(size=(1, DIM)))
    which = rng.integers(0, CENTRES, n)
    vectors = unit(centres[which] + 0.5 * common + rng.normal(scale=0.045, size=(n, DIM)))
    city_weights = 1.0 / np.arange(1, len(CITIES) + 1)
    city = rng.choice(len(CITIES), n, p=city_weights / city_weights.sum())
    remote = rng.random(n) < 0.3
    salary = np.where(rng.random(n) < 0.7, rng.lognormal(np.log(60_000), 0.35, n).round(-3), np.nan)
    types = np.zeros(n, dtype=np.int64)
    named = rng.random(n) < 0.8
    for t in range(len(JOB_TYPES)):
        types |= np.where(named & (rng.random(n) < (0.8 if t == 0 else 0.25)), 1 << t, 0)
    now = time.time()
    payloads: list[dict[str, Any]] = []
    for i in range(n):
        p: dict[str, Any] = {
            "user_id": f"user-{i}",
            "remote_ok": bool(remote[i]),
            "places": list(CITIES[city[i]]),
            "job_types": [JOB_TYPES[t] for t in range(len(JOB_TYPES)) if types[i] >> t & 1],
            "updated_at": now - float(rng.integers(0, 90 * 86400)),
        }
        if not np.isnan(salary[i]):
            p["desired_salary"] = float(salary[i])
        payloads.append(p)
    return Data(vectors, payloads, remote, city, salary, types), centres + 0.5 * common


@dataclass
class Job:
    vector: np.ndarray
    city: int
    remote: bool
    salary_max: float
    job_type: int

    def filter(self) -> IndexFilter:
        conditions: list[Any] = [
            AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=self.salary_max)),
            AnyOf(IsEmpty("job_types"), MatchAny("job_types", [JOB_TYPES[self.job_type]])),
        ]
        if not self.remote:
            conditions.append(
                AnyOf(Match("remote_ok", True), MatchAny("places", [CITIES[self.city][0]]))
            )
        return IndexFilter.all(*conditions)

    def passes(self, d: Data) -> np.ndarray:
        ok = np.isnan(d.salary) | (d.salary <= self.salary_max)
        ok &= (d.types == 0) | ((d.types >> self.job_type) & 1 == 1)
        if not self.remote:
            ok &= d.remote | (d.city == self.city)
        result: np.ndarray = ok
        return result


def make_jobs(count: int, centres: np.ndarray, seed: int) -> list[Job]:
    rng = np.random.default_rng(seed + 1)
    jobs = []
    for _ in range(count):
        centre = centres[rng.integers(0, len(centres))]
        vector = unit((centre + rng.normal(scale=0.05, size=DIM))[None, :])[0]
        jobs.append(
            Job(
                vector=vector,
                city=int(min(rng.zipf(1.5), len(CITIES)) - 1),
                remote=bool(rng.random() < 0.2),
                salary_max=float(rng.lognormal(np.log(70_000), 0.3)),
                job_type=int(0 if rng.random() < 0.7 else rng.integers(1, len(JOB_TYPES))),
            )
        )
    return jobs


def rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def open_engine(engine: str, path: Path) -> VectorIndex:
    if engine == "edge":
        return EdgeIndex(path)
    if engine == "local":
        return QdrantClientIndex.local(str(path))
    raise SystemExit(f"unknown engine {engine!r}")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


async def timed_searches(
    index: VectorIndex, jobs: list[Job], limit: int, filtered: bool, budget: float
) -> tuple[list[float], list[list[str]]]:
    """Search for each job in turn; stop early (after at least 10) once ``budget``
    seconds are spent, so the slow engine still finishes."""
    latencies: list[float] = []
    answers: list[list[str]] = []
    deadline = time.perf_counter() + budget
    for job in jobs:
        if len(latencies) >= 10 and time.perf_counter() > deadline:
            break
        start = time.perf_counter()
        hits = await index.search(
            COLLECTION, job.vector, filter=job.filter() if filtered else None, limit=limit
        )
        latencies.append((time.perf_counter() - start) * 1000)
        answers.append([h.id for h in hits])
    return latencies, answers


def recall(data: Data, jobs: list[Job], answers: list[list[str]], limit: int) -> float:
    found = total = 0
    for job, answer in zip(jobs, answers, strict=False):
        scores = data.vectors @ job.vector
        scores[~job.passes(data)] = -np.inf
        top = np.argsort(-scores)[:limit]
        exact = {f"user-{i}" for i in top if np.isfinite(scores[i])}
        found += len(exact & set(answer))
        total += len(exact)
    return found / total if total else 1.0


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    data, centres = make_data(args.points, args.seed)
    jobs = make_jobs(args.queries, centres, args.seed)
    base_rss, _ = rss_mb()
    path = Path(args.dir)
    index = open_engine(args.engine, path)
    await index.ensure(COLLECTION, DIM, indexes=INDEXES)
    start = time.perf_counter()
    for at in range(0, args.points, args.batch):
        await index.upsert(
            COLLECTION,
            [
                (data.payloads[i]["user_id"], data.vectors[i], data.payloads[i])
                for i in range(at, min(at + args.batch, args.points))
            ],
        )
    load_s = time.perf_counter() - start
    optimize_s = None
    if args.optimize and isinstance(index, EdgeIndex):
        start = time.perf_counter()
        await index.optimize(COLLECTION)
        optimize_s = time.perf_counter() - start
    assert await index.count(COLLECTION) == args.points
    rss, _ = rss_mb()

    p50s, p95s, answers, searches = [], [], [], []
    for _ in range(args.runs):
        latencies, answers = await timed_searches(
            index, jobs, args.limit, filtered=True, budget=args.budget
        )
        p50s.append(percentile(latencies, 50))
        p95s.append(percentile(latencies, 95))
        searches.append(len(latencies))
    plain, _ = await timed_searches(index, jobs, args.limit, filtered=False, budget=args.budget)
    one_user = []
    for i in range(min(args.queries, 100)):
        if len(one_user) >= 10 and sum(one_user) > args.budget * 1000:
            break
        start = time.perf_counter()
        hits = await index.search(
            COLLECTION, jobs[i].vector, filter=IndexFilter.all(Match("user_id", f"user-{i}"))
        )
        one_user.append((time.perf_counter() - start) * 1000)
        assert [h.id for h in hits] == [f"user-{i}"]
    _, peak = rss_mb()

    await index.close()
    start = time.perf_counter()
    reopened = open_engine(args.engine, path)
    await reopened.ensure(COLLECTION, DIM, indexes=INDEXES)
    await reopened.search(COLLECTION, jobs[0].vector, filter=jobs[0].filter(), limit=args.limit)
    reopen_s = time.perf_counter() - start
    await reopened.close()

    return {
        "engine": args.engine,
        "points": args.points,
        "load_s": load_s,
        "optimize_s": optimize_s,
        "reopen_s": reopen_s,
        "filtered_p50_ms": statistics.median(p50s),
        "filtered_p95_ms": statistics.median(p95s),
        "plain_p50_ms": percentile(plain, 50),
        "plain_p95_ms": percentile(plain, 95),
        "one_user_p50_ms": percentile(one_user, 50),
        "searches": min(searches),
        "recall": recall(data, jobs, answers, args.limit),
        "rss_mb": rss - base_rss,
        "peak_rss_mb": peak,
        "disk_mb": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20,
    }


def run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"herald-bench-index-{engine}-"))
    try:
        cmd = [
            sys.executable, __file__, "--worker", engine, "--dir", str(workdir / "data"),
            "--points", str(args.points), "--queries", str(args.queries),
            "--runs", str(args.runs), "--limit", str(args.limit), "--batch", str(args.batch),
            "--seed", str(args.seed), "--budget", str(args.budget),
        ]  # fmt: skip
        if args.optimize:
            cmd.append("--optimize")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def show(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"{args.points:,} points, {DIM}-d; up to {args.queries} searches a round (or "
        f"{args.budget:.0f} s) for the top {args.limit}; p50/p95 the median of {args.runs} rounds"
    )
    rows = [
        ("load (upsert, s)", "load_s", "{:.1f}"),
        ("optimize (s)", "optimize_s", "{:.1f}"),
        ("filtered search p50 (ms)", "filtered_p50_ms", "{:.2f}"),
        ("filtered search p95 (ms)", "filtered_p95_ms", "{:.2f}"),
        ("searches per round", "searches", "{}"),
        ("recall of the filtered top", "recall", "{:.3f}"),
        ("unfiltered search p50 (ms)", "plain_p50_ms", "{:.2f}"),
        ("unfiltered search p95 (ms)", "plain_p95_ms", "{:.2f}"),
        ("one user's point p50 (ms)", "one_user_p50_ms", "{:.2f}"),
        ("reopen + first search (s)", "reopen_s", "{:.2f}"),
        ("RSS after load, over baseline (MB)", "rss_mb", "{:.0f}"),
        ("peak RSS of the process (MB)", "peak_rss_mb", "{:.0f}"),
        ("on disk (MB)", "disk_mb", "{:.0f}"),
    ]
    print(f"{'':36}" + "".join(f"{r['engine']:>12}" for r in results))
    for label, key, fmt in rows:
        cells = ["-" if r.get(key) is None else fmt.format(r[key]) for r in results]
        print(f"{label:36}" + "".join(f"{c:>12}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="edge,local", help="comma-separated: edge, local")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000, help="points per upsert")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds a round of searches may take"
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="Edge: build the HNSW graph after loading (the matcher does not; exact search)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.engine = args.worker
        print(json.dumps(asyncio.run(worker(args))))
        return
    results = [run_engine(e.strip(), args) for e in args.engines.split(",") if e.strip()]
    show(results, args)


if __name__ == "__main__":
    main()
