"""Dispatch benchmark: webhook deliveries through Herald's dispatcher against Celery.

Herald: the real dispatcher (``python -m services.dispatcher``) on a fresh database
and namespace. Each ``notification.requested`` event goes the whole way: intake
(recipient and preferences, de-duplication mark, notification and delivery rows),
``delivery.due`` on the delivery queue, claim, rate-limit reservation, the signed
webhook POST, the attempt recorded, ``notification.delivered`` published.

Celery (``bench/celery_peer.py``): a task per notification on the same broker, the
same database, the same receiver: record the notification and its delivery row,
POST the same signed body, mark it delivered. Twice: ``task_acks_late`` with
``worker_prefetch_multiplier=1`` (the setting that does not lose tasks), and
Celery's defaults.

Per side:
- throughput: ``--messages`` notifications published as fast as the publisher goes,
  spread over ``--users`` users; deliveries per second from the first to the last
  POST the receiver sees, then the delivery history is checked (every delivery row
  ``delivered``);
- latency: a steady offered rate (``--rate``, and ``--celery-rate``, the rate the
  issue quotes Celery at) for ``--seconds``, paced in 20 ms ticks; event-to-delivery
  latency is the receiver's clock at the POST minus the publisher's clock just
  before the publish (two processes, one machine, ``time.time()``);
- peak RSS of the service (the dispatcher; the Celery worker with its pool
  children, summed), sampled from ``/proc`` every 100 ms; CPU per delivery.

The webhook receiver is a raw asyncio HTTP/1.1 server with keep-alive in its own
process (``--check-receiver`` measures it alone). Everything shares the machine's
cores, as the issue's figures do; the CPU split per delivery (service, RabbitMQ,
PostgreSQL, this benchmark, the rest) shows who used them, and how much of the
machine was taken by something else. Sides take turns in each run (Herald, then
Celery with acks_late, then Celery's defaults; the dispatcher is stopped during
Celery's turns); each run starts from a fresh namespace and database, and the
table gives medians over ``--runs``.

Both sides get the same number of worker processes: Celery's prefork pool has one
per core by default (``--celery-concurrency``, 2 here), and Herald as many
dispatcher replicas (``--replicas``, by default the Celery concurrency; each
replica's own RSS is what the 150 MB target is about). ``--replicas 1`` shows one
dispatcher process against Celery's two.

    python bench/dispatch.py [--messages 20000] [--rate 500] [--celery-rate 200]
        [--seconds 20] [--runs 1] [--replicas N] [--celery-pool prefork|threads]
        [--celery-concurrency 2] [--sides herald,celery-reliable,celery-defaults]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from _support import free_port, rabbit_queues, sigterm_as_interrupt

from shared.bus import Bus
from shared.endpoints import create_endpoint
from shared.events import RequestNotification, UserSignedUp, derived_id, new_event
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.sealing import Sealer, generate_key

AMQP_URL = os.environ.get("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("HERALD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
ROOT = Path(__file__).resolve().parent.parent
TICK = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = (
    "A new role matches your profile: senior backend engineer, remote, Python and "
    "PostgreSQL, salary band published."
)


@dataclass
class Config:
    messages: int
    rate: int
    celery_rate: int
    seconds: float
    runs: int
    users: int
    window: int
    prefetch: int | None
    log_level: str
    replicas: int
    celery_pool: str
    celery_concurrency: int
    sides: list[str]
    check_receiver: bool
    dump: Path | None = None

    @property
    def rates(self) -> list[int]:
        return sorted({self.celery_rate, self.rate})


# -- the webhook receiver (its own process) ----------------------------------------

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n"


class _Log:
    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self.sample: tuple[bytes, bytes] | None = None

    def take(self) -> list[tuple[str, float]]:
        taken, self.arrivals = self.arrivals, []
        return taken


class _Hook(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies (what httpx sends): each
    request is answered 204 and logged as (the body's ``data.id``, arrival time)."""

    def __init__(self, log: _Log) -> None:
        self._log = log
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self._buffer
        buffer += data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:end])
            at = head.lower().find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            try:
                self._log.arrivals.append((json.loads(body)["data"]["id"], now))
            except (ValueError, KeyError, TypeError):
                self._log.arrivals.append(("?", now))
            self._log.sample = (head, body)
            assert self._transport is not None
            self._transport.write(_NO_CONTENT)


def serve_receiver(pipe: Pipe) -> None:
    """The receiver process: serve until told to stop; answer ``collect`` (arrivals
    since the last collect) and ``sample`` (the last request) on ``pipe``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        log = _Log()
        server = await loop.create_server(lambda: _Hook(log), "127.0.0.1", 0, backlog=1024)
        pipe.send(server.sockets[0].getsockname()[1])
        stopped = loop.create_future()

        def on_command() -> None:
            try:
                command = pipe.recv()
            except EOFError:
                command = "stop"
            if command == "collect":
                pipe.send(log.take())
            elif command == "sample":
                pipe.send(log.sample)
            elif not stopped.done():
                stopped.set_result(None)

        loop.add_reader(pipe.fileno(), on_command)
        await stopped
        server.close()

    asyncio.run(serve())


class Receiver:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_receiver, args=(child,), daemon=True)
        self.process.start()
        self.port: int = self._pipe.recv()
        self._lock = threading.Lock()

    def url(self, user_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{user_id}"

    def _ask(self, command: str) -> Any:
        with self._lock:
            self._pipe.send(command)
            return self._pipe.recv()

    async def collect(self) -> list[tuple[str, float]]:
        arrivals: list[tuple[str, float]] = await asyncio.to_thread(self._ask, "collect")
        return arrivals

    async def sample(self) -> tuple[bytes, bytes] | None:
        sample: tuple[bytes, bytes] | None = await asyncio.to_thread(self._ask, "sample")
        return sample

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._pipe.send("stop")
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class Arrivals:
    """What the receiver saw, by notification id; repeats are counted, not kept."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self.seen: dict[str, float] = {}
        self.repeats = 0

    async def poll(self) -> None:
        for nid, at in await self._receiver.collect():
            if nid in self.seen:
                self.repeats += 1
            else:
                self.seen[nid] = at

    async def wait_for(self, ids: set[str], *, idle_timeout: float = 30.0) -> dict[str, float]:
        """Wait until every id arrived (or nothing new came for ``idle_timeout``)."""
        loop = asyncio.get_running_loop()
        last_progress, count = loop.time(), -1
        while True:
            await self.poll()
            got = len(ids & self.seen.keys())
            if got == len(ids):
                return {i: self.seen[i] for i in ids}
            if got != count:
                last_progress, count = loop.time(), got
            elif loop.time() - last_progress > idle_timeout:
                print(f"  ! {len(ids) - got} of {len(ids)} never arrived", file=sys.stderr)
                return {i: self.seen[i] for i in ids if i in self.seen}
            await asyncio.sleep(0.1)


async def check_receiver(receiver: Receiver, requests: int = 20_000, connections: int = 8) -> None:
    """The receiver alone: raw keep-alive POSTs of a webhook-sized body."""
    arrivals = Arrivals(receiver)
    per = requests // connections

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        for _ in range(per):
            body = json.dumps({"type": "t", "data": {"id": str(uuid.uuid4()), "body": BODY}})
            writer.write(
                f"POST /hook/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            await reader.readuntil(b"\r\n\r\n")
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    seconds = time.perf_counter() - started
    await arrivals.poll()
    print(
        f"receiver alone: {len(arrivals.seen):,} POSTs over {connections} keep-alive "
        f"connections in {seconds:.2f}s = {len(arrivals.seen) / seconds:,.0f}/s "
        "(the load generator shares the cores: a lower bound)"
    )


# -- processes and what they use ---------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return 0.0


def _postgres_database(pid: int) -> str | None:
    """The database a PostgreSQL backend serves ("" for the server's own processes)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().decode(errors="replace").split()
    except OSError:
        return None
    # a backend: "postgres: 15/main: <user> <database> <host(port)> <state>"
    if len(title) > 4 and ("(" in title[4] or title[4] == "[local]"):
        return title[3]
    return ""


def cpu_by_group(service: list[int], database: str) -> dict[str, float]:
    """CPU seconds so far of the service's process trees, RabbitMQ, PostgreSQL (the
    server's own processes and the backends serving ``database``), this benchmark
    (with its receiver), and of the whole machine (busy and all)."""
    mine = {p for pid in service for p in process_tree(pid)}
    bench = set(process_tree(os.getpid()))
    groups = {"service": 0.0, "rabbitmq": 0.0, "postgres": 0.0, "bench": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if pid in mine:
            group = "service"
        elif pid in bench:
            group = "bench"
        elif comm in ("beam.smp", "erl_child_setup", "epmd", "inet_gethost"):
            group = "rabbitmq"
        elif comm.startswith("postgres") and _postgres_database(pid) in ("", database):
            group = "postgres"
        else:
            continue
        groups[group] += cpu_seconds(pid)
    with open("/proc/stat") as f:
        parts = [int(v) for v in f.readline().split()[1:]]
    groups["machine_busy"] = (sum(parts) - parts[3] - parts[4]) / CLK_TCK
    groups["machine_all"] = sum(parts) / CLK_TCK
    return groups


class Usage:
    """Peak resident memory of process trees, sampled every ``interval`` seconds:
    of all of them together (``peak_kb``) and of the largest one (``largest_kb``)."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        self.pids = pids
        self.peak_kb = 0
        self.largest_kb = 0
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        trees = [sum(rss_kb(p) for p in process_tree(pid)) for pid in self.pids]
        self.peak_kb = max(self.peak_kb, sum(trees))
        self.largest_kb = max(self.largest_kb, *trees)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


async def stop_process(proc: asyncio.subprocess.Process, *, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after 15 s; ``group`` for a process that forked
    children into the session it leads (the prefork pool)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- figures -------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


@dataclass
class Latency:
    offered: float  # per second, as actually published
    p50: float  # milliseconds
    p99: float
    max: float
    lost: int


@dataclass
class SideRun:
    throughput: float = float("nan")
    publish_rate: float = float("nan")
    latency: dict[int, Latency] = field(default_factory=dict)
    peak_rss_mb: float = float("nan")  # all the side's processes together
    largest_rss_mb: float = float("nan")  # its largest process tree
    cpu_ms: float = float("nan")  # service CPU per delivery, throughput phase
    busy: float = float("nan")  # machine CPU busy share, throughput phase
    split: str = ""
    recorded: str = ""
    repeats: int = 0
    signature: str = ""


def latency_of(published: dict[str, float], arrived: dict[str, float], seconds: float) -> Latency:
    waits = sorted((arrived[i] - t) * 1000 for i, t in published.items() if i in arrived)
    return Latency(
        len(published) / seconds,
        percentile(waits, 0.50),
        percentile(waits, 0.99),
        waits[-1] if waits else float("nan"),
        len(published) - len(waits),
    )


def dump_timings(path: Path, published: dict[str, float], arrived: dict[str, float]) -> None:
    """Each message's publish time (seconds from the first) and latency, in publish
    order: where the slow ones fall in time says more than a percentile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = min(published.values(), default=0.0)
    with path.open("w") as out:
        out.write("published_s,latency_ms\n")
        for nid, at in sorted(published.items(), key=lambda kv: kv[1]):
            late = (arrived[nid] - at) * 1000 if nid in arrived else float("nan")
            out.write(f"{at - start:.4f},{late:.2f}\n")


def cpu_split(before: dict[str, float], after: dict[str, float], deliveries: int) -> str:
    ms = {k: (after[k] - before[k]) * 1000 / deliveries for k in before}
    # processes that came and went in between are only in the machine's total
    known = ("service", "rabbitmq", "postgres", "bench")
    ms["other"] = ms["machine_busy"] - sum(ms[k] for k in known)
    order = ("service", "rabbitmq", "postgres", "bench", "other")
    return " ".join(f"{k} {ms[k]:.2f}" for k in order) + " ms/delivery"


# -- the two sides, behind one interface -------------------------------------------


class Side:
    """Starts a service, publishes notifications to it, tells how they were recorded."""

    name: str
    procs: list[asyncio.subprocess.Process]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def make(self, item: dict[str, Any]) -> tuple[str, Any]:
        """The notification id and what to publish for ``item``."""
        raise NotImplementedError

    async def publish_many(self, messages: list[Any], window: int) -> float:
        """Publish as fast as possible; seconds it took."""
        raise NotImplementedError

    async def paced(self, items: list[dict[str, Any]], rate: int) -> dict[str, float]:
        """Publish at ``rate`` per second; notification id → publish time."""
        raise NotImplementedError


class Herald(Side):
    name = "Herald"

    def __init__(self, cfg: Config, env: Environment, receiver: Receiver) -> None:
        self.cfg, self.env, self.receiver = cfg, env, receiver
        self.procs = []
        self.bus = Bus(
            amqp_url=AMQP_URL,
            namespace=env.namespace,
            service="bench",
            metrics=ServiceMetrics("bench"),
            publish_timeout=60,
        )
        self.log_path = env.data_dir / "dispatcher.log"

    async def start(self) -> None:
        """``--replicas`` dispatchers on the same queues and database."""
        ports = [free_port() for _ in range(self.cfg.replicas)]
        self.procs = [await self._spawn(port) for port in ports]
        for proc, port in zip(self.procs, ports, strict=True):
            await self._ready(proc, port)
        await self.bus.start(wait=10)

    async def _spawn(self, port: int) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            "HERALD_AMQP_URL": AMQP_URL,
            "HERALD_NAMESPACE": self.env.namespace,
            "HERALD_DATABASE_URL": self.env.database_url,
            "HERALD_DATA_DIR": str(self.env.data_dir),
            "HERALD_SECRET_KEY": uuid.uuid4().hex * 2,
            "HERALD_ENCRYPTION_KEYS": self.env.encryption_key,
            "HERALD_ALLOW_PRIVATE_URLS": "127.0.0.0/8",
            "HERALD_RECIPIENT_RATE_PER_MINUTE": "10000000",
            "HERALD_DISPATCHER_METRICS_PORT": str(port),
            "HERALD_LOG_LEVEL": self.cfg.log_level,
            "HERALD_DRAIN_TIMEOUT": "5",
        }
        if self.cfg.prefetch:
            env["HERALD_PREFETCH"] = str(self.cfg.prefetch)
        with self.log_path.open("ab") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.dispatcher",
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def _ready(self, proc: asyncio.subprocess.Process, port: int) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                    if r.status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the dispatcher did not get ready:\n{tail(self.log_path)}")

    async def stop(self) -> None:
        await self.bus.stop()
        await asyncio.gather(*(stop_process(p) for p in self.procs))

    async def sign_up(self, users: list[str]) -> None:
        await asyncio.gather(
            *(
                self.bus.publish(
                    new_event(
                        UserSignedUp(user_id=u, email=f"{u}@example.com", name=u), source="bench"
                    )
                )
                for u in users
            )
        )

    def make(self, item: dict[str, Any]) -> tuple[str, Any]:
        event = new_event(
            RequestNotification(
                user_id=item["user_id"],
                type=item["type"],
                title=item["title"],
                body=item["body"],
                data=item["data"],
            ),
            source="bench",
        )
        return derived_id("notification", event.id), event

    async def publish_many(self, messages: list[Any], window: int) -> float:
        events = messages
        started = time.perf_counter()
        for at in range(0, len(events), window):
            await asyncio.gather(*(self.bus.publish(e) for e in events[at : at + window]))
        return time.perf_counter() - started

    async def paced(self, items: list[dict[str, Any]], rate: int) -> dict[str, float]:
        published: dict[str, float] = {}
        pending: set[asyncio.Task[None]] = set()

        async def one(item: dict[str, Any]) -> None:
            nid, event = self.make(item)
            published[nid] = time.time()
            await self.bus.publish(event)

        loop = asyncio.get_running_loop()
        started, sent, tick = loop.time(), 0, 0
        while sent < len(items):
            await asyncio.sleep(max(0.0, started + tick * TICK - loop.time()))
            tick += 1
            due = min(len(items), round(rate * tick * TICK))
            for item in items[sent:due]:
                task = asyncio.create_task(one(item))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent = due
        await asyncio.gather(*pending)
        return published


class CeleryPeer(Side):
    def __init__(
        self, cfg: Config, env: Environment, receiver: Receiver, *, reliable: bool
    ) -> None:
        from celery_peer import PeerConfig, make_app

        self.cfg, self.env, self.reliable = cfg, env, reliable
        self.procs = []
        self.name = "Celery (acks_late)" if reliable else "Celery (defaults)"
        self.queue = f"{env.namespace}.celery-{'reliable' if reliable else 'defaults'}"
        self.peer = PeerConfig(AMQP_URL, self.queue, env.database_url, reliable, env.encryption_key)
        self.app = make_app(self.peer)
        self.log_path = env.data_dir / f"{self.queue}.log"

    async def start(self) -> None:
        args = [
            sys.executable,
            str(ROOT / "bench" / "celery_peer.py"),
            f"--amqp-url={AMQP_URL}",
            f"--queue={self.queue}",
            f"--database-url={self.env.database_url}",
            f"--pool={self.cfg.celery_pool}",
            f"--concurrency={self.cfg.celery_concurrency}",
            f"--loglevel={self.cfg.log_level}",
        ]
        if self.reliable:
            args.append("--reliable")
        with self.log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                env={**os.environ, "HERALD_ENCRYPTION_KEYS": self.env.encryption_key},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs = [proc]
        await self._consuming(proc)

    async def _consuming(self, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + 60
        connection = await aio_pika.connect(AMQP_URL)
        try:
            while time.monotonic() < deadline and proc.returncode is None:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                    queue = await channel.declare_queue(self.queue, passive=True)
                    if queue.declaration_result.consumer_count:
                        return
                with contextlib.suppress(Exception):
                    await channel.close()
                await asyncio.sleep(0.2)
        finally:
            await connection.close()
        raise RuntimeError(f"the Celery worker did not start consuming:\n{tail(self.log_path)}")

    async def stop(self) -> None:
        await asyncio.gather(*(stop_process(p, group=True) for p in self.procs))
        self.app.close()

    def make(self, item: dict[str, Any]) -> tuple[str, Any]:
        nid = str(uuid.uuid4())
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "+00:00"
        return nid, {**item, "id": nid, "priority": "normal", "created_at": created}

    def _send_all(self, messages: list[dict[str, Any]]) -> float:
        from celery_peer import TASK

        with self.app.producer_or_acquire() as producer:
            started = time.perf_counter()
            for m in messages:
                self.app.send_task(TASK, args=[m], producer=producer)
            return time.perf_counter() - started

    async def publish_many(self, messages: list[Any], window: int) -> float:
        return await asyncio.to_thread(self._send_all, messages)

    def _send_paced(self, items: list[dict[str, Any]], rate: int) -> dict[str, float]:
        from celery_peer import TASK

        published: dict[str, float] = {}
        with self.app.producer_or_acquire() as producer:
            started, sent, tick = time.monotonic(), 0, 0
            while sent < len(items):
                time.sleep(max(0.0, started + tick * TICK - time.monotonic()))
                tick += 1
                due = min(len(items), round(rate * tick * TICK))
                for item in items[sent:due]:
                    nid, message = self.make(item)
                    published[nid] = time.time()
                    self.app.send_task(TASK, args=[message], producer=producer)
                sent = due
        return published

    async def paced(self, items: list[dict[str, Any]], rate: int) -> dict[str, float]:
        return await asyncio.to_thread(self._send_paced, items, rate)


# -- the environment: namespace, database, users -------------------------------------


@dataclass
class Environment:
    namespace: str
    database: str
    data_dir: Path
    users: list[str]
    secrets: dict[str, str] = field(default_factory=dict)
    # seals the users' webhook endpoints (HERALD_ENCRYPTION_KEYS of every side)
    encryption_key: str = field(default_factory=generate_key)

    @property
    def database_url(self) -> str:
        return f"{PG_URL}/{self.database}"

    @classmethod
    def fresh(cls, users: int) -> Environment:
        tag = uuid.uuid4().hex[:10]
        return cls(
            namespace=f"bench{tag}",
            database=f"herald_bench_{tag}",
            data_dir=Path(tempfile.mkdtemp(prefix=f"herald-bench-{tag}-")),
            users=[f"bench-u{i:04d}" for i in range(users)],
        )


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def prepare_users(env: Environment, herald: Herald, receiver: Receiver) -> None:
    """Users signed up through the dispatcher, each with a webhook endpoint, e-mail
    and in-app switched off, the welcome messages out of the way."""
    await herald.sign_up(env.users)
    conn = await asyncpg.connect(env.database_url)
    try:

        async def all_users() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM users WHERE user_id = ANY($1)", env.users)
            return bool(n == len(env.users))

        await eventually(all_users, "the users to sign up")
        for user in env.users:
            endpoint = await create_endpoint(
                conn,
                user,
                "webhook",
                sealer=Sealer([env.encryption_key.encode()]),
                url=receiver.url(user),
            )
            assert endpoint.secret is not None
            env.secrets[user] = endpoint.secret
        # the users' own rows (the gateway's table: sign-up makes none)
        await conn.execute(
            """INSERT INTO preferences (user_id, email_enabled, channels)
               SELECT u, false, '{"inapp": false}' FROM unnest($1::text[]) AS u
               ON CONFLICT (user_id) DO UPDATE
               SET email_enabled = false, channels = EXCLUDED.channels""",
            env.users,
        )

        async def welcomes_out() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            return bool(n == 0)

        await eventually(welcomes_out, "the welcome messages to go out")
    finally:
        await conn.close()


async def recorded(env: Environment, type_: str, expected: int) -> str:
    """Wait until the delivery history shows every delivery of ``type_`` delivered."""
    conn = await asyncpg.connect(env.database_url)
    try:
        row: Any = None

        async def done() -> bool:
            nonlocal row
            row = await conn.fetchrow(
                """SELECT count(*) AS rows,
                          count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
                          count(DISTINCT d.notification_id) AS notifications
                   FROM deliveries d JOIN notifications n ON n.id = d.notification_id
                   WHERE n.type = $1 AND d.channel = 'webhook'""",
                type_,
            )
            return bool(row["delivered"] >= expected)

        with contextlib.suppress(RuntimeError):
            await eventually(done, "the delivery history", timeout=30)
        return f"{row['delivered']:,}/{expected:,} delivered rows ({row['rows']:,} rows)"
    finally:
        await conn.close()


def items_for(env: Environment, type_: str, count: int) -> list[dict[str, Any]]:
    users = env.users
    return [
        {
            "user_id": users[i % len(users)],
            "type": type_,
            "title": f"{type_} #{i}: a new match for you",
            "body": BODY,
            "data": {"seq": i, "url": f"https://jobs.example.com/{i}"},
        }
        for i in range(count)
    ]


async def verify_signature(env: Environment, receiver: Receiver) -> str:
    """The last webhook the receiver got, checked with the upstream package."""
    sample = await receiver.sample()
    if sample is None:
        return "no sample"
    head, body = sample
    request_line, *lines = head.decode("latin-1").split("\r\n")
    user = request_line.split(" ")[1].rsplit("/", 1)[-1]
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    try:
        from standardwebhooks import Webhook
    except ImportError:
        return "standardwebhooks not installed"
    try:
        Webhook(env.secrets[user]).verify(body, headers)
    except Exception as exc:
        return f"BAD SIGNATURE: {exc}"
    return "signature ok"


# -- one side, all phases -------------------------------------------------------------


async def measure(
    cfg: Config, env: Environment, side: Side, receiver: Receiver, run_no: int
) -> SideRun:
    result = SideRun()
    arrivals = Arrivals(receiver)
    usage = Usage(side.pids)
    usage.start()
    slug = side.name.split()[0].lower() + ("-r" if getattr(side, "reliable", False) else "")
    try:
        # a warm-up, unmeasured: connections opened, the pipeline known to work
        warm = items_for(env, f"bench.{slug}.warm{run_no}", min(200, cfg.messages))
        await _expect(side, arrivals, warm, cfg)

        type_ = f"bench.{slug}.throughput{run_no}"
        made = [side.make(i) for i in items_for(env, type_, cfg.messages)]
        await arrivals.poll()
        arrivals.seen.clear()
        before = cpu_by_group(side.pids, env.database)
        seconds, arrived = await asyncio.gather(
            side.publish_many([m for _, m in made], cfg.window),
            arrivals.wait_for({nid for nid, _ in made}),
        )
        after = cpu_by_group(side.pids, env.database)
        times = sorted(arrived.values())
        result.throughput = len(times) / (times[-1] - times[0])
        result.publish_rate = cfg.messages / seconds
        result.repeats = arrivals.repeats
        wall = after["machine_all"] - before["machine_all"]
        result.busy = (after["machine_busy"] - before["machine_busy"]) / wall if wall else 0
        result.cpu_ms = (after["service"] - before["service"]) * 1000 / cfg.messages
        result.split = cpu_split(before, after, cfg.messages)
        result.recorded = await recorded(env, type_, cfg.messages)
        result.signature = await verify_signature(env, receiver)

        for rate in cfg.rates:
            type_ = f"bench.{slug}.latency{rate}.{run_no}"
            items = items_for(env, type_, round(rate * cfg.seconds))
            started = time.perf_counter()
            published = await side.paced(items, rate)
            took = time.perf_counter() - started
            arrived = await arrivals.wait_for(set(published))
            result.latency[rate] = latency_of(published, arrived, took)
            if cfg.dump is not None:
                dump_timings(cfg.dump / f"{slug}-{rate}-run{run_no}.csv", published, arrived)
    finally:
        await usage.stop()
    result.peak_rss_mb = usage.peak_kb / 1024
    result.largest_rss_mb = usage.largest_kb / 1024
    return result


async def _expect(side: Side, arrivals: Arrivals, items: list[dict[str, Any]], cfg: Config) -> None:
    made = [side.make(i) for i in items]
    await side.publish_many([m for _, m in made], cfg.window)
    arrived = await arrivals.wait_for({nid for nid, _ in made})
    if len(arrived) != len(made):
        raise RuntimeError(f"{side.name}: the warm-up did not get through")


def describe(side: str, r: SideRun, rates: list[int]) -> str:
    lat = ", ".join(
        f"@{rate}/s (offered {r.latency[rate].offered:.0f}/s) p50 {r.latency[rate].p50:.1f} "
        f"p99 {r.latency[rate].p99:.1f} max {r.latency[rate].max:.0f} ms"
        + (f" LOST {r.latency[rate].lost}" if r.latency[rate].lost else "")
        for rate in rates
        if rate in r.latency
    )
    return (
        f"  {side}: {r.throughput:,.0f} deliveries/s (published at {r.publish_rate:,.0f}/s; "
        f"{r.recorded}; {r.repeats} repeats; {r.signature}); CPU {r.split}, "
        f"machine {r.busy:.0%} busy; {lat}; peak RSS {r.peak_rss_mb:.0f} MB"
        + (f" ({r.largest_rss_mb:.0f} MB the largest)" if r.largest_rss_mb < r.peak_rss_mb else "")
    )


# -- a run, set-up and clean-up ---------------------------------------------------------


async def one_run(cfg: Config, receiver: Receiver, run_no: int) -> dict[str, SideRun]:
    env = Environment.fresh(cfg.users)
    results: dict[str, SideRun] = {}
    sides: list[Side] = []
    try:
        herald = Herald(cfg, env, receiver)
        sides.append(herald)
        await herald.start()
        await prepare_users(env, herald, receiver)
        if "herald" in cfg.sides:
            results[herald.name] = await measure(cfg, env, herald, receiver, run_no)
            print(describe(herald.name, results[herald.name], cfg.rates), file=sys.stderr)
        await herald.stop()  # idle during Celery's turn: its share of the cores is theirs
        for key, reliable in (("celery-reliable", True), ("celery-defaults", False)):
            if key not in cfg.sides:
                continue
            peer = CeleryPeer(cfg, env, receiver, reliable=reliable)
            sides.append(peer)
            await peer.start()
            results[peer.name] = await measure(cfg, env, peer, receiver, run_no)
            print(describe(peer.name, results[peer.name], cfg.rates), file=sys.stderr)
            await peer.stop()
    except BaseException:
        for side in sides:
            log = getattr(side, "log_path", None)
            if log is not None:
                print(f"--- {side.name} log tail:\n{tail(log, 30)}", file=sys.stderr)
        raise
    finally:
        for side in reversed(sides):
            with contextlib.suppress(Exception):
                await side.stop()
        await clean_up(env)
    return results


def computed_queues(namespace: str) -> list[str]:
    """The names the dispatcher declares with default settings (when rabbitmqctl
    cannot list them)."""
    from services.dispatcher.app import DEFER_STEPS
    from shared.bus import QueueNames, catalog
    from shared.settings import Settings

    s = Settings()
    names = []
    for wq in catalog.ALL_QUEUES:
        if wq.service != "dispatcher":
            continue
        delays = set(s.retry_delays)
        if wq in (catalog.DISPATCHER_DELIVERIES, catalog.DISPATCHER_URGENT):
            delays = set(s.delivery_retry_delays) | set(DEFER_STEPS)
        names.extend(QueueNames.of(namespace, wq.service, wq.concern).all(sorted(delays)))
    return names


async def clean_up(env: Environment) -> None:
    """Every queue named ``<namespace>.*``, the exchanges, the database, the data dir."""
    prefix = f"{env.namespace}."
    queues = rabbit_queues(prefix)
    if queues is None:
        queues = [
            *computed_queues(env.namespace),
            f"{prefix}celery-reliable",
            f"{prefix}celery-defaults",
        ]
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(AMQP_URL)
        try:
            for name in [*queues, None, None, None]:
                channel = await connection.channel()
                if name is not None:
                    with contextlib.suppress(aio_pika.exceptions.AMQPError):
                        await channel.queue_delete(name)
            for exchange in (
                f"{prefix}events",
                f"{prefix}celery-reliable",
                f"{prefix}celery-defaults",
            ):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(exchange)
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


# -- the report -------------------------------------------------------------------------


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]  # NaN-free
    return statistics.median(values) if values else float("nan")


def report(cfg: Config, runs: list[dict[str, SideRun]]) -> None:
    names = [n for n in ("Herald", "Celery (acks_late)", "Celery (defaults)") if n in runs[0]]
    what = f"median of {len(runs)} runs" if len(runs) > 1 else "1 run"
    print(
        f"\ndispatch: {cfg.messages:,} webhook notifications over {cfg.users} users, "
        f"latency over {cfg.seconds:g} s at each offered rate; Celery pool "
        f"{cfg.celery_pool} x{cfg.celery_concurrency}; {cfg.replicas} dispatcher "
        f"process{'es' if cfg.replicas > 1 else ''}; log level {cfg.log_level}; "
        f"{os.cpu_count()} cores; {what}"
    )
    heads = ["deliveries/s"]
    for rate in cfg.rates:
        heads += [f"p50@{rate}/s", f"p99@{rate}/s"]
    heads += ["peak RSS", "CPU/deliv"]
    print(f"{'':20}" + "".join(f"{h:>13}" for h in heads))
    summary: dict[str, SideRun] = {}
    for name in names:
        rs = [r[name] for r in runs]
        s = SideRun(
            throughput=med([r.throughput for r in rs]),
            peak_rss_mb=max(r.peak_rss_mb for r in rs),
            largest_rss_mb=max(r.largest_rss_mb for r in rs),
            cpu_ms=med([r.cpu_ms for r in rs]),
        )
        for rate in cfg.rates:
            s.latency[rate] = Latency(
                med([r.latency[rate].offered for r in rs]),
                med([r.latency[rate].p50 for r in rs]),
                med([r.latency[rate].p99 for r in rs]),
                max(r.latency[rate].max for r in rs),
                sum(r.latency[rate].lost for r in rs),
            )
        summary[name] = s
        cells = [f"{s.throughput:,.0f}"]
        for rate in cfg.rates:
            cells += [f"{s.latency[rate].p50:.1f} ms", f"{s.latency[rate].p99:.1f} ms"]
        cells += [f"{s.peak_rss_mb:.0f} MB", f"{s.cpu_ms:.2f} ms"]
        print(f"{name:20}" + "".join(f"{c:>13}" for c in cells))
    herald = summary.get("Herald")
    if herald is None:
        return
    if cfg.replicas > 1:
        print(f"Herald peak RSS per dispatcher process: {herald.largest_rss_mb:.0f} MB")
    for name in names[1:]:
        print(f"Herald / {name}: {herald.throughput / summary[name].throughput:.2f}x throughput")
    p99 = herald.latency[cfg.rate].p99
    checks = [
        (f"p99 <= 50 ms at {cfg.rate}/s", p99 <= 50),
        ("RSS <= 150 MB per dispatcher", herald.largest_rss_mb <= 150),
    ]
    if names[1:]:
        faster = all(herald.throughput >= 3 * summary[n].throughput for n in names[1:])
        checks.insert(0, ("3x either Celery", faster))
    print("targets: " + "; ".join(f"{what} {'met' if ok else 'MISSED'}" for what, ok in checks))


async def run(cfg: Config) -> None:
    receiver = Receiver()
    try:
        if cfg.check_receiver:
            await check_receiver(receiver)
        runs: list[dict[str, SideRun]] = []
        for run_no in range(1, cfg.runs + 1):
            print(f"run {run_no}/{cfg.runs}", file=sys.stderr)
            runs.append(await one_run(cfg, receiver, run_no))
        if runs and runs[0]:
            report(cfg, runs)
    finally:
        receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500, help="offered rate for Herald's target")
    parser.add_argument("--celery-rate", type=int, default=200, help="the rate quoted for Celery")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--window", type=int, default=256, help="Herald publishes in flight")
    parser.add_argument("--prefetch", type=int, default=None, help="HERALD_PREFETCH")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="dispatcher processes (default: as many as Celery's pool has processes)",
    )
    parser.add_argument("--celery-pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument(
        "--sides",
        default="herald,celery-reliable,celery-defaults",
        help="comma-separated subset of herald, celery-reliable, celery-defaults",
    )
    parser.add_argument("--check-receiver", action="store_true")
    parser.add_argument(
        "--dump", type=Path, default=None, help="directory for each message's latency (CSV)"
    )
    args = parser.parse_args()
    configure_logging("bench", "warning")
    cfg = Config(
        messages=args.messages,
        rate=args.rate,
        celery_rate=args.celery_rate,
        seconds=args.seconds,
        runs=args.runs,
        users=args.users,
        window=args.window,
        prefetch=args.prefetch,
        log_level=args.log_level,
        # as many processes as Celery's pool: its threads pool is one process
        replicas=(
            args.replicas
            if args.replicas is not None
            else (args.celery_concurrency if args.celery_pool == "prefork" else 1)
        ),
        celery_pool=args.celery_pool,
        celery_concurrency=args.celery_concurrency,
        sides=[s.strip() for s in args.sides.split(",")],
        check_receiver=args.check_receiver,
        dump=args.dump,
    )
    try:
        with sigterm_as_interrupt():
            asyncio.run(run(cfg))
    except KeyboardInterrupt:
        print("interrupted; everything the benchmark made is removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
