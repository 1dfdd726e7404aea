/** What a finished task's bar says instead of its last stage and message (issue 19 item 5). */

import type { TaskProgress } from "@infinitescribe/realtime";

export type Outcome = Pick<
  TaskProgress,
  "status" | "resultSummary" | "error" | "cancelReason" | "cancelledBy"
>;

/** The line under a finished bar; null while the task has not ended (or ended failed: the
 * error line says it). `me` is the signed-in user, named "you". */
export function outcomeText(task: Outcome, me: string | null): string | null {
  if (task.status === "completed") return task.resultSummary ?? "Done";
  if (task.status === "cancelled") {
    if (task.cancelledBy) return `Cancelled by ${task.cancelledBy === me ? "you" : task.cancelledBy}`;
    const reason = task.cancelReason && task.cancelReason !== "cancelled" ? ` (${task.cancelReason})` : "";
    return `Cancelled${reason}`;
  }
  return null;
}

/** The error line of a failed (or retrying) task: the error and what to do about it. */
export function errorText(task: Pick<TaskProgress, "error">): string | null {
  if (!task.error) return null;
  const message = task.error.message ?? "unknown error";
  return task.error.retrySuggestion ? `${message} — ${task.error.retrySuggestion}` : message;
}

/** Whether a bar offers Cancel: the task may still run. */
export function canCancel(status: TaskProgress["status"]): boolean {
  return status === "running" || status === "retrying" || status === "stalled";
}
