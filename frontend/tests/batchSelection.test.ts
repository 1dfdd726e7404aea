import { describe, expect, it } from "vitest";
import { MAX_BATCH_CHAPTERS, batchProblem, toggleAll, toggleChapter } from "../src/batch/batchSelection";

describe("batch revision selection", () => {
  it("toggles a chapter, keeping the selection sorted and each chapter once", () => {
    const picked = toggleChapter(toggleChapter([], 5), 2);
    expect(picked).toEqual([2, 5]);
    expect(toggleChapter(picked, 5)).toEqual([2]);
  });

  it("selects every chapter up to the limit, and none once all were selected", () => {
    const all = toggleAll([3], [3, 1, 2, 2]);
    expect(all).toEqual([1, 2, 3]);
    expect(toggleAll(all, [1, 2, 3])).toEqual([]);
    const many = Array.from({ length: 40 }, (_, i) => i + 1);
    expect(toggleAll([], many)).toHaveLength(MAX_BATCH_CHAPTERS);
  });

  it("refuses what the API refuses: nothing selected, more than the limit", () => {
    expect(batchProblem([])).toMatch(/at least one/);
    expect(batchProblem([1, 2])).toBeNull();
    const tooMany = Array.from({ length: MAX_BATCH_CHAPTERS + 1 }, (_, i) => i + 1);
    expect(batchProblem(tooMany)).toMatch(/at most/);
  });
});
