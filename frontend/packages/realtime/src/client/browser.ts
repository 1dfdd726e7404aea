import { RealtimeConnection, type RealtimeApi } from "./connection.js";
import { RealtimeHub } from "./hub.js";
import type { ChannelLike, LockManagerLike } from "./leader.js";
import { type NetworkInfoLike, progressIntervalFor } from "./network.js";

type NetworkInformation = NetworkInfoLike & EventTarget;

export interface BrowserHubOptions {
  /** Path or URL of `GET /api/v1/events/stream`. */
  streamUrl?: string;
  /** The tabs' BroadcastChannel and Web Lock name; one per user (the default adds the user id). */
  channelName?: string;
}

/** A hub wired to this browser's EventSource, BroadcastChannel, Web Locks and page events. */
export function createBrowserHub(
  userId: string,
  api: RealtimeApi,
  { streamUrl = "/api/v1/events/stream", channelName }: BrowserHubOptions = {},
): { hub: RealtimeHub; dispose(): void } {
  const name = channelName ?? `infinitescribe-realtime:${userId}`;
  const channel: ChannelLike | null =
    typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
  const locks = (navigator as Navigator & { locks?: LockManagerLike }).locks ?? null;
  const hub = new RealtimeHub({
    tabId: crypto.randomUUID(),
    name,
    channel,
    locks: channel ? locks : null,
    visible: document.visibilityState === "visible",
    createConnection: (cursor, listener) =>
      new RealtimeConnection({
        api,
        streamUrl,
        createEventSource:
          typeof EventSource === "function" ? (url) => new EventSource(url) : null,
        listener,
        cursor,
      }),
  });
  const network = (navigator as Navigator & { connection?: NetworkInformation }).connection;
  const onVisibility = () => hub.setVisible(document.visibilityState === "visible");
  const onOnline = () => hub.online();
  const onOffline = () => hub.offline();
  const onNetwork = () => {
    hub.setProgressInterval(progressIntervalFor(network));
    hub.networkChanged();
  };
  const onPageHide = (event: PageTransitionEvent) => {
    if (!event.persisted) hub.stop();
  };
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("online", onOnline);
  window.addEventListener("offline", onOffline);
  window.addEventListener("pagehide", onPageHide);
  network?.addEventListener("change", onNetwork);
  hub.setProgressInterval(progressIntervalFor(network));
  hub.start();
  if (!navigator.onLine) hub.offline();
  return {
    hub,
    dispose() {
      document.removeEventListener("visibilitychange", onVisibility);
      window.removeEventListener("online", onOnline);
      window.removeEventListener("offline", onOffline);
      window.removeEventListener("pagehide", onPageHide);
      network?.removeEventListener("change", onNetwork);
      hub.stop();
    },
  };
}
