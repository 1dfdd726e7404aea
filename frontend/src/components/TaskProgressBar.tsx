import { taskLabel, useSSEConnection, useTaskProgress } from "@infinitescribe/realtime";
import { useMutation } from "@tanstack/react-query";
import { useApi } from "../api/context";
import { useAuth } from "../auth/session";
import { canCancel, errorText, outcomeText } from "../tasks/outcome";
import { ConfirmButton } from "./ConfirmButton";
import { ProgressBar } from "./ProgressBar";

/**
 * One task's bar: percent, status, Flower link; while running its stage, message, ETA and (when
 * `cancellable`) a Cancel button that asks first; once finished what it came to: the result
 * summary, the error with its suggestion, or who cancelled it.
 */
export function TaskProgressBar({
  taskId,
  title,
  notify = true,
  cancellable = false,
}: {
  taskId: string;
  title?: string;
  notify?: boolean;
  cancellable?: boolean;
}) {
  const progress = useTaskProgress(taskId, { notify });
  const { config } = useSSEConnection();
  const { session } = useAuth();
  const api = useApi();
  const cancel = useMutation({ mutationFn: () => api.cancelTask(taskId) });
  const label = title ?? taskLabel(progress.taskName);
  const percent = Math.round(progress.percent);
  const live = canCancel(progress.status);
  const outcome = outcomeText(progress, session?.userId ?? null);
  const error = errorText(progress);
  return (
    <div className={`task task-${progress.status}`} data-testid="task-progress" data-task-id={taskId} data-status={progress.status}>
      <div className="task-head">
        <span className="task-name">{label}</span>
        <span className="task-status">{live && cancel.isSuccess ? "cancelling…" : progress.status}</span>
        {config.flower_url ? (
          <a href={`${config.flower_url.replace(/\/$/, "")}/task/${taskId}`} target="_blank" rel="noreferrer">
            Flower
          </a>
        ) : null}
        {cancellable && live ? (
          <ConfirmButton
            label="Cancel"
            ariaLabel={`Cancel ${label}`}
            question={`Cancel “${label}”? What it has written so far is kept.`}
            confirmLabel="Cancel task"
            disabled={cancel.isPending || cancel.isSuccess}
            onConfirm={() => cancel.mutate()}
          />
        ) : null}
      </div>
      <ProgressBar label={label} percent={percent} />
      <div className="task-foot">
        <span>{percent}%</span>
        {live && progress.stage ? <span>{progress.stage}</span> : null}
        {live && progress.message ? <span>{progress.message}</span> : null}
        {progress.etaSeconds !== null ? <span>about {progress.etaSeconds} s left</span> : null}
      </div>
      {outcome ? (
        <p className="task-outcome" data-testid="task-outcome">
          {outcome}
        </p>
      ) : null}
      {error ? (
        <p className="task-error" role="alert">
          {error}
        </p>
      ) : null}
      {cancel.error ? (
        <p className="task-cancel-error" role="alert">
          Could not cancel: {cancel.error.message}
        </p>
      ) : null}
    </div>
  );
}
