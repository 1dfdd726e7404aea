import { describe, expect, it, vi } from "vitest";
import { RealtimeConnection } from "../src/client/connection.js";
import { RealtimeHub } from "../src/client/hub.js";
import type { RealtimeEvent } from "../src/client/types.js";
import { FakeApi, FakeChannelBus, FakeClock, FakeEventSource, FakeLocks, makeEvent, settle } from "./fakes.js";

function event(id: string): RealtimeEvent {
  return makeEvent("task.progress-updated", { event_id: id, task_id: "t", percent: 1 });
}

/** A browser: one API, one lock manager, one BroadcastChannel bus, shared by its tabs. */
function browser() {
  const api = new FakeApi();
  const clock = new FakeClock();
  const bus = new FakeChannelBus();
  const locks = new FakeLocks();
  const sources: FakeEventSource[] = [];
  const cursors: (string | null)[] = [];
  const tab = (tabId: string) => {
    const hub = new RealtimeHub({
      tabId,
      name: "realtime:u",
      channel: bus.open(),
      locks,
      visible: true,
      createConnection: (cursor, listener) => {
        cursors.push(cursor);
        return new RealtimeConnection({
          api,
          streamUrl: "/stream",
          createEventSource: (url) => {
            const source = new FakeEventSource(url);
            sources.push(source);
            return source;
          },
          listener,
          cursor,
          clock,
          random: () => 0.5,
        });
      },
    });
    const received: string[] = [];
    hub.onEvent((e) => received.push(e.event_id));
    hub.start();
    return { hub, received };
  };
  return { api, clock, sources, cursors, tab, last: () => sources[sources.length - 1] };
}

describe("RealtimeHub", () => {
  it("delivers each event once across a resume that replays some of them", async () => {
    const b = browser();
    const { hub, received } = b.tab("a");
    await settle();
    b.last().established("c0");
    b.last().emit("task.progress-updated", event("e1"), "c1");
    b.last().emit("task.progress-updated", event("e2"), "c2");
    b.last().fail();
    await b.clock.advance(b.clock.pending()[0]);
    expect(b.last().query.get("last_event_id")).toBe("c2");
    b.last().established();
    b.last().emit("stream.reset", { reason: "history_unavailable", tasks: [] }, "c2");
    b.last().emit("task.progress-updated", event("e1"), "c3");
    b.last().emit("task.progress-updated", event("e2"), "c4");
    b.last().emit("task.progress-updated", event("e3"), "c5");
    expect(received).toEqual(["e1", "e2", "e3"]);
    expect(hub.getSnapshot()).toMatchObject({ received: 3, duplicates: 2 });
  });

  it("remembers a task's events for a view that starts watching after they came", async () => {
    const b = browser();
    const first = b.tab("a");
    await settle();
    const second = b.tab("b");
    await settle();
    b.last().established("c0");
    const started = { ...event("s1"), type: "task.progress-started", task_name: "workers.revise" };
    b.last().emit("task.progress-started", started, "c1");
    b.last().emit("task.progress-updated", event("e1"), "c2");
    b.last().emit("task.progress-updated", { ...event("x1"), task_id: "other" }, "c3");
    for (const tab of [first, second]) {
      expect(tab.hub.taskEvents("t").map((e) => e.event_id)).toEqual(["s1", "e1"]);
    }
  });

  it("shares one connection between tabs; followers mirror events and state", async () => {
    const b = browser();
    const first = b.tab("a");
    await settle();
    const second = b.tab("b");
    await settle();
    expect(b.sources).toHaveLength(1);
    expect(first.hub.getSnapshot().role).toBe("leader");
    expect(second.hub.getSnapshot().role).toBe("follower");
    b.last().established("c0");
    b.last().emit("task.progress-updated", event("e1"), "c1");
    expect(second.received).toEqual(["e1"]);
    expect(second.hub.getSnapshot().state).toEqual({ status: "connected" });
    const third = b.tab("c");
    await settle();
    expect(third.hub.getSnapshot().state).toEqual({ status: "connected" });
    expect(b.sources).toHaveLength(1);
  });

  it("lets a follower ask the leader to reconnect", async () => {
    const b = browser();
    b.tab("a");
    await settle();
    const follower = b.tab("b");
    await settle();
    b.last().established("c0");
    follower.hub.reconnect();
    await settle();
    expect(b.sources).toHaveLength(2);
    expect(b.sources[0].closed).toBe(true);
    expect(b.last().query.get("last_event_id")).toBe("c0");
  });

  it("hands the connection to another tab, resuming from the cursor, when the leader closes", async () => {
    const b = browser();
    const leader = b.tab("a");
    await settle();
    const follower = b.tab("b");
    await settle();
    b.last().established("c0");
    b.last().emit("task.progress-updated", event("e1"), "c1");
    leader.hub.stop();
    await settle();
    expect(b.sources[0].closed).toBe(true);
    expect(follower.hub.getSnapshot().role).toBe("leader");
    expect(b.cursors).toEqual([null, "c1"]);
    expect(b.last().query.get("last_event_id")).toBe("c1");
    b.last().established();
    b.last().emit("task.progress-updated", event("e1"), "c1");
    b.last().emit("task.progress-updated", event("e2"), "c2");
    expect(follower.received).toEqual(["e1", "e2"]);
  });

  it("counts events of unknown types per type in every tab, warning once per type", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const b = browser();
    b.api.config_ = { ...b.api.config_, mode: "polling" };
    const future = (id: string) =>
      ({ ...event(id), type: "task.progress-paused" }) as unknown as RealtimeEvent;
    b.api.pages = [
      { events: [], cursor: "c0", reset: false, has_more: false },
      { events: [future("e1"), event("e2"), future("e3")], cursor: "c3", reset: false, has_more: false },
    ];
    const leader = b.tab("a");
    await settle();
    const follower = b.tab("b");
    await b.clock.advance(30_000);
    for (const tab of [leader, follower]) {
      expect(tab.received).toEqual(["e2"]);
      expect(tab.hub.getSnapshot().unknownEvents).toEqual({ "task.progress-paused": 2 });
    }
    expect(warn).toHaveBeenCalledTimes(2);
    expect(String(warn.mock.calls[0][0])).toContain('"task.progress-paused"');
    warn.mockRestore();
  });

  it("closes the stream only when every tab is hidden", async () => {
    const b = browser();
    const leader = b.tab("a");
    await settle();
    const follower = b.tab("b");
    await settle();
    b.last().established("c0");
    leader.hub.setVisible(false);
    await b.clock.advance(200_000);
    expect(b.sources.filter((s) => !s.closed)).toHaveLength(1);
    follower.hub.setVisible(false);
    await b.clock.advance(200_000);
    expect(b.sources.filter((s) => !s.closed)).toHaveLength(0);
    expect(follower.hub.getSnapshot().state).toEqual({ status: "disconnected", reason: "hidden" });
    follower.hub.setVisible(true);
    await settle();
    expect(b.sources.filter((s) => !s.closed)).toHaveLength(1);
  });

  it("keeps the stream of a new leader open while another tab is visible", async () => {
    const b = browser();
    const first = b.tab("a");
    await settle();
    const second = b.tab("b");
    await settle();
    const third = b.tab("c");
    await settle();
    b.last().established("c0");
    second.hub.setVisible(false);
    first.hub.stop();
    await settle();
    expect(second.hub.getSnapshot().role).toBe("leader");
    b.last().established();
    await b.clock.advance(200_000);
    expect(b.sources.filter((s) => !s.closed)).toHaveLength(1);
    third.hub.setVisible(false);
    await b.clock.advance(200_000);
    expect(b.sources.filter((s) => !s.closed)).toHaveLength(0);
  });
});
