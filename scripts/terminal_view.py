"""Live progress in the terminal, fed by a real SSE connection to the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

BAR_WIDTH = 30
TERMINAL = {"task.progress-completed", "task.progress-failed", "task.progress-cancelled"}


def bar(percent: float) -> str:
    """A text progress bar."""
    filled = round(BAR_WIDTH * percent / 100)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def sse_events(client: httpx.Client, url: str) -> Iterator[tuple[str, dict]]:
    """(event type, data) of each SSE message of ``url`` until the server ends the stream."""
    with client.stream("GET", url, timeout=httpx.Timeout(10, read=90)) as response:
        response.raise_for_status()
        kind, data = "message", []
        for line in response.iter_lines():
            if line == "":
                if data:
                    yield kind, json.loads("\n".join(data))
                kind, data = "message", []
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())


def workflow_line(event: dict) -> str:
    """The overall bar of a whole workflow: steps done of known, percent, time left."""
    line = f"== overall {bar(event['percent'])} {event['percent']:5.1f}%  "
    line += f"{event['done']} of {event['total']} steps done"
    if event.get("eta_seconds") is not None and event["state"] == "running":
        line += f", about {round(event['eta_seconds'])} s left"
    if event["state"] != "running":
        line += f" ({event['state']})"
    if event.get("failed_reason"):
        line += f": {event['failed_reason']}"
    return line


@dataclass
class ProgressBoard:
    """What the terminal shows: one line per event worth a line, names for task ids."""

    names: dict[str, str] = field(default_factory=dict)
    finished: dict[str, str] = field(default_factory=dict)
    novel_status: str = "queued"
    #: None until a ``workflow.progress`` came; then whether the last one was final.
    overall_final: bool | None = None

    def settled(self) -> bool:
        """The novel's workflow ended, every task that started has ended too, and the overall
        bar (if shown) got its final value."""
        ended = self.novel_status in {"done", "failed", "cancelled"}
        return ended and set(self.names) <= set(self.finished) and self.overall_final is not False

    def line(self, kind: str, event: dict) -> str | None:
        """The line for one event, or None."""
        task = event.get("task_id") or ""
        if kind == "task.progress-started":
            label = event["task_name"].removeprefix("workers.").replace("_", " ")
            self.names[task] = f"{label} #{len(self.names) + 1}"
            return f"[{self.names[task]}] started (attempt {event['attempt']})"
        name = self.names.get(task, task[:8])
        if kind == "task.progress-updated":
            return f"[{name}] {bar(event['percent'])} {event['percent']:5.1f}%  {event['message']}"
        if kind in TERMINAL:
            self.finished[task] = kind.rsplit("-", 1)[1]
        if kind == "task.progress-completed":
            return f"[{name}] {bar(100)} 100.0%  done: {event.get('result_summary') or ''}"
        if kind == "task.progress-failed":
            reason = f"{event['error_type']}: {event['message']}"
            return f"[{name}] FAILED {reason} -> {event['retry_suggestion']}"
        if kind == "task.progress-cancelled":
            return f"[{name}] cancelled"
        if kind == "workflow.progress":
            self.overall_final = bool(event["final"])
            return workflow_line(event)
        if kind == "workflow.status-changed":
            self.novel_status = event["new_status"]
            return f"== novel: {event['old_status']} -> {event['new_status']}"
        if kind == "content.chapter-updated":
            return "\n".join(
                f"== chapter {c['number']} written: {c['title']} — {c['summary']}"
                for c in event["chapters"]
            )
        if kind == "content.novel-created":
            return f"== novel created: {event['title']} ({event['chapter_count']} chapters)"
        if kind in {"task.progress-stalled", "stream.reset", "server.restart", "reconnect"}:
            return f"!! {kind}"
        return None
