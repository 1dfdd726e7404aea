"""The main job: the whole stack, a demo novel, and its live progress in the terminal.

    python -m scripts.demo          # keeps the stack up until Ctrl-C
    python -m scripts.demo --once   # exits 0 once the demo novel is done (1 if it failed)

Starts an embedded redis-server when ``REDIS_URL`` is not set and uses SQLite when
``DATABASE_URL`` is not set; then a Celery worker, Celery beat, the API and Flower.
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
from pathlib import Path

import httpx

from api.auth.tokens import mint_jwt
from progress.redis_server import RedisServer, free_port
from scripts.health import wait_until_up
from scripts.terminal_view import ProgressBoard, sse_events
from workers.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
DEMO_USER = "demo-writer"
DEMO_SECRET = "demo-only-secret-do-not-use-in-production-0123"


@contextmanager
def child(name: str, args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process logging to .run/<name>.log, stopped (then killed) when the block ends."""
    with (RUN_DIR / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=ROOT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(url: str, what: str, timeout: float = 60) -> None:
    """Block until ``url`` answers below 500."""
    if not wait_until_up(url, timeout):
        raise SystemExit(f"{what} did not come up within {timeout:.0f}s (see {RUN_DIR})")


def start_stack(stack: ExitStack, env: dict[str, str]) -> tuple[str, str]:
    """Start worker, beat, API and Flower; return the API and Flower base URLs."""
    celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app:app"]
    api_port, flower_port = free_port(), free_port()
    env = {"FLOWER_URL": f"http://127.0.0.1:{flower_port}", **env}
    stack.enter_context(
        child(
            "worker",
            [*celery, "worker", "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO"],
            env,
        )
    )
    stack.enter_context(
        child(
            "beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", str(RUN_DIR / "beat-schedule")],
            env,
        )
    )
    stack.enter_context(
        child(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
            ],
            env,
        )
    )
    stack.enter_context(
        child("flower", [*celery, "flower", "--address=127.0.0.1", f"--port={flower_port}"], env)
    )
    api, flower = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}"
    wait_until(f"{api}/api/v1/events/health", "the API")
    wait_until(f"{flower}/healthcheck", "Flower")
    return api, flower


def run_demo_novel(api: str, flower: str, timeout: float) -> bool:
    """Start a novel through the API and show its progress from the event stream."""
    jwt = mint_jwt(os.environ["JWT_SECRET"], DEMO_USER, "demo-session", 24 * 3600)
    auth = {"Authorization": f"Bearer {jwt}"}
    board = ProgressBoard()
    deadline = time.monotonic() + timeout
    with httpx.Client(headers=auth) as client:
        token = client.post(f"{api}/api/v1/auth/sse-token").json()["sse_token"]
        stream = sse_events(client, f"{api}/api/v1/events/stream?sse_token={token}")
        assert next(stream)[0] == "connection.established"
        body = {
            "title": "The Lighthouse Keeper's Daughter",
            "premise": "A keeper's daughter waits out a storm for her brother's ship.",
            "chapter_count": 3,
        }
        started = client.post(f"{api}/api/v1/novels", json=body).json()
        print(f"novel {started['novel_id']} started; workflow task {started['task_id']}")
        print(f"  Flower: {flower}/task/{started['task_id']}")
        for kind, event in stream:
            line = board.line(kind, event)
            if line:
                print(line, flush=True)
            if board.settled():
                break
            if time.monotonic() > deadline:
                print(f"the demo novel did not finish within {timeout:.0f}s", file=sys.stderr)
                return False
    print(f"novel {board.novel_status}: {len(board.finished)} tasks finished")
    listed = httpx.get(f"{flower}/api/tasks", timeout=10).json()
    ours = [task_id for task_id in board.names if task_id in listed]
    print(f"Flower lists {len(ours)} of the {len(board.names)} tasks of this run")
    return board.novel_status == "done"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit once the demo novel ended")
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    RUN_DIR.mkdir(exist_ok=True)
    with ExitStack() as stack:
        env = dict(os.environ)
        if "REDIS_URL" not in env:
            server = stack.enter_context(RedisServer())
            env["REDIS_URL"] = f"{server.url}/0"
            print(f"embedded redis-server at {server.url}")
        env.setdefault("DATABASE_URL", f"sqlite:///{RUN_DIR / 'demo.db'}")
        env.setdefault("JWT_SECRET", DEMO_SECRET)
        env.setdefault("SSE_DEV_TOKENS_ENABLED", "true")
        # A development stack: the audit seals with the public key unless keys are given.
        env.setdefault("AUDIT_ALLOW_DEV_KEY", "true")
        env.setdefault("SSE_DOCS_ENABLED", "true")
        env.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
        env.setdefault("WORKER_LOCAL_TOKENS_PER_SECOND", "60")
        env.setdefault("WORKER_WATCHDOG_SECONDS", "20")
        env.setdefault("PROGRESS_WATCHDOG_SECONDS", "20")
        env["PYTHONPATH"] = str(ROOT)
        os.environ.update(env)
        upgrade(env["DATABASE_URL"])
        api, flower = start_stack(stack, env)
        print(f"API: {api}/docs   Flower: {flower}   logs: {RUN_DIR}/")
        if (ROOT / "frontend" / "dist" / "index.html").is_file():
            print(f"Browser: {api}/  (sign in as {DEMO_USER} to see the demo novel)")
        ok = run_demo_novel(api, flower, options.timeout)
        if options.once:
            return 0 if ok else 1
        print("the stack keeps running; Ctrl-C stops everything")
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
