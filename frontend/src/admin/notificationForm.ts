/** The admin's "send a system notification" form and the body of POST /api/v1/admin/notifications. */

export type Level = "info" | "warning" | "critical";
export type Audience = "everyone" | "users" | "session";

export interface NotificationForm {
  level: Level;
  message: string;
  suggestedAction: string;
  audience: Audience;
  /** Comma- or space-separated user ids (audience `users`, or the one user of `session`). */
  userIds: string;
  sessionId: string;
}

export const EMPTY_NOTIFICATION_FORM: NotificationForm = {
  level: "info",
  message: "",
  suggestedAction: "",
  audience: "everyone",
  userIds: "",
  sessionId: "",
};

export type Target =
  | { audience: "everyone" }
  | { audience: "users"; user_ids: string[] }
  | { audience: "session"; user_ids: [string]; session_id: string };

export interface NotificationBody {
  level: Level;
  message: string;
  suggested_action?: string;
  target: Target;
}

const MAX_MESSAGE = 2000;
const MAX_USERS = 1000;

function splitIds(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** The request body, or what is wrong with the form (the same rules the API applies). */
export function notificationBody(form: NotificationForm): { body: NotificationBody } | { error: string } {
  const message = form.message.trim();
  if (!message) return { error: "Write a message." };
  if (message.length > MAX_MESSAGE) return { error: `The message is longer than ${MAX_MESSAGE} characters.` };
  const action = form.suggestedAction.trim();
  const base = { level: form.level, message, ...(action ? { suggested_action: action } : {}) };
  const ids = splitIds(form.userIds);
  switch (form.audience) {
    case "everyone":
      return { body: { ...base, target: { audience: "everyone" } } };
    case "users":
      if (ids.length === 0) return { error: "Name at least one user id." };
      if (ids.length > MAX_USERS) return { error: `At most ${MAX_USERS} users at once.` };
      return { body: { ...base, target: { audience: "users", user_ids: ids } } };
    case "session": {
      const sessionId = form.sessionId.trim();
      if (ids.length !== 1 || !sessionId) return { error: "A session needs exactly one user id and its session id." };
      return { body: { ...base, target: { audience: "session", user_ids: [ids[0]], session_id: sessionId } } };
    }
  }
}
