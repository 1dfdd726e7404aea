import {
  RealtimeProvider,
  type RealtimeEvent,
  type TaskView,
  taskLabel,
  useRealtime,
} from "@infinitescribe/realtime";
import { useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useCallback, useEffect } from "react";
import { keysToInvalidate } from "../api/queryKeys";
import type { Session } from "../auth/session";
import { useToast } from "./Toasts";

declare global {
  interface Window {
    /** Ids of the events this tab received, in order (for support and the e2e tests). */
    __realtimeReceived?: () => string[];
  }
}

/** What the toast says when a watched task ends. */
export function taskEndMessage(task: TaskView): { text: string; tone: "success" | "error" | "info" } {
  const name = taskLabel(task.taskName);
  if (task.status === "completed") return { text: `${name} completed`, tone: "success" };
  if (task.status === "failed") {
    const hint = task.error?.retrySuggestion ? ` ${task.error.retrySuggestion}` : "";
    return { text: `${name} failed: ${task.error?.message ?? "unknown error"}.${hint}`, tone: "error" };
  }
  return { text: `${name} was cancelled`, tone: "info" };
}

function ReceivedIds() {
  const { hub } = useRealtime();
  useEffect(() => {
    window.__realtimeReceived = () => [...hub.receivedIds];
  }, [hub]);
  return null;
}

/**
 * The package's provider as this app uses it: content events mark the caches they name stale, a
 * resync refetches everything, a watched task's end is a toast, and logout empties the cache.
 */
export function AppRealtime({ session, children }: { session: Session; children: ReactNode }) {
  const queryClient = useQueryClient();
  const toast = useToast();
  useEffect(() => () => queryClient.clear(), [queryClient]);
  const onEvent = useCallback(
    (event: RealtimeEvent) => {
      for (const queryKey of keysToInvalidate(event)) {
        void queryClient.invalidateQueries({ queryKey, exact: true });
      }
    },
    [queryClient],
  );
  return (
    <RealtimeProvider
      userId={session.userId}
      token={session.jwt}
      onEvent={onEvent}
      onResync={() => void queryClient.invalidateQueries()}
      onTaskEnd={(task) => {
        const { text, tone } = taskEndMessage(task);
        toast(text, tone);
      }}
    >
      <ReceivedIds />
      {children}
    </RealtimeProvider>
  );
}
