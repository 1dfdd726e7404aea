"""Issue 3 benchmark: end-to-end latency and capacity of ONE SSE API process.

    python bench/bench_sse.py [--streams 5000] [--rate 1000] [--duration 30]
                              [--ramp-rate 100] [--clients 4] [--redis-url URL]

Starts an embedded redis-server on loopback (unless --redis-url), one uvicorn process running
``api.main:app`` (uvloop + httptools when installed, access log off), several load-client
processes and one publisher process, then:

1. each client mints a JWT per user (``api.auth.tokens.mint_jwt``, one user per stream) and trades
   it for an ``sse_token`` over raw keep-alive HTTP/1.1, many requests in parallel;
2. the clients open their share of the streams at ``--ramp-rate`` streams/s in total (open loop:
   a slow server does not slow the arrivals), each a raw ``GET`` parsed by hand (chunked
   transfer coding, SSE ``event:``/``data:`` lines); setup time = connect to parsed
   ``connection.established``;
3. with every stream open and idle, the API's RSS, idle CPU and Redis connections are read;
4. the publisher stores ``task.progress-updated`` events with the workers' sync store at
   ``--rate`` events/s for ``--duration`` s, round-robin over the users of open streams; each
   event's ``occurred_at`` is set just before its batch is stored, and latency = the time a
   client parsed it - ``occurred_at`` (one machine, one clock);
5. once every event arrived (or ``--drain`` s passed) everything is stopped.

Prints one JSON line. Every process is stopped at the end, also on error or Ctrl-C.

Diagnostics: ``--samples CSV`` (every event's occurred_at and latency), ``--profile FILE``
(py-spy of the API while publishing), ``--gc-log FILE`` (runs uvicorn with a hook that times
every garbage collection; adds ``api_gc_*`` figures), ``--gc-freeze`` (experiment: gc.freeze()
in the API before publishing), ``--api-env NAME=VALUE`` (e.g. ``SSE_LEASE_SECONDS=600``),
``--quiet-wait S`` (wait for other work on the machine to calm down first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import multiprocessing
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait as wait_pipes
from pathlib import Path
from typing import Any

import orjson
import redis

from progress.redis_server import RedisServer, free_port

HOST = "127.0.0.1"
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 2
TARGET_P99_MS = 100.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def _raise_fd_limit() -> int:
    """Soft open-files limit raised to the hard one; returns the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _fast_loop_available() -> bool:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _die_with_parent() -> None:
    """In a child just before exec: SIGTERM when the benchmark process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# /proc readings


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


#: Every load client shares 127.0.0.1: per-IP rate limits and bans would refuse the ramp.
LOOPBACK_LOAD_ENV = {
    "SSE_RATE_TOKEN_IP_BURST": "1000000",
    "SSE_RATE_STREAM_IP_BURST": "1000000",
    "SSE_RATE_TOKEN_IP_PER_SECOND": "1000000",
    "SSE_RATE_STREAM_IP_PER_SECOND": "1000000",
    "SSE_BAN_AFTER_STRIKES": "1000000",
    "SSE_MAX_CONNECTIONS_PER_INSTANCE": "100000",
}


class CpuMeter:
    """CPU share of a set of processes between :meth:`mark` and :meth:`percent`.

    ``machine`` is what all cores together spent (100 = one core); ``others`` is the part
    used by processes not measured here (other work on the machine disturbs the figures).
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
        self._start: dict[str, float] = {}
        self._at = 0.0

    def mark(self) -> None:
        self._at = time.monotonic()
        self._start = {name: self._read(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy_seconds()

    def add_new(self, name: str, pid: int) -> None:
        """Also measure a process started after :meth:`mark` (all its CPU is in the window)."""
        self.pids[name] = pid
        self._start[name] = 0.0

    @staticmethod
    def _read(pid: int) -> float:
        try:
            return cpu_seconds(pid)
        except (OSError, ValueError):
            return math.nan

    def percent(self) -> dict[str, float]:
        """Percent of one core each process used since :meth:`mark`."""
        wall = max(time.monotonic() - self._at, 1e-9)
        used = {
            name: round((self._read(pid) - self._start[name]) / wall * 100, 1)
            for name, pid in self.pids.items()
        }
        machine = round((machine_busy_seconds() - self._machine) / wall * 100, 1)
        return used | {"machine": machine, "others": round(machine - sum(used.values()), 1)}


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _local_ports_to(pid: int, remote_port: int) -> set[int]:
    """Local ports of ``pid``'s TCP connections to ``remote_port`` (from /proc/net/tcp)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                cols = row.split()
                if int(cols[9]) in inodes and int(cols[2].rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def api_redis_clients(monitor: redis.Redis, api_pid: int, redis_port: int) -> dict[str, int]:
    """Redis connections the API process holds (CLIENT LIST entries on its local ports)."""
    ports = _local_ports_to(api_pid, redis_port)
    connections = pubsub = channels = 0
    for client in monitor.client_list():
        if int(str(client["addr"]).rsplit(":", 1)[1]) in ports:
            connections += 1
            subscribed = int(client.get("sub", 0)) + int(client.get("psub", 0))
            if subscribed:
                pubsub += 1
                channels += subscribed
    return {"connections": connections, "pubsub": pubsub, "channels": channels}


# ---------------------------------------------------------------------------------------------
# The API process


# Runs uvicorn's CLI with the cyclic garbage collector hooked: one line per collection,
# "gc <unix time it began> <generation> <ms>", and on SIGUSR1 "objects <unix time> <tracked>".
# SIGUSR2 calls gc.freeze() (an experiment: what is left once full collections stop).
GC_PROBE = """
import gc, signal, sys, time
log = open(sys.argv.pop(1), "w", buffering=1)
began = [0.0, 0.0]
def probe(phase, info):
    if phase == "start":
        began[:] = [time.time(), time.perf_counter()]
        return
    ms = (time.perf_counter() - began[1]) * 1000
    log.write(f"gc {began[0]:.3f} {info['generation']} {ms:.2f}\\n")
def count(*_):
    log.write(f"objects {time.time():.3f} {len(gc.get_objects())}\\n")
def freeze(*_):
    gc.freeze()
    log.write(f"frozen {time.time():.3f} {gc.get_freeze_count()}\\n")
gc.callbacks.append(probe)
signal.signal(signal.SIGUSR1, count)
signal.signal(signal.SIGUSR2, freeze)
sys.argv[0] = "uvicorn"
from uvicorn.main import main
main()
"""


def gc_pauses(path: str, since: float, until: float) -> dict[str, Any]:
    """Collections the GC probe logged that began between two unix times."""
    by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
    tracked = None
    for line in Path(path).read_text().splitlines():
        kind, at, *rest = line.split()
        if not since <= float(at) <= until:
            continue
        if kind == "gc":
            by_generation[int(rest[0])].append(float(rest[1]))
        elif kind == "objects":
            tracked = int(rest[0])
    result: dict[str, Any] = {
        "collections": [len(by_generation[g]) for g in range(3)],
        "gen2_ms": [round(ms) for ms in by_generation[2]],
        "max_ms_gen0_1": round(max(by_generation[0] + by_generation[1], default=0.0), 1),
    }
    if tracked is not None:
        result["objects_tracked"] = tracked
    return result


class ApiProcess:
    """``uvicorn api.main:app`` in a child process on a free loopback port."""

    def __init__(
        self,
        redis_url: str,
        fast: bool,
        access_log: bool,
        extra_env: dict[str, str],
        gc_log: str | None = None,
    ) -> None:
        self.port = free_port(HOST)
        self.fast = fast
        self.access_log = access_log
        self.gc_log = gc_log
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "SSE_DEV_TOKENS_ENABLED": "true",
            "AUDIT_ALLOW_DEV_KEY": "true",
            "SSE_HEARTBEAT_SECONDS": "30",
            # tokens are fetched before the ramp; a slow ramp must not outlive them
            "SSE_TOKEN_TTL_SECONDS": "900",
            **LOOPBACK_LOAD_ENV,
            **extra_env,
        }
        self._log = tempfile.NamedTemporaryFile(prefix="bench-api-", suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-chars:]

    def start(self, timeout: float = 30.0) -> ApiProcess:
        args = [sys.executable, "-m", "uvicorn"]
        if self.gc_log:
            args = [sys.executable, "-c", GC_PROBE, self.gc_log]
        args += ["api.main:app", "--host", HOST]
        args += ["--port", str(self.port), "--timeout-graceful-shutdown", "3"]
        if self.fast:
            args += ["--loop", "uvloop", "--http", "httptools"]
        if not self.access_log:
            args.append("--no-access-log")
        self.process = subprocess.Popen(
            args,
            env=self.env,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops the server
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API exited:\n{self.log_tail()}")
            if self._healthy():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"API did not come up in {timeout} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        import socket

        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"GET /api/v1/events/health HTTP/1.1\r\nHost: x\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"API process died:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Load client (runs in child processes)


class SseParser:
    """Incremental SSE parser: bytes in, (event, data) out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += chunk
        messages = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return messages
            line = self._buffer[:end]
            self._buffer = self._buffer[end + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data or self._event:
                    messages.append((self._event or b"message", b"\n".join(self._data)))
                self._event, self._data = b"", []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"event":
                self._event = value
            elif name == b"data":
                self._data.append(value)


async def _body_chunks(reader: asyncio.StreamReader, chunked: bool) -> AsyncIterator[bytes]:
    """The response body as it arrives, chunked transfer coding undone."""
    if not chunked:
        while data := await reader.read(65536):
            yield data
        return
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            return
        yield (await reader.readexactly(size + 2))[:-2]


async def _http_post(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    port: int,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
) -> tuple[int, bytes]:
    """One request on a keep-alive connection; (status, body). Needs Content-Length."""
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode() + b"\r\n" + body)
    response = await reader.readuntil(b"\r\n\r\n")
    status = int(response.split(b" ", 2)[1])
    length = 0
    for line in response.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


class LoadClient:
    """One client process: fetches tokens, opens its streams, records what arrives."""

    def __init__(
        self,
        pipe: Pipe,
        port: int,
        users: list[str],
        ramp_rate: float,
        ramp_offset: float,
        token_concurrency: int,
    ) -> None:
        self.pipe = pipe
        self.port = port
        self.users = users
        self.ramp_rate = ramp_rate
        self.ramp_offset = ramp_offset
        self.token_concurrency = token_concurrency
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.setup_ms: list[float] = []
        self.failures: Counter[str] = Counter()
        self.opened: list[str] = []
        self.latencies_ms: list[float] = []
        self.occurred: list[float] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.other_events: Counter[str] = Counter()
        self.closed_early = 0
        self.stopping = False
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._settled = 0
        self._all_settled = asyncio.Event()

    def _on_pipe(self) -> None:
        try:
            message = self.pipe.recv()
        except (EOFError, OSError):
            message = ("stop",)  # the benchmark process is gone
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
        self.inbox.put_nowait(message)

    async def _expect(self, kind: str) -> tuple[Any, ...]:
        while True:
            message = await self.inbox.get()
            if message[0] == kind or message[0] == "stop":
                return message
            if message[0] == "count":
                self.pipe.send(("count", len(self.seen)))

    async def fetch_tokens(self) -> dict[str, str]:
        from api.auth.tokens import mint_jwt

        pending = list(self.users)
        tokens: dict[str, str] = {}

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(HOST, self.port)
            try:
                while pending:
                    user = pending.pop()
                    jwt = mint_jwt(JWT_SECRET, user, f"s-{user}", 3600)
                    headers = {"Authorization": f"Bearer {jwt}"}
                    status, body = await _http_post(
                        reader, writer, self.port, "/api/v1/auth/sse-token", headers
                    )
                    if status == 200:
                        tokens[user] = orjson.loads(body)["sse_token"]
                    else:
                        self.failures[f"sse_token_http_{status}"] += 1
            finally:
                writer.close()

        workers = min(self.token_concurrency, len(self.users)) or 1
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), 120)
        return tokens

    def _settle(self) -> None:
        self._settled += 1
        if self._settled >= len(self.users):
            self._all_settled.set()

    async def stream(self, user: str, token: str) -> None:
        started = time.perf_counter()
        established = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port, limit=1 << 20), 15
            )
            self.writers.append(writer)
            writer.write(
                f"GET /api/v1/events/stream?sse_token={token} HTTP/1.1\r\n"
                f"Host: {HOST}:{self.port}\r\nAccept: text/event-stream\r\n"
                "Cache-Control: no-cache\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.failures[f"stream_http_{status}"] += 1
                return
            parser = SseParser()
            async for chunk in _body_chunks(reader, b"chunked" in head.lower()):
                for event, data in parser.feed(chunk):
                    if event == b"task.progress-updated":
                        now = time.time()
                        body = orjson.loads(data)
                        event_id = body["event_id"]
                        if event_id in self.seen:
                            self.duplicates += 1
                            continue
                        self.seen.add(event_id)
                        occurred = datetime.fromisoformat(body["occurred_at"]).timestamp()
                        self.latencies_ms.append((now - occurred) * 1000)
                        self.occurred.append(occurred)
                    elif event == b"connection.established" and not established:
                        established = True
                        self.setup_ms.append((time.perf_counter() - started) * 1000)
                        self.opened.append(user)
                        self._settle()
                    else:
                        self.other_events[event.decode()] += 1
            if not self.stopping:
                self.closed_early += 1
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            if not self.stopping:
                kind = "connect" if not established else "stream_lost"
                self.failures[f"{kind}_{type(exc).__name__}"] += 1
                self.closed_early += established
        except TimeoutError:
            self.failures["timeout"] += 1
        finally:
            if not established:
                self._settle()

    async def ramp(self, tokens: dict[str, str]) -> None:
        """Open a stream every 1/rate s (open loop); return once each is up or failed."""
        loop = asyncio.get_running_loop()
        start = loop.time() + self.ramp_offset
        for i, user in enumerate(self.users):
            delay = start + i / self.ramp_rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            token = tokens.get(user)
            if token is None:
                self._settle()
                continue
            self.tasks.append(asyncio.create_task(self.stream(user, token)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_settled.wait(), 60)
        self.failures["still_opening"] += len(self.users) - self._settled

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        # add_reader made the pipe non-blocking; sending a large result must not fail with
        # EAGAIN while the benchmark process is still reading another client's
        os.set_blocking(self.pipe.fileno(), True)
        tokens = await self.fetch_tokens()
        self.pipe.send(("tokens", len(tokens)))
        if (await self._expect("go"))[0] == "stop":
            return
        await self.ramp(tokens)
        self.pipe.send(("opened", self.setup_ms, dict(self.failures), self.opened))
        await self._expect("stop")
        self.stopping = True
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 10)
        self.pipe.send(
            (
                "result",
                {
                    "latencies_ms": self.latencies_ms,
                    "occurred": self.occurred,
                    "delivered": len(self.seen),
                    "duplicates": self.duplicates,
                    "other_events": dict(self.other_events),
                    "closed_early": self.closed_early,
                    "failures": dict(self.failures),
                },
            )
        )


def _client_process(
    pipe: Pipe,
    port: int,
    users: list[str],
    ramp_rate: float,
    ramp_offset: float,
    token_concurrency: int,
    lifetime: float,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(int(lifetime))  # never outlive the benchmark by much, whatever happens
    _raise_fd_limit()
    _install_uvloop()
    client = LoadClient(pipe, port, users, ramp_rate, ramp_offset, token_concurrency)
    asyncio.run(client.run())


# ---------------------------------------------------------------------------------------------
# Publisher (runs in a child process)


def _publisher_process(
    pipe: Pipe, url: str, users: list[str], rate: float, duration: float, tick: float
) -> None:
    from progress.events import TaskUpdated
    from progress.redis_store import RedisEventStore, connect

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(int(duration + 120))
    store = RedisEventStore(connect(url))
    sent = batches = 0
    worst_behind = 0.0
    started = time.perf_counter()
    next_tick = started
    while True:
        now = time.perf_counter()
        elapsed = now - started
        if elapsed >= duration:
            break
        due = min(int(elapsed * rate) - sent, 5000)
        if due > 0:
            worst_behind = max(worst_behind, due / rate)
            batch = [
                (
                    TaskUpdated(
                        user_id=users[(sent + k) % len(users)],
                        task_id="bench",
                        percent=(sent + k) % 100,
                        stage="drafting",
                        message="bench",
                    ),
                    (),
                )
                for k in range(due)
            ]
            store.append_many(batch)
            sent += due
            batches += 1
        next_tick += tick
        pause = next_tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_tick = time.perf_counter()
    elapsed = time.perf_counter() - started
    pipe.send({"sent": sent, "seconds": elapsed, "batches": batches, "behind_max_s": worst_behind})


# ---------------------------------------------------------------------------------------------
# The benchmark


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)


def _receive(pipes: list[Pipe], kind: str, timeout: float, check: Callable[[], None]) -> list[Any]:
    """One ``kind`` message from every pipe, in pipe order; bounded by ``timeout``."""
    got: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(pipes):
        check()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"clients did not send {kind!r} within {timeout} s")
        for pipe in wait_pipes([p for i, p in enumerate(pipes) if i not in got], min(left, 1)):
            index = pipes.index(pipe)  # type: ignore[arg-type]
            try:
                message = pipe.recv()  # type: ignore[union-attr]
            except EOFError:
                raise RuntimeError(f"client {index} exited before sending {kind!r}") from None
            if message[0] == kind:
                got[index] = message[1:] if len(message) > 2 else message[1]
    return [got[i] for i in range(len(pipes))]


@contextlib.contextmanager
def _children(processes: list[multiprocessing.Process], pipes: list[Pipe]) -> Iterator[None]:
    """Stop the child processes on the way out, whatever happened."""
    try:
        yield
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("stop",))
        deadline = time.monotonic() + 15
        for process in processes:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


@contextlib.contextmanager
def _py_spy(pid: int, seconds: float, output: str, native: bool) -> Iterator[None]:
    """Sample ``pid`` with py-spy (speedscope format) while the block runs."""
    args = ["py-spy", "record", "--idle", "-d", str(int(seconds)), "-p", str(pid)]
    args += ["-o", output, "--format", "speedscope"]
    args.append("--native" if native else "--nonblocking")  # native stacks need pausing
    spy = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
        spy.wait(seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait(5)


def _code_version() -> str:
    """Commit of the code under test, ``+dirty`` when api/ or progress/ have local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "api", "progress"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def wait_until_quiet(limit_percent: float, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until the machine is busy below ``limit_percent`` over 2 s
    (nothing of the benchmark runs yet, so that is other work); returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        before = machine_busy_seconds()
        time.sleep(2)
        busy = (machine_busy_seconds() - before) / 2 * 100
        if busy < limit_percent or time.monotonic() >= deadline:
            return round(busy, 1)


def run(options: argparse.Namespace) -> dict[str, Any]:
    fd_limit = _raise_fd_limit()
    if fd_limit < options.streams + 1000:  # the API process holds one fd per stream
        raise SystemExit(f"open-files limit {fd_limit} is too low for {options.streams} streams")
    fast = _fast_loop_available()
    context = multiprocessing.get_context("fork")
    tag = secrets.token_hex(3)
    users = [f"bench-{tag}-{i}" for i in range(options.streams)]
    result: dict[str, Any] = {
        "bench": "sse",
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "code": _code_version(),
        "server": "uvicorn --loop uvloop --http httptools" if fast else "uvicorn (auto loop)",
        "client_processes": options.clients,
        "streams_requested": options.streams,
        "ramp_rate": options.ramp_rate,
        "rate_target": options.rate,
        "duration_s": options.duration,
        "fd_limit": fd_limit,
    }
    result["machine_cpu_percent_before_start"] = wait_until_quiet(20, options.quiet_wait)
    with ExitStack() as stack:
        url = options.redis_url
        if url is None:
            url = f"{stack.enter_context(RedisServer()).url}/0"
        monitor = redis.Redis.from_url(url)
        stack.callback(monitor.close)
        redis_info = monitor.info("server")
        redis_port = int(redis_info["tcp_port"])
        redis_pid = int(redis_info["process_id"])

        extra_env = dict(item.split("=", 1) for item in options.api_env)
        gc_log = options.gc_log
        api = ApiProcess(url, fast, options.access_log, extra_env, gc_log)
        stack.callback(api.stop)
        api.start()
        result["api_rss_mib_started"] = round(rss_kib(api.pid) / 1024, 1)

        pipes: list[Pipe] = []
        processes: list[multiprocessing.Process] = []
        stack.enter_context(_children(processes, pipes))
        lifetime = 300 + options.streams / options.ramp_rate + options.duration + options.drain
        share = options.ramp_rate / options.clients
        for index in range(options.clients):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_client_process,
                args=(
                    theirs,
                    api.port,
                    users[index :: options.clients],
                    share,
                    index / options.ramp_rate,
                    options.token_concurrency,
                    lifetime,
                ),
                name=f"sse-client-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            pipes.append(mine)
            processes.append(process)
        clients = {f"client{i}": p.pid or 0 for i, p in enumerate(processes)}

        started = time.monotonic()
        tokens = _receive(pipes, "tokens", 180, api.check_alive)
        result["token_fetch_s"] = round(time.monotonic() - started, 2)
        result["tokens"] = sum(tokens)
        time.sleep(1)
        before = rss_kib(api.pid)
        result["api_rss_mib_before_streams"] = round(before / 1024, 1)
        result["api_redis_before_streams"] = api_redis_clients(monitor, api.pid, redis_port)

        ramp_cpu = CpuMeter({"api": api.pid, "redis": redis_pid, **clients})
        ramp_cpu.mark()
        started = time.monotonic()
        for pipe in pipes:
            pipe.send(("go",))
        opened_reports = _receive(
            pipes, "opened", options.streams / options.ramp_rate + 120, api.check_alive
        )
        result["ramp_s"] = round(time.monotonic() - started, 2)
        ramp_usage = ramp_cpu.percent()
        setup_ms = [ms for report in opened_reports for ms in report[0]]
        failures: Counter[str] = Counter()
        for report in opened_reports:
            failures.update({k: v for k, v in report[1].items() if v})
        opened_users = [user for report in opened_reports for user in report[2]]
        result["streams_opened"] = len(opened_users)
        result["open_failures"] = dict(failures)
        result["setup_ms_p50"] = _percentile(setup_ms, 0.50)
        result["setup_ms_p99"] = _percentile(setup_ms, 0.99)
        result["setup_ms_max"] = _percentile(setup_ms, 1.0)
        result["api_cpu_percent_ramp"] = ramp_usage["api"]
        if not opened_users:
            raise RuntimeError(f"no stream opened: {dict(failures)}\n{api.log_tail()}")

        idle_cpu = CpuMeter({"api": api.pid})
        idle_cpu.mark()
        time.sleep(options.settle)
        result["api_cpu_percent_idle_open"] = idle_cpu.percent()["api"]
        idle = rss_kib(api.pid)
        result["api_rss_mib_idle_open"] = round(idle / 1024, 1)
        result["kib_per_idle_connection"] = round((idle - before) / len(opened_users), 1)
        result["api_redis_idle_open"] = api_redis_clients(monitor, api.pid, redis_port)
        if gc_log:
            os.kill(api.pid, signal.SIGUSR1)  # the probe logs how many objects the GC tracks
            time.sleep(2)
            if options.gc_freeze:
                os.kill(api.pid, signal.SIGUSR2)
                time.sleep(2)
                result["experiment_gc_frozen_before_run"] = True

        api.check_alive()
        mine, theirs = context.Pipe()
        publisher = context.Process(
            target=_publisher_process,
            args=(theirs, url, opened_users, options.rate, options.duration, options.tick),
            name="sse-publisher",
            daemon=True,
        )
        run_cpu = CpuMeter({"api": api.pid, "redis": redis_pid, **clients})
        run_cpu.mark()
        run_began = time.time()
        publisher.start()
        if options.profile:
            stack.enter_context(_py_spy(api.pid, options.duration, options.profile, options.native))
        processes.append(publisher)
        theirs.close()
        run_cpu.add_new("publisher", publisher.pid or 0)
        if not mine.poll(options.duration + 60):
            raise TimeoutError("the publisher did not finish")
        published = mine.recv()
        run_usage = run_cpu.percent()
        expected = published["sent"]
        if gc_log:
            result["api_gc_ramp_and_idle"] = gc_pauses(gc_log, 0, run_began)
            result["api_gc_run"] = gc_pauses(gc_log, run_began, time.time())

        deadline = time.monotonic() + options.drain
        delivered = 0
        while time.monotonic() < deadline:
            api.check_alive()
            for pipe in pipes:
                pipe.send(("count",))
            delivered = sum(_receive(pipes, "count", 10, api.check_alive))
            if delivered >= expected:
                break
            time.sleep(0.25)
        result["drain_s"] = round(options.drain - max(0.0, deadline - time.monotonic()), 2)
        result["api_rss_mib_after_run"] = round(rss_kib(api.pid) / 1024, 1)
        result["api_redis_after_run"] = api_redis_clients(monitor, api.pid, redis_port)

        for pipe in pipes:
            pipe.send(("stop",))
        reports = _receive(pipes, "result", 30, lambda: None)

    latencies = [ms for report in reports for ms in report["latencies_ms"]]
    if options.samples:
        with open(options.samples, "w") as out:
            out.write("occurred_at,latency_ms\n")
            for report in reports:
                for at, ms in zip(report["occurred"], report["latencies_ms"], strict=True):
                    out.write(f"{at:.6f},{ms:.3f}\n")
    delivered = sum(report["delivered"] for report in reports)
    other: Counter[str] = Counter()
    late_failures: Counter[str] = Counter()
    for report in reports:
        other.update(report["other_events"])
        late_failures.update({k: v for k, v in report["failures"].items() if v})
    client_run = [run_usage[name] for name in clients]
    client_ramp = [ramp_usage[name] for name in clients]
    p99 = _percentile(latencies, 0.99)
    result |= {
        "events_published": expected,
        "rate_achieved": round(expected / published["seconds"], 1),
        "publisher_behind_max_s": round(published["behind_max_s"], 3),
        "events_delivered": delivered,
        "events_lost": expected - delivered,
        "events_duplicated": sum(report["duplicates"] for report in reports),
        "latency_ms_p50": _percentile(latencies, 0.50),
        "latency_ms_p95": _percentile(latencies, 0.95),
        "latency_ms_p99": p99,
        "latency_ms_max": _percentile(latencies, 1.0),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": p99 is not None and p99 < TARGET_P99_MS and expected == delivered,
        "api_cpu_percent_run": run_usage["api"],
        "redis_cpu_percent_run": run_usage.get("redis"),
        "publisher_cpu_percent_run": run_usage["publisher"],
        "machine_cpu_percent_run": run_usage["machine"],
        "other_processes_cpu_percent_run": run_usage["others"],
        "machine_cpu_percent_ramp": ramp_usage["machine"],
        "other_processes_cpu_percent_ramp": ramp_usage["others"],
        "client_cpu_percent_ramp": client_ramp,
        "client_cpu_percent_run": client_run,
        "client_saturated": max(client_run + client_ramp) > 90,
        "streams_closed_early": sum(report["closed_early"] for report in reports),
        "stream_errors": dict(late_failures - failures),
        "other_events": dict(other),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000, help="events stored per second")
    parser.add_argument("--duration", type=float, default=30, help="seconds of publishing")
    parser.add_argument("--ramp-rate", type=float, default=100, help="streams opened per second")
    parser.add_argument("--clients", type=int, default=4, help="load-client processes")
    parser.add_argument("--token-concurrency", type=int, default=16, help="per client process")
    parser.add_argument("--settle", type=float, default=5, help="idle seconds before publishing")
    parser.add_argument("--drain", type=float, default=15, help="max wait for late events")
    parser.add_argument("--tick", type=float, default=0.005, help="publisher batch interval (s)")
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's access log on")
    parser.add_argument(
        "--api-env", action="append", default=[], metavar="NAME=VALUE", help="extra API env"
    )
    parser.add_argument("--redis-url")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S s until other work uses < 20%% of one core",
    )
    parser.add_argument("--samples", metavar="CSV", help="write occurred_at,latency_ms per event")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the API while publishing")
    parser.add_argument("--native", action="store_true", help="py-spy C frames too (GC)")
    parser.add_argument("--gc-log", metavar="FILE", help="log and time the API's GC collections")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment (needs --gc-log): gc.freeze() in "
        "the API once the streams are open, so no full collection runs while publishing",
    )
    options = parser.parse_args()
    if options.gc_freeze and not options.gc_log:
        parser.error("--gc-freeze needs --gc-log")
    # SIGTERM unwinds like Ctrl-C, so every server and child process is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(run(options)))


if __name__ == "__main__":
    main()
