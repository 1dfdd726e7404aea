import type { ConnectionListener } from "./connection.js";
import { EventDeduper } from "./dedupe.js";
import { type ChannelLike, LeaderElection, type LockManagerLike } from "./leader.js";
import {
  type ConnectionState,
  DEFAULT_CONFIG,
  type RealtimeConfig,
  type RealtimeEvent,
  type ResetInfo,
} from "./types.js";

/** What a leader tab's connection must offer (RealtimeConnection does). */
export interface ConnectionLike {
  start(): Promise<void>;
  stop(): void;
  reconnect(): void;
  offlineNow(): void;
  onlineNow(): void;
  networkChanged(): void;
  setHidden(hidden: boolean): void;
  setActive(active: boolean): void;
  setProgressInterval(ms: number): void;
}

export type ConnectionFactory = (
  cursor: string | null,
  listener: ConnectionListener,
) => ConnectionLike;

/** Messages between the tabs of one user. */
export type TabMessage =
  | { kind: "event"; event: RealtimeEvent }
  | { kind: "cursor"; cursor: string }
  | { kind: "state"; state: ConnectionState; retries: number; config: RealtimeConfig }
  | { kind: "resync"; reset: ResetInfo | null }
  | { kind: "polled" }
  | { kind: "unknown"; type: string }
  | { kind: "hello"; tabId: string; visible: boolean; active: boolean }
  | { kind: "tab"; tabId: string; visible: boolean; active: boolean }
  | { kind: "bye"; tabId: string }
  | { kind: "leader" }
  | { kind: "reconnect" };

export interface HubSnapshot {
  state: ConnectionState;
  role: "leader" | "follower";
  /** Reconnection attempts since this page loaded (the leader's count). */
  retries: number;
  /** Distinct events this tab received, and repeats it dropped. */
  received: number;
  duplicates: number;
  /** Events of types this app does not know (a newer server), per type; not delivered. */
  unknownEvents: Readonly<Record<string, number>>;
  config: RealtimeConfig;
}

export interface HubOptions {
  tabId: string;
  /** Lock and channel name; one per user. */
  name: string;
  channel: ChannelLike | null;
  locks: LockManagerLike | null;
  createConnection: ConnectionFactory;
  visible: boolean;
}

type Listener<T> = (value: T) => void;

/** How many task events `taskEvents` can look back over. */
const RECENT_TASK_EVENTS = 500;

/**
 * A tab's view of the realtime link. The leader tab owns the one connection and relays what it
 * receives over BroadcastChannel; followers mirror it. Every tab deduplicates by event_id, so a
 * resume, a stream.reset or a change of leader never shows an event twice.
 */
export class RealtimeHub {
  private snapshot: HubSnapshot = {
    state: { status: "connecting" },
    role: "follower",
    retries: 0,
    received: 0,
    duplicates: 0,
    unknownEvents: {},
    config: DEFAULT_CONFIG,
  };
  private readonly deduper = new EventDeduper();
  private readonly election: LeaderElection;
  private readonly tabs = new Map<string, { visible: boolean; active: boolean }>();
  private readonly activeKeys = new Set<string>();
  private readonly snapshotListeners = new Set<() => void>();
  private readonly eventListeners = new Set<Listener<RealtimeEvent>>();
  private readonly resyncListeners = new Set<Listener<ResetInfo | null>>();
  private readonly polledListeners = new Set<() => void>();
  private connection: ConnectionLike | null = null;
  private cursor: string | null = null;
  private visible: boolean;
  private progressIntervalMs = 0;
  private offlineNow = false;
  private stopped = false;
  /** Ids of received events, newest last (bounded): diagnostics for tests and support. */
  readonly receivedIds: string[] = [];
  /** Task events received lately, oldest first (bounded): see `taskEvents`. */
  private readonly recentTaskEvents: RealtimeEvent[] = [];

  constructor(private readonly options: HubOptions) {
    this.visible = options.visible;
    this.election = new LeaderElection(options.name, options.locks, () => this.lead());
    if (options.channel) options.channel.onmessage = (message) => this.onTabMessage(message.data);
  }

  start(): void {
    this.election.start();
    if (this.snapshot.role === "follower") this.post(this.tabMessage("hello"));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.connection?.stop();
    this.connection = null;
    this.post({ kind: "bye", tabId: this.options.tabId });
    this.election.stop();
    this.options.channel?.close();
  }

  getSnapshot = (): HubSnapshot => this.snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  };

  onEvent(listener: Listener<RealtimeEvent>): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /**
   * The events of `taskId` received lately, oldest first. A view that starts watching a task
   * after its first events arrived (the stream can be faster than the request that started
   * it) replays these, so it still learns the task's name and start.
   */
  taskEvents(taskId: string): RealtimeEvent[] {
    return this.recentTaskEvents.filter((event) => event.task_id === taskId);
  }

  onResync(listener: Listener<ResetInfo | null>): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  onPolled(listener: () => void): () => void {
    this.polledListeners.add(listener);
    return () => this.polledListeners.delete(listener);
  }

  reconnect(): void {
    if (this.connection) this.connection.reconnect();
    else this.post({ kind: "reconnect" });
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    this.tabChanged();
  }

  /** A component shows a running task (key: anything unique to it) or stopped showing one. */
  setActive(key: string, active: boolean): void {
    if (active) this.activeKeys.add(key);
    else this.activeKeys.delete(key);
    this.tabChanged();
  }

  online(): void {
    this.offlineNow = false;
    this.connection?.onlineNow();
  }

  offline(): void {
    this.offlineNow = true;
    this.connection?.offlineNow();
  }

  networkChanged(): void {
    this.connection?.networkChanged();
  }

  setProgressInterval(ms: number): void {
    this.progressIntervalMs = ms;
    this.connection?.setProgressInterval(ms);
  }

  private lead(): void {
    if (this.stopped) return;
    this.update({ role: "leader" });
    this.post({ kind: "leader" });
    const listener: ConnectionListener = {
      event: (event) => {
        this.post({ kind: "event", event });
        this.deliver(event);
      },
      cursor: (cursor) => {
        this.cursor = cursor;
        this.post({ kind: "cursor", cursor });
      },
      state: (state) => {
        const retries = this.snapshot.retries + (state.status === "reconnecting" ? 1 : 0);
        this.update({ state, retries });
        this.postState();
      },
      resync: (reset) => {
        this.post({ kind: "resync", reset });
        this.emit(this.resyncListeners, reset);
      },
      polled: () => {
        this.post({ kind: "polled" });
        for (const listener of this.polledListeners) listener();
      },
      config: (config) => {
        this.update({ config });
        this.postState();
      },
      unknownEvent: (type) => {
        this.post({ kind: "unknown", type });
        this.unknownEvent(type);
      },
    };
    this.connection = this.options.createConnection(this.cursor, listener);
    this.connection.setProgressInterval(this.progressIntervalMs);
    this.applyTabs();
    if (this.offlineNow) this.connection.offlineNow();
    void this.connection.start();
  }

  private onTabMessage(message: TabMessage): void {
    if (this.stopped) return;
    switch (message.kind) {
      case "event":
        return this.deliver(message.event);
      case "cursor":
        this.cursor = message.cursor;
        return;
      case "state":
        if (this.connection) return;
        return this.update({
          state: message.state,
          retries: message.retries,
          config: message.config,
        });
      case "resync":
        return this.emit(this.resyncListeners, message.reset);
      case "polled":
        for (const listener of this.polledListeners) listener();
        return;
      case "unknown":
        return this.unknownEvent(message.type);
      case "hello":
      case "tab":
        this.tabs.set(message.tabId, { visible: message.visible, active: message.active });
        if (message.kind === "hello") this.postState();
        return this.applyTabs();
      case "bye":
        this.tabs.delete(message.tabId);
        return this.applyTabs();
      case "leader":
        this.post(this.tabMessage("tab"));
        return;
      case "reconnect":
        this.connection?.reconnect();
        return;
    }
  }

  private deliver(event: RealtimeEvent): void {
    if (!this.deduper.accept(event.event_id)) {
      this.update({ duplicates: this.snapshot.duplicates + 1 });
      return;
    }
    this.receivedIds.push(event.event_id);
    if (this.receivedIds.length > 10_000) this.receivedIds.shift();
    if (event.task_id) {
      this.recentTaskEvents.push(event);
      if (this.recentTaskEvents.length > RECENT_TASK_EVENTS) this.recentTaskEvents.shift();
    }
    this.update({ received: this.snapshot.received + 1 });
    this.emit(this.eventListeners, event);
  }

  /** Counted, and said once per type: this bundle is older than the server, a reload helps. */
  private unknownEvent(type: string): void {
    const seen = this.snapshot.unknownEvents[type] ?? 0;
    if (seen === 0) {
      console.warn(`realtime: ignoring events of unknown type "${type}"; reload to update the app`);
    }
    this.update({ unknownEvents: { ...this.snapshot.unknownEvents, [type]: seen + 1 } });
  }

  private tabChanged(): void {
    if (this.connection) this.applyTabs();
    else this.post(this.tabMessage("tab"));
  }

  /** The stream closes only when every tab is hidden; polls fast when any shows a running task. */
  private applyTabs(): void {
    if (!this.connection) return;
    const tabs = [...this.tabs.values()];
    this.connection.setHidden(!this.visible && tabs.every((tab) => !tab.visible));
    this.connection.setActive(this.activeKeys.size > 0 || tabs.some((tab) => tab.active));
  }

  private tabMessage(kind: "hello" | "tab"): TabMessage {
    return {
      kind,
      tabId: this.options.tabId,
      visible: this.visible,
      active: this.activeKeys.size > 0,
    };
  }

  private postState(): void {
    if (!this.connection) return;
    const { state, retries, config } = this.snapshot;
    this.post({ kind: "state", state, retries, config });
  }

  private post(message: TabMessage): void {
    this.options.channel?.postMessage(message);
  }

  private update(change: Partial<HubSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...change };
    for (const listener of this.snapshotListeners) listener();
  }

  private emit<T>(listeners: Set<Listener<T>>, value: T): void {
    for (const listener of listeners) listener(value);
  }
}
