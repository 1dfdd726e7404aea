import type { HealthBody } from "../admin/report";
import type { NotificationBody } from "../admin/notificationForm";
import type { NotificationPreferences } from "../preferences/preferencesForm";
import { apiRequest, createRealtimeApi } from "@infinitescribe/realtime";

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

/** The caller as the server reads their JWT (`GET /api/v1/auth/me`). */
export interface Me {
  user_id: string;
  session_id: string | null;
  roles: string[];
  expires_at: number;
}

export interface NewNovel {
  title: string;
  premise: string;
  chapter_count: number;
}

/** The app's calls go through the package's JSON client (same bearer token, same errors). */
function request<T>(method: string, path: string, jwt: string | null, body?: unknown, accept?: number[]) {
  return apiRequest<T>(method, path, { token: jwt, body, accept });
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

/** The API as one signed-in user sees it: the realtime calls (the package's) and the app's. */
export function createApi(jwt: string) {
  return {
    ...createRealtimeApi({ token: jwt }),
    me: () => request<Me>("GET", "/api/v1/auth/me", jwt),
    novels: () => request<Novel[]>("GET", "/api/v1/novels", jwt),
    novel: (novelId: string) =>
      request<Novel>("GET", `/api/v1/novels/${encodeURIComponent(novelId)}`, jwt),
    createNovel: (novel: NewNovel) =>
      request<{ novel_id: string; task_id: string }>("POST", "/api/v1/novels", jwt, novel),
    cancelTask: (taskId: string) =>
      request<{ task_id: string; status: string }>(
        "POST",
        `/api/v1/tasks/${encodeURIComponent(taskId)}/cancel`,
        jwt,
      ),
    cancelNovel: (novelId: string) =>
      request<{ novel_id: string; status: string }>(
        "POST",
        `/api/v1/novels/${encodeURIComponent(novelId)}/cancel`,
        jwt,
      ),
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
    /** One task revising every chapter in `numbers`; their updates arrive merged. */
    reviseChapters: (novelId: string, numbers: number[], instructions: string) =>
      request<{ task_id: string }>(
        "POST",
        `/api/v1/novels/${encodeURIComponent(novelId)}/revisions`,
        jwt,
        { chapters: numbers, instructions },
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
