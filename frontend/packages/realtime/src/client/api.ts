import type { RealtimeApi } from "./connection.js";
import type { WorkflowProgress } from "./events.generated.js";
import type { HistoryPage, RealtimeConfig, TaskSnapshot } from "./types.js";

/** An HTTP failure with the API's error code (docs/api.md, Errors); status 0: unreachable. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The user's bearer token, or a function asked for it before every request (to refresh it). */
export type TokenSource = string | (() => string | Promise<string>);

export interface RequestOptions {
  /** Sent as `Authorization: Bearer ...`; none when null or empty. */
  token?: TokenSource | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Error statuses whose body is still the answer (e.g. a health check's 503). */
  accept?: number[];
  /** A black-holed server must not hang a reconnect attempt forever. */
  timeoutMs?: number;
}

const REQUEST_TIMEOUT_MS = 15_000;

async function bearer(token: TokenSource | null | undefined): Promise<string | null> {
  return (typeof token === "function" ? await token() : token) || null;
}

/** One JSON request to the API; an HTTP failure throws an `ApiError` with the API's code. */
export async function apiRequest<T>(method: string, url: string, options: RequestOptions = {}): Promise<T> {
  const { body, accept = [], timeoutMs = REQUEST_TIMEOUT_MS } = options;
  const headers: Record<string, string> = {};
  const token = await bearer(options.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
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

/** The HTTP calls of the provider and hooks: the connection's, one task's and one workflow's
 * snapshot. */
export interface RealtimeClientApi extends RealtimeApi {
  task(taskId: string): Promise<TaskSnapshot>;
  workflow(workflowId: string): Promise<WorkflowProgress>;
}

export interface RealtimeApiOptions {
  /** Where the SSE tier's `/api/v1/...` routes are: "" (the page's origin) or an origin/prefix. */
  baseUrl?: string;
  token: TokenSource;
}

/** The calls the hooks make to the SSE tier, as one signed-in user. */
export function createRealtimeApi({ baseUrl = "", token }: RealtimeApiOptions): RealtimeClientApi {
  const base = baseUrl.replace(/\/$/, "");
  const get = <T>(path: string) => apiRequest<T>("GET", `${base}${path}`, { token });
  return {
    sseToken: async () =>
      (await apiRequest<{ sse_token: string }>("POST", `${base}/api/v1/auth/sse-token`, { token })).sse_token,
    history: (sinceId, limit) => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (sinceId) query.set("since_id", sinceId);
      return get<HistoryPage>(`/api/v1/events/history?${query}`);
    },
    config: () => get<RealtimeConfig>("/api/v1/realtime/config"),
    task: (taskId) => get<TaskSnapshot>(`/api/v1/tasks/${encodeURIComponent(taskId)}`),
    workflow: (workflowId) => get<WorkflowProgress>(`/api/v1/workflows/${encodeURIComponent(workflowId)}`),
  };
}

/** `GET /api/v1/events/stream` under `baseUrl`. */
export function streamUrl(baseUrl = ""): string {
  return `${baseUrl.replace(/\/$/, "")}/api/v1/events/stream`;
}
