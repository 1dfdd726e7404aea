import type { RunningTask, WorkflowProgress } from "./events.generated.js";

export type WorkflowState = WorkflowProgress["state"];

/** What one overall bar shows for a whole workflow (a chain, group, chord, nested). */
export interface WorkflowView {
  workflowId: string;
  state: WorkflowState;
  total: number;
  done: number;
  failed: number;
  cancelled: number;
  stalled: number;
  percent: number;
  running: RunningTask[];
  /** Seconds left at the measured pace, as of `updatedAt`; null before any task ended. */
  etaSeconds: number | null;
  /** Nothing of the workflow is left to run. */
  final: boolean;
  failedTaskId: string | null;
  failedReason: string | null;
  updatedAt: number;
}

function time(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : ms;
}

/** The view a `workflow.progress` event (or the snapshot, shaped the same) describes. */
export function fromWorkflowEvent(event: WorkflowProgress): WorkflowView {
  return {
    workflowId: event.workflow_id,
    state: event.state,
    total: event.total,
    done: event.done,
    failed: event.failed,
    cancelled: event.cancelled,
    stalled: event.stalled,
    percent: event.percent,
    running: event.running,
    etaSeconds: event.eta_seconds ?? null,
    final: event.final,
    failedTaskId: event.failed_task_id ?? null,
    failedReason: event.failed_reason ?? null,
    updatedAt: time(event.occurred_at),
  };
}

/**
 * The view after one more `workflow.progress` (live, replayed, or a snapshot): each event
 * carries the whole count, so the newer one wins and an older one (a replay after the
 * snapshot) changes nothing.
 */
export function applyWorkflowEvent(view: WorkflowView | null, event: WorkflowProgress): WorkflowView {
  const next = fromWorkflowEvent(event);
  if (view === null) return next;
  if (event.workflow_id !== view.workflowId || next.updatedAt < view.updatedAt) return view;
  return next;
}

/** Seconds left now: the server's estimate counted down since it was made; 0 when final. */
export function workflowEtaSeconds(view: WorkflowView, now: number): number | null {
  if (view.final) return 0;
  if (view.etaSeconds === null || view.state !== "running") return null;
  return Math.max(0, Math.ceil(view.etaSeconds - (now - view.updatedAt) / 1000));
}
