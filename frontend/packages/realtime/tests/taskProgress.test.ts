import { describe, expect, it } from "vitest";
import { applyEvent, etaSeconds, fromSnapshot, taskLabel } from "../src/client/taskProgress.js";
import type { EventType, RealtimeEvent, TaskSnapshot } from "../src/client/types.js";
import { makeEvent } from "./fakes.js";

const snapshot: TaskSnapshot = {
  task_id: "t1",
  status: "running",
  task_name: "workers.generate_chapter",
  percent: 40,
  stage: "drafting",
  message: "40%",
  attempt: 1,
  estimated_seconds: null,
  started_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:10Z",
  novel_id: "n1",
  result_summary: null,
  error_type: null,
  error_message: null,
  retryable: null,
  retry_suggestion: null,
};

function ev(type: EventType, at: string, fields: Record<string, unknown> = {}): RealtimeEvent {
  return makeEvent(type, { event_id: `${type}-${at}`, occurred_at: at, task_id: "t1", ...fields });
}

describe("task progress", () => {
  it("ignores events older than the snapshot (a replay) and follows newer ones", () => {
    let view = fromSnapshot(snapshot);
    view = applyEvent(view, ev("task.progress-updated", "2026-01-01T00:00:05Z", { percent: 20 }));
    expect(view.percent).toBe(40);
    view = applyEvent(view, ev("task.progress-updated", "2026-01-01T00:00:12Z", { percent: 60, stage: "polishing" }));
    expect(view).toMatchObject({ percent: 60, stage: "polishing", status: "running" });
  });

  it("keeps what a finished task came to: its summary, or why it stopped and who asked", () => {
    const done = applyEvent(
      fromSnapshot(snapshot),
      ev("task.progress-completed", "2026-01-01T00:00:20Z", { result_summary: "Chapter 1 written" }),
    );
    expect(done).toMatchObject({ status: "completed", resultSummary: "Chapter 1 written" });
    const stopped = applyEvent(
      fromSnapshot(snapshot),
      ev("task.progress-cancelled", "2026-01-01T00:00:20Z", { reason: "cancelled by the writer", cancelled_by: "u1" }),
    );
    expect(stopped).toMatchObject({ status: "cancelled", cancelReason: "cancelled by the writer", cancelledBy: "u1" });
    const stored = fromSnapshot({ ...snapshot, status: "cancelled", message: "expired", cancelled_by: null });
    expect(stored).toMatchObject({ cancelReason: "expired", cancelledBy: null });
  });

  it("keeps a finished task finished and exposes a failure's retry suggestion", () => {
    let view = fromSnapshot(snapshot);
    view = applyEvent(
      view,
      ev("task.progress-failed", "2026-01-01T00:00:20Z", {
        error_type: "RateLimited",
        message: "the model is busy",
        retryable: true,
        retry_suggestion: "Try again in a minute",
      }),
    );
    view = applyEvent(view, ev("task.progress-updated", "2026-01-01T00:00:30Z", { percent: 90 }));
    expect(view.status).toBe("failed");
    expect(view.percent).toBe(40);
    expect(view.error).toEqual({
      type: "RateLimited",
      message: "the model is busy",
      retryable: true,
      retrySuggestion: "Try again in a minute",
    });
  });

  it("estimates the time left from the task's estimate, else from its pace", () => {
    const started = Date.parse("2026-01-01T00:00:00Z");
    const withEstimate = { ...fromSnapshot({ ...snapshot, estimated_seconds: 100 }) };
    expect(etaSeconds(withEstimate, started + 30_000)).toBe(70);
    expect(etaSeconds(fromSnapshot(snapshot), started + 20_000)).toBe(30);
    expect(etaSeconds(fromSnapshot({ ...snapshot, status: "completed" }), started)).toBeNull();
  });

  it("names a task for people", () => {
    expect(taskLabel("workers.generate_chapter")).toBe("Generate chapter");
    expect(taskLabel(null)).toBe("Task");
  });
});
