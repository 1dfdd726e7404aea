import { taskLabel, useSSEConnection, useTaskProgress } from "@infinitescribe/realtime";

/** One task's bar: percent, stage, status, ETA, error with its suggestion, Flower link. */
export function TaskProgressBar({
  taskId,
  title,
  notify = true,
}: {
  taskId: string;
  title?: string;
  notify?: boolean;
}) {
  const progress = useTaskProgress(taskId, { notify });
  const { config } = useSSEConnection();
  const label = title ?? taskLabel(progress.taskName);
  const percent = Math.round(progress.percent);
  return (
    <div className={`task task-${progress.status}`} data-testid="task-progress" data-task-id={taskId} data-status={progress.status}>
      <div className="task-head">
        <span className="task-name">{label}</span>
        <span className="task-status">{progress.status}</span>
        {config.flower_url ? (
          <a href={`${config.flower_url.replace(/\/$/, "")}/task/${taskId}`} target="_blank" rel="noreferrer">
            Flower
          </a>
        ) : null}
      </div>
      <div
        role="progressbar"
        aria-label={`${label} progress`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        className="bar"
      >
        <div className="bar-fill" style={{ width: `${percent}%` }} />
      </div>
      <div className="task-foot">
        <span>{percent}%</span>
        {progress.stage ? <span>{progress.stage}</span> : null}
        {progress.message ? <span>{progress.message}</span> : null}
        {progress.etaSeconds !== null ? <span>about {progress.etaSeconds} s left</span> : null}
      </div>
      {progress.error ? (
        <p className="task-error" role="alert">
          {progress.error.message}
          {progress.error.retrySuggestion ? ` — ${progress.error.retrySuggestion}` : ""}
        </p>
      ) : null}
    </div>
  );
}
