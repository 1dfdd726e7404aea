"""The main job: start the stack, run a demo creation task, show its live progress.

    python scripts/demo.py          # keeps the stack up until Ctrl-C
    python scripts/demo.py --once   # exits 0 once the demo task completed

Starts an embedded redis-server when ``REDIS_URL`` is not set.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import orjson

import progress
from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect

DEMO_USER = "demo-writer"
BAR_WIDTH = 30


@contextmanager
def child(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, terminated (then killed) when the block ends."""
    process = subprocess.Popen(args, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_worker(app_module: str, timeout: float = 60) -> None:
    """Block until a worker answers a ping."""
    from workers.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise SystemExit(f"no Celery worker of {app_module} answered within {timeout:.0f}s")


def bar(percent: float) -> str:
    """A text progress bar."""
    filled = round(BAR_WIDTH * percent / 100)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def show(event: dict) -> str | None:
    """One terminal line for an event, or None for events not worth a line."""
    kind, task = event["type"], event.get("task_id", "")[:8]
    if kind == "task.progress-started":
        return f"[{task}] started  {event['task_name']}"
    if kind == "task.progress-updated":
        return f"[{task}] {bar(event['percent'])} {event['percent']:5.1f}%  {event['message']}"
    if kind == "task.progress-completed":
        return f"[{task}] {bar(100)} 100.0%  completed: {event.get('result_summary') or ''}"
    if kind == "task.progress-failed":
        return f"[{task}] FAILED {event['error_type']}: {event['message']}"
    if kind == "task.progress-heartbeat":
        return f"[{task}] still running ({event['elapsed_seconds']:.0f}s)"
    return f"[{task}] {kind}"


def follow(store: RedisEventStore, task_id: str, timeout: float) -> bool:
    """Print the user's events until ``task_id`` ends; True when it completed."""
    last_id = store.stream_state(user_stream(DEMO_USER)).last_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in store.read_after(user_stream(DEMO_USER), last_id, 100):
            last_id = item.id
            event = orjson.loads(item.data)
            line = show(event)
            if line:
                print(line, flush=True)
            if event.get("task_id") == task_id and event["type"] in {
                "task.progress-completed",
                "task.progress-failed",
                "task.progress-cancelled",
            }:
                return event["type"] == "task.progress-completed"
        time.sleep(0.1)
    print(f"demo task did not finish within {timeout:.0f}s", file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit once the demo task ended")
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()

    with ExitStack() as stack:
        env = dict(os.environ)
        if "REDIS_URL" not in env:
            server = stack.enter_context(RedisServer())
            env["REDIS_URL"] = f"{server.url}/0"
            print(f"embedded redis-server at {server.url}", flush=True)
        os.environ["REDIS_URL"] = env["REDIS_URL"]
        env.setdefault("WORKER_LOCAL_TOKENS_PER_SECOND", "40")
        stack.enter_context(
            child(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--quiet",
                    "-A",
                    "workers.celery_app:app",
                    "worker",
                    "--pool",
                    "threads",
                    "--concurrency",
                    "4",
                    "--loglevel",
                    "WARNING",
                ],
                env,
            )
        )
        wait_for_worker("workers.celery_app")
        from workers.celery_app import app

        store = RedisEventStore(connect(env["REDIS_URL"]))
        with progress.acting_as(DEMO_USER):
            result = app.tasks["workers.generate_outline"].delay(
                "A lighthouse keeper's daughter and a storm", 3
            )
        print(f"demo task {result.id} started for {DEMO_USER}", flush=True)
        ok = follow(store, result.id, options.timeout)
        if options.once:
            return 0 if ok else 1
        print("stack is running; Ctrl-C stops everything", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
