import { DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.js";
import {
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  pollIsCurrent,
  type TimerName,
  transition,
  view,
} from "./connectionMachine.js";
import {
  type Clock,
  type ConnectionState,
  DEFAULT_CONFIG,
  DOMAIN_EVENT_TYPES,
  type HistoryPage,
  isEventType,
  type RealtimeConfig,
  type RealtimeEvent,
  realClock,
  type ResetInfo,
} from "./types.js";

/** What `unknownEvent` names when the stream skipped an event whose type is not listened to. */
export const UNLISTED_STREAM_EVENT = "(unlisted stream event)";

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
  /** An event of a type this app does not know arrived (a newer server): it is not delivered. */
  unknownEvent(type: string): void;
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

const HISTORY_PAGE = 500;
const MAX_HISTORY_PAGES = 20;

/** An HTTP failure the connection cannot fix by retrying: the session is gone. */
function isAuthFailure(error: unknown): boolean {
  return (error as { status?: number } | null)?.status === 401;
}

function parse<T>(data: string): T {
  return JSON.parse(data) as T;
}

/**
 * One browser's link to the event stream: opens it with a fresh sse_token, resumes from the
 * last cursor, retries with backoff, watches for silence, and polls history when streaming is
 * impossible, failing or switched off by the server, trying to stream again in the background.
 *
 * What to do next is decided by `transition` (connectionMachine.ts); this class runs what it
 * returns (timers, the token request, the EventSource, polls) and reports what happens as
 * events.
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

  private machine: MachineState = initialState(DEFAULT_CONFIG);
  private source: EventSourceLike | null = null;
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
  }

  get state(): ConnectionState {
    return this.current;
  }

  async start(): Promise<void> {
    this.dispatch({ type: "start" });
    try {
      await this.loadConfig();
    } catch {
      return this.dispatch({ type: "authRefused" });
    }
    this.dispatch({ type: "configured" });
  }

  /** Logout or teardown: close everything; nothing reopens. */
  stop(): void {
    this.dispatch({ type: "stop" });
  }

  /** The user asked: forget the failures and connect now. */
  reconnect(): void {
    this.dispatch({ type: "reconnect" });
  }

  offlineNow(): void {
    this.dispatch({ type: "offline" });
  }

  onlineNow(): void {
    this.dispatch({ type: "online" });
  }

  /** The network changed (Wi-Fi to cellular...): the old TCP connection may be dead. */
  networkChanged(): void {
    this.dispatch({ type: "networkChanged" });
  }

  setHidden(hidden: boolean): void {
    this.dispatch({ type: "hidden", hidden });
  }

  /** A page shows a running task: poll faster while polling. */
  setActive(active: boolean): void {
    this.dispatch({ type: "active", active });
  }

  /** Ask the server for at most one progress update per task per `ms` (0: all of them). */
  setProgressInterval(ms: number): void {
    this.dispatch({ type: "progressInterval", ms });
  }

  private dispatch(event: MachineEvent): void {
    const env: MachineEnv = {
      canStream: this.createEventSource !== null,
      backoff: this.backoff,
      hiddenCloseMs: this.hiddenCloseMs,
      backgroundRetryMs: this.backgroundRetryMs,
      now: this.clock.now(),
      random: this.random,
    };
    const { state, effects } = transition(this.machine, event, env);
    this.machine = state;
    for (const effect of effects) this.run(effect);
    // An effect's listener may have dispatched again: show the state as it is now.
    this.setState(view(this.machine, this.backoff));
  }

  private run(effect: Effect): void {
    switch (effect.do) {
      case "fetchToken":
        return void this.fetchToken(effect.epoch);
      case "openStream":
        return this.openStream(effect.epoch, effect.token);
      case "closeStream":
        return this.closeStream();
      case "schedule":
        return this.schedule(effect.timer, effect.ms);
      case "cancel":
        return this.cancel(effect.timer);
      case "poll":
        return void this.poll(effect.epoch);
      case "announceConfig":
        return this.listener.config(this.machine.config);
    }
  }

  private async fetchToken(epoch: number): Promise<void> {
    let token: string;
    try {
      token = await this.api.sseToken();
    } catch (error) {
      return this.dispatch({ type: "tokenFailed", epoch, auth: isAuthFailure(error) });
    }
    this.dispatch({ type: "tokenReceived", epoch, token });
  }

  private openStream(epoch: number, token: string): void {
    if (!this.createEventSource) return;
    const source = this.createEventSource(this.streamUrl(token));
    this.source = source;
    const on = (type: string, handle: (message: MessageEvent<string>) => void) =>
      source.addEventListener(type, (message) => {
        if (this.source !== source) return;
        this.dispatch({ type: "message", epoch });
        handle(message);
      });
    on("connection.established", (message) => {
      const fresh = this.cursor === null;
      this.track(message);
      const heartbeatSeconds = parse<{ heartbeat_seconds?: number }>(message.data).heartbeat_seconds;
      this.dispatch({ type: "established", epoch, heartbeatSeconds: heartbeatSeconds ?? null });
      if (fresh) this.listener.resync(null);
    });
    for (const type of DOMAIN_EVENT_TYPES) on(type, (message) => this.domainEvent(message));
    on("heartbeat", (message) => this.heartbeat(message));
    on("stream.reset", (message) => {
      this.track(message);
      this.listener.resync(parse<ResetInfo>(message.data));
    });
    for (const type of ["reconnect", "server.restart"]) {
      on(type, (message) => {
        this.track(message);
        const retryMs = parse<{ retry_ms?: number }>(message.data).retry_ms ?? null;
        this.dispatch({ type: "dropped", epoch, retryMs });
      });
    }
    on("auth.expiring", (message) => {
      this.track(message);
      this.dispatch({ type: "dropped", epoch, retryMs: 0 });
    });
    on("realtime.mode", (message) => {
      if (parse<{ mode?: string }>(message.data).mode !== "polling") return;
      this.dispatch({ type: "modePolling", epoch });
    });
    source.onerror = () => {
      if (this.source === source) this.dispatch({ type: "streamError", epoch });
    };
  }

  private domainEvent(message: MessageEvent<string>): void {
    this.track(message);
    this.deliver(parse<RealtimeEvent>(message.data));
  }

  /**
   * EventSource drops a message whose type nobody listens to, but still takes its id as the
   * last event id, which heartbeats (sent without one) then report: a heartbeat naming an id
   * this connection never saw means the server sent an event of a type this app does not know.
   */
  private heartbeat(message: MessageEvent<string>): void {
    if (!message.lastEventId || message.lastEventId === this.cursor) return;
    this.track(message);
    this.listener.unknownEvent(UNLISTED_STREAM_EVENT);
  }

  /** Hand on an event of a type this app knows; report any other (a newer server's). */
  private deliver(event: RealtimeEvent): void {
    if (isEventType(event.type)) this.listener.event(event);
    else this.listener.unknownEvent(event.type);
  }

  private track(message: MessageEvent<string>): void {
    if (message.lastEventId && message.lastEventId !== this.cursor) {
      this.cursor = message.lastEventId;
      this.listener.cursor(this.cursor);
    }
  }

  private async poll(epoch: number): Promise<void> {
    try {
      await this.loadConfig();
      if (!pollIsCurrent(this.machine, epoch)) return;
      this.dispatch({ type: "polledConfig", epoch });
      await this.readHistory(epoch);
      if (epoch === this.machine.epoch) this.listener.polled();
    } catch (error) {
      if (isAuthFailure(error)) this.dispatch({ type: "authRefused" });
    } finally {
      this.dispatch({ type: "pollFinished" });
    }
  }

  private async readHistory(epoch: number): Promise<void> {
    if (this.cursor === null) {
      // A client without a cursor starts live, as a fresh stream would: skip what is stored.
      let page: HistoryPage;
      do {
        page = await this.api.history(this.cursor, 1000);
        if (epoch !== this.machine.epoch) return;
        if (page.cursor) this.cursor = page.cursor;
      } while (page.has_more);
      if (this.cursor) this.listener.cursor(this.cursor);
      this.listener.resync(null);
      return;
    }
    for (let pages = 0; pages < MAX_HISTORY_PAGES; pages += 1) {
      const page = await this.api.history(this.cursor, HISTORY_PAGE);
      if (epoch !== this.machine.epoch) return;
      if (page.reset) this.listener.resync({ reason: "history_unavailable" });
      for (const event of page.events) this.deliver(event);
      if (page.cursor && page.cursor !== this.cursor) {
        this.cursor = page.cursor;
        this.listener.cursor(page.cursor);
      }
      if (!page.has_more) return;
    }
  }

  /** Reads the realtime config; only a 401 throws (a 404, an older API, keeps the defaults). */
  private async loadConfig(): Promise<void> {
    let config: RealtimeConfig;
    try {
      config = await this.api.config();
    } catch (error) {
      if (isAuthFailure(error)) throw error;
      return;
    }
    this.dispatch({ type: "configLoaded", config });
  }

  private streamUrl(token: string): string {
    const query = new URLSearchParams({ sse_token: token });
    if (this.cursor) query.set("last_event_id", this.cursor);
    const { progressIntervalMs } = this.machine;
    if (progressIntervalMs > 0) query.set("progress_interval_ms", String(progressIntervalMs));
    return `${this.options.streamUrl}?${query}`;
  }

  private closeStream(): void {
    if (this.source === null) return;
    this.source.onerror = null;
    this.source.close();
    this.source = null;
  }

  private setState(state: ConnectionState): void {
    if (JSON.stringify(state) === JSON.stringify(this.current)) return;
    this.current = state;
    this.listener.state(state);
  }

  private schedule(name: TimerName, delayMs: number): void {
    this.cancel(name);
    this.timers.set(
      name,
      this.clock.setTimeout(() => {
        this.timers.delete(name);
        this.dispatch({ type: "timer", timer: name });
      }, delayMs),
    );
  }

  private cancel(name: TimerName): void {
    if (!this.timers.has(name)) return;
    this.clock.clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }
}
