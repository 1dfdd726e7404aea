/** Shapes shared by the realtime modules: server events, snapshots, config, connection state. */

import { EVENT_TYPES, type EventType, type RealtimeEvent } from "./events.generated.js";

/** The server's events (docs/events.md), generated from progress/events.py. */
export type * from "./events.generated.js";

/** `GET /api/v1/tasks/{id}` */
export interface TaskSnapshot {
  task_id: string;
  status: TaskStatus;
  task_name: string | null;
  percent: number;
  stage: string | null;
  message: string | null;
  attempt: number;
  estimated_seconds: number | null;
  started_at: string | null;
  updated_at: string | null;
  novel_id: string | null;
  result_summary: unknown;
  error_type: string | null;
  error_message: string | null;
  retryable: boolean | null;
  retry_suggestion: string | null;
  /** Who asked a cancelled task to stop, when known. */
  cancelled_by?: string | null;
}

export type TaskStatus = "running" | "retrying" | "stalled" | "completed" | "failed" | "cancelled";

/** `GET /api/v1/events/history` */
export interface HistoryPage {
  events: RealtimeEvent[];
  cursor: string | null;
  reset: boolean;
  has_more: boolean;
}

/** `GET /api/v1/realtime/config` */
export interface RealtimeConfig {
  mode: "sse" | "polling";
  poll_interval_seconds: number;
  active_poll_interval_seconds: number;
  heartbeat_seconds: number;
  flower_url: string | null;
}

export const DEFAULT_CONFIG: RealtimeConfig = {
  mode: "sse",
  poll_interval_seconds: 30,
  active_poll_interval_seconds: 3,
  heartbeat_seconds: 30,
  flower_url: null,
};

/** Why the client polls instead of streaming. */
export type PollingReason = "unsupported" | "failures" | "server";

/** Why nothing is connected. */
export type DisconnectReason = "offline" | "hidden" | "auth" | "stopped";

export type ConnectionState =
  | { status: "connecting" }
  | { status: "connected" }
  | { status: "reconnecting"; attempt: number; maxAttempts: number; retryAt: number }
  | { status: "polling"; reason: PollingReason }
  | { status: "disconnected"; reason: DisconnectReason };

/** What `stream.reset` carries. */
export interface ResetInfo {
  reason?: string;
  streams?: string[];
  tasks?: TaskSnapshot[];
}

/** Timers and time, injected so tests drive them. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set([
  "completed",
  "failed",
  "cancelled",
]);

/** Every event type the stream may carry; EventSource only reports named types it listens to. */
export const DOMAIN_EVENT_TYPES: readonly EventType[] = EVENT_TYPES;

const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);

/** Whether this app knows `type` (an older bundle may meet a newer server's events). */
export function isEventType(type: string): type is EventType {
  return KNOWN_TYPES.has(type);
}
