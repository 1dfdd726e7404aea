/** Reconnection delays: exponential with "equal jitter" (half fixed, half random), capped. */

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay. */
  baseMs: number;
  factor: number;
  /** No delay ever exceeds this. */
  maxMs: number;
  /** Failed retries after which the client falls back to polling. */
  maxAttempts: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: 1000,
  factor: 2,
  maxMs: 30_000,
  maxAttempts: 5,
};

/** The upper bound of retry number `attempt` (1-based). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  return Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.max(0, attempt - 1));
}

/**
 * Delay before retry `attempt`: between half the ceiling and the ceiling, so that many
 * clients dropped at once (a server restart) do not come back in step, yet none retries at 0.
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
