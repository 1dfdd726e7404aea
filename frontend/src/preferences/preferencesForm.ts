/** Notification preferences (GET/PUT /api/v1/me/notification-preferences) as a form edits them. */

export type MinLevel = "info" | "warning" | "critical";

export interface NotificationPreferences {
  min_level: MinLevel;
  muted_types: string[];
}

export const DEFAULT_PREFERENCES: NotificationPreferences = { min_level: "info", muted_types: [] };

/** Mute `type` or unmute it; the list stays sorted and without repeats, as the server stores it. */
export function toggleMuted(prefs: NotificationPreferences, type: string): NotificationPreferences {
  const muted = new Set(prefs.muted_types);
  if (muted.has(type)) muted.delete(type);
  else muted.add(type);
  return { ...prefs, muted_types: [...muted].sort() };
}

/** Whether the form differs from what the server holds. */
export function isDirty(form: NotificationPreferences, saved: NotificationPreferences): boolean {
  if (form.min_level !== saved.min_level) return true;
  const a = [...form.muted_types].sort();
  const b = [...saved.muted_types].sort();
  return a.length !== b.length || a.some((type, index) => type !== b[index]);
}

/** Muting critical notices has no effect (the server always relays them): say so next to it. */
export function mutesOnlyBelowCritical(type: string): boolean {
  return type === "system.notification" || type === "system.error";
}
