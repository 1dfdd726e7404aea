import { taskLabel, useWorkflowProgress } from "@infinitescribe/realtime";
import { ProgressBar } from "./ProgressBar";

function timeLeft(seconds: number): string {
  if (seconds < 60) return `about ${seconds} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

/** One overall bar for a whole workflow: tasks done of known, percent, time left, failure. */
export function WorkflowProgressBar({ workflowId, title = "Overall" }: { workflowId: string; title?: string }) {
  const { status, view, etaSeconds } = useWorkflowProgress(workflowId);
  if (!view) return null;
  const percent = Math.round(view.percent);
  const running = view.running.map((task) => taskLabel(task.task_name)).join(", ");
  return (
    <div className={`task workflow task-${status}`} data-testid="workflow-progress" data-status={status}>
      <div className="task-head">
        <span className="task-name">{title}</span>
        <span className="task-status">{status}</span>
      </div>
      <ProgressBar label={title} percent={percent} />
      <div className="task-foot">
        <span data-testid="workflow-counts">
          {view.done} of {view.total} steps done
        </span>
        <span>{percent}%</span>
        {view.stalled ? <span>{view.stalled} stalled</span> : null}
        {running && status === "running" ? <span>now: {running}</span> : null}
        {etaSeconds !== null && status === "running" ? <span data-testid="workflow-eta">{timeLeft(etaSeconds)}</span> : null}
      </div>
      {view.failedReason ? (
        <p className="task-error" role="alert">
          A step failed: {view.failedReason}
        </p>
      ) : null}
    </div>
  );
}
