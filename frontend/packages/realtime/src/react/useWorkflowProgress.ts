import { useEffect, useRef, useState } from "react";
import type { WorkflowProgress } from "../client/events.generated.js";
import { LatestValueThrottle } from "../client/throttle.js";
import { realClock } from "../client/types.js";
import { applyWorkflowEvent, type WorkflowView, workflowEtaSeconds } from "../client/workflowProgress.js";
import { useRealtime } from "./RealtimeProvider.js";

/** At most this many renders per second, however fast events arrive. */
const RENDERS_PER_SECOND = 4;

export interface WorkflowProgressValue {
  /** "loading" until the snapshot or the first event; "unknown" when the server knows none. */
  status: WorkflowView["state"] | "loading" | "unknown";
  view: WorkflowView | null;
  etaSeconds: number | null;
}

/**
 * A whole workflow's progress: its snapshot (`GET /api/v1/workflows/{id}`), then its live
 * `workflow.progress` events; the snapshot is asked again after each resync or reconnect, so
 * the bar shows the current totals at once. `workflowId` null: nothing is watched yet.
 */
export function useWorkflowProgress(workflowId: string | null): WorkflowProgressValue {
  const { api, hub } = useRealtime();
  const [view, setView] = useState<WorkflowView | null>(null);
  const [missing, setMissing] = useState(false);
  const latest = useRef<WorkflowView | null>(null);

  useEffect(() => {
    latest.current = null;
    setView(null);
    setMissing(false);
    if (workflowId === null) return;
    let live = true;
    const throttle = new LatestValueThrottle<WorkflowView>(setView, 1000 / RENDERS_PER_SECOND, realClock);
    const apply = (event: WorkflowProgress) => {
      const next = applyWorkflowEvent(latest.current, event);
      if (next === latest.current) return;
      latest.current = next;
      throttle.push(next);
      if (next.final) throttle.flush();
    };
    const load = () => {
      api.workflow(workflowId).then(
        (snapshot) => {
          if (live) apply(snapshot);
        },
        (error: unknown) => {
          if (live && (error as { status?: number } | null)?.status === 404 && !latest.current) setMissing(true);
        },
      );
    };
    load();
    const off = hub.onEvent((event) => {
      if (event.type === "workflow.progress" && event.workflow_id === workflowId) apply(event);
    });
    const offPolled = hub.onPolled(load);
    const offResync = hub.onResync(load);
    return () => {
      live = false;
      throttle.cancel();
      off();
      offPolled();
      offResync();
    };
  }, [api, hub, workflowId]);

  if (!view) return { status: missing ? "unknown" : "loading", view: null, etaSeconds: null };
  return { status: view.state, view, etaSeconds: workflowEtaSeconds(view, Date.now()) };
}
