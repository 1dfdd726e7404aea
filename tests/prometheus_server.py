"""A real Prometheus server (Debian's ``prometheus``) for tests, on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from progress.redis_server import free_port
from tests.processes import stop_process

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class PrometheusServer:
    """Scrapes ``targets`` every second (with ``bearer_token``, the API's METRICS_TOKEN, when
    given), evaluates ``rules`` every second and sends what fires to ``alertmanager``
    (``host:port``) when given."""

    def __init__(
        self,
        targets: list[str],
        rules: dict[str, Any],
        bearer_token: str | None = None,
        alertmanager: str | None = None,
    ) -> None:
        if not Path(PROMETHEUS).exists():
            raise RuntimeError("prometheus is missing: apt-get install prometheus")
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="prometheus-")
        root = Path(self._dir.name)
        (root / "alerts.yml").write_text(yaml.safe_dump(rules))
        scrape: dict[str, Any] = {"job_name": "sse-api", "static_configs": [{"targets": targets}]}
        if bearer_token is not None:
            (root / "metrics_token").write_text(bearer_token)
            scrape["authorization"] = {"credentials_file": str(root / "metrics_token")}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [scrape],
        }
        if alertmanager is not None:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._log = (root / "prometheus.log").open("wb")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> PrometheusServer:
        """Start and wait until it is ready."""
        root = Path(self._dir.name)
        self._process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_text}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not come up:\n{self.log_text}")

    @property
    def log_text(self) -> str:
        """What it logged."""
        return (Path(self._dir.name) / "prometheus.log").read_text(errors="replace")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        return list(answer["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        return list(httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"])

    def stop(self) -> None:
        """Stop it and delete its data."""
        stop_process(self._process, timeout=10)
        self._process = None
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
