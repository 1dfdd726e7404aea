/**
 * Where a system notice shows (issue 19 item 1): `critical` notifications and every
 * `system.error` as a banner on every page until dismissed, `warning` as a toast, `info` in the
 * notification center only. Dismissals are kept per user in localStorage, so a reload (or
 * another tab) does not bring a dismissed banner back. Framework-free.
 */

import type { NotificationItem, RealtimeEvent, StorageLike } from "@infinitescribe/realtime";

export type Placement = "banner" | "toast" | "center";

/** Where a system notice of this type and level shows (besides the notification center). */
export function placement(type: string, level: string | null): Placement {
  if (type === "system.error") return "banner";
  if (type === "system.notification" && level === "critical") return "banner";
  if (type === "system.notification" && level === "warning") return "toast";
  return "center";
}

/** The toast's text for a live event, or null when the event is not toasted. */
export function toastText(event: RealtimeEvent): string | null {
  if (event.type !== "system.notification" || placement(event.type, event.level) !== "toast") {
    return null;
  }
  return event.suggested_action ? `${event.message} — ${event.suggested_action}` : event.message;
}

/** The banners to show: the notices placed as banners and not dismissed, newest first. */
export function banners(items: NotificationItem[], dismissed: ReadonlySet<string>): NotificationItem[] {
  return items.filter((item) => placement(item.type, item.level) === "banner" && !dismissed.has(item.id));
}

/** A suggested action that holds a link: its target (absolute http(s) URL or in-app path). */
export function actionLink(action: string): string | null {
  const url = /https?:\/\/[^\s<>"]+/.exec(action)?.[0];
  if (url) return url.replace(/[.,;:!?)]+$/, "");
  return /^\/[^\s]*$/.test(action.trim()) ? action.trim() : null;
}

/** The ids of dismissed banners of one user, in storage (the newest `capacity` kept). */
export class DismissedNotices {
  private ids: ReadonlySet<string>;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly storage: StorageLike,
    readonly key: string,
    private readonly capacity = 500,
  ) {
    this.ids = this.load();
  }

  current = (): ReadonlySet<string> => this.ids;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  dismiss(id: string): void {
    const list = [...this.load()].filter((known) => known !== id);
    list.push(id);
    const kept = list.slice(-this.capacity);
    this.storage.setItem(this.key, JSON.stringify(kept));
    this.ids = new Set(kept);
    this.notify();
  }

  /** Storage changed in another tab. */
  reload(): void {
    this.ids = this.load();
    this.notify();
  }

  private load(): ReadonlySet<string> {
    try {
      const parsed: unknown = JSON.parse(this.storage.getItem(this.key) ?? "[]");
      return new Set(Array.isArray(parsed) ? parsed.filter((id) => typeof id === "string") : []);
    } catch {
      return new Set();
    }
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
