import { createContext, type ReactNode, useContext, useEffect, useMemo, useRef, useState } from "react";
import { createRealtimeApi, type RealtimeClientApi, streamUrl, type TokenSource } from "../client/api.js";
import { createBrowserHub } from "../client/browser.js";
import type { RealtimeHub } from "../client/hub.js";
import { NotificationStore, notificationKind } from "../client/notifications.js";
import type { TaskView } from "../client/taskProgress.js";
import type { RealtimeEvent } from "../client/types.js";

/** What `useRealtime()` gives: the HTTP calls, the shared link, the two notification lists. */
export interface RealtimeValue {
  api: RealtimeClientApi;
  hub: RealtimeHub;
  content: NotificationStore;
  system: NotificationStore;
}

export interface RealtimeProviderProps {
  /** The signed-in user: one link, one tab channel and one set of notification lists each. */
  userId: string;
  /** The user's JWT, or a function returning a current one (asked before every request). */
  token?: TokenSource;
  /** Where the SSE tier's `/api/v1/...` routes are; default "": the page's own origin. */
  baseUrl?: string;
  /** Your own client for the four calls instead of `createRealtimeApi({ baseUrl, token })`. */
  api?: RealtimeClientApi;
  /** Every event, once (after deduplication): e.g. invalidate the caches it makes stale. */
  onEvent?: (event: RealtimeEvent) => void;
  /** Derived state must be rebuilt (a fresh stream, or history was lost): e.g. refetch all. */
  onResync?: () => void;
  /** A task watched by `useTaskProgress` (with `notify`, the default) ended live: e.g. a toast. */
  onTaskEnd?: (task: TaskView) => void;
  /** localStorage key prefix of the notification lists (`.content:<user>`, `.system:<user>` follow). */
  storageKey?: string;
  children: ReactNode;
}

type Callbacks = Pick<RealtimeProviderProps, "onEvent" | "onResync" | "onTaskEnd">;

const RealtimeContext = createContext<RealtimeValue | null>(null);
const CallbacksContext = createContext<{ readonly current: Callbacks }>({ current: {} });

/**
 * One realtime link per signed-in user for the whole app: it outlives route changes, sorts
 * content and system events into notification lists, and is torn down on unmount (logout).
 * Renders nothing until the link exists.
 */
export function RealtimeProvider({
  userId,
  token = "",
  baseUrl = "",
  api: givenApi,
  storageKey = "infinitescribe.notifications",
  children,
  ...callbacks
}: RealtimeProviderProps) {
  // Kept in refs: a new callback or token does not tear the link down.
  const latest = useRef<Callbacks>(callbacks);
  const currentToken = useRef(token);
  useEffect(() => {
    latest.current = callbacks;
    currentToken.current = token;
  });
  const api = useMemo(
    () =>
      givenApi ??
      createRealtimeApi({
        baseUrl,
        token: () => {
          const value = currentToken.current;
          return typeof value === "function" ? value() : value;
        },
      }),
    [givenApi, baseUrl],
  );
  const [value, setValue] = useState<RealtimeValue | null>(null);

  useEffect(() => {
    const { hub, dispose } = createBrowserHub(userId, api, { streamUrl: streamUrl(baseUrl) });
    const content = new NotificationStore(localStorage, `${storageKey}.content:${userId}`);
    const system = new NotificationStore(localStorage, `${storageKey}.system:${userId}`);
    const offEvent = hub.onEvent((event) => {
      const kind = notificationKind(event);
      if (kind) (kind === "content" ? content : system).add(event);
      latest.current.onEvent?.(event);
    });
    const offResync = hub.onResync(() => latest.current.onResync?.());
    const onStorage = (event: StorageEvent) => {
      if (event.key === content.key) content.reload();
      if (event.key === system.key) system.reload();
    };
    window.addEventListener("storage", onStorage);
    setValue({ api, hub, content, system });
    return () => {
      offEvent();
      offResync();
      window.removeEventListener("storage", onStorage);
      dispose();
      setValue(null);
    };
  }, [api, baseUrl, userId, storageKey]);

  if (!value) return null;
  return (
    <CallbacksContext.Provider value={latest}>
      <RealtimeContext.Provider value={value}>{children}</RealtimeContext.Provider>
    </CallbacksContext.Provider>
  );
}

/** The provider's link and lists; throws outside a `RealtimeProvider`. */
export function useRealtime(): RealtimeValue {
  const value = useContext(RealtimeContext);
  if (!value) throw new Error("useRealtime outside RealtimeProvider");
  return value;
}

/** The provider's `onTaskEnd`, read when a task ends (so always the latest one). */
export function useTaskEndCallback(): (task: TaskView) => void {
  const callbacks = useContext(CallbacksContext);
  return useMemo(() => (task: TaskView) => callbacks.current.onTaskEnd?.(task), [callbacks]);
}
