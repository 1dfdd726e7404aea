import { describe, expect, it } from "vitest";
import type { WorkflowProgress } from "../src/client/events.generated.js";
import { applyWorkflowEvent, fromWorkflowEvent, workflowEtaSeconds } from "../src/client/workflowProgress.js";

function progress(at: string, fields: Partial<WorkflowProgress> = {}): WorkflowProgress {
  return {
    event_id: `wp-${at}`,
    type: "workflow.progress",
    occurred_at: at,
    schema_version: 1,
    user_id: "u1",
    session_id: null,
    audience: "user",
    task_id: null,
    novel_id: "n1",
    chapter_id: null,
    workflow_id: "n1",
    important: false,
    state: "running",
    total: 10,
    done: 4,
    failed: 0,
    cancelled: 0,
    stalled: 0,
    percent: 40,
    running: [{ task_id: "t5", task_name: "workers.generate_chapter" }],
    eta_seconds: 30,
    final: false,
    failed_task_id: null,
    failed_reason: null,
    ...fields,
  };
}

describe("workflow progress", () => {
  it("takes the newest count and ignores an older one replayed after the snapshot", () => {
    let view = applyWorkflowEvent(null, progress("2026-01-01T00:00:10Z"));
    view = applyWorkflowEvent(view, progress("2026-01-01T00:00:05Z", { done: 2, percent: 20 }));
    expect(view).toMatchObject({ done: 4, percent: 40 });
    view = applyWorkflowEvent(view, progress("2026-01-01T00:00:11Z", { done: 6, total: 12, percent: 50 }));
    expect(view).toMatchObject({ done: 6, total: 12, percent: 50, state: "running" });
  });

  it("ignores another workflow's events", () => {
    const view = fromWorkflowEvent(progress("2026-01-01T00:00:10Z"));
    const other = progress("2026-01-01T00:00:11Z", { workflow_id: "n2", done: 9 });
    expect(applyWorkflowEvent(view, other)).toBe(view);
  });

  it("shows which task failed and why", () => {
    const view = fromWorkflowEvent(
      progress("2026-01-01T00:00:10Z", {
        state: "failed",
        failed: 1,
        failed_task_id: "t3",
        failed_reason: "ValueError: no plan",
      }),
    );
    expect(view).toMatchObject({ state: "failed", failedTaskId: "t3", failedReason: "ValueError: no plan" });
    expect(workflowEtaSeconds(view, Date.parse("2026-01-01T00:00:11Z"))).toBeNull();
  });

  it("counts the time left down from the server's estimate, 0 once final", () => {
    const view = fromWorkflowEvent(progress("2026-01-01T00:00:10Z"));
    expect(workflowEtaSeconds(view, Date.parse("2026-01-01T00:00:20Z"))).toBe(20);
    expect(workflowEtaSeconds(view, Date.parse("2026-01-01T00:01:20Z"))).toBe(0);
    const done = fromWorkflowEvent(progress("2026-01-01T00:00:30Z", { final: true, state: "completed" }));
    expect(workflowEtaSeconds(done, Date.parse("2026-01-01T00:00:31Z"))).toBe(0);
  });
});
