import { useSyncExternalStore } from "react";
import type { NotificationItem, NotificationStore } from "../client/notifications.js";
import { useRealtime } from "./RealtimeProvider.js";

export interface Notifications {
  items: NotificationItem[];
  unread: number;
  markRead(id: string): void;
  markAllRead(): void;
}

function useStore(store: NotificationStore): Notifications {
  const items = useSyncExternalStore(store.subscribe, store.items);
  return {
    items,
    unread: items.filter((item) => !item.read).length,
    markRead: (id) => store.markRead(id),
    markAllRead: () => store.markAllRead(),
  };
}

/** Novels created, chapters written, workflow stages: kept across reloads, per user. */
export function useContentNotifications(): Notifications {
  return useStore(useRealtime().content);
}

/** Operator notices and platform errors. */
export function useSystemNotifications(): Notifications {
  return useStore(useRealtime().system);
}
