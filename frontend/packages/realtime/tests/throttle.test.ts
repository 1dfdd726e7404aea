import { describe, expect, it } from "vitest";
import { LatestValueThrottle } from "../src/client/throttle.js";
import { FakeClock } from "./fakes.js";

describe("LatestValueThrottle", () => {
  it("commits at most once per interval however fast values arrive, ending on the latest", async () => {
    const clock = new FakeClock();
    const commits: number[] = [];
    const throttle = new LatestValueThrottle<number>((v) => commits.push(v), 250, clock);
    for (let i = 1; i <= 200; i += 1) {
      throttle.push(i);
      await clock.advance(5);
    }
    await clock.advance(250);
    expect(commits.length).toBeLessThanOrEqual(5);
    expect(commits[0]).toBe(1);
    expect(commits[commits.length - 1]).toBe(200);
    expect([...commits].sort((a, b) => a - b)).toEqual(commits);
  });

  it("commits a flushed value at once", async () => {
    const clock = new FakeClock();
    const commits: string[] = [];
    const throttle = new LatestValueThrottle<string>((v) => commits.push(v), 250, clock);
    throttle.push("running");
    throttle.push("50%");
    throttle.push("completed");
    throttle.flush();
    expect(commits).toEqual(["running", "completed"]);
    await clock.advance(1000);
    expect(commits).toEqual(["running", "completed"]);
  });
});
