import { type RealtimeEvent, TERMINAL_STATUSES, type TaskSnapshot, type TaskStatus } from "./types.js";

export interface TaskError {
  type: string | null;
  message: string | null;
  retryable: boolean | null;
  retrySuggestion: string | null;
}

/** What a progress bar shows for one task. */
export interface TaskView {
  taskId: string;
  status: TaskStatus;
  taskName: string | null;
  percent: number;
  stage: string | null;
  message: string | null;
  attempt: number;
  estimatedSeconds: number | null;
  startedAt: number | null;
  updatedAt: number;
  error: TaskError | null;
  /** What a completed task reports it did (`result_summary`), when it says. */
  resultSummary: string | null;
  /** Why a cancelled task stopped (`reason`), and the user who asked, when known. */
  cancelReason: string | null;
  cancelledBy: string | null;
}

function time(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/** "workers.generate_chapter" → "Generate chapter". */
export function taskLabel(name: string | null): string {
  if (!name) return "Task";
  const short = name.replace(/^.*\./, "").replace(/_/g, " ");
  return short.charAt(0).toUpperCase() + short.slice(1);
}

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export function fromSnapshot(snapshot: TaskSnapshot): TaskView {
  const failed = snapshot.status === "failed" || snapshot.status === "retrying";
  return {
    taskId: snapshot.task_id,
    status: snapshot.status,
    taskName: snapshot.task_name,
    percent: snapshot.status === "completed" ? 100 : snapshot.percent,
    stage: snapshot.stage,
    message: snapshot.message,
    attempt: snapshot.attempt,
    estimatedSeconds: snapshot.estimated_seconds,
    startedAt: time(snapshot.started_at),
    updatedAt: time(snapshot.updated_at) ?? 0,
    error: failed
      ? {
          type: snapshot.error_type,
          message: snapshot.error_message,
          retryable: snapshot.retryable,
          retrySuggestion: snapshot.retry_suggestion,
        }
      : null,
    resultSummary: typeof snapshot.result_summary === "string" ? snapshot.result_summary : null,
    cancelReason: snapshot.status === "cancelled" ? snapshot.message : null,
    cancelledBy: snapshot.cancelled_by ?? null,
  };
}

/** A view for a task known only from its first event (or not at all yet). */
export function emptyView(taskId: string): TaskView {
  return {
    taskId,
    status: "running",
    taskName: null,
    percent: 0,
    stage: null,
    message: null,
    attempt: 1,
    estimatedSeconds: null,
    startedAt: null,
    updatedAt: 0,
    error: null,
    resultSummary: null,
    cancelReason: null,
    cancelledBy: null,
  };
}

/**
 * The view after one event of this task. A finished task stays finished, and an event older
 * than what the view already reflects (a replay after the snapshot) changes nothing.
 */
export function applyEvent(view: TaskView, event: RealtimeEvent): TaskView {
  if (event.task_id !== view.taskId || !event.type.startsWith("task.")) return view;
  if (isTerminal(view.status)) return view;
  const at = time(event.occurred_at) ?? view.updatedAt;
  if (at < view.updatedAt) return view;
  const next = { ...view, updatedAt: at };
  switch (event.type) {
    case "task.progress-started": {
      const attempt = event.attempt;
      return {
        ...next,
        status: "running",
        taskName: event.task_name,
        estimatedSeconds: event.estimated_seconds ?? null,
        attempt,
        startedAt: at,
        percent: attempt > view.attempt ? 0 : view.percent,
        error: null,
      };
    }
    case "task.progress-updated":
      return {
        ...next,
        status: "running",
        percent: event.percent,
        stage: event.stage ?? view.stage,
        message: event.message ?? view.message,
      };
    case "task.progress-heartbeat":
      return { ...next, status: view.status === "stalled" ? "running" : view.status };
    case "task.progress-completed":
      return {
        ...next,
        status: "completed",
        percent: 100,
        error: null,
        resultSummary: event.result_summary ?? null,
      };
    case "task.progress-failed":
      return {
        ...next,
        status: "failed",
        error: {
          type: event.error_type,
          message: event.message,
          retryable: event.retryable,
          retrySuggestion: event.retry_suggestion ?? null,
        },
      };
    case "task.progress-retrying":
      return {
        ...next,
        status: "retrying",
        error: {
          type: event.error_type,
          message: event.message,
          retryable: true,
          retrySuggestion: `Retrying automatically in ${event.retry_in_seconds ?? "a few"} s`,
        },
      };
    case "task.progress-cancelled":
      return {
        ...next,
        status: "cancelled",
        cancelReason: event.reason,
        cancelledBy: event.cancelled_by ?? null,
      };
    case "task.progress-stalled":
      return { ...next, status: "stalled" };
    default:
      return view;
  }
}

/**
 * Seconds left: from the task's own estimate when it gave one, else extrapolated from the
 * pace so far. null when unknown or the task is not running.
 */
export function etaSeconds(view: TaskView, now: number): number | null {
  if (view.status !== "running" || view.startedAt === null) return null;
  if (view.estimatedSeconds) {
    const left = (view.startedAt + view.estimatedSeconds * 1000 - now) / 1000;
    if (left > 0) return Math.ceil(left);
  }
  if (view.percent <= 0 || view.percent >= 100) return null;
  const elapsed = (now - view.startedAt) / 1000;
  return Math.ceil((elapsed * (100 - view.percent)) / view.percent);
}
