/**
 * `@infinitescribe/realtime/testing`: factories for your own tests (events as the server sends
 * them). Never imported by the package's runtime code.
 */
import type { EventType, RealtimeEvent } from "./client/types.js";

/** The event interface whose `type` is `T`. */
export type EventOf<T extends EventType> = Extract<RealtimeEvent, { type: T }>;

/**
 * An event of `type` with the envelope filled in; `fields` gives the rest. Tests name only the
 * fields they look at, so the result is cast rather than checked field by field.
 */
export function makeEvent<T extends EventType>(
  type: T,
  fields: Partial<EventOf<T>> & Record<string, unknown> = {},
): EventOf<T> {
  return {
    event_id: "e",
    type,
    occurred_at: "2026-01-01T00:00:00Z",
    schema_version: 1,
    user_id: "u",
    session_id: null,
    audience: "user",
    task_id: null,
    novel_id: null,
    chapter_id: null,
    workflow_id: null,
    important: false,
    ...fields,
  } as unknown as EventOf<T>;
}
