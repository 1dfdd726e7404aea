"""Issue 8: the realtime tier under load, side by side with the naive design and Nchan.

    python bench/scenarios.py targeted   [--streams 10000 --rate 2000 --duration 30]
    python bench/scenarios.py broadcast  [--streams 2000 --rate 20 --duration 30]
    python bench/scenarios.py resume     [--streams 5000 --behind 100]
    python bench/scenarios.py two-process [--streams 10000 --rate 2000 --duration 30]
    python bench/scenarios.py burst      [--streams 2000]   (connection setup: all in 1 s)
      common: --targets ours,naive,nchan[,cluster,floor]  --clients 4  --ramp-rate 1000
              --publishers N
              --no-record (do not append to the results file)  --profile FILE (py-spy of our API)
              --pin (the server under test gets CPU 0 to itself, the rest share the others)

Each target runs in turn on a fresh embedded redis-server: ``ours`` (``uvicorn api.main:app``,
uvloop + httptools, one process unless ``two-process``), ``naive`` (bench/naive_app.py: one
``XREAD BLOCK`` per connection), ``floor`` (bench/floor_app.py: the same uvicorn answering a
stream head with nothing behind it, the HTTP layer's own cost per open; burst only) and
``nchan`` (nginx + libnginx-mod-nchan with bench/nchan.conf, one worker; skipped, and said so,
when Debian's nginx or the module is missing); ``cluster`` is ours on a Redis Cluster of 3
masters (tests/redis_cluster.py, Debian's redis-server and redis-cli), Redis CPU summed over the
nodes. The same load
client (bench/loadgen.py, several processes) opens N streams, each with its own user (and for
``ours`` its own ``sse_token``); publisher processes store events with the progress library's
``RedisEventStore.append_many`` (the path ``progress.publish`` and the workers' reporter take;
for Nchan they POST the same JSON to its publisher endpoint). Latency = client parse time minus
the event's ``occurred_at`` (set just before it is stored; one machine, one clock).

Prints one JSON line (the command, every target's figures and the ratios to ours) and appends
it to docs/bench-results.jsonl, the one record of dated runs (bench/plot.py draws from it;
docs/performance.md holds only the current figure per target).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.redis_cluster

from bench_sse import (
    LOOPBACK_LOAD_ENV,
    _code_version,
    _die_with_parent,
    _local_ports_to,
    _percentile,
    _raise_fd_limit,
    _receive,
    cpu_seconds,
    machine_busy_seconds,
    rss_kib,
)
from loadgen import Target, client_process

from progress.redis_server import RedisServer, free_port
from tests.redis_cluster import RedisCluster

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 2
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NGINX = Path("/usr/sbin/nginx")
#: ``--pin``: the server under test runs here, everything the benchmark starts elsewhere.
SERVER_CPUS = {0}


# ---------------------------------------------------------------------------------------------
# Servers under test


def _children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    kids.append(int(entry.name))
    return kids


class Server:
    """A server process (and its workers) on a free loopback port."""

    def __init__(
        self, kind: str, redis_url: str, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.extra_env = env or {}
        self.port = free_port(HOST)
        self.workers = workers
        self.redis_url = redis_url
        self._dir = tempfile.TemporaryDirectory(prefix=f"bench-{kind}-")
        self._log = Path(self._dir.name) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "nchan":
            conf = (Path(__file__).parent / "nchan.conf").read_text()
            conf = conf.replace("{module}", str(NCHAN_MODULE)).replace("{dir}", self._dir.name)
            conf = conf.replace("{port}", str(self.port))
            path = Path(self._dir.name) / "nginx.conf"
            path.write_text(conf)
            return [str(NGINX), "-c", str(path), "-p", self._dir.name]
        app = {
            "ours": "api.main:app",
            "naive": "bench.naive_app:app",
            "floor": "bench.floor_app:app",
        }[self.kind]
        args = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(self.port)]
        args += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        args += ["--timeout-graceful-shutdown", "3", "--backlog", "4096"]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        return args

    def start(self) -> Server:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "JWT_SECRET": JWT_SECRET,
            "SSE_DEV_TOKENS_ENABLED": "true",
            "AUDIT_ALLOW_DEV_KEY": "true",
            "SSE_HEARTBEAT_SECONDS": "30",
            "SSE_TOKEN_TTL_SECONDS": "900",
            **LOOPBACK_LOAD_ENV,
            # The relay's own capacity is measured: every event must arrive, none coalesced.
            "SSE_BACKPRESSURE_ENABLED": "false",
            **self.extra_env,
        }
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 30
        path = "/api/v1/events/health" if self.kind == "ours" else "/health"
        while time.monotonic() < deadline:
            self.check_alive()
            processes = self.workers + 1 if self.workers > 1 else 1
            if self._healthy(path) and len(self.pids()) >= processes:
                time.sleep(1 if self.workers > 1 else 0)  # every worker has started
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not come up:\n{self.log_tail()}")

    def _healthy(self, path: str) -> bool:
        import socket

        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The server's processes: the main one and its workers (nginx, uvicorn --workers)."""
        assert self.process is not None
        return [self.process.pid, *_children_of(self.process.pid)]

    def log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} server died:\n{self.log_tail()}")

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, RuntimeError):
                total += rss_kib(pid)
        return round(total / 1024, 1)

    def loop_delay_counts(self) -> list[tuple[float, float]]:
        """Our API's ``sse_event_loop_delay_seconds`` buckets (upper bound, cumulative count)
        from its /metrics; empty for the others (with ``--workers`` > 1: the process that
        answered)."""
        import urllib.request

        if self.kind != "ours" or self.workers > 1:  # two scrapes could reach two workers
            return []
        url = f"http://{HOST}:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return []
        counts = []
        prefix = 'sse_event_loop_delay_seconds_bucket{le="'
        for line in text.splitlines():
            if line.startswith(prefix):
                bound, _, count = line[len(prefix) :].partition('"} ')
                counts.append((float(bound), float(count)))
        return counts

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError):
                total += cpu_seconds(pid)
        return total

    def redis_connections(self, monitor: redis.Redis, redis_port: int) -> int:
        ports: set[int] = set()
        for pid in self.pids():
            with contextlib.suppress(OSError):
                ports |= _local_ports_to(pid, redis_port)
        return sum(1 for c in monitor.client_list() if int(str(c["addr"]).rsplit(":")[1]) in ports)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if self.kind == "nchan" else signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._dir.cleanup()


def cpu_check_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop: this VM's vCPU speed varies by up to half
    from one minute to the next, so every run records it before and after."""
    started = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i * i % 7
    return round((time.process_time() - started) * 1000, 1)


def nchan_available() -> bool:
    return NGINX.exists() and NCHAN_MODULE.exists()


@contextlib.contextmanager
def _py_spy(pid: int, output: str) -> Iterator[None]:
    """Sample ``pid`` with py-spy (collapsed stacks, for flame graphs) while the block runs."""
    spy_bin = Path(sys.executable).with_name("py-spy")
    args = [str(spy_bin), "record", "--nonblocking", "-r", "997", "-p", str(pid)]
    spy = subprocess.Popen(
        [*args, "-o", output, "--format", "raw"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


# ---------------------------------------------------------------------------------------------
# Publishers (child processes)


def _event(user: str | None, seq: int) -> Any:
    from progress.events import SystemNotification, TaskUpdated

    if user is None:
        return SystemNotification(audience="broadcast", level="info", message=str(seq))
    return TaskUpdated(
        user_id=user, task_id="bench", percent=seq % 100, stage="drafting", message=str(seq)
    )


def publisher_process(
    pipe: Pipe,
    kind: str,
    url: str,
    port: int,
    users: list[str | None],
    rate: float,
    duration: float,
    tick: float,
) -> None:
    """Publish ``rate`` events/s for ``duration`` s, round-robin over ``users`` (None: the
    broadcast stream); each recipient's events carry 0, 1, 2, ... in ``message``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(int(duration + 120))
    from progress.events import encode_event

    if kind == "nchan":
        send = _nchan_sender(port)
    else:
        from progress.redis_store import RedisEventStore, connect

        store = RedisEventStore(connect(url))

        def send(batch: list[Any]) -> None:
            store.append_many([(event, ()) for event in batch])

    seqs: Counter[str | None] = Counter()
    sent = 0
    worst_behind = 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    next_tick = started
    while (elapsed := time.perf_counter() - started) < duration:
        due = min(int(elapsed * rate) + 1 - sent, 5000)
        if due > 0:
            worst_behind = max(worst_behind, due / rate)
            batch = []
            for k in range(due):
                user = users[(sent + k) % len(users)]
                batch.append(_event(user, seqs[user]))
                seqs[user] += 1
            if kind == "nchan":
                send([(user or "broadcast", encode_event(e)) for user, e in _with_users(batch)])
            else:
                send(batch)
            sent += due
        next_tick += tick
        pause = next_tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_tick = time.perf_counter()
    pipe.send(
        {
            "sent": sent,
            "seconds": time.perf_counter() - started,
            "behind_max_s": worst_behind,
            "cpu_seconds": time.process_time() - cpu_started,
            "per_recipient": {str(k): v for k, v in seqs.items()},
        }
    )


def loop_delay_figures(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> dict[str, Any]:
    """The event loop's delay during a phase (the backpressure monitor's 100 ms timer, 10
    samples a second), from two scrapes of its histogram: the sample count, the bucket bound
    under which 50 / 99 / 99.9 % fell (99.9 % from 1,000 samples on), and how many samples
    were 5 ms or more late."""
    if not before or len(before) != len(after):
        return {}
    counts = [(bound, a - b) for (bound, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    if not total:
        return {}

    def bound_for(share: float) -> float | None:  # None: above the last bound (+Inf)
        bound = next(bound for bound, count in counts if count >= share * total)
        return None if bound == float("inf") else bound * 1000

    below_5ms = next(count for bound, count in counts if bound >= 0.005)
    return {
        "loop_delay_samples": int(total),
        "loop_delay_ms_p50_below": bound_for(0.5),
        "loop_delay_ms_p99_below": bound_for(0.99),
        "loop_delay_ms_p999_below": bound_for(0.999) if total >= 1000 else None,
        "loop_delay_over_5ms": int(total - below_5ms),
    }


def _with_users(batch: list[Any]) -> Iterator[tuple[str | None, Any]]:
    for event in batch:
        yield (None if event.audience == "broadcast" else event.user_id), event


def _nchan_sender(port: int) -> Callable[[list[tuple[str, bytes]]], None]:
    """POSTs each message to Nchan's publisher location, pipelined over 4 keep-alive sockets."""
    import socket
    import zlib

    sockets = [socket.create_connection((HOST, port)) for _ in range(4)]

    def send(batch: list[tuple[str, bytes]]) -> None:
        per_socket: list[list[bytes]] = [[] for _ in sockets]
        for channel, body in batch:
            request = (
                f"POST /pub/{channel} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: application/json\r\n\r\n"
            ).encode() + body
            # one socket per channel: Nchan stores a channel's messages in arrival order
            per_socket[zlib.crc32(channel.encode()) % len(sockets)].append(request)
        for sock, requests in zip(sockets, per_socket, strict=True):
            if requests:
                sock.sendall(b"".join(requests))
        for sock, requests in zip(sockets, per_socket, strict=True):
            _read_responses(sock, len(requests))

    return send


def _read_responses(sock: Any, count: int) -> None:
    buffer = b""
    while count:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            buffer += sock.recv(65536)
            continue
        head = buffer[:end].lower()
        length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(buffer) < end + 4 + length:
            buffer += sock.recv(65536)
        buffer = buffer[end + 4 + length :]
        count -= 1


# ---------------------------------------------------------------------------------------------
# One target under one scenario


def _max_by_second(occurred: Any, latency: Any) -> list[int]:
    """Worst latency of the events that occurred in each second of the phase (stalls show)."""
    if not len(occurred):
        return []
    first = min(occurred)
    worst: dict[int, float] = {}
    for at, ms in zip(occurred, latency, strict=True):
        second = int(at - first)
        worst[second] = max(worst.get(second, 0.0), ms)
    return [round(worst.get(s, 0.0)) for s in range(max(worst) + 1)]


class Meter:
    """CPU of the server, the clients, Redis (every node) and the whole machine between
    mark() and read()."""

    def __init__(self, server: Server, clients: list[int], redis_pids: list[int]) -> None:
        self.server = server
        self.clients = clients
        self.redis_pids = redis_pids

    def _redis_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.redis_pids)

    def mark(self) -> None:
        self._at = time.monotonic()
        self._redis = self._redis_cpu()
        self._server = self.server.cpu_seconds()
        self._clients = [cpu_seconds(pid) for pid in self.clients]
        self._machine = machine_busy_seconds()

    def read(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._at, 1e-9)
        clients = [
            round((cpu_seconds(pid) - before) / wall * 100, 1)
            for pid, before in zip(self.clients, self._clients, strict=True)
        ]
        server_cpu = self.server.cpu_seconds() - self._server
        return {
            "redis_cpu_seconds": self._redis_cpu() - self._redis,
            "server_cpu_seconds": server_cpu,
            "server_cpu_percent": round(server_cpu / wall * 100, 1),
            "client_cpu_percent_max": max(clients, default=0.0),
            "machine_cpu_percent": round((machine_busy_seconds() - self._machine) / wall * 100, 1),
        }


class Run:
    """One target: its Redis, its server, the clients and their streams. ``cluster`` is ours
    on a Redis Cluster of 3 masters (no replicas: the cost of serving, not of failover)."""

    def __init__(self, kind: str, options: argparse.Namespace, stack: ExitStack) -> None:
        self.kind = kind
        self.options = options
        server_kind = "ours" if kind == "cluster" else kind
        self.server_kind = server_kind
        if kind == "cluster":
            cluster = stack.enter_context(RedisCluster(replicas=0))
            self.url = cluster.url
            ports = [node.port for node in cluster.nodes]
        else:
            redis_server = stack.enter_context(RedisServer())
            self.url = f"{redis_server.url}/0"
            ports = [redis_server.port]
        self.monitors = [redis.Redis(host=HOST, port=port) for port in ports]
        for monitor in self.monitors:
            stack.callback(monitor.close)
        self.redis_ports = ports
        redis_pids = [int(m.info("server")["process_id"]) for m in self.monitors]
        workers = options.workers if server_kind == "ours" else 1
        # --heartbeat first: an explicit --api-env SSE_HEARTBEAT_SECONDS=... wins.
        env = {"SSE_HEARTBEAT_SECONDS": f"{options.heartbeat:g}"}
        env |= dict(item.split("=", 1) for item in options.api_env)
        self.heartbeat = float(env["SSE_HEARTBEAT_SECONDS"])
        self.server = Server(server_kind, self.url, workers, env)
        stack.callback(self.server.stop)
        self.server.start()
        if options.pin:
            for pid in self.server.pids():
                os.sched_setaffinity(pid, SERVER_CPUS)
        if options.profile and server_kind == "ours":
            stack.enter_context(_py_spy(self.server.pids()[-1], options.profile))
        tag = secrets.token_hex(3)
        self.users = [f"b{tag}-{i}" for i in range(options.streams)]
        context = multiprocessing.get_context("fork")
        self.context = context
        self.pipes: list[Pipe] = []
        self.processes: list[multiprocessing.Process] = []
        stack.callback(self._stop_children)
        target = Target(server_kind, self.server.port, JWT_SECRET, broadcast=True)
        share = options.ramp_rate / options.clients
        tokens = 2 if options.scenario == "resume" else 1
        for index in range(options.clients):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=client_process,
                args=(theirs, target, self.users[index :: options.clients], share, tokens, 1800),
                daemon=True,
            )
            process.start()
            theirs.close()
            self.pipes.append(mine)
            self.processes.append(process)
        self.meter = Meter(self.server, [p.pid or 0 for p in self.processes], redis_pids)
        self.result: dict[str, Any] = {"target": kind, "server_rss_mib_started": 0.0}

    def _stop_children(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("stop",))
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)

    def _redis(self) -> int:
        return sum(
            self.server.redis_connections(monitor, port)
            for monitor, port in zip(self.monitors, self.redis_ports, strict=True)
        )

    def open_streams(self) -> None:
        r = self.result
        _receive(self.pipes, "ready", 600, self.server.check_alive)
        time.sleep(1)
        r["server_rss_mib_before_streams"] = before = self.server.rss_mib()
        r["server_redis_connections_before_streams"] = self._redis()
        self.meter.mark()
        started = time.monotonic()
        for pipe in self.pipes:
            pipe.send(("go",))
        timeout = self.options.streams / self.options.ramp_rate + 120
        reports = _receive(self.pipes, "opened", timeout, self.server.check_alive)
        ramp = self.meter.read()
        setup = [ms for report in reports for ms in report[0]]
        failures: Counter[str] = Counter()
        for report in reports:
            failures.update(report[1])
        r["streams_opened"] = len(setup)
        r["ramp_s"] = round(time.monotonic() - started, 2)
        r["open_failures"] = dict(failures)
        r["setup_ms_p50"] = _percentile(setup, 0.5)
        r["setup_ms_p99"] = _percentile(setup, 0.99)
        r["setup_ms_max"] = _percentile(setup, 1.0)
        r["server_cpu_percent_ramp"] = ramp["server_cpu_percent"]
        # the API's CPU per open: comparable across runs, unlike latency on a shared machine
        r["server_cpu_ms_per_open"] = round(
            ramp["server_cpu_seconds"] * 1000 / max(1, len(setup)), 3
        )
        r["client_cpu_percent_max_ramp"] = ramp["client_cpu_percent_max"]
        self.meter.mark()
        time.sleep(self.options.settle)
        idle = self.meter.read()
        r["server_cpu_percent_idle"] = idle["server_cpu_percent"]
        if self.server_kind == "ours":  # heartbeats per stream in the window: 0, none measured
            r["idle_heartbeats_per_stream"] = int(self.options.settle // self.heartbeat)
        r["server_rss_mib_idle"] = rss = self.server.rss_mib()
        r["kib_per_idle_stream"] = round((rss - before) * 1024 / max(1, len(setup)), 1)
        r["server_redis_connections_idle"] = self._redis()

    def publish(
        self, users: list[str | None], rate: float, duration: float, wait: bool = True
    ) -> dict[str, Any]:
        """Publish, wait for delivery, return the phase's figures (latency of this phase)."""
        count = max(1, min(self.options.publishers, len(users)))
        pipes, processes = [], []
        for index in range(count):
            mine, theirs = self.context.Pipe()
            process = self.context.Process(
                target=publisher_process,
                args=(
                    theirs,
                    self.server_kind,
                    self.url,
                    self.server.port,
                    users[index::count],
                    rate / count,
                    duration,
                    self.options.tick,
                ),
                daemon=True,
            )
            pipes.append(mine)
            processes.append(process)
        self.meter.mark()
        delay_before = self.server.loop_delay_counts()
        for process in processes:
            process.start()
        published = []
        for pipe in pipes:
            if not pipe.poll(duration + 120):
                raise TimeoutError("a publisher did not finish")
            published.append(pipe.recv())
        run = self.meter.read()
        delay = loop_delay_figures(delay_before, self.server.loop_delay_counts())
        rss_run = self.server.rss_mib()
        redis_run = self._redis()
        for process in processes:
            process.join(5)
        per_recipient: Counter[str] = Counter()
        for report in published:
            per_recipient.update(report["per_recipient"])
        sent = sum(report["sent"] for report in published)
        expected = self._expected(per_recipient)
        deadline = time.monotonic() + self.options.drain
        delivered = 0
        while wait and time.monotonic() < deadline:
            for pipe in self.pipes:
                pipe.send(("count",))
            delivered = sum(_receive(self.pipes, "count", 30, self.server.check_alive))
            if delivered >= expected:
                break
            time.sleep(0.25)
        seconds = max(report["seconds"] for report in published)
        return {
            "rate_target": rate,
            "events_published": sent,
            "rate_achieved": round(sent / seconds, 1),
            "publisher_behind_max_s": round(max(p["behind_max_s"] for p in published), 3),
            "deliveries_expected": expected,
            "deliveries_per_s": round(expected / seconds, 1),
            "delivered_before_drain_end": delivered,
            "per_recipient": per_recipient,
            "server_cpu_percent_run": run["server_cpu_percent"],
            "redis_cpu_percent_run": round(run["redis_cpu_seconds"] / max(seconds, 1e-9) * 100, 1),
            "redis_cpu_us_per_delivery": round(
                run["redis_cpu_seconds"] * 1e6 / max(1, expected), 2
            ),
            "publisher_cpu_us_per_event": round(
                sum(p["cpu_seconds"] for p in published) * 1e6 / max(1, sent), 2
            ),
            "server_cpu_us_per_delivery": round(
                run["server_cpu_seconds"] * 1e6 / max(1, expected), 2
            ),
            "client_cpu_percent_max_run": run["client_cpu_percent_max"],
            "machine_cpu_percent_run": run["machine_cpu_percent"],
            "server_rss_mib_run": rss_run,
            "server_redis_connections_run": redis_run,
            **delay,
        }

    def _expected(self, per_recipient: Counter[str]) -> int:
        broadcast = per_recipient.get("None", 0)
        targeted = sum(v for k, v in per_recipient.items() if k != "None")
        return targeted + broadcast * self.result["streams_opened"]

    def take(self) -> dict[str, Any]:
        """Everything the clients recorded since the last take."""
        for pipe in self.pipes:
            pipe.send(("take",))
        reports = _receive(self.pipes, "taken", 120, self.server.check_alive)
        merged: dict[str, Any] = {"latency_ms": array("d"), "occurred": array("d")}
        merged["seen"] = Counter()
        for report in reports:
            merged["latency_ms"].frombytes(report["latency_ms"])
            merged["occurred"].frombytes(report["occurred"])
            merged["seen"].update(report["seen"])
            for key in ("duplicates", "out_of_order", "streams_with_duplicates"):
                merged[key] = merged.get(key, 0) + report[key]
            merged["streams_out_of_order"] = (
                merged.get("streams_out_of_order", 0) + report["streams_out_of_order"]
            )
            merged["closed_early"] = merged.get("closed_early", 0) + report["closed_early"]
            merged.setdefault("failures", Counter()).update(report["failures"])
            merged.setdefault("other_events", Counter()).update(report["other_events"])
        return merged

    def phase_figures(self, phase: dict[str, Any], taken: dict[str, Any]) -> dict[str, Any]:
        latency = taken["latency_ms"]
        per_recipient: Counter[str] = phase.pop("per_recipient")
        broadcast = per_recipient.get("None", 0)
        lossy = 0
        for user, seen in taken["seen"].items():
            if seen < per_recipient.get(user, 0) + broadcast:
                lossy += 1
        delivered = len(latency)
        p99 = _percentile(latency, 0.99)
        return phase | {
            "deliveries": delivered,
            "lost": max(0, phase["deliveries_expected"] - delivered),
            "streams_with_loss": lossy,
            "duplicated": taken["duplicates"],
            "out_of_order": taken["out_of_order"],
            "latency_ms_p50": _percentile(latency, 0.5),
            "latency_ms_p90": _percentile(latency, 0.9),
            "latency_ms_p99": p99,
            "latency_ms_p999": _percentile(latency, 0.999),
            "latency_ms_max": _percentile(latency, 1.0),
            "streams_closed_early": taken["closed_early"],
            "client_failures": dict(taken["failures"]),
            "other_events": dict(taken["other_events"]),
            "client_saturated": max(phase["client_cpu_percent_max_run"], 0) > 90,
            "latency_ms_max_by_second": _max_by_second(taken["occurred"], latency),
        }

    def drop(self) -> None:
        """Every stream aborted at once."""
        for pipe in self.pipes:
            pipe.send(("drop",))
        _receive(self.pipes, "dropped", 60, self.server.check_alive)

    def reopen(self) -> dict[str, Any]:
        """Every stream reopened at once, resuming from the cursor it held."""
        started = time.monotonic()
        for pipe in self.pipes:
            pipe.send(("reopen",))
        reports = _receive(self.pipes, "reopened", 180, self.server.check_alive)
        setup = [ms for report in reports for ms in report[0]]
        return {
            "reopened": len(setup),
            "reopen_s": round(time.monotonic() - started, 2),
            "reopen_setup_ms_p50": _percentile(setup, 0.5),
            "reopen_setup_ms_p99": _percentile(setup, 0.99),
        }

    def wait_delivered(self, expected: int, timeout: float) -> float | None:
        """Seconds until the clients hold ``expected`` events in total (None: not in time)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for pipe in self.pipes:
                pipe.send(("count",))
            if sum(_receive(self.pipes, "count", 30, self.server.check_alive)) >= expected:
                return round(time.monotonic() - started, 2)
            time.sleep(0.05)
        return None


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_targeted(run: Run) -> dict[str, Any]:
    run.open_streams()
    opts = run.options
    phases = []
    for rate in opts.rates or [opts.rate]:
        phase = run.publish(list(run.users), rate, opts.duration)
        phases.append(run.phase_figures(phase, run.take()))
    return run.result | {"phases": phases}


def scenario_broadcast(run: Run) -> dict[str, Any]:
    run.open_streams()
    opts = run.options
    phases = []
    rate = opts.rate
    duration = opts.duration
    best = None
    while True:
        phase = run.phase_figures(run.publish([None], rate, duration), run.take())
        phases.append(phase)
        ok = phase["latency_ms_p99"] is not None and phase["latency_ms_p99"] < opts.p99_limit
        ok = ok and phase["lost"] == 0
        if not opts.find_max:
            break
        if ok:
            best = phase["deliveries_per_s"]
        if not ok or rate >= opts.max_rate:
            break
        rate *= 2
        duration = opts.step_duration
    return run.result | {
        "phases": phases,
        "highest_broadcast_deliveries_per_s_p99_ok": best,
        "p99_limit_ms": opts.p99_limit,
    }


def scenario_resume(run: Run) -> dict[str, Any]:
    """Streams hold a cursor, all drop, ``behind`` broadcast events are stored meanwhile, then
    every stream reconnects at once with its cursor (and, for ours, a fresh sse_token)."""
    run.open_streams()
    opts = run.options
    warm = run.publish([None], 10, 1)  # every stream holds a cursor from a stored event
    warm_figures = run.phase_figures(warm, run.take())
    run.drop()
    time.sleep(2)  # the servers notice the drops and release the streams
    gap = run.publish([None], opts.behind * 10, 0.1, wait=False)
    started = time.monotonic()
    reopen = run.reopen()
    per_stream = gap["events_published"]
    expected = per_stream * run.result["streams_opened"]
    left = opts.drain - (time.monotonic() - started)
    delivered_in = run.wait_delivered(expected, max(left, 1))
    caught_up = None if delivered_in is None else round(time.monotonic() - started, 2)
    phase = run.phase_figures(gap | {"deliveries_expected": expected}, run.take())
    return run.result | {
        "warm_up": {k: warm_figures[k] for k in ("deliveries", "lost", "duplicated")},
        "events_behind_per_stream": per_stream,
        "resume": reopen
        | {"caught_up_s": caught_up}
        | {k: phase[k] for k in ("lost", "streams_with_loss", "duplicated", "out_of_order")}
        | {k: phase[k] for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_max")}
        | {"client_failures": phase["client_failures"], "other_events": phase["other_events"]},
    }


SCENARIOS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "targeted": scenario_targeted,
    "two-process": scenario_targeted,
    "broadcast": scenario_broadcast,
    "resume": scenario_resume,
    "burst": lambda run: (run.open_streams(), run.result)[1],
}


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    phase = (result.get("phases") or [{}])[-1 if result.get("highest") else 0]
    return {
        "p99": phase.get("latency_ms_p99"),
        "setup_p99": result.get("setup_ms_p99"),
        "kib": result.get("kib_per_idle_stream"),
        "idle_cpu": result.get("server_cpu_percent_idle"),
    }


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Their figure divided by ours (above 1: ours is better for latency, memory, CPU)."""
    ours = results.get("ours")
    if not ours or "error" in ours:
        return {}
    mine = _headline(ours)
    out = {}
    for name, result in results.items():
        if name == "ours" or "error" in result:
            continue
        theirs = _headline(result)
        out[name] = {
            key: round(theirs[key] / mine[key], 2) if theirs[key] and mine[key] else None
            for key in mine
        }
    return out


RESULTS = ROOT / "docs" / "bench-results.jsonl"


def record(line: dict[str, Any]) -> None:
    """Append the run to docs/bench-results.jsonl, the one record of dated runs."""
    with RESULTS.open("a") as out:
        out.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--targets", default="ours,naive,nchan")
    parser.add_argument("--streams", type=int)
    parser.add_argument("--rate", type=float, help="events/s (broadcast: broadcast events/s)")
    parser.add_argument("--rates", type=lambda s: [float(v) for v in s.split(",")], default=[])
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--ramp-rate", type=float, default=1000, help="streams opened per s")
    parser.add_argument("--clients", type=int, default=4, help="load-client processes")
    parser.add_argument("--publishers", type=int, default=1, help="publisher processes")
    parser.add_argument("--workers", type=int, default=1, help="our API processes")
    parser.add_argument("--settle", type=float, default=5, help="idle seconds after the ramp")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=30,
        help="our API's SSE_HEARTBEAT_SECONDS; idle with heartbeats: a --settle of a few of these",
    )
    parser.add_argument("--drain", type=float, default=20, help="max wait for late events")
    parser.add_argument("--tick", type=float, default=0.005, help="publisher batch interval")
    parser.add_argument("--behind", type=int, default=100, help="resume: events missed")
    parser.add_argument("--find-max", action="store_true", help="broadcast: double the rate")
    parser.add_argument("--max-rate", type=float, default=2000)
    parser.add_argument("--step-duration", type=float, default=10)
    parser.add_argument("--p99-limit", type=float, default=200)
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to docs/bench-results.jsonl"
    )
    parser.add_argument("--profile", metavar="FILE", help="py-spy our API (collapsed stacks)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the server under test on CPU 0 alone; Redis, clients and publishers elsewhere",
    )
    parser.add_argument(
        "--api-env", action="append", default=[], metavar="NAME=VALUE", help="our API's env"
    )
    options = parser.parse_args()
    defaults = {
        "targeted": (10000, 2000),
        "two-process": (10000, 2000),
        "broadcast": (2000, 20),
        "resume": (5000, 0),
        "burst": (2000, 0),
    }[options.scenario]
    options.streams = options.streams or defaults[0]
    options.rate = options.rate or defaults[1]
    if options.scenario == "two-process":
        options.workers = max(options.workers, 2)
    if options.scenario == "burst":
        options.ramp_rate = options.streams  # every client connects within one second
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if options.pin:
        others = os.sched_getaffinity(0) - SERVER_CPUS
        if not others:
            parser.error("--pin needs at least two CPUs")
        os.sched_setaffinity(0, others)  # Redis, clients and publishers start from here
    fd_limit = _raise_fd_limit()
    line: dict[str, Any] = {
        "bench": "scenarios",
        "scenario": options.scenario,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "code": _code_version(),
        "command": shlex.join(["python", "bench/scenarios.py", *sys.argv[1:]]),
        "streams": options.streams,
        "rate": options.rate,
        "duration_s": options.duration,
        "ramp_rate": options.ramp_rate,
        "settle_s": options.settle,
        "heartbeat_s": options.heartbeat,
        "client_processes": options.clients,
        "publisher_processes": options.publishers,
        "api_workers": options.workers,
        "server_pinned_to_cpu0": options.pin,
        "fd_limit": fd_limit,
        "cpu_check_ms": cpu_check_ms(),
        "results": {},
    }
    for kind in options.targets.split(","):
        if kind == "nchan" and not nchan_available():
            line["results"][kind] = {"error": "skipped: Debian nginx + libnginx-mod-nchan missing"}
            continue
        try:
            with ExitStack() as stack:
                line["results"][kind] = SCENARIOS[options.scenario](Run(kind, options, stack))
        except Exception as exc:  # one target failing must not lose the others' figures
            line["results"][kind] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    line["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    line["cpu_check_ms_end"] = cpu_check_ms()
    line["ratios"] = ratios(line["results"])
    print(json.dumps(line))
    if not options.no_record:
        record(line)


if __name__ == "__main__":
    main()
