"""A real ``celery worker`` child process for tests, on the project's app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.processes import stop_process
from workers import resources


class WorkerProcess:
    """``celery -A workers.celery_app:app worker`` (or another ``app``) with the given
    environment."""

    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 4,
        beat: bool = False,
        pool: str = "threads",
        app: str = "workers.celery_app:app",
    ) -> None:
        self.env = {**os.environ, **env}
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.beat = beat
        self._log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_text(self) -> str:
        """What the worker logged so far."""
        return Path(self._log.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 30) -> WorkerProcess:
        """Start and wait until the worker answers a ping."""
        self.spawn()
        try:
            self._await_ping(timeout)
        except BaseException:
            self.close()  # a worker that never answered must not outlive the test
            raise
        return self

    def spawn(self) -> None:
        """Start the process without waiting for it (a supervisor's restart: the broker may
        still be down)."""
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "--pool",
            self.pool,
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            f"test-{os.getpid()}@%h",
        ]
        if self.beat:
            args += ["--beat", "--schedule", f"{self._log.name}.beat"]
        self._process = subprocess.Popen(args, env=self.env, stdout=self._log, stderr=self._log)

    def _await_ping(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_text}")
            if self._answers():
                return
        raise RuntimeError(f"worker did not answer:\n{self.log_text}")

    def _answers(self) -> bool:
        if self.app != "workers.celery_app:app":
            # Another team's app: its "ready" line (this process has no client of its broker).
            time.sleep(0.1)
            return " ready." in self.log_text
        return bool(resources.celery_app().control.ping(timeout=0.5))

    def exited(self) -> bool:
        """True if the worker ended by itself (it was started and not stopped since)."""
        return self._process is not None and self._process.poll() is not None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: warm shutdown; SIGKILL: a crash)."""
        stop_process(self._process, sig, 20)
        self._process = None

    def close(self) -> None:
        """Stop it if running and delete its log."""
        if self._process is not None:
            self.stop()
        self._log.close()
        for leftover in Path(self._log.name).parent.glob(Path(self._log.name).name + "*"):
            leftover.unlink(missing_ok=True)

    def __enter__(self) -> WorkerProcess:
        return self if self._process is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
