import { useEffect, useState } from "react";
import { useAuth } from "../auth/session";
import { type ConnectionState, useSSEConnection } from "@infinitescribe/realtime";

function describe(state: ConnectionState, now: number): { label: string; detail: string } {
  switch (state.status) {
    case "connecting":
      return { label: "Connecting", detail: "Opening the live connection…" };
    case "connected":
      return { label: "Live", detail: "Progress and notifications arrive as they happen." };
    case "reconnecting": {
      const wait = Math.max(0, Math.ceil((state.retryAt - now) / 1000));
      return {
        label: `Reconnecting (attempt ${state.attempt} of ${state.maxAttempts})`,
        detail: wait > 0 ? `Next try in ${wait} s.` : "Trying now…",
      };
    }
    case "polling":
      return {
        label: "Polling",
        detail:
          state.reason === "unsupported"
            ? "This browser cannot keep a live connection; updates are fetched periodically."
            : state.reason === "server"
              ? "Live updates are paused by the server; updates are fetched periodically."
              : "The live connection keeps failing; updates are fetched periodically while it is retried in the background.",
      };
    case "disconnected":
      return {
        label: state.reason === "offline" ? "Offline" : "Disconnected",
        detail:
          state.reason === "offline"
            ? "You are offline. Updates resume when the network is back."
            : state.reason === "hidden"
              ? "Paused while the page is in the background."
              : state.reason === "auth"
                ? "Your session expired: sign in again."
                : "Not connected.",
      };
  }
}

/** The realtime link's state, its retries and a manual reconnect: part of the main layout. */
export function SSEConnectionStatus() {
  const connection = useSSEConnection();
  const { signOut } = useAuth();
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (connection.state.status !== "reconnecting") return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [connection.state.status]);
  const { label, detail } = describe(connection.state, now);
  const { status } = connection.state;
  const reason = connection.state.status === "disconnected" ? connection.state.reason : null;
  const sessionLost = reason === "auth";
  const unknown = Object.values(connection.unknownEvents).reduce((sum, n) => sum + n, 0);
  const canReconnect =
    status !== "connected" && status !== "connecting" && reason !== "auth" && reason !== "offline";
  return (
    <section
      className={`connection connection-${connection.state.status}`}
      aria-label="Connection status"
      data-testid="connection-status"
      data-status={connection.state.status}
      data-role={connection.role}
    >
      <span className="connection-dot" aria-hidden="true" />
      <span role="status" className="connection-label" data-testid="connection-label">
        {label}
      </span>
      <span className="connection-detail">{detail}</span>
      <span className="connection-retries" data-testid="connection-retries">
        Retries: {connection.retries}
      </span>
      {unknown > 0 && (
        <span className="connection-unknown" data-testid="connection-unknown">
          {unknown} update{unknown === 1 ? "" : "s"} of a newer kind skipped: reload the page.
        </span>
      )}
      {canReconnect && (
        <button type="button" onClick={connection.reconnect}>
          Reconnect now
        </button>
      )}
      {sessionLost && (
        <button type="button" onClick={signOut}>
          Sign in again
        </button>
      )}
    </section>
  );
}
