import { makeEvent } from "@infinitescribe/realtime/testing";
import { describe, expect, it } from "vitest";
import { keysToInvalidate } from "../src/api/queryKeys";

describe("cache invalidation", () => {
  it("marks stale only the novel and the chapters an event names", () => {
    const fields = { event_id: "e1", novel_id: "n1" };
    const chapters = makeEvent("content.chapter-updated", {
      ...fields,
      chapters: [
        { chapter_id: "c1", number: 1, title: "One", summary: "" },
        { chapter_id: "c2", number: 2, title: "Two", summary: "" },
      ],
    });
    expect(keysToInvalidate(chapters)).toEqual([
      ["novel", "n1"],
      ["chapter", "n1", "c1"],
      ["chapter", "n1", "c2"],
    ]);
    expect(keysToInvalidate(makeEvent("content.novel-created", fields))).toEqual([["novels"], ["novel", "n1"]]);
    expect(keysToInvalidate(makeEvent("task.progress-updated", fields))).toEqual([]);
  });
});
