import type { NotificationItem } from "@infinitescribe/realtime";
import { describe, expect, it } from "vitest";
import { actionLink, banners, DismissedNotices, placement } from "../src/notices/notices";
import { canCancel, errorText, outcomeText } from "../src/tasks/outcome";

function item(id: string, type: string, level: string | null): NotificationItem {
  return { id, type, level, title: id, body: "", at: "", read: false, novelId: null };
}

class MemoryStorage {
  readonly data = new Map<string, string>();
  getItem = (key: string) => this.data.get(key) ?? null;
  setItem = (key: string, value: string) => void this.data.set(key, value);
}

describe("system notices", () => {
  it("bans critical notices and every error, toasts warnings, leaves info to the center", () => {
    expect(placement("system.notification", "critical")).toBe("banner");
    expect(placement("system.error", "low")).toBe("banner");
    expect(placement("system.notification", "warning")).toBe("toast");
    expect(placement("system.notification", "info")).toBe("center");
  });

  it("shows undismissed banners only, and a dismissal outlives the store (a reload)", () => {
    const storage = new MemoryStorage();
    const items = [item("a", "system.notification", "critical"), item("b", "system.error", "high"), item("c", "system.notification", "info")];
    const dismissed = new DismissedNotices(storage, "k");
    expect(banners(items, dismissed.current()).map((i) => i.id)).toEqual(["a", "b"]);
    dismissed.dismiss("a");
    expect(banners(items, new DismissedNotices(storage, "k").current()).map((i) => i.id)).toEqual(["b"]);
  });

  it("keeps the newest dismissals within its capacity", () => {
    const storage = new MemoryStorage();
    const dismissed = new DismissedNotices(storage, "k", 2);
    for (const id of ["1", "2", "3"]) dismissed.dismiss(id);
    expect([...dismissed.current()]).toEqual(["2", "3"]);
  });

  it("finds the link in a suggested action", () => {
    expect(actionLink("See https://status.example.test/now.")).toBe("https://status.example.test/now");
    expect(actionLink("/notifications")).toBe("/notifications");
    expect(actionLink("Save your work")).toBeNull();
  });
});

describe("a finished task's line", () => {
  const base = { error: null, resultSummary: null, cancelReason: null, cancelledBy: null };
  it("says what a task came to, not its last stage", () => {
    expect(outcomeText({ ...base, status: "completed", resultSummary: "Chapter 2 written" }, "u1")).toBe("Chapter 2 written");
    expect(outcomeText({ ...base, status: "cancelled", cancelledBy: "u1" }, "u1")).toBe("Cancelled by you");
    expect(outcomeText({ ...base, status: "cancelled", cancelledBy: "u2" }, "u1")).toBe("Cancelled by u2");
    expect(outcomeText({ ...base, status: "cancelled", cancelReason: "expired" }, "u1")).toBe("Cancelled (expired)");
    expect(outcomeText({ ...base, status: "running" }, "u1")).toBeNull();
    const error = { type: "X", message: "The model is down", retryable: true, retrySuggestion: "Try again in a minute" };
    expect(errorText({ error })).toBe("The model is down — Try again in a minute");
    expect(canCancel("running") && !canCancel("completed") && !canCancel("cancelled")).toBe(true);
  });
});
