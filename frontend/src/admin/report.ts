/** The operations report of GET /api/v1/events/health (api/ops/health.py) and how it reads. */

export interface HealthBody {
  instance_id: string;
  uptime_seconds: number;
  connections: number;
  subscribed_users: number;
  pubsub_link: "up" | "down";
  status: "ok" | "degraded" | "unavailable";
  redis: { reachable: true; latency_ms: number } | { reachable: false; error: string };
  report?: OperationsReport;
}

export interface LatencyPercentiles {
  samples: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export interface SlowClient {
  connection_id: string;
  user_id: string;
  queue_depth: number;
  delivered: number;
  connected_seconds: number;
}

export interface OperationsReport {
  connections: { open: number; max: number };
  delivery_latency_ms: LatencyPercentiles;
  top_event_types: { type: string; relayed: number }[];
  backpressure: {
    saturated: boolean;
    event_loop_lag_ms: number;
    max_queue_depth: number;
    held_progress_updates: number;
  };
  slowest_clients: SlowClient[];
  redis_streams: {
    streams_measured: number;
    complete: boolean;
    stream_bytes: number;
    redis_used_memory_bytes: number;
  };
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 48213120 → "46.0 MiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** A latency in ms, or a dash when there were no samples. */
export function formatMs(ms: number | null): string {
  if (ms === null) return "—";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** 812.4 → "13 min 32 s". */
export function formatDuration(seconds: number): string {
  const whole = Math.floor(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}

/** How long ago `at` (epoch ms) was, for "updated … ago". */
export function formatAge(at: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  return seconds < 1 ? "just now" : `${formatDuration(seconds)} ago`;
}

/** Share of the instance's connection capacity in use, as a whole percent. */
export function capacityUsed(connections: { open: number; max: number }): number {
  return connections.max > 0 ? Math.round((connections.open / connections.max) * 100) : 0;
}

export type Tone = "good" | "warn" | "bad";

/** What needs an operator's eye: Redis gone, pub/sub down or the instance saturated. */
export function healthTone(body: HealthBody): Tone {
  if (body.status === "unavailable") return "bad";
  if (body.status === "degraded" || body.report?.backpressure.saturated) return "warn";
  return "good";
}
