import type { HealthBody } from "../admin/report";
import type { NotificationBody } from "../admin/notificationForm";
import type { NotificationPreferences } from "../preferences/preferencesForm";
import type { HistoryPage, RealtimeConfig, TaskSnapshot } from "../realtime/types";

/** An HTTP failure with the API's error code (docs/api.md, Errors). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Chapter {
  id: string;
  number: number;
  title: string;
  summary: string;
  status: string;
  text: string;
}

export interface Novel {
  id: string;
  owner_id: string;
  title: string;
  premise: string;
  status: string;
  chapter_count: number;
  task_id: string | null;
  created_at: string;
  chapters: Chapter[];
}

/** A novel someone invited the user to read; nothing of it reaches them until they accept. */
export interface Invitation {
  novel_id: string;
  title: string;
  owner_id: string;
  created_at: string;
}

export interface NewNovel {
  title: string;
  premise: string;
  chapter_count: number;
}

const REQUEST_TIMEOUT_MS = 15_000;

async function request<T>(
  method: string,
  path: string,
  jwt: string | null,
  body?: unknown,
  /** Error statuses whose body is still the answer (the health check's 503). */
  accept: number[] = [],
): Promise<T> {
  const headers: Record<string, string> = {};
  if (jwt) headers.Authorization = `Bearer ${jwt}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // A black-holed server must not hang a reconnect attempt forever.
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch {
    throw new ApiError(0, "network_error", "The server cannot be reached");
  }
  if (!response.ok && !accept.includes(response.status)) {
    const payload = (await response.json().catch(() => null)) as {
      error?: { code?: string; message?: string };
    } | null;
    throw new ApiError(
      response.status,
      payload?.error?.code ?? "http_error",
      payload?.error?.message ?? `HTTP ${response.status}`,
    );
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export interface ModeRule {
  mode: "sse" | "polling";
  percent: number;
  updated_at: string | null;
}

export async function mintDevToken(
  userId: string,
  roles: string[] = [],
): Promise<{ access_token: string; expires_in: number }> {
  return request("POST", "/api/v1/auth/dev-token", null, {
    user_id: userId,
    session_id: `web-${Math.random().toString(36).slice(2, 10)}`,
    ttl_seconds: 8 * 3600,
    roles,
  });
}

/** The API as one signed-in user sees it. */
export function createApi(jwt: string) {
  return {
    sseToken: async () =>
      (await request<{ sse_token: string }>("POST", "/api/v1/auth/sse-token", jwt)).sse_token,
    history: (sinceId: string | null, limit: number) => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (sinceId) query.set("since_id", sinceId);
      return request<HistoryPage>("GET", `/api/v1/events/history?${query}`, jwt);
    },
    config: () => request<RealtimeConfig>("GET", "/api/v1/realtime/config", jwt),
    task: (taskId: string) =>
      request<TaskSnapshot>("GET", `/api/v1/tasks/${encodeURIComponent(taskId)}`, jwt),
    novels: () => request<Novel[]>("GET", "/api/v1/novels", jwt),
    novel: (novelId: string) =>
      request<Novel>("GET", `/api/v1/novels/${encodeURIComponent(novelId)}`, jwt),
    createNovel: (novel: NewNovel) =>
      request<{ novel_id: string; task_id: string }>("POST", "/api/v1/novels", jwt, novel),
    invitations: () => request<Invitation[]>("GET", "/api/v1/invitations", jwt),
    acceptInvitation: (novelId: string) =>
      request<{ novel_id: string; status: string }>(
        "POST",
        `/api/v1/novels/${encodeURIComponent(novelId)}/membership`,
        jwt,
      ),
    declineInvitation: (novelId: string) =>
      request<void>("DELETE", `/api/v1/novels/${encodeURIComponent(novelId)}/membership`, jwt),
    reviseChapter: (novelId: string, number: number, instructions: string) =>
      request<{ task_id: string }>(
        "POST",
        `/api/v1/novels/${encodeURIComponent(novelId)}/chapters/${number}/revise`,
        jwt,
        { instructions },
      ),
    preferences: () =>
      request<NotificationPreferences>("GET", "/api/v1/me/notification-preferences", jwt),
    savePreferences: (prefs: NotificationPreferences) =>
      request<NotificationPreferences>("PUT", "/api/v1/me/notification-preferences", jwt, prefs),
    /** With an admin JWT the body holds the operations report. */
    health: () => request<HealthBody>("GET", "/api/v1/events/health", jwt, undefined, [503]),
    setRealtimeMode: (mode: ModeRule["mode"], percent: number) =>
      request<ModeRule>("PUT", "/api/v1/realtime/config", jwt, { mode, percent }),
    sendNotification: (body: NotificationBody) =>
      request<{ type: string; events: number; event_ids: string[] }>(
        "POST",
        "/api/v1/admin/notifications",
        jwt,
        body,
      ),
  };
}

export type Api = ReturnType<typeof createApi>;
