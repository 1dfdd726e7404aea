"""Issue 4: the main job's --once run completes a 3-chapter novel, visibly, with Flower."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_demo_once_completes_a_three_chapter_novel() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    run = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--once", "--timeout", "240"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "embedded redis-server" in out
    for stage in (
        "queued -> outlining",
        "outlining -> drafting",
        "drafting -> reviewing",
        "reviewing -> done",
    ):
        assert f"novel: {stage}" in out
    for number in (1, 2, 3):
        assert re.search(rf"100\.0%\s+Writing chapter {number}", out), out[-2000:]
        assert f"== chapter {number} written" in out
    assert "Flower lists 6 of the 6 tasks of this run" in out
    assert re.search(r"== overall \S+ 100\.0%  6 of 6 steps done \(completed\)", out), out[-2000:]
