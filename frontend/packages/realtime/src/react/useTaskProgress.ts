import { useQuery } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";
import { queryKeys } from "../realtime/queryKeys";
import {
  applyEvent,
  emptyView,
  etaSeconds,
  fromSnapshot,
  isTerminal,
  type TaskError,
  taskLabel,
  type TaskView,
} from "../realtime/taskProgress";
import { LatestValueThrottle } from "../realtime/throttle";
import { type RealtimeEvent, realClock, type TaskStatus } from "../realtime/types";
import { useToast } from "../components/Toasts";
import { useRealtime } from "./RealtimeProvider";

/** At most this many renders per second per task, however fast progress arrives. */
const RENDERS_PER_SECOND = 4;

export interface TaskProgress {
  status: TaskStatus | "loading" | "unknown";
  percent: number;
  stage: string | null;
  message: string | null;
  taskName: string | null;
  error: TaskError | null;
  etaSeconds: number | null;
}

/**
 * One task's progress: its snapshot, then live events; a toast when it ends while watched
 * (unless `notify` is false, e.g. for the steps of a workflow that toasts itself).
 */
export function useTaskProgress(
  taskId: string | null,
  { notify = true }: { notify?: boolean } = {},
): TaskProgress {
  const { api, hub } = useRealtime();
  const toast = useToast();
  const snapshot = useQuery({
    queryKey: queryKeys.task(taskId ?? ""),
    queryFn: () => api.task(taskId ?? ""),
    enabled: taskId !== null,
    retry: (count, error) => !(error instanceof ApiError && error.status === 404) && count < 3,
    staleTime: Number.POSITIVE_INFINITY,
  });
  const [view, setView] = useState<TaskView | null>(null);
  const latest = useRef<TaskView | null>(null);
  const throttle = useRef<LatestValueThrottle<TaskView> | null>(null);
  const announced = useRef(false);

  useEffect(() => {
    latest.current = null;
    announced.current = false;
    setView(null);
    const t = new LatestValueThrottle<TaskView>(setView, 1000 / RENDERS_PER_SECOND, realClock);
    throttle.current = t;
    return () => t.cancel();
  }, [taskId]);

  // Stable while `notify` is (toast is): the effects below subscribe once per task.
  const push = useCallback(
    (next: TaskView, live: boolean) => {
      const previous = latest.current;
      latest.current = next;
      throttle.current?.push(next);
      if (isTerminal(next.status)) {
        throttle.current?.flush();
        if (live && notify && !(previous && isTerminal(previous.status)) && !announced.current) {
          announced.current = true;
          const name = taskLabel(next.taskName);
          if (next.status === "completed") toast(`${name} completed`, "success");
          else if (next.status === "failed") {
            const hint = next.error?.retrySuggestion ? ` ${next.error.retrySuggestion}` : "";
            toast(`${name} failed: ${next.error?.message ?? "unknown error"}.${hint}`, "error");
          } else toast(`${name} was cancelled`, "info");
        }
      }
    },
    [notify, toast],
  );

  useEffect(() => {
    if (!snapshot.data) return;
    const fromServer = fromSnapshot(snapshot.data);
    const current = latest.current;
    if (current && current.updatedAt > fromServer.updatedAt) return;
    push(fromServer, current !== null);
  }, [snapshot.data, push]);

  const refetchSnapshot = snapshot.refetch;

  useEffect(() => {
    if (taskId === null) return;
    const apply = (event: RealtimeEvent) =>
      push(applyEvent(latest.current ?? emptyView(taskId), event), true);
    // Events that came before this view watched (its start can beat the request's answer).
    for (const event of hub.taskEvents(taskId)) apply(event);
    const off = hub.onEvent((event) => {
      if (event.task_id === taskId) apply(event);
    });
    const refetch = () => {
      if (!latest.current || !isTerminal(latest.current.status)) void refetchSnapshot();
    };
    const offPolled = hub.onPolled(refetch);
    const offResync = hub.onResync(refetch);
    return () => {
      off();
      offPolled();
      offResync();
    };
  }, [hub, taskId, push, refetchSnapshot]);

  const running = view !== null && !isTerminal(view.status);
  useEffect(() => {
    if (taskId === null || !running) return;
    const key = `task:${taskId}:${Math.random()}`;
    hub.setActive(key, true);
    return () => hub.setActive(key, false);
  }, [hub, taskId, running]);

  if (!view) {
    const missing = snapshot.error instanceof ApiError && snapshot.error.status === 404;
    return {
      status: missing ? "unknown" : "loading",
      percent: 0,
      stage: null,
      message: null,
      taskName: null,
      error: null,
      etaSeconds: null,
    };
  }
  return {
    status: view.status,
    percent: view.percent,
    stage: view.stage,
    message: view.message,
    taskName: view.taskName,
    error: view.error,
    etaSeconds: etaSeconds(view, Date.now()),
  };
}
