import { useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useContext, useEffect, useMemo, useState } from "react";
import { type Api, createApi } from "../api/client";
import type { Session } from "../auth/session";
import { createBrowserHub } from "../realtime/browser";
import type { RealtimeHub } from "../realtime/hub";
import { NotificationStore, notificationKind } from "../realtime/notifications";
import { keysToInvalidate } from "../realtime/queryKeys";

interface RealtimeValue {
  api: Api;
  hub: RealtimeHub;
  content: NotificationStore;
  system: NotificationStore;
}

const RealtimeContext = createContext<RealtimeValue | null>(null);

declare global {
  interface Window {
    /** Ids of the events this tab received, in order (for support and the e2e tests). */
    __realtimeReceived?: () => string[];
  }
}

/**
 * One realtime link per signed-in user for the whole app: it outlives route changes, routes
 * content events to notifications and to the caches they make stale, and is torn down on logout.
 */
export function RealtimeProvider({ session, children }: { session: Session; children: ReactNode }) {
  const queryClient = useQueryClient();
  const api = useMemo(() => createApi(session.jwt), [session.jwt]);
  const [value, setValue] = useState<RealtimeValue | null>(null);

  useEffect(() => {
    const { hub, dispose } = createBrowserHub(session.userId, api);
    const content = new NotificationStore(localStorage, `infinitescribe.notifications.content:${session.userId}`);
    const system = new NotificationStore(localStorage, `infinitescribe.notifications.system:${session.userId}`);
    const offEvent = hub.onEvent((event) => {
      const kind = notificationKind(event);
      if (kind) (kind === "content" ? content : system).add(event);
      for (const queryKey of keysToInvalidate(event)) {
        void queryClient.invalidateQueries({ queryKey, exact: true });
      }
    });
    const offResync = hub.onResync(() => void queryClient.invalidateQueries());
    const onStorage = (event: StorageEvent) => {
      if (event.key === content.key) content.reload();
      if (event.key === system.key) system.reload();
    };
    window.addEventListener("storage", onStorage);
    window.__realtimeReceived = () => [...hub.receivedIds];
    setValue({ api, hub, content, system });
    return () => {
      offEvent();
      offResync();
      window.removeEventListener("storage", onStorage);
      dispose();
      queryClient.clear();
      setValue(null);
    };
  }, [api, session.userId, queryClient]);

  if (!value) return null;
  return <RealtimeContext.Provider value={value}>{children}</RealtimeContext.Provider>;
}

export function useRealtime(): RealtimeValue {
  const value = useContext(RealtimeContext);
  if (!value) throw new Error("useRealtime outside RealtimeProvider");
  return value;
}
