"""Matcher benchmark: embedding throughput, and job.posted → match.found at 100,000 résumés.

Embedding (before anything else of a run exists): ``--texts`` job- and résumé-like
texts of 150-400 words (sentences of one field of ``bench/data/match_quality.json``
strung together), each path in a process of its own (ONNX Runtime keeps the memory
its arena grew to, so a path run after another would inherit it), through

- raw fastembed: ``TextEmbedding(...).embed(texts)`` on the same model directory,
  at its default batch of 256 and at the Embedder's 32; it cuts every text at the
  model's 256 word pieces;
- ``Embedder.embed(texts)``: the matcher's path (its worker thread, texts longer
  than the model reads cut into overlapping windows, mean-pooled, normalised);
- ``Embedder.embed([text])`` once per text, all at once: how handlers in flight use
  it (their calls are coalesced on the worker thread).

Texts per second for each after a warm-up of 64 texts, word pieces per text (what
the model actually ran: the windows overlap, and raw fastembed drops what is past
its 256 pieces), and the peak RSS of the path's process; the order of the four turns
with each run. Then, in this process, each measured job's own text, one
``Embedder.embed([job_text])`` at a time (what ``on_job_posted`` does first).

End to end: the real matcher (``python -m services.matcher``) on a fresh namespace,
database and data dir, with ``--resumes`` résumés already in its embedded index (and
a ``users`` + ``preferences`` row each, which the handler reads for the users'
minimum scores; it reads no ``resumes`` rows, so none are written). The points are
written with ``EdgeIndex`` and ``ensure_collections``, the code the matcher runs,
while the matcher is stopped (Edge allows one process at a time). Their vectors come
from real embeddings: ``--variants`` résumé texts are embedded (two in three made
from the labelled set's 38 résumés, sentences dropped, reordered and mixed with
others of the field; one in three written from one of its 105 jobs, as by someone
who did that job, so that every job has people near it), and each point is one of
them plus Gaussian noise (cosine about 0.9 to it), normalised. Remote flags and
salary floors come from the variant's source with some spread, places are drawn as
often as the set's jobs and résumés name them, skills are the variant's (each kept
with p 0.85): the index's filters and the scoring see realistic payloads.

Jobs (``--jobs`` of the set's, in a shuffled order, the same in every run) are
published one at a time, each once the previous one is done, after ``--warmup``
unmeasured ones. A consumer of this benchmark's, bound to ``match.found``,
timestamps every announcement. Latency is from just before the publish to the
arrival of the job's last ``match.found``. How many to wait for is the number of
``matches`` rows the job's transaction committed (the events are published and
confirmed inside it, and every pair is new), read once ``jobs.indexed_at``, set in
the same transaction, shows; the matcher's ``job_matched`` log line is checked
against it. Nothing waits for silence, so no settle time is in or out of the
figure. Jobs with no match have no last announcement and are only counted. The
latency includes the job's own embedding; the table also shows it less this
process's time to embed the same text (an estimate: the matcher has no embedding
timer to read).

Matcher RSS from ``/proc``: ready with an empty index (a first start, which also
creates the database), ready with the résumés loaded, after the jobs, and its peak.
Medians over ``--runs``; each run starts from a fresh namespace, database and data
dir and removes them (queues, exchange, database, files, the matcher) when it ends,
also on Ctrl-C or SIGTERM.

    python bench/match.py [--runs 3] [--resumes 100000] [--jobs 50] [--texts 500]
        [--warmup 3] [--variants 400] [--per-job] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import aiormq.abc
import asyncpg
import httpx
import numpy as np
import numpy.typing as npt
from _support import free_port, rabbit_queues, sigterm_as_interrupt
from fastembed import TextEmbedding
from tokenizers import Tokenizer

from services.matcher import model_files
from services.matcher.embedding import DIM, Embedder, windows
from services.matcher.handlers import job_text
from services.matcher.index import EdgeIndex, IndexPoint
from services.matcher.searching import RESUMES, ensure_collections, resume_payload
from services.matcher.skills import SkillExtractor
from shared.bus import Bus, QueueNames, catalog, exchange_name
from shared.events import JobPosted, ResumeUpserted, new_event
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.settings import Settings

AMQP_URL = os.environ.get("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("HERALD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
DATA = ROOT / "bench" / "data" / "match_quality.json"
# the Embedder's defaults: the model reads 256 word pieces, two of them [CLS] and
# [SEP]; longer texts go in windows of 200 overlapping by 40
MODEL_PIECES = 254
WINDOW, OVERLAP = 200, 40
# each stored résumé's cosine to the embedded variant it was drawn from, about
SPREAD = 0.9
TARGET_MS = 250.0


@dataclass
class Config:
    runs: int
    resumes: int
    jobs: int
    warmup: int
    texts: int
    variants: int
    seed: int
    log_level: str
    model_dir: Path
    per_job: bool


# -- the texts: the labelled set, recombined -------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


@dataclass(frozen=True)
class Corpus:
    jobs: list[dict[str, Any]]  # reposts left out: each job here is a job of its own
    resumes: list[dict[str, Any]]
    by_field: dict[str, list[str]]  # sentences of a field's jobs and résumés
    places: list[str]
    place_weights: list[float]

    @classmethod
    def load(cls, path: Path) -> Corpus:
        data = json.loads(path.read_text(encoding="utf-8"))
        jobs = [j for j in data["jobs"] if "repost" not in j["id"]]
        resumes = data["resumes"]
        by_field: dict[str, list[str]] = defaultdict(list)
        for j in jobs:
            by_field[j["field"]] += sentences(j["description"])
        for r in resumes:
            by_field[r["field"]] += sentences(r["text"])
        # where seekers live: as often as the set's jobs and résumés are there
        where = Counter(
            x["location"]
            for x in [*jobs, *resumes]
            if x.get("location") and not x["location"].lower().startswith("remote")
        )
        places = sorted(where)
        total = sum(where.values())
        return cls(jobs, resumes, by_field, places, [where[p] / total for p in places])


def throughput_texts(corpus: Corpus, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` texts of 150-400 words, each the sentences of one field in random order."""
    fields = sorted(corpus.by_field)
    texts = []
    for _ in range(n):
        pool = corpus.by_field[fields[rng.integers(len(fields))]]
        target = int(rng.integers(150, 401))
        words: list[str] = []
        while len(words) < target:
            words += pool[rng.integers(len(pool))].split()
        texts.append(" ".join(words[:target]))
    return texts


@dataclass(frozen=True)
class Variant:
    title: str
    text: str
    remote_ok: bool | None
    desired_salary: float | None


def resume_variants(corpus: Corpus, count: int, rng: np.random.Generator) -> list[Variant]:
    """Résumé texts: two in three from the set's résumés (a quarter of the sentences
    dropped, the rest but the first shuffled, one to three sentences of the field's
    other résumés and jobs added); one in three written from one of its jobs, as by a
    person who has done that job (so every job has people near it: the set has 38
    résumés for 105 jobs)."""
    out = []
    for i in range(count):
        if i % 3 < 2:
            r = corpus.resumes[(i - i // 3) % len(corpus.resumes)]
            field, title, own = r["field"], r["title"], sentences(r["text"])
            remote_ok, floor = r.get("remote_ok"), r.get("desired_salary")
        else:
            j = corpus.jobs[(i // 3) % len(corpus.jobs)]
            field, title, own = j["field"], j["title"], sentences(j["description"])
            remote_ok, floor = j["remote"] or None, j.get("salary_min")
        kept = [own[0], *(s for s in own[1:] if rng.random() > 0.25)]
        others = [s for s in corpus.by_field[field] if s not in own]
        if others:
            kept += [others[rng.integers(len(others))] for _ in range(int(rng.integers(1, 4)))]
        rest = kept[1:]
        rng.shuffle(rest)
        out.append(Variant(title, " ".join([kept[0], *rest]), remote_ok, floor))
    return out


def variant_text(v: Variant) -> str:
    return f"{v.title}\n{v.text}"  # as the matcher's resume_text


# -- the stored résumés ---------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    user_ids: list[str]
    vectors: npt.NDArray[np.float32]
    payloads: list[dict[str, Any]]


def unit(rows: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    normed: npt.NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return normed


def make_store(
    corpus: Corpus,
    variants: list[Variant],
    vectors: npt.NDArray[np.float32],
    skills: list[frozenset[str]],
    n: int,
    rng: np.random.Generator,
) -> Store:
    which = rng.integers(0, len(variants), n)
    # noise of norm sigma * sqrt(DIM) leaves a cosine of 1 / sqrt(1 + sigma² DIM)
    sigma = float(np.sqrt((1 / SPREAD**2 - 1) / DIM))
    points = unit(vectors[which] + rng.normal(scale=sigma, size=(n, DIM)).astype(np.float32))
    place_index = rng.choice(len(corpus.places), n, p=corpus.place_weights)
    user_ids = [f"seeker-{i:06d}" for i in range(n)]
    payloads = []
    for i in range(n):
        v = variants[which[i]]
        roll = rng.random()
        remote_ok = v.remote_ok if roll < 0.6 else None if roll < 0.9 else not v.remote_ok
        floor = None
        if v.desired_salary is not None and rng.random() < 0.7:
            floor = float(v.desired_salary) * float(rng.lognormal(0, 0.15))
            floor = round(floor, -3) if floor >= 1000 else round(floor, 1)
        resume = ResumeUpserted(
            user_id=user_ids[i],
            text=v.text,
            title=v.title,
            location=None if rng.random() < 0.05 else corpus.places[place_index[i]],
            remote_ok=remote_ok,
            desired_salary=floor,
        )
        kept = [s for s in sorted(skills[which[i]]) if rng.random() < 0.85]
        payloads.append(resume_payload(resume, kept))
    return Store(user_ids, points, payloads)


def job_events(corpus: Corpus, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``count`` of the set's jobs, in a shuffled order."""
    if count > len(corpus.jobs):
        raise SystemExit(f"--jobs + --warmup: at most {len(corpus.jobs)}")
    order = rng.permutation(len(corpus.jobs))[:count]
    return [corpus.jobs[i] for i in order]


def posted(job: dict[str, Any]) -> JobPosted:
    return JobPosted.model_validate(
        {
            "job_id": f"bench-{job['id']}",
            "title": job["title"],
            "company": job["company"],
            "description": job["description"],
            "location": job.get("location"),
            "remote": job["remote"],
            "salary_min": job.get("salary_min"),
            "salary_max": job.get("salary_max"),
            "currency": job.get("currency"),
            "job_type": job["job_type"],
            "url": f"https://jobs.example.com/{job['id']}",
            "posted_at": datetime.now(UTC),
        }
    )


# -- embedding throughput ---------------------------------------------------------------


@dataclass
class Pieces:
    """Word pieces per text that each path runs through the model (mean)."""

    embedder: float
    raw: float


def pieces(tokenizer: Tokenizer, texts: Sequence[str]) -> Pieces:
    embedder, raw = [], []
    for text in texts:
        n = len(tokenizer.encode(text, add_special_tokens=False).ids)
        raw.append(min(n, MODEL_PIECES))
        embedder.append(
            n if n <= MODEL_PIECES else sum(e - s for s, e in windows(n, WINDOW, OVERLAP))
        )
    return Pieces(statistics.mean(embedder), statistics.mean(raw))


PATHS = ("raw", "raw_32", "embedder", "per_text")


def raw_model(model_dir: Path) -> TextEmbedding:
    """fastembed on the matcher's model directory, as the Embedder loads it."""
    return TextEmbedding(
        model_name=model_files.MODEL_NAME,
        specific_model_path=str(model_dir),
        cache_dir=str(model_dir),
        local_files_only=True,
    )


def embed_worker(pipe: Connection, path: str, model_dir: str, texts: list[str]) -> None:
    """One path in a process of its own (ONNX Runtime keeps what its arena grew to,
    and raw fastembed's batches of 256 grow it by gigabytes): load, warm up on 64
    texts, embed them all; send back (texts/s, peak RSS in MB)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it

    async def timed() -> float:
        if path.startswith("raw"):
            raw = raw_model(Path(model_dir))
            batch = 32 if path == "raw_32" else 256  # 256: fastembed's default
            list(raw.embed(texts[:64], batch_size=batch))
            started = time.perf_counter()
            list(raw.embed(texts, batch_size=batch))
            return time.perf_counter() - started
        embedder = Embedder(Path(model_dir))
        try:
            await embedder.embed(texts[:64])
            started = time.perf_counter()
            if path == "embedder":
                await embedder.embed(texts)
            else:
                await asyncio.gather(*(embedder.embed([t]) for t in texts))
            return time.perf_counter() - started
        finally:
            embedder.close()

    seconds = asyncio.run(timed())
    pipe.send((len(texts) / seconds, memory_mb(os.getpid())[1]))


async def embed_in_child(path: str, model_dir: Path, texts: list[str]) -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=embed_worker, args=(send, path, str(model_dir), texts), daemon=True)
    proc.start()
    send.close()
    try:
        result: tuple[float, float] = await asyncio.to_thread(receive.recv)
        return result
    finally:
        if proc.is_alive():
            proc.kill()  # interrupted: its recv above ends with EOFError
        await asyncio.to_thread(proc.join)
        receive.close()


async def throughput(
    model_dir: Path, texts: list[str], run_no: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Texts per second of each path, and the peak RSS of its process; the order
    turns with each run."""
    shift = (run_no - 1) % len(PATHS)
    rates: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for path in PATHS[shift:] + PATHS[:shift]:
        rates[path], peaks[path] = await embed_in_child(path, model_dir, texts)
    return rates, peaks


async def own_embeddings(embedder: Embedder, jobs: list[JobPosted]) -> dict[str, float]:
    """Milliseconds to embed each job's text alone, as ``on_job_posted`` does."""
    took = {}
    for job in jobs:
        started = time.perf_counter()
        await embedder.embed([job_text(job)])
        took[job.job_id] = (time.perf_counter() - started) * 1000
    return took


# -- processes, figures ------------------------------------------------------------------


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    found = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in found:
                found[key] = int(line.split()[1])
    return found["VmRSS"] / 1024, found["VmHWM"] / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return float("nan")


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the machine so far."""
    with open("/proc/stat") as f:
        parts = [int(v) for v in f.readline().split()[1:]]
    return (sum(parts) - parts[3] - parts[4]) / CLK_TCK, sum(parts) / CLK_TCK


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def med(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]  # NaN-free
    return statistics.median(kept) if kept else float("nan")


# -- one run's environment: namespace, database, data dir, the matcher -----------------


@dataclass
class Environment:
    namespace: str
    database: str
    data_dir: Path

    @property
    def database_url(self) -> str:
        return f"{PG_URL}/{self.database}"

    @classmethod
    def fresh(cls) -> Environment:
        tag = uuid.uuid4().hex[:10]
        return cls(
            namespace=f"bench{tag}",
            database=f"herald_bench_{tag}",
            data_dir=Path(tempfile.mkdtemp(prefix=f"herald-bench-match-{tag}-")),
        )


class Matcher:
    """``python -m services.matcher`` on the environment; its log appended to a file."""

    def __init__(self, cfg: Config, env: Environment) -> None:
        self.cfg, self.env = cfg, env
        self.port = free_port()
        self.log_path = env.data_dir / "matcher.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> float:
        """Seconds until ``/readyz`` answered 200."""
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HERALD_AMQP_URL": AMQP_URL,
            "HERALD_NAMESPACE": self.env.namespace,
            "HERALD_DATABASE_URL": self.env.database_url,
            "HERALD_DATA_DIR": str(self.env.data_dir),
            "HERALD_EMBEDDING_MODEL_DIR": str(self.cfg.model_dir),
            "HERALD_SECRET_KEY": uuid.uuid4().hex * 2,
            "HERALD_MATCHER_METRICS_PORT": str(self.port),
            "HERALD_LOG_LEVEL": self.cfg.log_level,
            "HERALD_DRAIN_TIMEOUT": "5",
        }
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.matcher",
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it
            )
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline and self.proc.returncode is None:
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                    if r.status_code == 200:
                        return time.perf_counter() - started
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the matcher did not get ready:\n{tail(self.log_path)}")

    async def stop(self) -> None:
        """SIGTERM (it drains), SIGKILL after 20 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def job_lines(self) -> dict[str, dict[str, Any]]:
        """The matcher's ``job_matched`` log lines by job id."""
        found = {}
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and entry.get("event") == "job_matched":
                        found[str(entry.get("job_id"))] = entry
        return found


async def load_index(env: Environment, store: Store, batch: int = 1000) -> float:
    """Write the résumés straight into the matcher's embedded index (it is stopped);
    seconds it took."""
    index = EdgeIndex(env.data_dir / "qdrant")
    started = time.perf_counter()
    try:
        await ensure_collections(index)
        for at in range(0, len(store.user_ids), batch):
            points: list[IndexPoint] = [
                (store.user_ids[i], store.vectors[i], store.payloads[i])
                for i in range(at, min(at + batch, len(store.user_ids)))
            ]
            await index.upsert(RESUMES, points)
    finally:
        await index.close()
    return time.perf_counter() - started


async def load_users(env: Environment, store: Store) -> None:
    """A user and a preferences row per résumé (the handler reads minimum scores)."""
    conn = await asyncpg.connect(env.database_url)
    try:
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"{u}@example.com") for u in store.user_ids],
            columns=["user_id", "email"],
        )
        await conn.copy_records_to_table(
            "preferences", records=[(u,) for u in store.user_ids], columns=["user_id"]
        )
        await conn.execute("ANALYZE users; ANALYZE preferences")
    finally:
        await conn.close()


class Announcements:
    """A queue of this benchmark's bound to ``match.found``: arrival times by job.

    Consumed with aiormq directly, without acknowledgements: aio-pika's consumer
    wraps each delivery in an ``IncomingMessage`` and a task of its own on top of
    aiormq's, and on two shared cores that per-message cost put this process, not
    the matcher, behind: its last arrival of a job with a thousand matches came 60
    to 110 ms after the matcher had all of them confirmed, 15 to 40 ms with this.
    The timestamp is still taken when this process has the message, body decoded.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.queue = f"{namespace}.bench.match-found"
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self._connection: aiormq.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aiormq.connect(AMQP_URL)
        channel = await self._connection.channel()
        exchange = exchange_name(self.namespace)
        await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(self.queue, exclusive=True, auto_delete=True)
        await channel.queue_bind(self.queue, exchange, routing_key="match.found")
        await channel.basic_consume(self.queue, self._arrived, no_ack=True)

    async def _arrived(self, message: aiormq.abc.DeliveredMessage) -> None:
        at = time.perf_counter()
        self.arrivals[json.loads(message.body)["data"]["job_id"]].append(at)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


@dataclass
class JobResult:
    job_id: str
    matches: int
    latency_ms: float  # to the last match.found; NaN without a match
    committed_ms: float  # when this benchmark first saw the job's transaction committed
    candidates: int = -1  # the index's answer, from the matcher's log (-1: not logged)


async def post_job(
    bus: Bus,
    seen: Announcements,
    conn: asyncpg.Connection,
    job: JobPosted,
    timeout: float = 60,
) -> JobResult:
    started = time.perf_counter()
    await bus.publish(new_event(job, source="bench"))
    expected: int | None = None
    committed = float("nan")
    while True:
        now = time.perf_counter()
        if expected is None:
            row = await conn.fetchrow(
                """SELECT indexed_at IS NOT NULL AS done,
                          (SELECT count(*) FROM matches WHERE job_id = $1) AS n
                   FROM jobs WHERE job_id = $1""",
                job.job_id,
            )
            if row is not None and row["done"]:
                expected, committed = int(row["n"]), time.perf_counter()
        arrived = seen.arrivals.get(job.job_id, [])
        if expected is not None and len(arrived) >= expected:
            last = max(arrived) if arrived else float("nan")
            return JobResult(
                job.job_id, expected, (last - started) * 1000, (committed - started) * 1000
            )
        if now - started > timeout:
            raise RuntimeError(
                f"{job.job_id}: {len(arrived)} match.found of {expected} after {timeout:.0f} s"
            )
        # the database is asked every 10 ms until the job is done, then only our list
        await asyncio.sleep(0.01 if expected is None else 0.002)


# -- a run --------------------------------------------------------------------------------


@dataclass
class RunResult:
    rates: dict[str, float]
    peaks: dict[str, float]  # MB, each path's process
    own_ms: dict[str, float]
    jobs: list[JobResult] = field(default_factory=list)
    first_ms: float = float("nan")
    logged_mismatch: int = 0
    extra: int = 0
    load_s: float = float("nan")
    ready_s: float = float("nan")
    rss_empty: float = float("nan")
    rss_loaded: float = float("nan")
    rss_after: float = float("nan")
    rss_peak: float = float("nan")
    cpu_ms: float = float("nan")  # the matcher's CPU per measured job
    busy: float = float("nan")  # share of the machine's CPU busy while they ran

    @property
    def latencies(self) -> list[float]:
        return [j.latency_ms for j in self.jobs if j.matches]

    @property
    def less_own(self) -> list[float]:
        return [j.latency_ms - self.own_ms[j.job_id] for j in self.jobs if j.matches]

    @property
    def matches(self) -> list[int]:
        return [j.matches for j in self.jobs]

    @property
    def candidates(self) -> list[int]:
        return [j.candidates for j in self.jobs if j.candidates >= 0]


@dataclass
class Prepared:
    texts: list[str]
    store: Store
    warmup: list[dict[str, Any]]
    measured: list[dict[str, Any]]


async def one_run(cfg: Config, prepared: Prepared, embedder: Embedder, run_no: int) -> RunResult:
    # embedding first, in this process, with nothing else of the run started yet
    rates, peaks = await throughput(cfg.model_dir, prepared.texts, run_no)
    measured = [posted(j) for j in prepared.measured]
    result = RunResult(rates, peaks, await own_embeddings(embedder, measured))

    env = Environment.fresh()
    matcher = Matcher(cfg, env)
    bus: Bus | None = None
    seen = Announcements(env.namespace)
    try:
        # a first start creates the database and empty collections: RSS without résumés
        await matcher.start()
        await asyncio.sleep(1)
        result.rss_empty = memory_mb(matcher.pid)[0]
        await matcher.stop()
        result.load_s = await load_index(env, prepared.store)
        await load_users(env, prepared.store)
        result.ready_s = await matcher.start()
        await asyncio.sleep(1)
        result.rss_loaded = memory_mb(matcher.pid)[0]

        await seen.start()
        bus = Bus(
            amqp_url=AMQP_URL,
            namespace=env.namespace,
            service="bench",
            metrics=ServiceMetrics("bench"),
            publish_timeout=60,
        )
        await bus.start(wait=10)
        conn = await asyncpg.connect(env.database_url)
        try:
            for i, job in enumerate(prepared.warmup):
                warm = await post_job(bus, seen, conn, posted(job))
                if i == 0:  # its last announcement, or when it was done if it had none
                    result.first_ms = warm.latency_ms if warm.matches else warm.committed_ms
            cpu, (busy, wall) = cpu_seconds(matcher.pid), machine_cpu()
            for job_event in measured:
                result.jobs.append(await post_job(bus, seen, conn, job_event))
            result.cpu_ms = (cpu_seconds(matcher.pid) - cpu) * 1000 / len(measured)
            busy_after, wall_after = machine_cpu()
            result.busy = (busy_after - busy) / (wall_after - wall)
        finally:
            await conn.close()
        result.rss_after, result.rss_peak = memory_mb(matcher.pid)
        await matcher.stop()

        logged = matcher.job_lines()  # none below --log-level info
        for j in result.jobs:
            if j.job_id in logged:
                j.candidates = int(logged[j.job_id]["candidates"])
                result.logged_mismatch += int(logged[j.job_id]["matched"] != j.matches)
        await asyncio.sleep(0.2)  # stragglers, if any, would be repeats
        result.extra = sum(len(seen.arrivals.get(j.job_id, [])) - j.matches for j in result.jobs)
    except BaseException:
        print(f"--- matcher log tail:\n{tail(matcher.log_path)}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(Exception):
            await matcher.stop()
        if bus is not None:
            with contextlib.suppress(Exception):
                await bus.stop()
        with contextlib.suppress(Exception):
            await seen.stop()
        await clean_up(env)
    return result


def describe(run_no: int, r: RunResult, per_job: bool) -> str:
    jobs = "".join(
        f"\n    {j.job_id:42}{j.matches:>6} match.found of {j.candidates:>5} candidates"
        f"{j.latency_ms:>8.0f} ms (own embedding {r.own_ms[j.job_id]:.0f} ms)"
        for j in r.jobs
        if per_job
    )
    return (
        f"  run {run_no}: embedding raw {r.rates['raw']:.1f} (batch 32: {r.rates['raw_32']:.1f}), "
        f"Embedder {r.rates['embedder']:.1f}, "
        f"per text {r.rates['per_text']:.1f} texts/s; index loaded in {r.load_s:.1f} s, matcher "
        f"ready in {r.ready_s:.1f} s; {len(r.jobs)} jobs: p50 {percentile(r.latencies, 0.5):.0f} "
        f"p95 {percentile(r.latencies, 0.95):.0f} max {max(r.latencies, default=float('nan')):.0f}"
        f" ms, first job after start {r.first_ms:.0f} ms; matches {min(r.matches)}-"
        f"{max(r.matches)} (median {statistics.median(r.matches):.0f}); RSS {r.rss_empty:.0f} / "
        f"{r.rss_loaded:.0f} / {r.rss_after:.0f} MB (peak {r.rss_peak:.0f}); matcher CPU "
        f"{r.cpu_ms:.0f} ms per job, machine {r.busy:.0%} busy"
        + (f"; {r.logged_mismatch} log/row count mismatches" if r.logged_mismatch else "")
        + (f"; {r.extra} extra match.found" if r.extra else "")
        + jobs
    )


# -- clean-up --------------------------------------------------------------------------------


def computed_queues(namespace: str) -> list[str]:
    """The names the matcher declares (when rabbitmqctl cannot list them)."""
    delays = Settings().retry_delays  # the matcher reads the same environment
    names = [f"{namespace}.bench.match-found"]
    for wq in catalog.ALL_QUEUES:
        if wq.service == "matcher":
            names += QueueNames.of(namespace, wq.service, wq.concern).all(delays)
    return names


async def clean_up(env: Environment) -> None:
    """Every queue named ``<namespace>.*``, the exchange, the database, the data dir."""
    prefix = f"{env.namespace}."
    queues = rabbit_queues(prefix)
    if queues is None:
        queues = computed_queues(env.namespace)
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(AMQP_URL)
        try:
            for name in [*queues, None]:
                channel = await connection.channel()  # a failed delete closes its channel
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    if name is None:
                        await channel.exchange_delete(exchange_name(env.namespace))
                    else:
                        await channel.queue_delete(name)
        finally:
            await connection.close()
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(f"{PG_URL}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{env.database}" WITH (FORCE)')
        finally:
            await conn.close()
    shutil.rmtree(env.data_dir, ignore_errors=True)
    left = rabbit_queues(prefix)
    if left:
        print(f"  ! queues left behind: {left}", file=sys.stderr)


# -- the report --------------------------------------------------------------------------------


def report(cfg: Config, runs: list[RunResult], texts: Pieces, candidates: int) -> None:
    what = f"median of {len(runs)} runs" if len(runs) > 1 else "1 run"
    print(
        f"\nmatch: {cfg.resumes:,} stored résumés, {cfg.jobs} jobs one at a time after "
        f"{cfg.warmup} warm-up; {candidates:,} candidates a job; {os.cpu_count()} cores; {what}"
    )
    print(
        f"\nembedding {cfg.texts:,} texts of 150-400 words{'':8}"
        "texts/s  pieces/text   pieces/s  peak RSS"
    )
    rows = [
        ("raw fastembed TextEmbedding.embed (batch 256)", "raw", texts.raw),
        ("  the same, batch_size=32 (the Embedder's)", "raw_32", texts.raw),
        ("Embedder.embed(texts), one call", "embedder", texts.embedder),
        (f"Embedder.embed([text]) x {cfg.texts:,} at once", "per_text", texts.embedder),
    ]
    rates = {key: med([r.rates[key] for r in runs]) for _, key, _ in rows}
    for label, key, per in rows:
        peak = max(r.peaks[key] for r in runs)
        print(
            f"  {label:46}{rates[key]:>7.1f}{per:>13.0f}{rates[key] * per:>11,.0f}{peak:>7,.0f} MB"
        )
    print(
        f"  Embedder / raw: {rates['embedder'] / rates['raw']:.2f}x texts/s, "
        f"{rates['embedder'] * texts.embedder / (rates['raw'] * texts.raw):.2f}x word pieces/s"
    )

    print(f"\njob.posted -> its last match.found (ms){'':12}p50       p95       max")
    lines = [
        ("end to end", [r.latencies for r in runs]),
        ("  less the job's own embedding (estimate)", [r.less_own for r in runs]),
        ("the job's own embedding alone", [list(r.own_ms.values()) for r in runs]),
    ]
    for label, per_run in lines:
        p50 = med([percentile(v, 0.5) for v in per_run])
        p95 = med([percentile(v, 0.95) for v in per_run])
        top = max(max(v, default=float("nan")) for v in per_run)
        print(f"  {label:48}{p50:>6.0f}{p95:>10.0f}{top:>10.0f}")
    print(f"  first job after the matcher started: {med([r.first_ms for r in runs]):.0f} ms")
    matches = [m for r in runs for m in r.matches]
    found = [c for r in runs for c in r.candidates]
    no_match = sum(1 for m in matches if m == 0)
    print(
        f"  match.found per job: median {statistics.median(matches):.0f}, "
        f"{min(matches)}-{max(matches)}"
        + (f" ({no_match} of {len(matches)} jobs with none, left out above)" if no_match else "")
        + (f"; candidates from the index: median {statistics.median(found):.0f}" if found else "")
    )
    pairs = [(j.matches, j.latency_ms) for r in runs for j in r.jobs if j.matches]
    if len({m for m, _ in pairs}) > 1:
        xs = np.array([float(m) for m, _ in pairs])
        slope, intercept = np.polyfit(xs, np.array([ms for _, ms in pairs]), 1)
        reach = (
            f"; {TARGET_MS:.0f} ms at about {(TARGET_MS - intercept) / slope:.0f}"
            if slope > 0
            else ""
        )
        print(
            f"  latency ~ {intercept:.0f} ms + {slope:.2f} ms per match.found "
            f"(least squares over {len(pairs)} jobs{reach})"
        )
    print(
        f"  matcher CPU per job: {med([r.cpu_ms for r in runs]):.0f} ms; the machine was "
        f"{med([r.busy for r in runs]):.0%} busy while the jobs ran (all processes)"
    )
    problems = sum(r.logged_mismatch + r.extra for r in runs)
    if problems:
        print(f"  ! {problems} jobs whose log, rows and announcements disagree")

    print(
        f"\nmatcher RSS (MB): empty index {med([r.rss_empty for r in runs]):.0f}; "
        f"{cfg.resumes:,} résumés loaded {med([r.rss_loaded for r in runs]):.0f}; "
        f"after the jobs {med([r.rss_after for r in runs]):.0f}; "
        f"peak {max(r.rss_peak for r in runs):.0f}"
    )
    print(
        f"index load (not the matcher's work): {med([r.load_s for r in runs]):.1f} s; "
        f"matcher ready with it in {med([r.ready_s for r in runs]):.1f} s"
    )
    p95 = med([percentile(r.latencies, 0.95) for r in runs])
    print(
        f"target: p95 <= {TARGET_MS:.0f} ms at {cfg.resumes:,} résumés: "
        f"{'met' if p95 <= TARGET_MS else 'MISSED'} ({p95:.0f} ms, the job's embedding included)"
    )


# -- main ---------------------------------------------------------------------------------


def prepare(cfg: Config, embedder: Embedder) -> Prepared:
    rng = np.random.default_rng(cfg.seed)
    corpus = Corpus.load(DATA)
    started = time.perf_counter()
    variants = resume_variants(corpus, cfg.variants, rng)
    vectors = embedder.embed_sync([variant_text(v) for v in variants])
    extractor = SkillExtractor()
    skills = [extractor.extract(variant_text(v)) for v in variants]
    store = make_store(corpus, variants, vectors, skills, cfg.resumes, rng)
    jobs = job_events(corpus, cfg.warmup + cfg.jobs, rng)
    print(
        f"prepared {cfg.resumes:,} résumés from {cfg.variants} embedded variants in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return Prepared(
        throughput_texts(corpus, cfg.texts, rng), store, jobs[: cfg.warmup], jobs[cfg.warmup :]
    )


async def run(cfg: Config) -> None:
    embedder = Embedder(cfg.model_dir)  # the variants, and each job's own text
    try:
        prepared = prepare(cfg, embedder)
        tokenizer = Tokenizer.from_file(str(cfg.model_dir / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        texts = pieces(tokenizer, prepared.texts)
        runs = []
        for run_no in range(1, cfg.runs + 1):
            print(f"run {run_no}/{cfg.runs}", file=sys.stderr)
            runs.append(await one_run(cfg, prepared, embedder, run_no))
            print(describe(run_no, runs[-1], cfg.per_job), file=sys.stderr)
        report(cfg, runs, texts, Settings().match_candidates)
    finally:
        embedder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resumes", type=int, default=100_000, help="stored in the index")
    parser.add_argument("--jobs", type=int, default=50, help="measured job.posted events")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured jobs first")
    parser.add_argument("--texts", type=int, default=500, help="texts for the throughput")
    parser.add_argument("--variants", type=int, default=400, help="embedded résumé texts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-job", action="store_true", help="print each job's figures")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="fastembed model directory (default: HERALD_EMBEDDING_MODEL_DIR or the packaged one)",
    )
    args = parser.parse_args()
    if args.warmup < 1 or args.jobs < 1:
        parser.error("--jobs and --warmup must be at least 1")
    configure_logging("bench", "warning")
    model_dir = args.model_dir or model_files.model_dir(Settings())
    cfg = Config(
        runs=args.runs,
        resumes=args.resumes,
        jobs=args.jobs,
        warmup=args.warmup,
        texts=args.texts,
        variants=args.variants,
        seed=args.seed,
        log_level=args.log_level,
        model_dir=model_dir.resolve(),
        per_job=args.per_job,
    )
    try:
        with sigterm_as_interrupt():
            asyncio.run(run(cfg))
    except KeyboardInterrupt:
        print("interrupted; everything the benchmark made is removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
