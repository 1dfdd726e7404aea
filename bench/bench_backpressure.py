"""Issue 7 benchmark: ONE API process under more progress updates than it can relay.

    python bench/bench_backpressure.py [--users 2000] [--streams-per-user 2] [--rate 6000]
                                       [--duration 20] [--task-updates 10] [--no-backpressure]

Starts an embedded redis-server and one uvicorn process (uvloop + httptools when installed,
access log off); opens ``--streams-per-user`` SSE streams for each of ``--users`` users (two
tabs each by default, so every event is written twice while Redis and the publisher work once;
raw sockets in this process); then a publisher process stores, round-robin over the users,
``--rate`` events/s for ``--duration`` s: each user runs one task after another,
``--task-updates`` progress updates then a terminal event (every tenth task ``failed``, the
others ``completed``). Halfway through, this process sends a critical broadcast
``system.notification`` and an ``info`` one through the admin endpoint; one user set
``min_level: warning`` before connecting.

Prints one JSON line: terminal-event latency percentiles (occurred_at -> parsed by the client,
one clock), progress updates published / delivered (the rest were coalesced), clients lost
(any stream that ended or was told to reconnect), terminal events missing at their client,
the time the critical notification took to reach every stream, whether the muted user got an
``info``, and the API's backpressure state over the run (scraped from ``/metrics``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.auth.tokens import mint_jwt
from progress.events import TaskCompleted, TaskFailed, TaskStarted, TaskUpdated
from progress.redis_server import RedisServer, free_port
from progress.redis_store import RedisEventStore, connect
from tests.sse_swarm import RawSseStream, close_all, open_streams

HOST = "127.0.0.1"
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 2
TERMINAL = ("task.progress-completed", "task.progress-failed")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def wait_for_quiet(seconds: float) -> float:
    """Wait (at most ``seconds``) until the machine is mostly idle; the busy share seen last."""
    deadline = time.monotonic() + seconds
    while True:
        before, started = machine_busy_seconds(), time.monotonic()
        time.sleep(2)
        busy = (machine_busy_seconds() - before) / (time.monotonic() - started) / os.cpu_count()
        if busy < 0.25 or time.monotonic() > deadline:
            return busy


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_api(redis_url: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """uvicorn on a free port, waiting until it answers."""
    port = free_port(HOST)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JWT_SECRET": JWT_SECRET,
        "SSE_DEV_TOKENS_ENABLED": "true",
        "AUDIT_ALLOW_DEV_KEY": "true",
        "SSE_TOKEN_TTL_SECONDS": "900",
        # every stream comes from 127.0.0.1: the per-IP limits would refuse the ramp
        "SSE_RATE_TOKEN_IP_PER_SECOND": "1000000",
        "SSE_RATE_TOKEN_IP_BURST": "1000000",
        "SSE_RATE_STREAM_IP_PER_SECOND": "1000000",
        "SSE_RATE_STREAM_IP_BURST": "1000000",
        "SSE_LOG_JSON": "false",
        **extra_env,
    }
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", HOST, "--port", str(port)]
    args += ["--timeout-graceful-shutdown", "3"]
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        args += ["--loop", "uvloop", "--http", "httptools"]
    args.append("--no-access-log")
    log = tempfile.NamedTemporaryFile(prefix="bench-bp-api-", suffix=".log", delete=False)
    process = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(Path(log.name).read_text())
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{HOST}:{port}/api/v1/events/health", timeout=1).is_success:
                return process, port
        time.sleep(0.1)
    raise RuntimeError("API did not start")


def publish(redis_url: str, users: list[str], rate: int, duration: float, updates: int, out: Pipe):
    """Publisher process: ``rate`` events/s round-robin over ``users``; reports what it stored."""
    store = RedisEventStore(connect(redis_url))
    step = dict.fromkeys(users, 0)
    task_no = dict.fromkeys(users, 0)
    terminal: dict[str, list[str]] = {user: [] for user in users}
    progress = 0
    batch_every = 0.01
    per_batch = max(1, int(rate * batch_every))
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < duration:
        batch = []
        for _ in range(per_batch):
            user = users[n % len(users)]
            n += 1
            task = f"{user}-t{task_no[user]}"
            s = step[user]
            if s == 0:
                event: Any = TaskStarted(user_id=user, task_id=task, task_name="chapter")
            elif s <= updates:
                event = TaskUpdated(user_id=user, task_id=task, percent=100 * s / (updates + 1))
                progress += 1
            elif task_no[user] % 10 == 9:
                event = TaskFailed(
                    user_id=user,
                    task_id=task,
                    error_type="Timeout",
                    message="too slow",
                    retryable=True,
                    retry_suggestion="retry",
                )
            else:
                event = TaskCompleted(user_id=user, task_id=task, duration_seconds=1)
            if s > updates:
                terminal[user].append(str(event.event_id))
                step[user], task_no[user] = 0, task_no[user] + 1
            else:
                step[user] = s + 1
            batch.append((event, ()))
        store.append_many(batch)
        late = start + (n / rate) - time.monotonic()
        if late > 0:
            time.sleep(late)
    elapsed = time.monotonic() - start
    out.send({"published": n, "progress": progress, "terminal": terminal, "seconds": elapsed})
    store.close()


async def scrape_backpressure(url: str, samples: list[dict[str, float]], stop: asyncio.Event):
    """Every 0.5 s: saturation, loop lag, coalesced count, open streams."""
    wanted = (
        "sse_backpressure_active",
        "sse_event_loop_lag_seconds",
        "sse_connections_open",
        "sse_connection_queue_depth_max",
    )
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                text = (await client.get(f"{url}/metrics")).text
                sample: dict[str, float] = {"t": time.monotonic()}
                for line in text.splitlines():
                    name = line.split("{")[0].split(" ")[0]
                    if name in wanted:
                        sample[name] = float(line.rsplit(" ", 1)[1])
                    elif line.startswith("sse_progress_coalesced_total"):
                        sample["coalesced"] = sample.get("coalesced", 0) + float(line.split()[-1])
                samples.append(sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def server_side_latency(text: str) -> dict[str, float | None]:
    """Median and p99 (bucket upper bounds, ms) of the API's own histograms: terminal events
    written to the socket, and events received by the hub (fan-out lag)."""
    buckets: dict[str, list[tuple[float, float]]] = {"terminal": [], "fanout": []}
    for line in text.splitlines():
        if line.startswith('sse_delivery_latency_seconds_bucket{group="terminal"'):
            kind = "terminal"
        elif line.startswith("sse_fanout_lag_seconds_bucket"):
            kind = "fanout"
        else:
            continue
        bound = line.split('le="')[1].split('"')[0]
        buckets[kind].append(
            (float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1]))
        )
    result: dict[str, float | None] = {}
    for kind, pairs in buckets.items():
        total = pairs[-1][1] if pairs else 0
        for q in (0.5, 0.99):
            bound = next((b for b, count in pairs if total and count >= q * total), None)
            result[f"{kind}_p{int(q * 100)}_ms_at_most"] = None if bound is None else bound * 1000
    return result


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def wall(stream: RawSseStream, index: int, offset: float) -> float:
    return stream.arrivals[index] + offset


def occurred(data: dict[str, Any]) -> float:
    return datetime.fromisoformat(data["occurred_at"]).timestamp()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    users = [f"bp{n}" for n in range(args.users)]
    args.stream_users = [user for user in users for _ in range(args.streams_per_user)]
    muted = users[0]
    env = dict(item.split("=", 1) for item in args.api_env)
    if not args.backpressure:
        env["SSE_BACKPRESSURE_ENABLED"] = "false"
    with RedisServer() as redis_server:
        redis_url = f"{redis_server.url}/0"
        api, port = start_api(redis_url, env)
        url = f"http://{HOST}:{port}"
        streams: list[RawSseStream] = []
        publisher: multiprocessing.Process | None = None
        main = asyncio.current_task()
        assert main is not None
        # SIGTERM (timeout, kill) unwinds like Ctrl-C: the API, Redis and publisher stop too
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        try:
            auth = {"Authorization": f"Bearer {mint_jwt(JWT_SECRET, muted)}"}
            put = httpx.put(
                f"{url}/api/v1/me/notification-preferences",
                json={"min_level": "warning"},
                headers=auth,
            )
            put.raise_for_status()
            opened_at = time.monotonic()
            streams = await open_streams(url, args.stream_users, concurrency=64, timeout=300)
            ramp = time.monotonic() - opened_at
            offset = time.time() - time.monotonic()
            samples: list[dict[str, float]] = []
            stop = asyncio.Event()
            scraper = asyncio.create_task(scrape_backpressure(url, samples, stop))
            theirs, ours = multiprocessing.Pipe(duplex=False)
            publisher = multiprocessing.Process(
                daemon=True,
                target=publish,
                args=(redis_url, users, args.rate, args.duration, args.task_updates, ours),
            )
            publisher.start()
            api_cpu_before, publish_started = cpu_seconds(api.pid), time.monotonic()
            redis_pid = int(connect(redis_url).info("server")["process_id"])
            ours_before = cpu_seconds(redis_pid) + cpu_seconds(publisher.pid)
            machine_before = machine_busy_seconds()
            bench_cpu_before = cpu_seconds(os.getpid())
            profiler = (
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(api.pid),
                        "-d",
                        str(int(args.duration)),
                        "-o",
                        args.profile,
                        "-f",
                        "speedscope",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                if args.profile
                else None
            )
            await asyncio.sleep(args.duration / 2)
            admin = {"Authorization": f"Bearer {mint_jwt(JWT_SECRET, 'ops', roles=('admin',))}"}
            async with httpx.AsyncClient(timeout=10) as client:
                for level in ("critical", "info"):
                    sent = await client.post(
                        f"{url}/api/v1/admin/notifications",
                        json={"level": level, "message": f"{level} under load"},
                        headers=admin,
                    )
                    sent.raise_for_status()
            saturated_when_sent = samples[-1].get("sse_backpressure_active") if samples else None
            report = await asyncio.to_thread(theirs.recv)
            window = time.monotonic() - publish_started
            ours = cpu_seconds(redis_pid) + cpu_seconds(publisher.pid) - ours_before
            ours += (
                cpu_seconds(api.pid) - api_cpu_before + cpu_seconds(os.getpid()) - bench_cpu_before
            )
            report["redis_and_publisher_cpu_percent"] = round(
                100 * (cpu_seconds(redis_pid) + cpu_seconds(publisher.pid) - ours_before) / window
            )
            report["other_processes_cpu_percent"] = round(
                100 * (machine_busy_seconds() - machine_before - ours) / window
            )
            report["api_cpu_percent"] = round(
                100 * (cpu_seconds(api.pid) - api_cpu_before) / (time.monotonic() - publish_started)
            )
            publisher.join()
            if profiler is not None:
                profiler.wait()
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline:
                got = sum(1 for s in streams for e in s.events if e.event in TERMINAL)
                expected = sum(len(v) for v in report["terminal"].values())
                if got >= expected * args.streams_per_user:
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await scraper
            report["server_side"] = server_side_latency(httpx.get(f"{url}/metrics").text)
            report["bench_cpu_percent"] = round(
                100
                * (cpu_seconds(os.getpid()) - bench_cpu_before)
                / (time.monotonic() - publish_started)
            )
            return analyse(args, streams, report, samples, offset, ramp, saturated_when_sent)
        finally:
            # processes first: nothing awaited here may be cut short by a second cancellation
            if publisher is not None and publisher.is_alive():
                publisher.terminate()
            os.killpg(api.pid, signal.SIGTERM)
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(api.pid, signal.SIGKILL)
                api.wait()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            with contextlib.suppress(asyncio.CancelledError):
                await close_all(streams)


def analyse(
    args: argparse.Namespace,
    streams: list[RawSseStream],
    report: dict[str, Any],
    samples: list[dict[str, float]],
    offset: float,
    ramp: float,
    saturated_when_sent: float | None,
) -> dict[str, Any]:
    terminal_latency: list[float] = []
    missing_terminal = 0
    delivered_progress = 0
    lost: set[int] = set()
    critical_arrivals: list[float] = []
    critical_sent: float | None = None
    critical_users: set[str] = set()
    muted_levels: set[str] = set()
    for n, stream in enumerate(streams):
        seen: set[str] = set()
        for index, event in enumerate(stream.events):
            if event.event in ("reconnect", "server.restart"):
                lost.add(n)
            elif event.event == "task.progress-updated":
                delivered_progress += 1
            elif event.event in TERMINAL:
                data = event.json
                seen.add(data["event_id"])
                terminal_latency.append(wall(stream, index, offset) - occurred(data))
            elif event.event == "system.notification":
                data = event.json
                if data["level"] == "critical":
                    critical_sent = occurred(data)
                    critical_arrivals.append(wall(stream, index, offset))
                    critical_users.add(args.stream_users[n])
                if args.stream_users[n] == "bp0":
                    muted_levels.add(data["level"])
        if stream.ended.is_set():
            lost.add(n)
        missing_terminal += len(set(report["terminal"][args.stream_users[n]]) - seen)
    # every stream of a user should get every event of the user
    published_terminal = sum(len(v) for v in report["terminal"].values()) * args.streams_per_user
    published_progress = report["progress"] * args.streams_per_user
    saturated = [s for s in samples if s.get("sse_backpressure_active") == 1]
    return {
        "users": args.users,
        "streams": len(streams),
        "api_env": args.api_env,
        "backpressure": args.backpressure,
        "ramp_seconds": round(ramp, 1),
        "rate_requested": args.rate,
        "published_per_second": round(report["published"] / report["seconds"]),
        "progress_published": report["progress"],
        "progress_to_deliver": published_progress,
        "progress_delivered": delivered_progress,
        "progress_coalesced_share": round(1 - delivered_progress / max(1, published_progress), 3),
        "terminal_published": published_terminal // args.streams_per_user,
        "terminal_to_deliver": published_terminal,
        "terminal_received": len(terminal_latency),
        "terminal_missing": missing_terminal,
        "terminal_latency_ms": {
            "p50": pct(terminal_latency, 0.5),
            "p95": pct(terminal_latency, 0.95),
            "p99": pct(terminal_latency, 0.99),
            "max": pct(terminal_latency, 1.0),
        },
        "clients_lost": len(lost),
        "critical_reached_streams": len(critical_arrivals),
        "critical_reached_users": len(critical_users),
        "critical_all_reached_ms": (
            round((max(critical_arrivals) - critical_sent) * 1000, 1)
            if critical_arrivals and critical_sent
            else None
        ),
        "critical_sent_while_saturated": saturated_when_sent == 1,
        "muted_user_got_info": "info" in muted_levels,
        "muted_user_got_critical": "critical" in muted_levels,
        "saturated_share_of_samples": round(len(saturated) / max(1, len(samples)), 2),
        "max_event_loop_lag_ms": round(
            max((s.get("sse_event_loop_lag_seconds", 0) for s in samples), default=0) * 1000, 1
        ),
        "max_queue_depth": max(
            (s.get("sse_connection_queue_depth_max", 0) for s in samples), default=0
        ),
        "relay_coalesced_total": max((s.get("coalesced", 0) for s in samples), default=0),
        "api_cpu_percent_while_publishing": report["api_cpu_percent"],
        "bench_client_cpu_percent": report["bench_cpu_percent"],
        "redis_and_publisher_cpu_percent": report["redis_and_publisher_cpu_percent"],
        "other_processes_cpu_percent": report["other_processes_cpu_percent"],
        "machine_busy_share_before": args.busy_before,
        "server_side": report["server_side"],
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument(
        "--streams-per-user", type=int, default=2, help="open tabs per user (the limit is 2)"
    )
    parser.add_argument("--rate", type=int, default=6000, help="events per second stored")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--task-updates", type=int, default=10)
    parser.add_argument("--drain", type=float, default=30.0, help="wait for stragglers")
    parser.add_argument("--no-backpressure", dest="backpressure", action="store_false")
    parser.add_argument("--api-env", action="append", default=[], help="NAME=VALUE for the API")
    parser.add_argument("--profile", help="py-spy the API while publishing (speedscope file)")
    parser.add_argument("--quiet-wait", type=float, default=0, help="wait for an idle box")
    args = parser.parse_args()
    args.busy_before = round(wait_for_quiet(args.quiet_wait), 2) if args.quiet_wait else None
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
