import { useCallback, useEffect, useRef, useState } from "react";
import type { RealtimeClientApi } from "../client/api.js";
import {
  applyEvent,
  emptyView,
  etaSeconds,
  fromSnapshot,
  isTerminal,
  type TaskError,
  type TaskView,
} from "../client/taskProgress.js";
import { LatestValueThrottle } from "../client/throttle.js";
import { type RealtimeEvent, realClock, type TaskSnapshot, type TaskStatus } from "../client/types.js";
import { useRealtime, useTaskEndCallback } from "./RealtimeProvider.js";

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
  /** A completed task's own summary of what it did. */
  resultSummary: string | null;
  /** Why a cancelled task stopped, and who asked (a user id), when known. */
  cancelReason: string | null;
  cancelledBy: string | null;
}

export interface TaskProgressOptions {
  /**
   * Call the provider's `onTaskEnd` when the task ends while watched (default true); false
   * e.g. for the steps of a workflow that announces itself.
   */
  notify?: boolean;
}

/** Tries of a snapshot request that failed other than with 404, and the first wait. */
const SNAPSHOT_TRIES = 4;
const SNAPSHOT_RETRY_MS = 1000;

interface Snapshot {
  taskId: string | null;
  data: TaskSnapshot | null;
  /** The server does not know the task (404). */
  missing: boolean;
}

function httpStatus(error: unknown): number | undefined {
  return (error as { status?: number } | null)?.status;
}

/** `GET /api/v1/tasks/{id}`: retried with backoff unless 404, again on each `refetch()`. */
function useTaskSnapshot(api: RealtimeClientApi, taskId: string | null) {
  const [snapshot, setSnapshot] = useState<Snapshot>({ taskId, data: null, missing: false });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    if (taskId === null) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = (attempt: number) => {
      api.task(taskId).then(
        (data) => {
          if (live) setSnapshot({ taskId, data, missing: false });
        },
        (error: unknown) => {
          if (!live) return;
          const missing = httpStatus(error) === 404;
          if (missing || attempt + 1 >= SNAPSHOT_TRIES) {
            setSnapshot((old) => (old.taskId === taskId ? { ...old, missing } : { taskId, data: null, missing }));
          } else timer = setTimeout(() => load(attempt + 1), SNAPSHOT_RETRY_MS * 2 ** attempt);
        },
      );
    };
    load(0);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api, taskId, generation]);

  const refetch = useCallback(() => setGeneration((n) => n + 1), []);
  const current = snapshot.taskId === taskId ? snapshot : { taskId, data: null, missing: false };
  return { ...current, refetch };
}

/**
 * One task's progress: its snapshot, then live events, at most a few renders a second; when it
 * ends while watched, the provider's `onTaskEnd` is called once (unless `notify` is false).
 * `taskId` null: nothing is watched yet.
 */
export function useTaskProgress(taskId: string | null, { notify = true }: TaskProgressOptions = {}): TaskProgress {
  const { api, hub } = useRealtime();
  const onTaskEnd = useTaskEndCallback();
  const snapshot = useTaskSnapshot(api, taskId);
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

  // Stable while `notify` is (onTaskEnd is): the effects below subscribe once per task.
  const push = useCallback(
    (next: TaskView, live: boolean) => {
      const previous = latest.current;
      latest.current = next;
      throttle.current?.push(next);
      if (isTerminal(next.status)) {
        throttle.current?.flush();
        if (live && notify && !(previous && isTerminal(previous.status)) && !announced.current) {
          announced.current = true;
          onTaskEnd(next);
        }
      }
    },
    [notify, onTaskEnd],
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
    return {
      status: snapshot.missing ? "unknown" : "loading",
      percent: 0,
      stage: null,
      message: null,
      taskName: null,
      error: null,
      etaSeconds: null,
      resultSummary: null,
      cancelReason: null,
      cancelledBy: null,
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
    resultSummary: view.resultSummary,
    cancelReason: view.cancelReason,
    cancelledBy: view.cancelledBy,
  };
}
