"""Issue 2: progress.update() outside a reporting task is a clear error."""

from __future__ import annotations

import pytest

import progress

pytestmark = pytest.mark.unit


def test_update_outside_a_task_raises_not_in_task() -> None:
    with pytest.raises(progress.NotInTask, match="report_progress"):
        progress.update(50, "half")


def test_publish_rejects_invalid_dicts_naming_the_field() -> None:
    with pytest.raises(progress.InvalidEvent, match="percent"):
        progress.publish({"type": "task.progress-updated", "user_id": "u", "task_id": "t"})
