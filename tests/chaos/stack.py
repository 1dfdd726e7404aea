"""The real stack of one chaos scenario: its own Redis, database, API instances and workers.

Everything runs as child processes on loopback ports and is torn down with the scenario, so a
scenario may kill any part without touching the rest of the test session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

import progress
from progress.redis_server import find_redis_server, free_port
from progress.settings import ProgressSettings
from tests.chaos.invariants import Counts, verify
from tests.chaos.users import Tab
from tests.processes import stop_process
from tests.servers import ApiServer
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

BROKER_DB = 1
RESULT_DB = 2
#: Worker heartbeat: the watchdog declares a silent task lost after 6 of them (FAIL_AFTER).
HEARTBEAT_SECONDS = 1.0
WATCHDOG_WINDOW = 6 * HEARTBEAT_SECONDS + 8  # plus a watchdog period and a loaded machine

#: The clients here reconnect faster than browsers (no 5-20 s Retry-After pauses) and all come
#: from one address: per-user budgets and bans would refuse them for reasons no fault caused.
CLIENT_LIMITS = {
    "SSE_RATE_TOKEN_USER_PER_SECOND": "1000",
    "SSE_RATE_TOKEN_USER_BURST": "1000",
    "SSE_RATE_STREAM_USER_PER_SECOND": "1000",
    "SSE_RATE_STREAM_USER_BURST": "1000",
    "SSE_BAN_AFTER_STRIKES": "100000",
}

#: The local generator paced so a two-chapter novel takes about 10 s: faults land mid-task.
NOVEL_PACE = {"WORKER_LOCAL_TOKENS_PER_SECOND": "15", "WORKER_TOKENS_PER_CHAPTER": "60"}


class ChaosRedis:
    """A redis-server that writes every command to its AOF before answering (fsync always),
    so SIGKILL loses nothing it acknowledged; ``wipe()`` deletes the files for a restart
    without data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.binary = find_redis_server()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> ChaosRedis:
        """Start (loading the AOF if there is one) and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", "", "--appendonly", "yes"]
        args += ["--appendfsync", "always", "--protected-mode", "no"]
        with (self.dir / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:  # BusyLoadingError too, while it reads its AOF
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis did not start: see {self.dir}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        stop_process(self._process, signal.SIGKILL, 5)
        self._process = None

    def wipe(self) -> None:
        """Delete the data files (call while stopped): the next start is empty."""
        for path in self.dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != "redis.log":
                path.unlink()

    def close(self) -> None:
        """Kill and remove the directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Stack:
    """One scenario's Redis, database, API instances and workers; this process sends tasks
    and reads through the same settings as the workers."""

    def __init__(self, database_url: str) -> None:
        upgrade(database_url)
        self.redis = ChaosRedis().start()
        self.database_url = database_url
        self.apis: list[ApiServer] = []
        self.workers: list[WorkerProcess] = []
        self.worker_restarts = 0
        self._closing = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.worker_env = {
            "REDIS_URL": f"{self.redis.url}/0",
            "DATABASE_URL": database_url,
            "WORKER_BROKER_DB": str(BROKER_DB),
            "WORKER_RESULT_DB": str(RESULT_DB),
            "PROGRESS_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "WORKER_WATCHDOG_SECONDS": "0.5",
            "PROGRESS_WATCHDOG_SECONDS": "0.5",
            # Important events whose push failed are pushed again within seconds, not 30 s.
            "PROGRESS_OUTBOX_DISPATCH_SECONDS": "2",
            "PROGRESS_OUTBOX_GRACE_SECONDS": "2",
            # A novel whose workflow stopped (its messages lost with Redis) resumes within the
            # scenario; longer than a queued chapter waits behind the others here.
            "WORKER_NOVEL_RESUME_AFTER_SECONDS": "10",
            **NOVEL_PACE,
        }
        resources.configure(
            WorkerSettings(
                redis_url=f"{self.redis.url}/0",
                database_url=database_url,
                broker_db=BROKER_DB,
                result_db=RESULT_DB,
            )
        )
        progress.configure(ProgressSettings(redis_url=f"{self.redis.url}/0"))
        self._supervisor.start()

    @property
    def redis_url(self) -> str:
        """The events database of the stack's Redis."""
        return f"{self.redis.url}/0"

    def api(self, **env: str) -> ApiServer:
        """Start one more API instance (1 s SSE heartbeats)."""
        server = ApiServer(
            self.redis_url,
            DATABASE_URL=self.database_url,
            WORKER_BROKER_DB=str(BROKER_DB),
            WORKER_RESULT_DB=str(RESULT_DB),
            SSE_HEARTBEAT_SECONDS="1",
            **CLIENT_LIMITS,
            **env,
        )
        self.apis.append(server)
        return server.start(timeout=40)

    def worker(self, beat: bool = True, concurrency: int = 4, **env: str) -> WorkerProcess:
        """Start a worker process (with Celery beat: the watchdog and the outbox dispatcher)."""
        worker = WorkerProcess({**self.worker_env, **env}, concurrency, beat)
        self.workers.append(worker)
        return worker.start(timeout=60)

    def _supervise(self) -> None:
        # Like compose's ``restart: unless-stopped``: a Celery worker ends itself when its
        # broker connection breaks in some ways (kombu's "Unrecoverable error"); its
        # supervisor starts it again. Workers a scenario stopped itself stay stopped.
        while not self._closing.wait(0.5):
            for worker in list(self.workers):
                if worker.exited() and not self._closing.is_set():
                    self.worker_restarts += 1
                    worker.spawn()

    def verify(
        self,
        counts: Counts,
        base: str,
        tabs: list[Tab],
        novel_ids: dict[str, str],
        reset_ok: bool = False,
    ) -> None:
        """Every invariant, checked through the API at ``base`` once the novels had the
        watchdog's window (and a margin) to end."""
        verify(
            counts,
            base,
            tabs,
            novel_ids,
            WATCHDOG_WINDOW + 10,
            self.database_url,
            self.redis_url,
            reset_ok=reset_ok,
        )

    def close(self) -> None:
        """Stop everything that is still running."""
        self._closing.set()
        self._supervisor.join(timeout=70)
        for worker in self.workers:
            worker.close()
        for api in self.apis:
            api.close()
        self.redis.close()
        progress.configure(None)
        resources.configure(None)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


#: A load balancer's health probe gives up after about this long.
HEALTH_PROBE_SECONDS = 2.0


def healthy(base_url: str) -> bool:
    """Whether health says all is well: 200, ``status`` ok, and no dependency it reports
    unreachable (a 200 ``degraded`` naming the broken part is a truthful "down" too)."""
    try:
        response = httpx.get(f"{base_url}/api/v1/events/health", timeout=10)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    parts = [value for value in body.values() if isinstance(value, dict)]
    return (
        response.status_code == 200
        and body.get("status") == "ok"
        and all(part.get("reachable", True) is not False for part in parts)
    )


@dataclass(frozen=True)
class HealthChange:
    """Health said what was expected ``after`` seconds; that answer took ``answer`` seconds."""

    after: float
    answer: float


def wait_health(base_url: str, up: bool, timeout: float) -> HealthChange | None:
    """When health says up or down (see :func:`healthy`); None if it never did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        asked = time.monotonic()
        if healthy(base_url) == up:
            now = time.monotonic()
            return HealthChange(now - started, now - asked)
        time.sleep(0.2)
    return None


def check_health_outage(
    counts: Counts, base_url: str, what: str, down: HealthChange | None, up: HealthChange | None
) -> None:
    """Health said down while ``what`` was down, answering within a probe's patience, and
    up again once it was back."""
    if down is None:
        counts.fail(f"health said all well all through the outage of {what}")
    else:
        counts.notes.append(f"health down after {down.after:.1f} s (answer {down.answer:.1f} s)")
        if down.answer > HEALTH_PROBE_SECONDS:
            counts.fail(f"health took {down.answer:.1f} s to say {what} was down")
    if up is None:
        counts.fail(f"health not all well within 15 s after {what} came back ({base_url})")


def sqlite_url(directory: Path) -> str:
    """A fresh SQLite database file in ``directory``."""
    return f"sqlite:///{directory / f'chaos-{os.getpid()}.db'}"
