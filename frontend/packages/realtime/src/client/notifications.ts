import type { RealtimeEvent } from "./types.js";

export type NotificationKind = "content" | "system";

export interface NotificationItem {
  id: string;
  type: string;
  title: string;
  body: string;
  at: string;
  read: boolean;
  novelId: string | null;
  level: string | null;
  /** What the sender suggests doing (`suggested_action`); absent from items stored before it. */
  action?: string | null;
}

/** The parts of localStorage the store uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export function notificationKind(event: RealtimeEvent): NotificationKind | null {
  if (event.type.startsWith("content.") || event.type === "workflow.status-changed") {
    return "content";
  }
  if (event.type.startsWith("system.")) return "system";
  return null;
}

interface Described {
  title: string;
  body: string;
  level: string | null;
  action?: string | null;
}

function describe(event: RealtimeEvent): Described {
  switch (event.type) {
    case "content.novel-created":
      return { title: `Novel created: ${event.title}`, body: event.premise, level: null };
    case "content.chapter-updated": {
      const chapters = event.chapters;
      const names = chapters.map((c) => c.title).join(", ");
      const title = chapters.length === 1 ? "Chapter written" : `${chapters.length} chapters written`;
      return { title, body: names, level: null };
    }
    case "workflow.status-changed":
      return {
        title: `Novel ${event.old_status ?? ""} → ${event.new_status}`,
        body: "",
        level: null,
      };
    case "system.notification":
      return {
        title: event.message,
        body: event.suggested_action ?? "",
        level: event.level,
        action: event.suggested_action ?? null,
      };
    case "system.error":
      return {
        title: event.message,
        body: event.affected_scope,
        level: event.severity,
        action: event.suggested_action ?? null,
      };
    default:
      return { title: event.type, body: "", level: null };
  }
}

/**
 * One kind of notification for one user, newest first, kept in storage so a reload (or another
 * tab) shows the same list and read marks. Events already listed are ignored.
 */
export class NotificationStore {
  private list: NotificationItem[];
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly storage: StorageLike,
    readonly key: string,
    private readonly capacity = 200,
  ) {
    this.list = this.load();
  }

  items = (): NotificationItem[] => this.list;

  unread(): number {
    return this.list.filter((item) => !item.read).length;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  add(event: RealtimeEvent): boolean {
    this.list = this.load();
    if (this.list.some((item) => item.id === event.event_id)) return false;
    const { title, body, level, action = null } = describe(event);
    const item: NotificationItem = {
      id: event.event_id,
      type: event.type,
      title,
      body,
      level,
      action,
      at: event.occurred_at,
      read: false,
      novelId: event.novel_id ?? null,
    };
    this.save([item, ...this.list].slice(0, this.capacity));
    return true;
  }

  markRead(id: string): void {
    this.save(this.load().map((item) => (item.id === id ? { ...item, read: true } : item)));
  }

  markAllRead(): void {
    this.save(this.load().map((item) => ({ ...item, read: true })));
  }

  /** Storage changed in another tab. */
  reload(): void {
    this.list = this.load();
    this.notify();
  }

  private load(): NotificationItem[] {
    try {
      const parsed: unknown = JSON.parse(this.storage.getItem(this.key) ?? "[]");
      return Array.isArray(parsed) ? (parsed as NotificationItem[]) : [];
    } catch {
      return [];
    }
  }

  private save(list: NotificationItem[]): void {
    this.list = list;
    this.storage.setItem(this.key, JSON.stringify(list));
    this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
