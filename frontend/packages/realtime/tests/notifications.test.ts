import { describe, expect, it } from "vitest";
import { NotificationStore, notificationKind } from "../src/client/notifications.js";
import { progressIntervalFor } from "../src/client/network.js";
import type { EventType, RealtimeEvent } from "../src/client/types.js";
import { makeEvent } from "./fakes.js";

class MemoryStorage {
  private readonly data = new Map<string, string>();
  getItem(key: string) {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.data.set(key, value);
  }
}

const chapters = makeEvent("content.chapter-updated", {
  event_id: "e1",
  novel_id: "n1",
  chapters: [
    { chapter_id: "c1", number: 1, title: "One", summary: "" },
    { chapter_id: "c2", number: 2, title: "Two", summary: "" },
  ],
});

/** The same envelope as another type (only `type` matters to what is tested). */
function retyped(type: EventType): RealtimeEvent {
  return makeEvent(type, { ...chapters, type } as Record<string, unknown>);
}

describe("notifications", () => {
  it("keeps the list and read marks across a reload, listing each event once", () => {
    const storage = new MemoryStorage();
    const store = new NotificationStore(storage, "k");
    expect(store.add(chapters)).toBe(true);
    expect(store.add(chapters)).toBe(false);
    store.add({ ...chapters, event_id: "e2" });
    store.markRead("e1");
    const reloaded = new NotificationStore(storage, "k");
    expect(reloaded.items().map((i) => [i.id, i.read])).toEqual([
      ["e2", false],
      ["e1", true],
    ]);
    expect(reloaded.unread()).toBe(1);
    reloaded.markAllRead();
    expect(reloaded.unread()).toBe(0);
  });

  it("sorts events into content and system notifications", () => {
    expect(notificationKind(chapters)).toBe("content");
    expect(notificationKind(retyped("system.notification"))).toBe("system");
    expect(notificationKind(retyped("task.progress-updated"))).toBeNull();
  });
});

describe("network", () => {
  it("asks for coarser progress on slow or metered links only", () => {
    expect(progressIntervalFor({ effectiveType: "4g" })).toBe(0);
    expect(progressIntervalFor(undefined)).toBe(0);
    expect(progressIntervalFor({ effectiveType: "3g" })).toBe(5000);
    expect(progressIntervalFor({ effectiveType: "4g", saveData: true })).toBe(5000);
    expect(progressIntervalFor({ effectiveType: "2g" })).toBe(10000);
  });
});
