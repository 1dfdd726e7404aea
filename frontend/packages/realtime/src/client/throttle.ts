import type { Clock } from "./types.js";

/**
 * Hands the latest pushed value to `commit` at most once per `intervalMs`: the first value at
 * once, later ones coalesced into one trailing commit. Progress can arrive far faster than a
 * person can read it; React should not render each event.
 */
export class LatestValueThrottle<T> {
  private lastCommitAt = Number.NEGATIVE_INFINITY;
  private pending: { value: T } | null = null;
  private timer: unknown = null;

  constructor(
    private readonly commit: (value: T) => void,
    private readonly intervalMs: number,
    private readonly clock: Clock,
  ) {}

  push(value: T): void {
    this.pending = { value };
    if (this.timer !== null) return;
    const wait = this.lastCommitAt + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      this.flush();
    } else {
      this.timer = this.clock.setTimeout(() => {
        this.timer = null;
        this.flush();
      }, wait);
    }
  }

  /** Commit the pending value now (a terminal state must not wait). */
  flush(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending === null) return;
    const { value } = this.pending;
    this.pending = null;
    this.lastCommitAt = this.clock.now();
    this.commit(value);
  }

  cancel(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }
}
