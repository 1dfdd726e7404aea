import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF } from "../src/client/backoff.js";
import {
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  type Phase,
  transition,
  view,
} from "../src/client/connectionMachine.js";
import { DEFAULT_CONFIG } from "../src/client/types.js";

const env: MachineEnv = {
  canStream: true,
  backoff: DEFAULT_BACKOFF,
  hiddenCloseMs: 180_000,
  backgroundRetryMs: 30_000,
  now: 1_000,
  random: () => 0.5,
};

const EPOCH = 5;

function at(phase: Phase, change: Partial<MachineState> = {}): MachineState {
  return { ...initialState(DEFAULT_CONFIG), phase, epoch: EPOCH, ...change };
}

/** Runs `events` from `state`: the final state and every effect, in order. */
function run(state: MachineState, events: MachineEvent[], environment = env) {
  const effects: Effect[] = [];
  for (const event of events) {
    const next = transition(state, event, environment);
    state = next.state;
    effects.push(...next.effects);
  }
  return { state, effects, shown: view(state, DEFAULT_BACKOFF) };
}

function scheduled(effects: Effect[]): Record<string, number> {
  const timers: Record<string, number> = {};
  for (const effect of effects) {
    if (effect.do === "schedule") timers[effect.timer] = effect.ms;
    if (effect.do === "cancel") delete timers[effect.timer];
  }
  return timers;
}

const STATES = {
  idle: at({ name: "idle" }),
  configuring: at({ name: "configuring" }),
  fetchingToken: at({ name: "fetchingToken", attempt: 0, retryAt: null }),
  connecting: at({ name: "connecting", attempt: 0, retryAt: null }),
  open: at({ name: "open" }),
  backoff: at({ name: "backoff", attempt: 1, retryAt: 1_750 }, {}),
  polling: at({ name: "polling" }, { polling: "failures", pollTimer: true }),
  paused: at({ name: "paused", offline: true, hidden: false, started: true }),
  closed: at({ name: "closed", reason: "stopped" }),
} satisfies Record<Phase["name"], MachineState>;

type Name = keyof typeof STATES;

/** The phase each state moves to on `event`; states not named stay where they are. */
const TABLE: [string, MachineEvent, Partial<Record<Name, Name>>][] = [
  ["start", { type: "start" }, { idle: "configuring", closed: "configuring" }],
  ["configured", { type: "configured" }, { configuring: "fetchingToken" }],
  ["configLoaded", { type: "configLoaded", config: DEFAULT_CONFIG }, {}],
  [
    "authRefused",
    { type: "authRefused" },
    {
      idle: "closed",
      configuring: "closed",
      fetchingToken: "closed",
      connecting: "closed",
      open: "closed",
      backoff: "closed",
      polling: "closed",
      paused: "closed",
    },
  ],
  [
    "stop",
    { type: "stop" },
    {
      idle: "closed",
      configuring: "closed",
      fetchingToken: "closed",
      connecting: "closed",
      open: "closed",
      backoff: "closed",
      polling: "closed",
      paused: "closed",
    },
  ],
  [
    "reconnect",
    { type: "reconnect" },
    {
      configuring: "fetchingToken",
      connecting: "fetchingToken",
      open: "fetchingToken",
      backoff: "fetchingToken",
      polling: "fetchingToken",
    },
  ],
  [
    "offline",
    { type: "offline" },
    {
      idle: "paused",
      configuring: "paused",
      fetchingToken: "paused",
      connecting: "paused",
      open: "paused",
      backoff: "paused",
      polling: "paused",
    },
  ],
  ["online", { type: "online" }, { paused: "fetchingToken" }],
  [
    "networkChanged",
    { type: "networkChanged" },
    { connecting: "fetchingToken", open: "fetchingToken", backoff: "fetchingToken" },
  ],
  ["hidden", { type: "hidden", hidden: true }, {}],
  ["visible", { type: "hidden", hidden: false }, {}],
  ["active", { type: "active", active: true }, {}],
  ["progressInterval", { type: "progressInterval", ms: 5000 }, { open: "fetchingToken" }],
  ["tokenReceived", { type: "tokenReceived", epoch: EPOCH, token: "t" }, { fetchingToken: "connecting" }],
  ["tokenFailed", { type: "tokenFailed", epoch: EPOCH, auth: false }, { fetchingToken: "backoff" }],
  ["tokenRefused", { type: "tokenFailed", epoch: EPOCH, auth: true }, { fetchingToken: "closed" }],
  ["message", { type: "message", epoch: EPOCH }, {}],
  ["established", { type: "established", epoch: EPOCH, heartbeatSeconds: 30 }, { connecting: "open" }],
  ["dropped", { type: "dropped", epoch: EPOCH, retryMs: null }, { connecting: "backoff", open: "backoff" }],
  ["streamError", { type: "streamError", epoch: EPOCH }, { connecting: "backoff", open: "backoff" }],
  ["modePolling", { type: "modePolling", epoch: EPOCH }, { connecting: "polling", open: "polling" }],
  ["retry timer", { type: "timer", timer: "retry" }, { backoff: "fetchingToken" }],
  ["background timer", { type: "timer", timer: "background" }, { polling: "fetchingToken" }],
  ["watchdog timer", { type: "timer", timer: "watchdog" }, { connecting: "backoff", open: "backoff" }],
  ["poll timer", { type: "timer", timer: "poll" }, {}],
  [
    "hidden timer",
    { type: "timer", timer: "hidden" },
    {
      idle: "paused",
      configuring: "paused",
      fetchingToken: "paused",
      connecting: "paused",
      open: "paused",
      backoff: "paused",
      polling: "paused",
    },
  ],
  ["polledConfig", { type: "polledConfig", epoch: EPOCH }, {}],
  ["pollFinished", { type: "pollFinished" }, {}],
];

describe("connection machine: every state × every event", () => {
  for (const [label, event, moves] of TABLE) {
    it(`${label}`, () => {
      const next = Object.fromEntries(
        Object.entries(STATES).map(([name, state]) => [name, transition(state, event, env).state.phase.name]),
      );
      const expected = Object.fromEntries(
        Object.keys(STATES).map((name) => [name, moves[name as Name] ?? name]),
      );
      expect(next).toEqual(expected);
    });
  }

  it("ignores the outcome of a token request, stream or poll an older epoch started", () => {
    const stale = EPOCH - 1;
    const events: MachineEvent[] = [
      { type: "tokenReceived", epoch: stale, token: "t" },
      { type: "tokenFailed", epoch: stale, auth: true },
      { type: "established", epoch: stale, heartbeatSeconds: 30 },
      { type: "dropped", epoch: stale, retryMs: 0 },
      { type: "streamError", epoch: stale },
      { type: "modePolling", epoch: stale },
      { type: "message", epoch: stale },
    ];
    for (const state of Object.values(STATES)) {
      for (const event of events) expect(transition(state, event, env)).toEqual({ state, effects: [] });
    }
    const polling = STATES.polling;
    expect(transition(polling, { type: "polledConfig", epoch: stale }, env).state).toBe(polling);
  });
});

describe("connection machine: streaming", () => {
  it("connects: config, token, EventSource, established; the watchdog follows the heartbeat", () => {
    const { state, effects, shown } = run(initialState(DEFAULT_CONFIG), [
      { type: "start" },
      { type: "configured" },
    ]);
    expect(shown).toEqual({ status: "connecting" });
    expect(effects).toContainEqual({ do: "fetchToken", epoch: state.epoch });
    const opened = run(state, [
      { type: "tokenReceived", epoch: state.epoch, token: "tok" },
      { type: "established", epoch: state.epoch, heartbeatSeconds: 10 },
    ]);
    expect(opened.effects).toContainEqual({ do: "openStream", epoch: state.epoch, token: "tok" });
    expect(opened.shown).toEqual({ status: "connected" });
    expect(scheduled(opened.effects)).toEqual({ watchdog: 21_000 });
    expect(run(opened.state, [{ type: "message", epoch: state.epoch }]).effects).toEqual([
      { do: "schedule", timer: "watchdog", ms: 21_000 },
    ]);
  });

  it("backs off 1, 2, 4, 8, 16 s (jittered) and resets to retry 1 after a successful open", () => {
    let state = STATES.open;
    let result = run(state, [{ type: "streamError", epoch: EPOCH }]);
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      expect(result.shown).toMatchObject({ status: "reconnecting", attempt, maxAttempts: 5 });
      delays.push(scheduled(result.effects).retry);
      state = run(result.state, [{ type: "timer", timer: "retry" }]).state;
      expect(state.phase).toMatchObject({ name: "fetchingToken", attempt });
      expect(view(state, DEFAULT_BACKOFF)).toMatchObject({ status: "reconnecting", attempt });
      result = run(state, [{ type: "tokenReceived", epoch: state.epoch, token: "t" }]);
      if (attempt < 5) result = run(result.state, [{ type: "streamError", epoch: state.epoch }]);
    }
    expect(delays).toEqual([750, 1500, 3000, 6000, 12000]);
    const open = run(result.state, [{ type: "established", epoch: state.epoch, heartbeatSeconds: 30 }]);
    expect(open.shown).toEqual({ status: "connected" });
    const dropped = run(open.state, [{ type: "streamError", epoch: state.epoch }]);
    expect(dropped.state.phase).toMatchObject({ name: "backoff", attempt: 1 });
    expect(scheduled(dropped.effects).retry).toBe(750);
  });

  it("polls after the 5th failed retry, tries a stream every 30 s, and leaves polling once one opens", () => {
    const failing = at({ name: "connecting", attempt: 5, retryAt: 0 });
    const { state, effects, shown } = run(failing, [{ type: "streamError", epoch: EPOCH }]);
    expect(shown).toEqual({ status: "polling", reason: "failures" });
    expect(effects).toContainEqual({ do: "closeStream" });
    expect(scheduled(effects)).toEqual({ poll: 0, background: 30_000 });
    const trying = run(state, [{ type: "timer", timer: "background" }]);
    expect(trying.shown).toEqual({ status: "polling", reason: "failures" });
    const epoch = trying.state.epoch;
    const failed = run(trying.state, [{ type: "tokenFailed", epoch, auth: false }]);
    expect(failed.state.phase.name).toBe("polling");
    expect(scheduled(failed.effects)).toEqual({ background: 30_000 });
    const open = run(trying.state, [
      { type: "tokenReceived", epoch, token: "t" },
      { type: "established", epoch, heartbeatSeconds: 30 },
    ]);
    expect(open.shown).toEqual({ status: "connected" });
    expect(open.state.polling).toBeNull();
    expect(open.effects).toContainEqual({ do: "cancel", timer: "poll" });
    expect(open.effects).toContainEqual({ do: "cancel", timer: "background" });
  });

  it("counts a failed token request as a failed try, and stops for good on a 401", () => {
    const fetching = at({ name: "fetchingToken", attempt: 2, retryAt: 0 });
    const failed = run(fetching, [{ type: "tokenFailed", epoch: EPOCH, auth: false }]);
    expect(failed.state.phase).toMatchObject({ name: "backoff", attempt: 3 });
    expect(scheduled(failed.effects)).toEqual({ retry: 3000 });
    const refused = run(fetching, [{ type: "tokenFailed", epoch: EPOCH, auth: true }]);
    expect(refused.shown).toEqual({ status: "disconnected", reason: "auth" });
    expect(scheduled(refused.effects)).toEqual({});
  });

  it("waits the server's retry_ms after reconnect or server.restart, none after auth.expiring", () => {
    const hinted = run(STATES.open, [{ type: "dropped", epoch: EPOCH, retryMs: 4380 }]);
    expect(hinted.shown).toEqual({
      status: "reconnecting",
      attempt: 1,
      maxAttempts: 5,
      retryAt: env.now + 4380,
    });
    expect(scheduled(hinted.effects)).toEqual({ retry: 4380 });
    expect(scheduled(run(STATES.open, [{ type: "dropped", epoch: EPOCH, retryMs: 0 }]).effects)).toEqual({
      retry: 0,
    });
  });

  it("treats two silent heartbeat periods as a dead stream", () => {
    expect(run(STATES.open, [{ type: "timer", timer: "watchdog" }]).state.phase).toMatchObject({
      name: "backoff",
      attempt: 1,
    });
    const connecting = at({ name: "connecting", attempt: 2, retryAt: 0 });
    expect(run(connecting, [{ type: "timer", timer: "watchdog" }]).state.phase).toMatchObject({
      name: "backoff",
      attempt: 3,
    });
  });

  it("reopens with the new progress interval only while open", () => {
    const { state, effects } = run(STATES.open, [{ type: "progressInterval", ms: 5000 }]);
    expect(state.progressIntervalMs).toBe(5000);
    expect(effects).toContainEqual({ do: "fetchToken", epoch: state.epoch });
    expect(run(STATES.backoff, [{ type: "progressInterval", ms: 5000 }]).effects).toEqual([]);
  });
});

describe("connection machine: server-driven polling", () => {
  it("polls when realtime.mode says so, with no background stream tries", () => {
    const { state, effects, shown } = run(STATES.open, [{ type: "modePolling", epoch: EPOCH }]);
    expect(shown).toEqual({ status: "polling", reason: "server" });
    expect(state.config.mode).toBe("polling");
    expect(effects[0]).toEqual({ do: "announceConfig" });
    expect(scheduled(effects)).toEqual({ poll: 0 });
  });

  it("polls from the start when the config says polling", () => {
    const polling = { ...DEFAULT_CONFIG, mode: "polling" as const };
    const { shown, effects } = run(STATES.idle, [
      { type: "start" },
      { type: "configLoaded", config: polling },
      { type: "configured" },
    ]);
    expect(shown).toEqual({ status: "polling", reason: "server" });
    expect(scheduled(effects)).toEqual({ poll: 0 });
  });

  it("goes back to the stream when a poll reads mode sse, and to server polling on mode polling", () => {
    const server = at({ name: "polling" }, { polling: "server" });
    const back = run(server, [{ type: "polledConfig", epoch: EPOCH }]);
    expect(back.state.phase.name).toBe("fetchingToken");
    expect(back.shown).toEqual({ status: "polling", reason: "failures" });
    const config = { ...DEFAULT_CONFIG, mode: "polling" as const };
    const failures = at({ name: "polling" }, { polling: "failures", config });
    const switched = run(failures, [{ type: "polledConfig", epoch: EPOCH }]);
    expect(switched.shown).toEqual({ status: "polling", reason: "server" });
    expect(switched.effects).toEqual([{ do: "cancel", timer: "background" }]);
  });

  it("schedules the next poll when one finishes: 30 s, 3 s while a running task is shown", () => {
    const polling = at({ name: "polling" }, { polling: "server" });
    expect(scheduled(run(polling, [{ type: "pollFinished" }]).effects)).toEqual({ poll: 30_000 });
    const active = run(polling, [{ type: "active", active: true }, { type: "pollFinished" }]);
    expect(scheduled(active.effects)).toEqual({ poll: 3_000 });
    const waiting = { ...polling, pollTimer: true };
    expect(run(waiting, [{ type: "pollFinished" }]).effects).toEqual([]);
    expect(scheduled(run(waiting, [{ type: "active", active: true }]).effects)).toEqual({ poll: 3_000 });
    expect(run(STATES.open, [{ type: "pollFinished" }]).effects).toEqual([]);
  });

  it("without EventSource polls for good", () => {
    const noStream = { ...env, canStream: false };
    const { shown, effects } = run(STATES.idle, [{ type: "start" }, { type: "configured" }], noStream);
    expect(shown).toEqual({ status: "polling", reason: "unsupported" });
    expect(scheduled(effects)).toEqual({ poll: 0 });
  });
});

describe("connection machine: offline, online and visibility", () => {
  it("closes everything offline and resumes from retry 0 when back online", () => {
    const offline = run(STATES.backoff, [{ type: "offline" }]);
    expect(offline.shown).toEqual({ status: "disconnected", reason: "offline" });
    expect(offline.effects).toContainEqual({ do: "closeStream" });
    expect(offline.effects).toContainEqual({ do: "cancel", timer: "retry" });
    const online = run(offline.state, [{ type: "online" }]);
    expect(online.state.phase).toMatchObject({ name: "fetchingToken", attempt: 0 });
    expect(online.shown).toEqual({ status: "connecting" });
  });

  it("remembers an offline start and connects once online", () => {
    const offline = run(STATES.idle, [{ type: "offline" }, { type: "start" }, { type: "configured" }]);
    expect(offline.state.phase).toEqual({ name: "paused", offline: true, hidden: false, started: true });
    expect(run(offline.state, [{ type: "online" }]).state.phase.name).toBe("fetchingToken");
    const neverStarted = run(STATES.idle, [{ type: "offline" }, { type: "online" }]);
    expect(neverStarted.state.phase.name).toBe("idle");
  });

  it("closes the stream 3 min after every tab is hidden, and reopens when one is visible", () => {
    const hiding = run(STATES.open, [{ type: "hidden", hidden: true }]);
    expect(scheduled(hiding.effects)).toEqual({ hidden: 180_000 });
    expect(run(hiding.state, [{ type: "hidden", hidden: true }]).effects).toEqual([]);
    const closed = run(hiding.state, [{ type: "timer", timer: "hidden" }]);
    expect(closed.shown).toEqual({ status: "disconnected", reason: "hidden" });
    const visible = run(closed.state, [{ type: "hidden", hidden: false }]);
    expect(visible.state.phase.name).toBe("fetchingToken");
    const cancelled = run(hiding.state, [{ type: "hidden", hidden: false }]);
    expect(cancelled.state.phase.name).toBe("open");
    expect(cancelled.effects).toEqual([{ do: "cancel", timer: "hidden" }]);
  });

  it("keeps the hidden countdown running through a reconnect or an offline spell", () => {
    const hiding = run(STATES.open, [{ type: "hidden", hidden: true }]).state;
    for (const events of [[{ type: "networkChanged" }], [{ type: "offline" }, { type: "online" }]]) {
      const { state, effects } = run(hiding, events as MachineEvent[]);
      expect(state.hideTimer).toBe(true);
      expect(effects).not.toContainEqual({ do: "cancel", timer: "hidden" });
    }
  });

  it("stays paused while either holds: online but hidden, visible but offline", () => {
    const both = at({ name: "paused", offline: true, hidden: true, started: true });
    const online = run(both, [{ type: "online" }]);
    expect(online.shown).toEqual({ status: "disconnected", reason: "hidden" });
    const visible = run(both, [{ type: "hidden", hidden: false }]);
    expect(visible.shown).toEqual({ status: "disconnected", reason: "offline" });
    expect(run(visible.state, [{ type: "online" }]).state.phase.name).toBe("fetchingToken");
    expect(run(both, [{ type: "reconnect" }]).state).toBe(both);
    const hidden = at({ name: "paused", offline: false, hidden: true, started: true });
    expect(run(hidden, [{ type: "reconnect" }]).state.phase.name).toBe("fetchingToken");
  });

  it("keeps server-driven polling across a pause and says so when back", () => {
    const server = at({ name: "polling" }, { polling: "server" });
    const back = run(server, [{ type: "offline" }, { type: "online" }]);
    expect(back.shown).toEqual({ status: "polling", reason: "server" });
    expect(scheduled(back.effects)).toEqual({ poll: 0 });
  });

  it("resumes streaming after a pause that interrupted failure polling", () => {
    const back = run(STATES.polling, [{ type: "offline" }, { type: "online" }]);
    expect(back.state.polling).toBeNull();
    expect(back.shown).toEqual({ status: "connecting" });
  });

  it("reconnects on a network change while streaming, not while polling", () => {
    expect(run(STATES.open, [{ type: "networkChanged" }]).state.phase.name).toBe("fetchingToken");
    expect(run(STATES.polling, [{ type: "networkChanged" }]).state).toBe(STATES.polling);
    const trying = at({ name: "connecting", attempt: 0, retryAt: null }, { polling: "failures" });
    expect(run(trying, [{ type: "networkChanged" }]).state.phase.name).toBe("fetchingToken");
  });

  it("stays closed: offline, hidden and online after a refused session change nothing", () => {
    const auth = at({ name: "closed", reason: "auth" });
    for (const event of [
      { type: "offline" },
      { type: "online" },
      { type: "hidden", hidden: true },
      { type: "timer", timer: "hidden" },
      { type: "reconnect" },
    ] as MachineEvent[]) {
      expect(run(auth, [event]).shown).toEqual({ status: "disconnected", reason: "auth" });
    }
  });
});

describe("connection machine: what the status bar shows", () => {
  it("maps every phase to a connection state", () => {
    const shown = Object.fromEntries(
      Object.entries(STATES).map(([name, state]) => [name, view(state, DEFAULT_BACKOFF)]),
    );
    expect(shown).toEqual({
      idle: { status: "disconnected", reason: "stopped" },
      configuring: { status: "disconnected", reason: "stopped" },
      fetchingToken: { status: "connecting" },
      connecting: { status: "connecting" },
      open: { status: "connected" },
      backoff: { status: "reconnecting", attempt: 1, maxAttempts: 5, retryAt: 1_750 },
      polling: { status: "polling", reason: "failures" },
      paused: { status: "disconnected", reason: "offline" },
      closed: { status: "disconnected", reason: "stopped" },
    });
  });
});
