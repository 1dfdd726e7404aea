"""Real servers for tests: uvicorn running the API in a child process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from progress.redis_server import free_port
from scripts.health import wait_until_up
from tests.processes import stop_process

JWT_SECRET = "test-secret-0123456789abcdef-0123456789"

#: Swarms open hundreds of streams from one loopback address: per-IP limits out of the way
#: (tests of the limits pass their own values).
LOOPBACK_SWARM_LIMITS = {
    "SSE_RATE_TOKEN_IP_BURST": "100000",
    "SSE_RATE_STREAM_IP_BURST": "100000",
    "SSE_RATE_TOKEN_IP_PER_SECOND": "100000",
    "SSE_RATE_STREAM_IP_PER_SECOND": "100000",
}


class ApiServer:
    """``uvicorn api.main:app`` with the given environment; start, stop, restart."""

    def __init__(
        self, redis_url: str, port: int | None = None, *, cwd: Path | None = None, **env: str
    ) -> None:
        self.port = port or free_port()
        #: The working directory (relative paths in the settings, such as the default SQLite
        #: database, resolve there); None: this process's.
        self.cwd = cwd
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "SSE_DEV_TOKENS_ENABLED": "true",
            "AUDIT_ALLOW_DEV_KEY": "true",
            **LOOPBACK_SWARM_LIMITS,
            **env,
        }
        self._log = tempfile.NamedTemporaryFile(prefix="api-", suffix=".log", delete=False)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_text(self) -> str:
        """What the server logged so far."""
        return Path(self._log.name).read_text(errors="replace")

    def start(self, timeout: float = 20) -> ApiServer:
        """Start and wait until /health answers."""
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--timeout-graceful-shutdown",
            "5",
        ]
        self._process = subprocess.Popen(
            args, env=self.env, stdout=self._log, stderr=self._log, cwd=self.cwd
        )
        process = self._process
        health = f"{self.url}/api/v1/events/health"
        if wait_until_up(health, timeout, lambda: process.poll() is None):
            return self
        raise RuntimeError(f"API did not come up:\n{self.log_text}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM: graceful; SIGKILL: crash)."""
        stop_process(self._process, sig, 15)
        self._process = None

    def close(self) -> None:
        """Stop and delete the log."""
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def jwt(
        self,
        user_id: str,
        session_id: str | None = None,
        ttl: int = 3600,
        roles: tuple[str, ...] = (),
    ) -> str:
        """A platform JWT from the dev endpoint."""
        body = {"user_id": user_id, "session_id": session_id, "ttl_seconds": ttl, "roles": roles}
        response = httpx.post(f"{self.url}/api/v1/auth/dev-token", json=body, timeout=5)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def sse_token(self, jwt: str) -> str:
        """A fresh single-use sse_token."""
        response = httpx.post(
            f"{self.url}/api/v1/auth/sse-token",
            headers={"Authorization": f"Bearer {jwt}"},
            timeout=5,
        )
        response.raise_for_status()
        return str(response.json()["sse_token"])
