"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a loopback port, with the
shipped deploy/alertmanager/alertmanager.yml (only its webhook URL and its group timings
changed), and a webhook receiver that records what Alertmanager posts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from progress.redis_server import free_port
from tests.processes import stop_process

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"
PLACEHOLDER = "http://alert-webhook-url.invalid/"

Alert = dict[str, Any]


def shipped_config(webhook_url: str) -> dict[str, Any]:
    """The shipped configuration sending to ``webhook_url``, grouping within a second."""
    text = SHIPPED.read_text()
    assert text.count(PLACEHOLDER) == 1, f"{SHIPPED} no longer has its webhook placeholder"
    config: dict[str, Any] = yaml.safe_load(text.replace(PLACEHOLDER, webhook_url))
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


class WebhookReceiver:
    """An HTTP server in a thread that keeps every alert of every POSTed notification."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()
        received, lock = self.alerts, self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    received.extend(body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where Alertmanager posts."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def wait_for(self, match: Callable[[Alert], bool], timeout: float) -> Alert:
        """The first alert received that ``match``es, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [alert for alert in self.alerts if match(alert)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no matching alert within {timeout} s; received: {self.alerts}")

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class AlertmanagerServer:
    """``prometheus-alertmanager`` with the shipped config, on 127.0.0.1, no clustering."""

    def __init__(self, webhook_url: str) -> None:
        if not Path(ALERTMANAGER).exists():
            raise RuntimeError("alertmanager is missing: apt-get install prometheus-alertmanager")
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="alertmanager-")
        root = Path(self._dir.name)
        (root / "alertmanager.yml").write_text(yaml.safe_dump(shipped_config(webhook_url)))
        self._log = (root / "alertmanager.log").open("wb")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as Prometheus' alerting targets name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_text(self) -> str:
        """What it logged."""
        return (Path(self._dir.name) / "alertmanager.log").read_text(errors="replace")

    def start(self, timeout: float = 30) -> AlertmanagerServer:
        """Start and wait until it is ready."""
        root = Path(self._dir.name)
        self._process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={root / 'alertmanager.yml'}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
            ],
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"alertmanager exited:\n{self.log_text}")
            try:
                if httpx.get(f"http://{self.address}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"alertmanager did not come up:\n{self.log_text}")

    def stop(self) -> None:
        """Stop it and delete its data."""
        stop_process(self._process, timeout=10)
        self._process = None
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> AlertmanagerServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
