import type { EventType, RealtimeEvent } from "@infinitescribe/realtime";
import { describe, expect, it } from "vitest";
import { keysToInvalidate } from "../src/api/queryKeys";

function event(type: EventType, fields: Record<string, unknown> = {}): RealtimeEvent {
  return {
    event_id: "e1",
    type,
    occurred_at: "2026-01-01T00:00:00Z",
    schema_version: 1,
    user_id: "u",
    session_id: null,
    audience: "user",
    task_id: null,
    novel_id: "n1",
    chapter_id: null,
    workflow_id: null,
    important: false,
    ...fields,
  } as unknown as RealtimeEvent;
}

describe("cache invalidation", () => {
  it("marks stale only the novel and the chapters an event names", () => {
    const chapters = [
      { chapter_id: "c1", number: 1, title: "One", summary: "" },
      { chapter_id: "c2", number: 2, title: "Two", summary: "" },
    ];
    expect(keysToInvalidate(event("content.chapter-updated", { chapters }))).toEqual([
      ["novel", "n1"],
      ["chapter", "n1", "c1"],
      ["chapter", "n1", "c2"],
    ]);
    expect(keysToInvalidate(event("content.novel-created"))).toEqual([["novels"], ["novel", "n1"]]);
    expect(keysToInvalidate(event("task.progress-updated"))).toEqual([]);
  });
});
