import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useApi } from "../api/context";
import {
  DEFAULT_PREFERENCES,
  isDirty,
  type MinLevel,
  mutesOnlyBelowCritical,
  type NotificationPreferences,
  toggleMuted,
} from "../preferences/preferencesForm";
import { DOMAIN_EVENT_TYPES } from "@infinitescribe/realtime";

const PREFERENCES_KEY = ["notification-preferences"] as const;

/** What the server relays to this writer: a minimum level and muted event types (saved server-side). */
export function NotificationSettings() {
  const api = useApi();
  const queryClient = useQueryClient();
  const saved = useQuery({ queryKey: PREFERENCES_KEY, queryFn: api.preferences });
  const [draft, setDraft] = useState<NotificationPreferences | null>(null);
  const save = useMutation({
    mutationFn: api.savePreferences,
    onSuccess: (stored) => {
      queryClient.setQueryData(PREFERENCES_KEY, stored);
      setDraft(null);
    },
  });
  const current = saved.data ?? DEFAULT_PREFERENCES;
  const form = draft ?? current;
  const dirty = isDirty(form, current);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate(form);
  };
  return (
    <section aria-labelledby="settings-heading" className="settings card">
      <h2 id="settings-heading">Notification settings</h2>
      {saved.error ? <p role="alert">Could not load your settings: {saved.error.message}</p> : null}
      <form onSubmit={submit}>
        <label>
          Minimum level
          <select
            value={form.min_level}
            disabled={saved.isPending}
            onChange={(e) => setDraft({ ...form, min_level: e.target.value as MinLevel })}
          >
            <option value="info">info (everything)</option>
            <option value="warning">warning and critical</option>
            <option value="critical">critical only</option>
          </select>
        </label>
        <fieldset>
          <legend>Muted event types</legend>
          <div className="muted-types">
            {DOMAIN_EVENT_TYPES.map((type) => (
              <label key={type} className="checkbox">
                <input
                  type="checkbox"
                  checked={form.muted_types.includes(type)}
                  disabled={saved.isPending}
                  onChange={() => setDraft(toggleMuted(form, type))}
                />
                {type}
                {mutesOnlyBelowCritical(type) ? <small> (critical ones still arrive)</small> : null}
              </label>
            ))}
          </div>
        </fieldset>
        <button type="submit" disabled={!dirty || save.isPending}>
          Save settings
        </button>
        <span role="status" data-testid="settings-state">
          {save.isPending ? "Saving…" : dirty ? "Unsaved changes" : saved.isSuccess ? "Saved" : ""}
        </span>
        {save.error ? <p role="alert">Not saved: {save.error.message}</p> : null}
      </form>
      <p className="hint">Applied by the server: filtered events never reach this browser, in any tab.</p>
    </section>
  );
}
