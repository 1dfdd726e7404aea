/**
 * The realtime connection's states and transitions as one pure function: `transition(state,
 * event, env)` returns the next state and the effects to run. `RealtimeConnection`
 * (connection.ts) runs the effects (timers, the sse_token request, the EventSource, polls) and
 * feeds their outcomes back as events; `view` is what the status bar shows.
 *
 *   idle ─start─▶ configuring ─sse─▶ fetchingToken ─token─▶ connecting ─established─▶ open
 *                    │                   ▲    │ failed         │ error, silence       │ dropped
 *                    │ polling, or       │    ▼                ▼                      ▼
 *                    │ no EventSource    └── backoff (retry n of 5) ◀─────────────────┘
 *                    ▼                            │ retry 5 failed
 *                 polling ◀───────────────────────┘   (also: realtime.mode while streaming)
 *                    │ failures: a stream try every 30 s ─▶ fetchingToken ─▶ … ─▶ open
 *   any ─offline, or every tab hidden 3 min─▶ paused ─online and visible─▶ resume (stream or poll)
 *   any ─stop, 401─▶ closed
 */
import { backoffDelay, type BackoffPolicy } from "./backoff.js";
import type { ConnectionState, PollingReason, RealtimeConfig } from "./types.js";

export type TimerName = "retry" | "watchdog" | "poll" | "background" | "hidden";

export type Phase =
  /** Not started yet. */
  | { name: "idle" }
  /** start(): reading the realtime config. */
  | { name: "configuring" }
  /** Waiting for an sse_token; `attempt` 0 is a first connect, n the n-th retry. */
  | { name: "fetchingToken"; attempt: number; retryAt: number | null }
  /** The EventSource is open; connection.established has not arrived. */
  | { name: "connecting"; attempt: number; retryAt: number | null }
  /** Streaming. */
  | { name: "open" }
  /** The stream dropped or a try failed: retry `attempt` starts at `retryAt`. */
  | { name: "backoff"; attempt: number; retryAt: number }
  /** Polling history, no stream try under way (in `failures` mode one is due in the background). */
  | { name: "polling" }
  /** Nothing open until the browser is online and a tab visible; `started`: start() was called. */
  | { name: "paused"; offline: boolean; hidden: boolean; started: boolean }
  /** stop() or a refused session: nothing reopens. */
  | { name: "closed"; reason: "stopped" | "auth" };

export interface MachineState {
  phase: Phase;
  /** Why history is polled instead of streamed (null: streaming); remembered while paused. */
  polling: PollingReason | null;
  /**
   * The id of what is in flight: a token request, the EventSource and a poll carry the epoch
   * they started in, and their outcomes are ignored once it moved on (stop, pause, a new try).
   */
  epoch: number;
  /** A poll is scheduled (not merely running). */
  pollTimer: boolean;
  /** Every tab is hidden: the countdown to closing the stream runs. */
  hideTimer: boolean;
  /** A page shows a running task: poll faster. */
  active: boolean;
  progressIntervalMs: number;
  config: RealtimeConfig;
  heartbeatMs: number;
}

export type MachineEvent =
  | { type: "start" }
  /** start()'s config read finished (a failure other than 401 keeps the defaults). */
  | { type: "configured" }
  | { type: "configLoaded"; config: RealtimeConfig }
  /** A 401 on the config or history: the session is gone. */
  | { type: "authRefused" }
  | { type: "stop" }
  | { type: "reconnect" }
  | { type: "offline" }
  | { type: "online" }
  | { type: "networkChanged" }
  | { type: "hidden"; hidden: boolean }
  | { type: "active"; active: boolean }
  | { type: "progressInterval"; ms: number }
  | { type: "tokenReceived"; epoch: number; token: string }
  | { type: "tokenFailed"; epoch: number; auth: boolean }
  /** Any message of the stream opened in `epoch`. */
  | { type: "message"; epoch: number }
  | { type: "established"; epoch: number; heartbeatSeconds: number | null }
  /** `reconnect`, `server.restart` or `auth.expiring`: the server ends the stream. */
  | { type: "dropped"; epoch: number; retryMs: number | null }
  | { type: "streamError"; epoch: number }
  /** A `realtime.mode` event saying `polling`. */
  | { type: "modePolling"; epoch: number }
  | { type: "timer"; timer: TimerName }
  /** A poll started in `epoch` read the config. */
  | { type: "polledConfig"; epoch: number }
  | { type: "pollFinished" };

export type Effect =
  | { do: "fetchToken"; epoch: number }
  | { do: "openStream"; epoch: number; token: string }
  | { do: "closeStream" }
  | { do: "schedule"; timer: TimerName; ms: number }
  | { do: "cancel"; timer: TimerName }
  | { do: "poll"; epoch: number }
  /** Tell the listener the config (it changed). */
  | { do: "announceConfig" };

export interface MachineEnv {
  /** Whether the browser has EventSource at all. */
  canStream: boolean;
  backoff: BackoffPolicy;
  hiddenCloseMs: number;
  backgroundRetryMs: number;
  now: number;
  random: () => number;
}

export interface Transition {
  state: MachineState;
  effects: Effect[];
}

export function initialState(config: RealtimeConfig): MachineState {
  return {
    phase: { name: "idle" },
    polling: null,
    epoch: 0,
    pollTimer: false,
    hideTimer: false,
    active: false,
    progressIntervalMs: 0,
    config,
    heartbeatMs: config.heartbeat_seconds * 1000,
  };
}

/** What the connection reports for `state`. */
export function view(state: MachineState, backoff: BackoffPolicy): ConnectionState {
  const { phase } = state;
  switch (phase.name) {
    case "idle":
    case "configuring":
      return { status: "disconnected", reason: "stopped" };
    case "closed":
      return { status: "disconnected", reason: phase.reason };
    case "paused":
      return { status: "disconnected", reason: phase.offline ? "offline" : "hidden" };
    case "open":
      return { status: "connected" };
    default:
      if (state.polling !== null) return { status: "polling", reason: state.polling };
      if (phase.name === "polling" || phase.attempt === 0) return { status: "connecting" };
      return {
        status: "reconnecting",
        attempt: phase.attempt,
        maxAttempts: backoff.maxAttempts,
        retryAt: phase.retryAt ?? 0,
      };
  }
}

/** Whether a poll started in `epoch` may still deliver. */
export function pollIsCurrent(state: MachineState, epoch: number): boolean {
  return epoch === state.epoch && state.polling !== null;
}

/** An EventSource or token request of `epoch` is the current one. */
function streamIsCurrent(state: MachineState, epoch: number): boolean {
  const name = state.phase.name;
  return epoch === state.epoch && (name === "connecting" || name === "open");
}

function isStarted(phase: Phase): boolean {
  if (phase.name === "paused") return phase.started;
  return phase.name !== "idle" && phase.name !== "closed";
}

/** Builds one transition: the state so far and the effects in order. */
class Step {
  effects: Effect[] = [];

  constructor(
    public state: MachineState,
    private readonly env: MachineEnv,
  ) {}

  set(change: Partial<MachineState>): this {
    this.state = { ...this.state, ...change };
    return this;
  }

  schedule(timer: TimerName, ms: number): this {
    this.effects.push({ do: "schedule", timer, ms });
    if (timer === "poll") this.set({ pollTimer: true });
    if (timer === "hidden") this.set({ hideTimer: true });
    return this;
  }

  cancel(...timers: TimerName[]): this {
    for (const timer of timers) {
      this.effects.push({ do: "cancel", timer });
      if (timer === "poll") this.set({ pollTimer: false });
      if (timer === "hidden") this.set({ hideTimer: false });
    }
    return this;
  }

  /** Close the stream and stop every timer but the hidden countdown; bump the epoch. */
  halt(phase: Phase): this {
    this.effects.push({ do: "closeStream" });
    return this.cancel("retry", "watchdog", "poll", "background").set({
      phase,
      epoch: this.state.epoch + 1,
    });
  }

  close(reason: "stopped" | "auth"): this {
    return this.halt({ name: "closed", reason }).cancel("hidden").set({ polling: null });
  }

  pause(change: { offline?: boolean; hidden?: boolean }): this {
    const { phase } = this.state;
    const was = phase.name === "paused" ? phase : { offline: false, hidden: false };
    return this.halt({
      name: "paused",
      offline: change.offline ?? was.offline,
      hidden: change.hidden ?? was.hidden,
      started: isStarted(phase),
    });
  }

  /** Leaving a pause, or the user asked: forget the failures and connect (or poll) now. */
  resume(): this {
    // Halted into `polling`, where server-driven polling stays; the other cases move on.
    this.halt({ name: "polling" });
    if (!this.env.canStream) return this.enterPolling("unsupported");
    if (this.state.polling === "server") return this.schedule("poll", 0);
    return this.set({ polling: null }).openStream(0, null);
  }

  /** After a pause ended: resume if started, else wait for start(). */
  unpause(): this {
    const { phase } = this.state;
    if (phase.name !== "paused" || phase.offline || phase.hidden) return this;
    return phase.started ? this.resume() : this.set({ phase: { name: "idle" } });
  }

  openStream(attempt: number, retryAt: number | null): this {
    const epoch = this.state.epoch + 1;
    this.effects.push({ do: "closeStream" });
    this.cancel("watchdog");
    this.effects.push({ do: "fetchToken", epoch });
    return this.set({ phase: { name: "fetchingToken", attempt, retryAt }, epoch });
  }

  armWatchdog(): this {
    // EventSource never notices a dead TCP connection; two silent heartbeat periods mean one.
    return this.schedule("watchdog", 2 * this.state.heartbeatMs + 1000);
  }

  enterPolling(reason: PollingReason): this {
    this.effects.push({ do: "closeStream" });
    this.cancel("watchdog", "retry").set({
      phase: { name: "polling" },
      polling: reason,
      epoch: this.state.epoch + 1,
    });
    this.schedule("poll", 0);
    return reason === "failures" ? this.scheduleBackground() : this;
  }

  /** A stream tried while polling did not get through: keep polling, try again later. */
  backToPolling(): this {
    return this.set({ phase: { name: "polling" } }).scheduleBackground();
  }

  scheduleBackground(): this {
    if (this.state.polling === "unsupported" || this.state.config.mode === "polling") return this;
    return this.schedule("background", this.env.backgroundRetryMs);
  }

  retry(attempt: number, delayMs: number): this {
    this.set({ phase: { name: "backoff", attempt, retryAt: this.env.now + delayMs } });
    return this.schedule("retry", delayMs);
  }

  /** An established stream ended: retry 1, after `retryMs` when the server said so. */
  dropped(retryMs: number | null): this {
    this.effects.push({ do: "closeStream" });
    this.cancel("watchdog");
    if (this.state.polling !== null) return this.backToPolling();
    return this.retry(1, retryMs ?? backoffDelay(1, this.env.random, this.env.backoff));
  }

  /** A try never got its stream established. */
  tryFailed(): this {
    const { phase } = this.state;
    const trying = phase.name === "fetchingToken" || phase.name === "connecting";
    const attempt = trying ? phase.attempt : 0;
    this.effects.push({ do: "closeStream" });
    this.cancel("watchdog");
    if (this.state.polling !== null) return this.backToPolling();
    if (attempt >= this.env.backoff.maxAttempts) return this.enterPolling("failures");
    return this.retry(attempt + 1, backoffDelay(attempt + 1, this.env.random, this.env.backoff));
  }

  pollInterval(): number {
    const { config, active } = this.state;
    return (active ? config.active_poll_interval_seconds : config.poll_interval_seconds) * 1000;
  }
}

/** The next state and the effects to run, for `event` in `state`. */
export function transition(state: MachineState, event: MachineEvent, env: MachineEnv): Transition {
  const step = decide(new Step(state, env), event, env);
  return { state: step.state, effects: step.effects };
}

function decide(step: Step, event: MachineEvent, env: MachineEnv): Step {
  const { state } = step;
  const { phase } = state;
  if (phase.name === "closed" && event.type !== "start" && event.type !== "configLoaded") {
    return step;
  }
  switch (event.type) {
    case "start":
      if (phase.name === "paused") step.set({ phase: { ...phase, started: true } });
      else if (phase.name === "idle" || phase.name === "closed") {
        step.set({ phase: { name: "configuring" } });
      }
      return step;
    case "configured":
      if (phase.name !== "configuring") return step;
      if (!env.canStream) return step.enterPolling("unsupported");
      if (state.config.mode === "polling") return step.enterPolling("server");
      return step.openStream(0, null);
    case "configLoaded":
      step.effects.push({ do: "announceConfig" });
      return step.set({ config: event.config, heartbeatMs: event.config.heartbeat_seconds * 1000 });
    case "authRefused":
      return step.close("auth");
    case "stop":
      return step.close("stopped");
    case "reconnect":
      if (!isStarted(phase) || (phase.name === "paused" && phase.offline)) return step;
      return step.resume();
    case "offline":
      return step.pause({ offline: true });
    case "online":
      if (phase.name !== "paused" || !phase.offline) return step;
      return step.set({ phase: { ...phase, offline: false } }).unpause();
    case "networkChanged":
      // The old TCP connection may be dead; a poll needs no new one.
      if (!isStarted(phase) || phase.name === "paused" || phase.name === "configuring") return step;
      if (state.polling === null || phase.name === "connecting") return step.resume();
      return step;
    case "hidden":
      if (event.hidden) {
        if (state.hideTimer || (phase.name === "paused" && phase.hidden)) return step;
        return step.schedule("hidden", env.hiddenCloseMs);
      }
      step.cancel("hidden");
      if (phase.name !== "paused" || !phase.hidden) return step;
      return step.set({ phase: { ...phase, hidden: false } }).unpause();
    case "active":
      if (event.active === state.active) return step;
      step.set({ active: event.active });
      if (state.polling === null || !state.pollTimer) return step;
      return step.schedule("poll", step.pollInterval());
    case "progressInterval":
      if (event.ms === state.progressIntervalMs) return step;
      step.set({ progressIntervalMs: event.ms });
      return phase.name === "open" ? step.resume() : step;
    case "tokenReceived":
      if (phase.name !== "fetchingToken" || event.epoch !== state.epoch) return step;
      step.set({ phase: { ...phase, name: "connecting" } });
      step.effects.push({ do: "openStream", epoch: event.epoch, token: event.token });
      return step.armWatchdog();
    case "tokenFailed":
      if (phase.name !== "fetchingToken" || event.epoch !== state.epoch) return step;
      return event.auth ? step.close("auth") : step.tryFailed();
    case "message":
      return streamIsCurrent(state, event.epoch) ? step.armWatchdog() : step;
    case "established":
      if (!streamIsCurrent(state, event.epoch)) return step;
      if (event.heartbeatSeconds) step.set({ heartbeatMs: event.heartbeatSeconds * 1000 });
      step.set({ phase: { name: "open" } });
      if (state.polling !== null) step.set({ polling: null }).cancel("poll", "background");
      return step.armWatchdog();
    case "dropped":
      return streamIsCurrent(state, event.epoch) ? step.dropped(event.retryMs) : step;
    case "streamError":
      if (!streamIsCurrent(state, event.epoch)) return step;
      return phase.name === "open" ? step.dropped(null) : step.tryFailed();
    case "modePolling":
      if (!streamIsCurrent(state, event.epoch)) return step;
      step.set({ config: { ...state.config, mode: "polling" } });
      step.effects.push({ do: "announceConfig" });
      return step.enterPolling("server");
    case "timer":
      return onTimer(step, event.timer);
    case "polledConfig":
      if (!pollIsCurrent(state, event.epoch)) return step;
      if (state.config.mode === "sse" && state.polling === "server") {
        return step.set({ polling: "failures" }).openStream(0, null);
      }
      if (state.config.mode === "polling" && state.polling === "failures") {
        return step.cancel("background").set({ polling: "server" });
      }
      return step;
    case "pollFinished":
      if (state.polling === null || state.pollTimer || phase.name === "paused") return step;
      return step.schedule("poll", step.pollInterval());
  }
}

function onTimer(step: Step, timer: TimerName): Step {
  const { phase } = step.state;
  switch (timer) {
    case "retry":
      return phase.name === "backoff" ? step.openStream(phase.attempt, phase.retryAt) : step;
    case "background":
      return phase.name === "polling" ? step.openStream(0, null) : step;
    case "watchdog":
      if (phase.name === "open") return step.dropped(0);
      return phase.name === "connecting" ? step.tryFailed() : step;
    case "poll":
      step.set({ pollTimer: false });
      step.effects.push({ do: "poll", epoch: step.state.epoch });
      return step;
    case "hidden":
      return step.set({ hideTimer: false }).pause({ hidden: true });
  }
}
