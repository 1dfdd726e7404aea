"""Issue 17: the base distribution is the library alone. A fresh virtual environment gets
``pip install <repo>`` (no extras; pip's cache or the registry), has no FastAPI, uvicorn or
Flower, and a decorated task of a worker there reports its events to a real Redis.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.processes import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os
import sys

from celery import Celery

import progress

app = Celery("base", broker=os.environ["BASE_BROKER_URL"], set_as_current=False)
app.conf.broker_connection_retry_on_startup = True
progress.install(app)


@app.task(name="base.halve")
@progress.report_progress(estimated_seconds=1)
def halve(n: int) -> int:
    progress.update(50, "half way")
    return n // 2


if __name__ == "__main__":
    with progress.acting_as(sys.argv[1]):
        halve.delay(42)
"""


def test_the_base_install_has_no_api_or_app_dependencies_and_reports_progress(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)]
    done = subprocess.run(install, timeout=600, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    present = subprocess.run(
        [python, "-c", probe % ["fastapi", "uvicorn", "flower", "starlette", "jwt"]],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert present == "[]", f"the base install pulled in {present}"
    assert importlib.util.find_spec("fastapi") is not None  # this venv (make setup) has them

    (tmp_path / "basetask.py").write_text(APP)
    broker = f"{redis_server.url}/7"
    user = f"base-{uuid.uuid4().hex[:10]}"
    env = {"REDIS_URL": f"{redis_server.url}/0", "BASE_BROKER_URL": broker}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [python, "-m", "celery", "-A", "basetask:app", "worker", "--pool", "solo",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=tmp_path, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    client = connect(f"{redis_server.url}/0")
    store = RedisEventStore(client)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        send = [python, "basetask.py", user]
        subprocess.run(send, check=True, timeout=60, cwd=tmp_path, env=env)
        deadline = time.monotonic() + 30
        while True:
            found = [
                orjson.loads(e.data)["type"]
                for e in store.read_after(user_stream(user), "0-0", 100)
            ]
            if "task.progress-completed" in found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert found == [
            "task.progress-started",
            "task.progress-updated",
            "task.progress-completed",
        ], log.read_text(errors="replace")
    finally:
        stop_process(worker)
        client.close()
