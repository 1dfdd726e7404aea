import { type NotificationItem, useRealtime, useSystemNotifications } from "@infinitescribe/realtime";
import { useEffect, useMemo, useSyncExternalStore } from "react";
import { Link } from "react-router";
import { actionLink, banners, DismissedNotices, toastText } from "../notices/notices";
import { useToast } from "./Toasts";

function useDismissed(userId: string) {
  const store = useMemo(
    () => new DismissedNotices(localStorage, `infinitescribe.notices.dismissed:${userId}`),
    [userId],
  );
  useEffect(() => {
    const onStorage = (event: StorageEvent) => {
      if (event.key === store.key) store.reload();
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, [store]);
  const ids = useSyncExternalStore(store.subscribe, store.current);
  return { ids, store };
}

function Action({ action }: { action: string }) {
  const target = actionLink(action);
  if (target === null) return <span className="notice-action">{action}</span>;
  if (target.startsWith("/")) {
    return (
      <Link className="notice-action notice-link" to={target}>
        {action}
      </Link>
    );
  }
  return (
    <a className="notice-action notice-link" href={target} target="_blank" rel="noreferrer">
      {action}
    </a>
  );
}

function Banner({ item, onDismiss }: { item: NotificationItem; onDismiss: () => void }) {
  const error = item.type === "system.error";
  const heading = error ? `Service problem (${item.level ?? "error"})` : "Important";
  return (
    <div className={`notice notice-${error ? "error" : "critical"}`} role="alert" data-testid="notice-banner" data-notice-id={item.id}>
      <strong className="notice-heading">{heading}</strong>
      <span className="notice-message">{item.title}</span>
      {error && item.body ? <span className="notice-scope">Affects: {item.body}</span> : null}
      {item.action ? <Action action={item.action} /> : null}
      <button type="button" className="notice-dismiss" onClick={onDismiss} aria-label={`Dismiss notice: ${item.title}`}>
        Dismiss
      </button>
    </div>
  );
}

/**
 * Notices a writer cannot miss, on every page: banners for critical notifications and system
 * errors until dismissed (dismissals kept per user across reloads), toasts for warnings as they
 * arrive. Info notices stay in the notification center. The server applies the writer's
 * notification preferences before any of these reach the browser.
 */
export function Notices({ userId }: { userId: string }) {
  const { hub } = useRealtime();
  const toast = useToast();
  const { items } = useSystemNotifications();
  const dismissed = useDismissed(userId);
  useEffect(
    () =>
      hub.onEvent((event) => {
        const text = toastText(event);
        if (text) toast(text, "warning");
      }),
    [hub, toast],
  );
  const shown = banners(items, dismissed.ids);
  if (shown.length === 0) return null;
  return (
    <section className="notices" aria-label="Important notices">
      {shown.map((item) => (
        <Banner key={item.id} item={item} onDismiss={() => dismissed.store.dismiss(item.id)} />
      ))}
    </section>
  );
}
