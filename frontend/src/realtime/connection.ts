import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff";
import {
  type Clock,
  type ConnectionState,
  DEFAULT_CONFIG,
  DOMAIN_EVENT_TYPES,
  type HistoryPage,
  type PollingReason,
  type RealtimeConfig,
  type RealtimeEvent,
  realClock,
  type ResetInfo,
} from "./types";

/** The HTTP calls the connection needs; they throw an error with `status` on HTTP failures. */
export interface RealtimeApi {
  sseToken(): Promise<string>;
  history(sinceId: string | null, limit: number): Promise<HistoryPage>;
  config(): Promise<RealtimeConfig>;
}

/** The part of the browser's EventSource the connection uses. */
export interface EventSourceLike {
  addEventListener(type: string, listener: (message: MessageEvent<string>) => void): void;
  onerror: ((event: Event) => void) | null;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

/** What the connection reports. Events are not deduplicated here (the hub does it). */
export interface ConnectionListener {
  event(event: RealtimeEvent): void;
  state(state: ConnectionState): void;
  cursor(cursor: string): void;
  /** Derived state must be rebuilt from snapshots (a fresh stream, or history was lost). */
  resync(reset: ResetInfo | null): void;
  /** A poll finished: refetch task snapshots the page shows. */
  polled(): void;
  config(config: RealtimeConfig): void;
}

export interface ConnectionOptions {
  api: RealtimeApi;
  /** Path or URL of `GET /api/v1/events/stream`. */
  streamUrl: string;
  /** null where the browser has no EventSource: the connection only polls. */
  createEventSource: EventSourceFactory | null;
  listener: ConnectionListener;
  cursor?: string | null;
  clock?: Clock;
  random?: () => number;
  backoff?: BackoffPolicy;
  /** A page hidden this long has its stream closed until it is visible again. */
  hiddenCloseMs?: number;
  /** While polling after failures, how often a stream is tried again in the background. */
  backgroundRetryMs?: number;
}

type TimerName = "retry" | "watchdog" | "poll" | "background" | "hidden";

const HISTORY_PAGE = 500;
const MAX_HISTORY_PAGES = 20;

/** An HTTP failure the connection cannot fix by retrying: the session is gone. */
function isAuthFailure(error: unknown): boolean {
  return (error as { status?: number } | null)?.status === 401;
}

function isNotFound(error: unknown): boolean {
  return (error as { status?: number } | null)?.status === 404;
}

function parse<T>(data: string): T {
  return JSON.parse(data) as T;
}

/**
 * One browser's link to the event stream: opens it with a fresh sse_token, resumes from the
 * last cursor, retries with backoff, watches for silence, and polls history when streaming is
 * impossible, failing or switched off by the server, trying to stream again in the background.
 */
export class RealtimeConnection {
  private readonly api: RealtimeApi;
  private readonly listener: ConnectionListener;
  private readonly createEventSource: EventSourceFactory | null;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: BackoffPolicy;
  private readonly hiddenCloseMs: number;
  private readonly backgroundRetryMs: number;
  private readonly timers = new Map<TimerName, unknown>();

  private source: EventSourceLike | null = null;
  private sourceEstablished = false;
  /** Bumped whenever a pending token request or stream must be ignored. */
  private generation = 0;
  private attempt = 0;
  private polling: PollingReason | null = null;
  private started = false;
  private offline = false;
  private hiddenClosed = false;
  private active = false;
  private progressIntervalMs = 0;
  private heartbeatMs: number;
  private config: RealtimeConfig = DEFAULT_CONFIG;
  private current: ConnectionState = { status: "disconnected", reason: "stopped" };
  cursor: string | null;

  constructor(private readonly options: ConnectionOptions) {
    this.api = options.api;
    this.listener = options.listener;
    this.createEventSource = options.createEventSource;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.hiddenCloseMs = options.hiddenCloseMs ?? 3 * 60_000;
    this.backgroundRetryMs = options.backgroundRetryMs ?? 30_000;
    this.cursor = options.cursor ?? null;
    this.heartbeatMs = DEFAULT_CONFIG.heartbeat_seconds * 1000;
  }

  get state(): ConnectionState {
    return this.current;
  }

  async start(): Promise<void> {
    this.started = true;
    try {
      await this.loadConfig();
    } catch (error) {
      if (isAuthFailure(error)) return this.authLost();
    }
    if (!this.started || this.offline) return;
    if (!this.createEventSource) return this.enterPolling("unsupported");
    if (this.config.mode === "polling") return this.enterPolling("server");
    await this.openStream();
  }

  /** Logout or teardown: close everything; nothing reopens. */
  stop(): void {
    this.started = false;
    this.generation += 1;
    this.clearTimers();
    this.closeSource();
    this.polling = null;
    this.setState({ status: "disconnected", reason: "stopped" });
  }

  /** The user asked: forget the failures and connect now. */
  reconnect(): void {
    if (!this.started || this.offline) return;
    this.hiddenClosed = false;
    this.resume();
  }

  offlineNow(): void {
    this.offline = true;
    this.generation += 1;
    this.clearTimers();
    this.closeSource();
    this.setState({ status: "disconnected", reason: "offline" });
  }

  onlineNow(): void {
    if (!this.offline) return;
    this.offline = false;
    if (this.started && !this.hiddenClosed) this.resume();
  }

  /** The network changed (Wi-Fi to cellular...): the old TCP connection may be dead. */
  networkChanged(): void {
    if (!this.started || this.offline || this.hiddenClosed) return;
    if (this.polling === null || this.source !== null) this.resume();
  }

  setHidden(hidden: boolean): void {
    if (hidden) {
      if (this.timers.has("hidden") || this.hiddenClosed) return;
      this.schedule("hidden", this.hiddenCloseMs, () => {
        this.hiddenClosed = true;
        this.generation += 1;
        this.clearTimers();
        this.closeSource();
        this.setState({ status: "disconnected", reason: "hidden" });
      });
      return;
    }
    this.cancel("hidden");
    if (this.hiddenClosed) {
      this.hiddenClosed = false;
      if (this.started && !this.offline) this.resume();
    }
  }

  /** A page shows a running task: poll faster while polling. */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (this.polling !== null && this.timers.has("poll")) this.schedulePoll(this.pollIntervalMs());
  }

  /** Ask the server for at most one progress update per task per `ms` (0: all of them). */
  setProgressInterval(ms: number): void {
    if (ms === this.progressIntervalMs) return;
    this.progressIntervalMs = ms;
    if (this.source !== null && this.sourceEstablished) this.resume();
  }

  private resume(): void {
    this.generation += 1;
    this.clearTimers();
    this.closeSource();
    this.attempt = 0;
    if (!this.createEventSource) return this.enterPolling("unsupported");
    if (this.polling === "server") {
      this.schedulePoll(0);
      return;
    }
    this.polling = null;
    void this.openStream();
  }

  private async openStream(): Promise<void> {
    if (!this.started || this.offline || this.hiddenClosed || !this.createEventSource) return;
    this.closeSource();
    const generation = ++this.generation;
    if (this.polling === null && this.attempt === 0) this.setState({ status: "connecting" });
    let token: string;
    try {
      token = await this.api.sseToken();
    } catch (error) {
      if (generation !== this.generation) return;
      if (isAuthFailure(error)) return this.authLost();
      return this.tryFailed();
    }
    if (generation !== this.generation) return;
    const source = this.createEventSource(this.streamUrl(token));
    this.source = source;
    this.sourceEstablished = false;
    const on = (type: string, handle: (message: MessageEvent<string>) => void) =>
      source.addEventListener(type, (message) => {
        if (this.source !== source) return;
        this.armWatchdog();
        handle(message);
      });
    on("connection.established", (message) => this.established(message));
    for (const type of DOMAIN_EVENT_TYPES) on(type, (message) => this.domainEvent(message));
    on("heartbeat", () => undefined);
    on("stream.reset", (message) => {
      this.track(message);
      this.listener.resync(parse<ResetInfo>(message.data));
    });
    for (const type of ["reconnect", "server.restart"]) {
      on(type, (message) => {
        this.track(message);
        this.dropped(parse<{ retry_ms?: number }>(message.data).retry_ms ?? null);
      });
    }
    on("auth.expiring", (message) => {
      this.track(message);
      this.dropped(0);
    });
    on("realtime.mode", (message) => {
      if (parse<{ mode?: string }>(message.data).mode !== "polling") return;
      this.config = { ...this.config, mode: "polling" };
      this.listener.config(this.config);
      this.enterPolling("server");
    });
    source.onerror = () => {
      if (this.source !== source) return;
      if (this.sourceEstablished) this.dropped(null);
      else this.tryFailed();
    };
    this.armWatchdog();
  }

  private established(message: MessageEvent<string>): void {
    const fresh = this.cursor === null;
    this.track(message);
    const data = parse<{ heartbeat_seconds?: number }>(message.data);
    if (data.heartbeat_seconds) this.heartbeatMs = data.heartbeat_seconds * 1000;
    this.sourceEstablished = true;
    this.attempt = 0;
    if (this.polling !== null) {
      this.polling = null;
      this.cancel("poll");
      this.cancel("background");
    }
    this.armWatchdog();
    this.setState({ status: "connected" });
    if (fresh) this.listener.resync(null);
  }

  private domainEvent(message: MessageEvent<string>): void {
    this.track(message);
    this.listener.event(parse<RealtimeEvent>(message.data));
  }

  private track(message: MessageEvent<string>): void {
    if (message.lastEventId && message.lastEventId !== this.cursor) {
      this.cursor = message.lastEventId;
      this.listener.cursor(this.cursor);
    }
  }

  /** An established stream ended: retry 1, after `retryMs` when the server said so. */
  private dropped(retryMs: number | null): void {
    this.closeSource();
    if (this.polling !== null) return this.scheduleBackground();
    this.attempt = 1;
    this.scheduleRetry(retryMs ?? backoffDelay(1, this.random, this.backoff));
  }

  /** A try never got its stream established. */
  private tryFailed(): void {
    this.closeSource();
    if (this.polling !== null) return this.scheduleBackground();
    if (this.attempt >= this.backoff.maxAttempts) return this.enterPolling("failures");
    this.attempt += 1;
    this.scheduleRetry(backoffDelay(this.attempt, this.random, this.backoff));
  }

  private scheduleRetry(delayMs: number): void {
    this.setState({
      status: "reconnecting",
      attempt: this.attempt,
      maxAttempts: this.backoff.maxAttempts,
      retryAt: this.clock.now() + delayMs,
    });
    this.schedule("retry", delayMs, () => void this.openStream());
  }

  private scheduleBackground(): void {
    if (this.polling === "unsupported" || this.config.mode === "polling") return;
    this.schedule("background", this.backgroundRetryMs, () => void this.openStream());
  }

  private armWatchdog(): void {
    // EventSource never notices a dead TCP connection; two silent heartbeat periods mean one.
    this.schedule("watchdog", 2 * this.heartbeatMs + 1000, () => {
      if (this.source === null) return;
      if (this.sourceEstablished) this.dropped(0);
      else this.tryFailed();
    });
  }

  private enterPolling(reason: PollingReason): void {
    this.generation += 1;
    this.closeSource();
    this.cancel("retry");
    this.attempt = 0;
    this.polling = reason;
    this.setState({ status: "polling", reason });
    this.schedulePoll(0);
    if (reason === "failures") this.scheduleBackground();
  }

  private schedulePoll(delayMs: number): void {
    this.schedule("poll", delayMs, () => void this.poll());
  }

  private pollIntervalMs(): number {
    const seconds = this.active
      ? this.config.active_poll_interval_seconds
      : this.config.poll_interval_seconds;
    return seconds * 1000;
  }

  private async poll(): Promise<void> {
    const generation = this.generation;
    try {
      await this.loadConfig();
      if (generation !== this.generation || this.polling === null) return;
      if (this.config.mode === "sse" && this.polling === "server") {
        this.polling = "failures";
        this.setState({ status: "polling", reason: "failures" });
        void this.openStream();
      } else if (this.config.mode === "polling" && this.polling === "failures") {
        this.cancel("background");
        this.polling = "server";
        this.setState({ status: "polling", reason: "server" });
      }
      await this.readHistory(generation);
      if (generation === this.generation) this.listener.polled();
    } catch (error) {
      if (isAuthFailure(error)) return this.authLost();
    } finally {
      if (this.polling !== null && this.started && !this.offline && !this.hiddenClosed) {
        if (!this.timers.has("poll")) this.schedulePoll(this.pollIntervalMs());
      }
    }
  }

  private async readHistory(generation: number): Promise<void> {
    if (this.cursor === null) {
      // A client without a cursor starts live, as a fresh stream would: skip what is stored.
      let page: HistoryPage;
      do {
        page = await this.api.history(this.cursor, 1000);
        if (generation !== this.generation) return;
        if (page.cursor) this.cursor = page.cursor;
      } while (page.has_more);
      if (this.cursor) this.listener.cursor(this.cursor);
      this.listener.resync(null);
      return;
    }
    for (let pages = 0; pages < MAX_HISTORY_PAGES; pages += 1) {
      const page = await this.api.history(this.cursor, HISTORY_PAGE);
      if (generation !== this.generation) return;
      if (page.reset) this.listener.resync({ reason: "history_unavailable" });
      for (const event of page.events) this.listener.event(event);
      if (page.cursor && page.cursor !== this.cursor) {
        this.cursor = page.cursor;
        this.listener.cursor(page.cursor);
      }
      if (!page.has_more) return;
    }
  }

  private async loadConfig(): Promise<void> {
    try {
      this.config = await this.api.config();
      this.heartbeatMs = this.config.heartbeat_seconds * 1000;
      this.listener.config(this.config);
    } catch (error) {
      if (isAuthFailure(error)) throw error;
      if (!isNotFound(error)) return;
    }
  }

  private authLost(): void {
    this.started = false;
    this.generation += 1;
    this.clearTimers();
    this.closeSource();
    this.setState({ status: "disconnected", reason: "auth" });
  }

  private streamUrl(token: string): string {
    const query = new URLSearchParams({ sse_token: token });
    if (this.cursor) query.set("last_event_id", this.cursor);
    if (this.progressIntervalMs > 0) {
      query.set("progress_interval_ms", String(this.progressIntervalMs));
    }
    return `${this.options.streamUrl}?${query}`;
  }

  private closeSource(): void {
    this.cancel("watchdog");
    if (this.source === null) return;
    this.source.onerror = null;
    this.source.close();
    this.source = null;
    this.sourceEstablished = false;
  }

  private setState(state: ConnectionState): void {
    if (JSON.stringify(state) === JSON.stringify(this.current)) return;
    this.current = state;
    this.listener.state(state);
  }

  private schedule(name: TimerName, delayMs: number, run: () => void): void {
    this.cancel(name);
    this.timers.set(
      name,
      this.clock.setTimeout(() => {
        this.timers.delete(name);
        run();
      }, delayMs),
    );
  }

  private cancel(name: TimerName): void {
    if (!this.timers.has(name)) return;
    this.clock.clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  private clearTimers(): void {
    for (const name of [...this.timers.keys()]) this.cancel(name);
  }
}
