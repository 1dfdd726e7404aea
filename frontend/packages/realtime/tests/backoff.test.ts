import { describe, expect, it } from "vitest";
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from "../src/client/backoff.js";

describe("backoff", () => {
  it("doubles from 1 s and is capped at 30 s", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 10].map((attempt) => backoffCeiling(attempt));
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("jitters between half the ceiling and the ceiling", () => {
    expect(backoffDelay(3, () => 0)).toBe(2000);
    expect(backoffDelay(3, () => 0.999999)).toBe(4000);
    expect(backoffDelay(3, () => 0.5)).toBe(3000);
    expect(backoffDelay(20, () => 1)).toBe(DEFAULT_BACKOFF.maxMs);
  });

});
