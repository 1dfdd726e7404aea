import { describe, expect, it } from "vitest";
import { DEFAULT_PREFERENCES, isDirty, toggleMuted } from "../src/preferences/preferencesForm";

describe("notification preferences form", () => {
  it("mutes and unmutes a type, keeping the list sorted and unique", () => {
    const once = toggleMuted(DEFAULT_PREFERENCES, "task.progress-updated");
    const twice = toggleMuted(once, "content.novel-created");
    expect(twice.muted_types).toEqual(["content.novel-created", "task.progress-updated"]);
    expect(toggleMuted(twice, "task.progress-updated").muted_types).toEqual(["content.novel-created"]);
    expect(DEFAULT_PREFERENCES.muted_types).toEqual([]);
  });

  it("is dirty only when it differs from what the server holds", () => {
    const saved = { min_level: "warning" as const, muted_types: ["system.error", "content.novel-created"] };
    expect(isDirty({ min_level: "warning", muted_types: ["content.novel-created", "system.error"] }, saved)).toBe(
      false,
    );
    expect(isDirty({ ...saved, min_level: "info" }, saved)).toBe(true);
    expect(isDirty(toggleMuted(saved, "system.error"), saved)).toBe(true);
    expect(isDirty(toggleMuted(saved, "task.progress-stalled"), saved)).toBe(true);
  });
});
