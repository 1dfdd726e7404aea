import { useSyncExternalStore } from "react";
import type { HubSnapshot } from "../client/hub.js";
import { useRealtime } from "./RealtimeProvider.js";

export interface SSEConnection extends HubSnapshot {
  /** Connect again now, forgetting failed attempts. */
  reconnect(): void;
}

/** The browser's one realtime connection (shared by its tabs): its state and a manual retry. */
export function useSSEConnection(): SSEConnection {
  const { hub } = useRealtime();
  const snapshot = useSyncExternalStore(hub.subscribe, hub.getSnapshot);
  return { ...snapshot, reconnect: () => hub.reconnect() };
}
