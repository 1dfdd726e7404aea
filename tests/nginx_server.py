"""Debian's nginx in front of a test server, on a loopback port: a plain reverse proxy, or
the production front shipped in deploy/nginx/realtime.conf (only its port and upstream
changed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from progress.redis_server import free_port
from tests.processes import stop_process

NGINX = "/usr/sbin/nginx"
SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "realtime.conf"

#: The main file; ``{server}`` is the server block (a plain proxy, or the shipped front).
MAIN = """\
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{
    worker_connections 4096;
}}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    {server}
}}
"""

PLAIN_SERVER = """\
server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
        }}
    }}"""


def shipped_config(port: int, upstream: str) -> str:
    """deploy/nginx/realtime.conf listening on 127.0.0.1:``port``, proxying to ``upstream``
    (``host:port``, or several separated by commas: the upstream's servers); nothing else
    changed."""
    text = SHIPPED.read_text()
    servers = " ".join(f"server {one.strip()};" for one in upstream.split(","))
    for old, new in (
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("server api:8000;", servers),
    ):
        assert text.count(old) == 1, f"{SHIPPED} no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


class NginxProxy:
    """``nginx -c <conf>`` proxying every path to ``upstream``; start, stop, read its log.
    ``shipped=True`` runs the production front (``upstream`` then is ``host:port``)."""

    def __init__(self, upstream: str, port: int | None = None, shipped: bool = False) -> None:
        self.upstream = upstream
        self.shipped = shipped
        self.port = port or free_port()
        self._root = Path(tempfile.mkdtemp(prefix="nginx-"))
        # nginx's workers run as an unprivileged user when started as root; let them in.
        self._root.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> str:
        """What nginx logged so far."""
        path = self._root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10) -> NginxProxy:
        """Write the config, start nginx in the foreground and wait for its port."""
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError(
                f"{NGINX} is missing: install Debian's nginx "
                "(scripts/install-system-deps.sh does, as root)"
            )
        conf = self._root / "nginx.conf"
        if self.shipped:
            (self._root / "realtime.conf").write_text(shipped_config(self.port, self.upstream))
            server = f"include {self._root}/realtime.conf;"
        else:
            server = PLAIN_SERVER.format(port=self.port, upstream=self.upstream)
        conf.write_text(MAIN.format(root=self._root, server=server))
        args = [NGINX, "-c", str(conf), "-p", str(self._root), "-e", str(self._root / "error.log")]
        with open(self._root / "stderr.log", "wb") as stderr:
            self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                output = (self._root / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited: {output}\n{self.error_log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port}:\n{self.error_log}")

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown) and wait for it."""
        stop_process(self._process, timeout=10)
        self._process = None

    def close(self) -> None:
        """Stop and delete the temporary directory."""
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> NginxProxy:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_: object) -> None:
        self.close()
