import { beforeEach, describe, expect, it } from "vitest";
import {
  type ConnectionListener,
  RealtimeConnection,
  UNLISTED_STREAM_EVENT,
} from "../src/client/connection.js";
import type { ConnectionState, RealtimeEvent } from "../src/client/types.js";
import { FakeApi, FakeClock, FakeEventSource, makeEvent, settle } from "./fakes.js";

interface Harness {
  connection: RealtimeConnection;
  api: FakeApi;
  clock: FakeClock;
  sources: FakeEventSource[];
  states: ConnectionState[];
  events: RealtimeEvent[];
  resyncs: number;
  polls: number;
  unknown: string[];
  last(): FakeEventSource;
}

function harness(options: { eventSource?: boolean; cursor?: string | null } = {}): Harness {
  const api = new FakeApi();
  const clock = new FakeClock();
  const sources: FakeEventSource[] = [];
  const h = {
    api,
    clock,
    sources,
    states: [] as ConnectionState[],
    events: [] as RealtimeEvent[],
    resyncs: 0,
    polls: 0,
    unknown: [] as string[],
    last: () => sources[sources.length - 1],
  } as Harness;
  const listener: ConnectionListener = {
    event: (event) => h.events.push(event),
    state: (state) => h.states.push(state),
    cursor: () => undefined,
    resync: () => {
      h.resyncs += 1;
    },
    polled: () => {
      h.polls += 1;
    },
    config: () => undefined,
    unknownEvent: (type) => h.unknown.push(type),
  };
  h.connection = new RealtimeConnection({
    api,
    streamUrl: "/api/v1/events/stream",
    createEventSource:
      options.eventSource === false
        ? null
        : (url) => {
            const source = new FakeEventSource(url);
            sources.push(source);
            return source;
          },
    listener,
    clock,
    random: () => 0.5,
    cursor: options.cursor ?? null,
    hiddenCloseMs: 180_000,
    backgroundRetryMs: 30_000,
  });
  return h;
}

function event(id: string): RealtimeEvent {
  return makeEvent("task.progress-updated", { event_id: id, task_id: "t", percent: 1 });
}

describe("RealtimeConnection", () => {
  let h: Harness;

  beforeEach(async () => {
    h = harness();
    await h.connection.start();
    await settle();
  });

  it("fetches a fresh sse_token for every connect and reports connected", async () => {
    expect(h.last().query.get("sse_token")).toBe("token-1");
    expect(h.connection.state).toEqual({ status: "connecting" });
    h.last().established("cur-0");
    expect(h.connection.state).toEqual({ status: "connected" });
    expect(h.resyncs).toBe(1);
  });

  it("retries with exponential backoff and switches to polling after 5 failed tries", async () => {
    h.last().established("cur-0");
    h.last().fail();
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      expect(h.connection.state).toMatchObject({ status: "reconnecting", attempt });
      const [delay] = h.clock.pending();
      delays.push(delay);
      await h.clock.advance(delay);
      expect(h.sources).toHaveLength(attempt + 1);
      h.last().fail();
    }
    expect(delays).toEqual([750, 1500, 3000, 6000, 12000]);
    expect(h.connection.state).toEqual({ status: "polling", reason: "failures" });
    expect(h.sources.every((source) => source.closed)).toBe(true);
    await h.clock.advance(0);
    expect(h.api.historyCalls).toEqual(["cur-0"]);
    expect(h.polls).toBe(1);
  });

  it("keeps trying the stream in the background while polling, and leaves polling when it opens", async () => {
    h.last().established("cur-0");
    h.last().fail();
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      await h.clock.advance(h.clock.pending()[0]);
      h.last().fail();
    }
    const streamsBefore = h.sources.length;
    await h.clock.advance(30_000);
    expect(h.sources.length).toBe(streamsBefore + 1);
    expect(h.connection.state.status).toBe("polling");
    h.last().established();
    expect(h.connection.state).toEqual({ status: "connected" });
    const pollsBefore = h.api.historyCalls.length;
    await h.clock.advance(120_000);
    expect(h.api.historyCalls.length).toBe(pollsBefore);
  });

  it("resumes from the last cursor, after the server's retry_ms on server.restart", async () => {
    h.last().established("cur-0");
    h.last().emit("task.progress-updated", event("e1"), "cur-1");
    h.last().emit("server.restart", { reason: "shutdown", retry_ms: 4380 }, "cur-2");
    expect(h.connection.state).toMatchObject({ status: "reconnecting", attempt: 1 });
    expect(h.clock.pending()).toEqual([4380]);
    await h.clock.advance(4380);
    expect(h.api.tokens).toBe(2);
    expect(h.last().query.get("last_event_id")).toBe("cur-2");
    expect(h.last().query.get("sse_token")).toBe("token-2");
    h.last().established();
    expect(h.resyncs).toBe(1);
  });

  it("reconnects at once on auth.expiring, with a fresh token and the cursor", async () => {
    h.last().established("cur-0");
    h.last().emit("auth.expiring", { reason: "token_expiring" }, "cur-1");
    expect(h.sources[0].closed).toBe(true);
    await h.clock.advance(0);
    expect(h.api.tokens).toBe(2);
    expect(h.last().query.get("last_event_id")).toBe("cur-1");
  });

  it("counts a failed sse_token request as a failed try", async () => {
    h.last().established("cur-0");
    h.api.tokenFailures = 1;
    h.last().fail();
    await h.clock.advance(h.clock.pending()[0]);
    expect(h.connection.state).toMatchObject({ status: "reconnecting", attempt: 2 });
  });

  it("stops for good when the session is refused (401)", async () => {
    h.last().established("cur-0");
    h.api.tokenFailures = 1;
    h.api.tokenStatus = 401;
    h.last().fail();
    await h.clock.advance(h.clock.pending()[0]);
    expect(h.connection.state).toEqual({ status: "disconnected", reason: "auth" });
    expect(h.clock.pending()).toEqual([]);
  });

  it("reconnects when nothing arrived for two heartbeat periods", async () => {
    h.last().established("cur-0");
    await h.clock.advance(60_000);
    h.last().emit("heartbeat", { server_time: "" });
    await h.clock.advance(60_000);
    expect(h.sources).toHaveLength(1);
    await h.clock.advance(1_000);
    expect(h.sources[0].closed).toBe(true);
    expect(h.sources).toHaveLength(2);
    expect(h.last().query.get("last_event_id")).toBe("cur-0");
  });

  it("closes after the page stayed hidden, and resumes from the cursor when visible", async () => {
    h.last().established("cur-0");
    h.connection.setHidden(true);
    for (let second = 30; second < 180; second += 30) {
      await h.clock.advance(30_000);
      h.last().emit("heartbeat", {});
    }
    await h.clock.advance(29_000);
    expect(h.connection.state.status).toBe("connected");
    await h.clock.advance(1_000);
    expect(h.connection.state).toEqual({ status: "disconnected", reason: "hidden" });
    expect(h.last().closed).toBe(true);
    h.connection.setHidden(false);
    await settle();
    expect(h.sources).toHaveLength(2);
    expect(h.last().query.get("last_event_id")).toBe("cur-0");
  });

  it("waits while offline and reconnects at once when back online", async () => {
    h.last().established("cur-0");
    h.connection.offlineNow();
    expect(h.connection.state).toEqual({ status: "disconnected", reason: "offline" });
    await h.clock.advance(600_000);
    expect(h.sources).toHaveLength(1);
    h.connection.onlineNow();
    await settle();
    expect(h.sources).toHaveLength(2);
    expect(h.connection.state).toEqual({ status: "connecting" });
  });

  it("asks for coarser progress on a slow network by reconnecting with the parameter", async () => {
    h.last().established("cur-0");
    h.connection.setProgressInterval(5000);
    await settle();
    expect(h.last().query.get("progress_interval_ms")).toBe("5000");
    expect(h.last().query.get("last_event_id")).toBe("cur-0");
  });

  it("switches to polling when the server says so, and back to the stream when the config does", async () => {
    h.last().established("cur-0");
    h.last().emit("realtime.mode", { mode: "polling" });
    expect(h.connection.state).toEqual({ status: "polling", reason: "server" });
    expect(h.sources[0].closed).toBe(true);
    h.api.config_ = { ...h.api.config_, mode: "polling" };
    await h.clock.advance(0);
    expect(h.api.historyCalls).toEqual(["cur-0"]);
    await h.clock.advance(30_000);
    expect(h.api.historyCalls).toHaveLength(2);
    expect(h.sources).toHaveLength(1);
    h.api.config_ = { ...h.api.config_, mode: "sse" };
    await h.clock.advance(30_000);
    expect(h.sources).toHaveLength(2);
    h.last().established();
    expect(h.connection.state).toEqual({ status: "connected" });
  });
});

describe("RealtimeConnection: states the old flags got wrong", () => {
  it("says it polls when back online in server-driven polling (it kept saying offline)", async () => {
    const h = harness();
    await h.connection.start();
    await settle();
    h.last().established("cur-0");
    h.last().emit("realtime.mode", { mode: "polling" });
    h.api.config_ = { ...h.api.config_, mode: "polling" };
    h.connection.offlineNow();
    h.connection.onlineNow();
    await h.clock.advance(0);
    expect(h.connection.state).toEqual({ status: "polling", reason: "server" });
    expect(h.api.historyCalls).toEqual(["cur-0"]);
  });

  it("keeps asking to sign in again after the session was refused, offline or hidden", async () => {
    const h = harness();
    await h.connection.start();
    await settle();
    h.api.tokenFailures = 1;
    h.api.tokenStatus = 401;
    h.last().established("cur-0");
    h.last().fail();
    await h.clock.advance(h.clock.pending()[0]);
    expect(h.connection.state).toEqual({ status: "disconnected", reason: "auth" });
    h.connection.offlineNow();
    h.connection.onlineNow();
    h.connection.setHidden(true);
    await h.clock.advance(600_000);
    expect(h.connection.state).toEqual({ status: "disconnected", reason: "auth" });
  });
});

describe("RealtimeConnection: events of types this app does not know", () => {
  it("reports them from history instead of delivering them, and moves past them", async () => {
    const h = harness({ eventSource: false, cursor: "cur-0" });
    const future = { ...event("e2"), type: "task.progress-paused" } as unknown as RealtimeEvent;
    h.api.pages = [{ events: [event("e1"), future], cursor: "cur-2", reset: false, has_more: false }];
    await h.connection.start();
    await h.clock.advance(0);
    expect(h.events.map((e) => e.event_id)).toEqual(["e1"]);
    expect(h.unknown).toEqual(["task.progress-paused"]);
    expect(h.connection.cursor).toBe("cur-2");
  });

  it("notices one on the stream by the id the next heartbeat reports", async () => {
    const h = harness();
    await h.connection.start();
    await settle();
    h.last().established("cur-0");
    h.last().emit("heartbeat", {});
    expect(h.unknown).toEqual([]);
    h.last().emit("task.progress-paused", { event_id: "e9" }, "cur-9");
    h.last().emit("heartbeat", {});
    h.last().emit("heartbeat", {});
    expect(h.unknown).toEqual([UNLISTED_STREAM_EVENT]);
    expect(h.connection.cursor).toBe("cur-9");
    h.last().emit("task.progress-updated", event("e10"), "cur-10");
    h.last().emit("heartbeat", {});
    expect(h.unknown).toEqual([UNLISTED_STREAM_EVENT]);
  });
});

describe("RealtimeConnection without EventSource", () => {
  it("polls history from its cursor, faster while a running task is shown", async () => {
    const h = harness({ eventSource: false });
    h.api.pages = [
      { events: [], cursor: "cur-0", reset: false, has_more: false },
      { events: [event("e1")], cursor: "cur-1", reset: false, has_more: false },
    ];
    await h.connection.start();
    await h.clock.advance(0);
    expect(h.connection.state).toEqual({ status: "polling", reason: "unsupported" });
    expect(h.resyncs).toBe(1);
    expect(h.events).toEqual([]);
    await h.clock.advance(30_000);
    expect(h.events.map((e) => e.event_id)).toEqual(["e1"]);
    expect(h.api.historyCalls).toEqual([null, "cur-0"]);
    h.connection.setActive(true);
    await h.clock.advance(3_000);
    expect(h.api.historyCalls).toEqual([null, "cur-0", "cur-1"]);
    expect(h.sources).toEqual([]);
  });
});
