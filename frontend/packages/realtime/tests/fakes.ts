/** Test doubles for the browser and the API: timers, EventSource, BroadcastChannel, Web Locks. */
import type { EventSourceLike, RealtimeApi } from "../src/client/connection.js";
import type { ChannelLike, LockManagerLike } from "../src/client/leader.js";
import type { Clock, HistoryPage, RealtimeConfig } from "../src/client/types.js";
import { DEFAULT_CONFIG } from "../src/client/types.js";

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await Promise.resolve();
}

export class FakeClock implements Clock {
  private nowMs = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.nowMs;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Delays of the timers now pending, from now. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.nowMs).sort((a, b) => a - b);
  }

  /** Move time forward, running due timers in order (and the promises they start). */
  async advance(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= target)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.nowMs = due[1].at;
      due[1].callback();
      await settle();
    }
    this.nowMs = target;
    await settle();
  }
}

export class FakeEventSource implements EventSourceLike {
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  private lastEventId = "";
  private readonly listeners = new Map<string, ((message: MessageEvent<string>) => void)[]>();

  constructor(readonly url: string) {}

  addEventListener(type: string, listener: (message: MessageEvent<string>) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  get query(): URLSearchParams {
    return new URL(this.url, "http://test").searchParams;
  }

  /**
   * The server sends a message. As in EventSource, an `id` becomes the source's last event id,
   * which every later message reports until another id comes, whether or not anyone listens
   * to this message's type.
   */
  emit(type: string, data: unknown, id = ""): void {
    if (id) this.lastEventId = id;
    const message = { data: JSON.stringify(data), lastEventId: this.lastEventId } as MessageEvent<string>;
    for (const listener of this.listeners.get(type) ?? []) listener(message);
  }

  established(id = ""): void {
    this.emit("connection.established", { connection_id: "c", heartbeat_seconds: 30 }, id);
  }

  fail(): void {
    this.onerror?.(new Event("error"));
  }
}

export class FakeApi implements RealtimeApi {
  tokens = 0;
  tokenFailures = 0;
  tokenStatus = 0;
  config_: RealtimeConfig = { ...DEFAULT_CONFIG };
  configStatus = 0;
  pages: HistoryPage[] = [];
  historyCalls: (string | null)[] = [];

  async sseToken(): Promise<string> {
    this.tokens += 1;
    if (this.tokenFailures > 0) {
      this.tokenFailures -= 1;
      throw Object.assign(new Error("token"), { status: this.tokenStatus });
    }
    return `token-${this.tokens}`;
  }

  async history(sinceId: string | null): Promise<HistoryPage> {
    this.historyCalls.push(sinceId);
    return this.pages.shift() ?? { events: [], cursor: sinceId ?? "c0", reset: false, has_more: false };
  }

  async config(): Promise<RealtimeConfig> {
    if (this.configStatus) throw Object.assign(new Error("config"), { status: this.configStatus });
    return this.config_;
  }
}

/** BroadcastChannel: every channel of a bus hears the others (never itself). */
export class FakeChannelBus {
  private readonly channels = new Set<FakeChannel>();

  open(): FakeChannel {
    const channel = new FakeChannel(this);
    this.channels.add(channel);
    return channel;
  }

  deliver(from: FakeChannel, message: unknown): void {
    for (const channel of this.channels) {
      if (channel !== from) channel.onmessage?.({ data: structuredClone(message) } as MessageEvent);
    }
  }

  remove(channel: FakeChannel): void {
    this.channels.delete(channel);
  }
}

export class FakeChannel implements ChannelLike {
  onmessage: ((event: MessageEvent) => void) | null = null;

  constructor(private readonly bus: FakeChannelBus) {}

  postMessage(message: unknown): void {
    this.bus.deliver(this, message);
  }

  close(): void {
    this.bus.remove(this);
  }
}

/** Web Locks with exclusive locks granted in request order. */
export class FakeLocks implements LockManagerLike {
  private readonly held = new Set<string>();
  private readonly queues = new Map<string, (() => void)[]>();

  async request(name: string, callback: (lock: unknown) => Promise<void>): Promise<unknown> {
    if (this.held.has(name)) {
      await new Promise<void>((resolve) => {
        this.queues.set(name, [...(this.queues.get(name) ?? []), resolve]);
      });
    }
    this.held.add(name);
    try {
      return await callback({ name });
    } finally {
      this.held.delete(name);
      this.queues.get(name)?.shift()?.();
    }
  }
}

export { makeEvent } from "../src/testing.js";
