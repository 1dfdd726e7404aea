/** The parts of the Web Locks API and of BroadcastChannel that tab sharing uses. */
export interface LockManagerLike {
  request(name: string, callback: (lock: unknown) => Promise<void>): Promise<unknown>;
}

export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

/**
 * Leader election through an exclusive Web Lock: the first tab holds it for its lifetime, the
 * others queue; when the leader closes (or its tab dies) the browser grants it to the next.
 * Without Web Locks every tab leads (one connection per tab, still within the server's limit
 * for two tabs).
 */
export class LeaderElection {
  private release: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly locks: LockManagerLike | null,
    private readonly onLeader: () => void,
  ) {}

  start(): void {
    if (!this.locks) {
      this.onLeader();
      return;
    }
    this.locks
      .request(
        this.name,
        () =>
          new Promise<void>((resolve) => {
            if (this.stopped) return resolve();
            this.release = resolve;
            this.onLeader();
          }),
      )
      .catch(() => undefined);
  }

  /** Give the lock up (or leave the queue): the next tab leads. */
  stop(): void {
    this.stopped = true;
    this.release?.();
    this.release = null;
  }
}
