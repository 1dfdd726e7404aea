import { describe, expect, it } from "vitest";
import { EMPTY_NOTIFICATION_FORM, notificationBody } from "../src/admin/notificationForm";
import {
  capacityUsed,
  formatAge,
  formatBytes,
  formatDuration,
  formatMs,
  type HealthBody,
  healthTone,
  type OperationsReport,
} from "../src/admin/report";

const report: OperationsReport = {
  connections: { open: 1834, max: 10000 },
  delivery_latency_ms: { samples: 2048, p50: 3.1, p95: 9.8, p99: 24.0, max: 61.2 },
  top_event_types: [{ type: "task.progress-updated", relayed: 120331 }],
  backpressure: { saturated: false, event_loop_lag_ms: 0.4, max_queue_depth: 0, held_progress_updates: 0 },
  slowest_clients: [],
  redis_streams: { streams_measured: 1834, complete: true, stream_bytes: 48213120, redis_used_memory_bytes: 91542312 },
};

const healthy: HealthBody = {
  instance_id: "api-db7d5b05",
  uptime_seconds: 1.9,
  connections: 0,
  subscribed_users: 0,
  pubsub_link: "up",
  status: "ok",
  redis: { reachable: true, latency_ms: 3.81 },
  report,
};

describe("operations report formatting", () => {
  it("formats bytes in binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(48213120)).toBe("46.0 MiB");
    expect(formatBytes(91542312)).toBe("87.3 MiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
  });

  it("formats latencies, with a dash when there were no samples", () => {
    expect(formatMs(null)).toBe("—");
    expect(formatMs(3.14)).toBe("3.1 ms");
    expect(formatMs(24.4)).toBe("24 ms");
  });

  it("formats durations and ages", () => {
    expect(formatDuration(1.9)).toBe("1 s");
    expect(formatDuration(812.4)).toBe("13 min 32 s");
    expect(formatDuration(7300)).toBe("2 h 1 min");
    expect(formatAge(10_000, 10_200)).toBe("just now");
    expect(formatAge(10_000, 14_000)).toBe("4 s ago");
  });

  it("gives the capacity in use", () => {
    expect(capacityUsed(report.connections)).toBe(18);
    expect(capacityUsed({ open: 3, max: 0 })).toBe(0);
  });

  it("flags Redis down, a degraded link and saturation", () => {
    expect(healthTone(healthy)).toBe("good");
    expect(healthTone({ ...healthy, status: "degraded" })).toBe("warn");
    expect(
      healthTone({ ...healthy, report: { ...report, backpressure: { ...report.backpressure, saturated: true } } }),
    ).toBe("warn");
    expect(
      healthTone({ ...healthy, status: "unavailable", redis: { reachable: false, error: "refused" } }),
    ).toBe("bad");
  });
});

describe("system notification form", () => {
  it("sends to everyone by default, trimmed, without an empty suggested action", () => {
    expect(notificationBody({ ...EMPTY_NOTIFICATION_FORM, level: "critical", message: "  Paused  " })).toEqual({
      body: { level: "critical", message: "Paused", target: { audience: "everyone" } },
    });
  });

  it("lists users once each, split on commas and spaces", () => {
    const result = notificationBody({
      ...EMPTY_NOTIFICATION_FORM,
      message: "Hi",
      suggestedAction: "Save",
      audience: "users",
      userIds: "u1, u2 u1,,",
    });
    expect(result).toEqual({
      body: {
        level: "info",
        message: "Hi",
        suggested_action: "Save",
        target: { audience: "users", user_ids: ["u1", "u2"] },
      },
    });
  });

  it("targets one session of one user", () => {
    const result = notificationBody({
      ...EMPTY_NOTIFICATION_FORM,
      message: "Hi",
      audience: "session",
      userIds: "u1",
      sessionId: " s1 ",
    });
    expect(result).toEqual({
      body: { level: "info", message: "Hi", target: { audience: "session", user_ids: ["u1"], session_id: "s1" } },
    });
  });

  it("refuses what the API would refuse", () => {
    expect(notificationBody({ ...EMPTY_NOTIFICATION_FORM, message: "   " })).toHaveProperty("error");
    expect(notificationBody({ ...EMPTY_NOTIFICATION_FORM, message: "x".repeat(2001) })).toHaveProperty("error");
    expect(notificationBody({ ...EMPTY_NOTIFICATION_FORM, message: "Hi", audience: "users" })).toHaveProperty("error");
    expect(
      notificationBody({ ...EMPTY_NOTIFICATION_FORM, message: "Hi", audience: "session", userIds: "u1 u2", sessionId: "s" }),
    ).toHaveProperty("error");
    expect(
      notificationBody({ ...EMPTY_NOTIFICATION_FORM, message: "Hi", audience: "session", userIds: "u1" }),
    ).toHaveProperty("error");
  });
});
