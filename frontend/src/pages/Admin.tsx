import { useMutation, useQuery } from "@tanstack/react-query";
import { type FormEvent, useEffect, useState } from "react";
import type { ModeRule } from "../api/client";
import {
  EMPTY_NOTIFICATION_FORM,
  type Audience,
  type Level,
  type NotificationForm,
  notificationBody,
} from "../admin/notificationForm";
import {
  capacityUsed,
  formatAge,
  formatBytes,
  formatDuration,
  formatMs,
  type HealthBody,
  healthTone,
} from "../admin/report";
import { useAuth } from "../auth/session";
import { useApi } from "../api/context";

const REPORT_REFRESH_MS = 3000;

function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

function Report({ body }: { body: HealthBody }) {
  const report = body.report;
  return (
    <>
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <span className={`pill tone-${healthTone(body)}`} data-testid="health-status">
            {body.status}
          </span>
        </dd>
        <dt>Instance</dt>
        <dd>{body.instance_id}</dd>
        <dt>Uptime</dt>
        <dd>{formatDuration(body.uptime_seconds)}</dd>
        <dt>Redis</dt>
        <dd>
          {body.redis.reachable ? `reachable, ping ${formatMs(body.redis.latency_ms)}` : `unreachable: ${body.redis.error}`}
        </dd>
        <dt>Pub/sub link</dt>
        <dd>{body.pubsub_link}</dd>
      </dl>
      {!report ? (
        <p role="alert">The answer holds no operations report: is this session's JWT an admin's?</p>
      ) : (
        <div className="report-grid">
          <section aria-labelledby="report-connections" className="card">
            <h3 id="report-connections">Connections</h3>
            <p className="big">
              <span data-testid="open-connections">{report.connections.open}</span>
              <small> of {report.connections.max} ({capacityUsed(report.connections)}%)</small>
            </p>
            <p>{body.subscribed_users} users with a stream here</p>
          </section>
          <section aria-labelledby="report-latency" className="card">
            <h3 id="report-latency">Delivery latency</h3>
            <table>
              <tbody>
                {(["p50", "p95", "p99", "max"] as const).map((key) => (
                  <tr key={key}>
                    <th scope="row">{key}</th>
                    <td>{formatMs(report.delivery_latency_ms[key])}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p>{report.delivery_latency_ms.samples} recent deliveries</p>
          </section>
          <section aria-labelledby="report-backpressure" className="card">
            <h3 id="report-backpressure">Backpressure</h3>
            <p className={report.backpressure.saturated ? "tone-bad" : undefined}>
              {report.backpressure.saturated ? "Saturated: new streams refused" : "Not saturated"}
            </p>
            <p>
              Event-loop lag {formatMs(report.backpressure.event_loop_lag_ms)}, deepest queue{" "}
              {report.backpressure.max_queue_depth}, {report.backpressure.held_progress_updates} progress updates held
            </p>
          </section>
          <section aria-labelledby="report-redis" className="card">
            <h3 id="report-redis">Redis memory</h3>
            <p className="big">{formatBytes(report.redis_streams.stream_bytes)}</p>
            <p>
              in {report.redis_streams.streams_measured} event streams
              {report.redis_streams.complete ? "" : " (partial count)"}; Redis uses{" "}
              {formatBytes(report.redis_streams.redis_used_memory_bytes)} in all
            </p>
          </section>
          <section aria-labelledby="report-types" className="card">
            <h3 id="report-types">Top event types</h3>
            {report.top_event_types.length === 0 ? <p>None relayed yet.</p> : null}
            <table>
              <tbody>
                {report.top_event_types.map((row) => (
                  <tr key={row.type}>
                    <th scope="row">{row.type}</th>
                    <td>{row.relayed}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
          <section aria-labelledby="report-slowest" className="card card-wide">
            <h3 id="report-slowest">Slowest clients</h3>
            {report.slowest_clients.length === 0 ? <p>No open streams.</p> : null}
            {report.slowest_clients.length > 0 ? (
              <table>
                <thead>
                  <tr>
                    <th>user</th>
                    <th>connection</th>
                    <th>queue</th>
                    <th>delivered</th>
                    <th>open for</th>
                  </tr>
                </thead>
                <tbody>
                  {report.slowest_clients.map((client) => (
                    <tr key={client.connection_id}>
                      <td>{client.user_id}</td>
                      <td>
                        <code>{client.connection_id}</code>
                      </td>
                      <td>{client.queue_depth}</td>
                      <td>{client.delivered}</td>
                      <td>{formatDuration(client.connected_seconds)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : null}
          </section>
        </div>
      )}
    </>
  );
}

/** The operations report, refetched every few seconds; the last one stays shown while the API is down. */
function HealthReport() {
  const api = useApi();
  const now = useNow(1000);
  const health = useQuery({
    queryKey: ["admin", "health"],
    queryFn: api.health,
    refetchInterval: REPORT_REFRESH_MS,
    retry: false,
  });
  return (
    <section aria-labelledby="report-heading" className="admin-section">
      <h2 id="report-heading">Operations report</h2>
      <p className="hint" data-testid="report-updated">
        {health.dataUpdatedAt
          ? `Updated ${formatAge(health.dataUpdatedAt, now)} (${new Date(health.dataUpdatedAt).toLocaleTimeString()}), refreshed every ${REPORT_REFRESH_MS / 1000} s`
          : "Loading…"}
      </p>
      {health.error ? (
        <p role="alert" className="error-banner" data-testid="report-error">
          The API does not answer: {health.error.message}.{" "}
          {health.data ? "The figures below are from the last report. " : ""}Trying again every{" "}
          {REPORT_REFRESH_MS / 1000} s.
        </p>
      ) : null}
      {health.data ? (
        <div className={health.error ? "stale" : undefined}>
          <Report body={health.data} />
        </div>
      ) : null}
    </section>
  );
}

/** SSE or polling, for everyone or a share of writers (PUT /api/v1/realtime/config). */
function RealtimeMode() {
  const api = useApi();
  const mine = useQuery({ queryKey: ["admin", "my-realtime-mode"], queryFn: api.config });
  const [mode, setMode] = useState<ModeRule["mode"] | null>(null);
  const [percent, setPercent] = useState(100);
  const change = useMutation({
    mutationFn: (rule: { mode: ModeRule["mode"]; percent: number }) => api.setRealtimeMode(rule.mode, rule.percent),
    onSuccess: () => void mine.refetch(),
  });
  const chosen = mode ?? mine.data?.mode ?? "sse";
  const submit = (event: FormEvent) => {
    event.preventDefault();
    change.mutate({ mode: chosen, percent: chosen === "sse" ? 100 : percent });
  };
  return (
    <section aria-labelledby="mode-heading" className="admin-section">
      <h2 id="mode-heading">Realtime mode</h2>
      <p>
        This browser is told to use <strong data-testid="my-realtime-mode">{mine.data?.mode ?? "…"}</strong>.
      </p>
      <form onSubmit={submit} className="inline-form">
        <fieldset>
          <legend>Mode</legend>
          {(["sse", "polling"] as const).map((value) => (
            <label key={value} className="checkbox">
              <input
                type="radio"
                name="mode"
                value={value}
                checked={chosen === value}
                onChange={() => setMode(value)}
              />
              {value === "sse" ? "Live (SSE)" : "Polling"}
            </label>
          ))}
        </fieldset>
        <label>
          Share of writers polling (%)
          <input
            type="number"
            min={0}
            max={100}
            value={percent}
            disabled={chosen === "sse"}
            onChange={(e) => setPercent(Number(e.target.value))}
          />
        </label>
        <button type="submit" disabled={change.isPending}>
          Apply mode
        </button>
      </form>
      {change.data ? (
        <p role="status" data-testid="mode-rule">
          Rule stored: {change.data.mode === "sse" ? "everyone streams" : `${change.data.percent}% of writers poll`}
          {change.data.updated_at ? ` (${new Date(change.data.updated_at).toLocaleTimeString()})` : ""}.
        </p>
      ) : null}
      {change.error ? <p role="alert">{change.error.message}</p> : null}
    </section>
  );
}

/** POST /api/v1/admin/notifications. */
function SendNotification() {
  const api = useApi();
  const [form, setForm] = useState<NotificationForm>(EMPTY_NOTIFICATION_FORM);
  const [invalid, setInvalid] = useState<string | null>(null);
  const send = useMutation({ mutationFn: api.sendNotification });
  const edit = (patch: Partial<NotificationForm>) => setForm((current) => ({ ...current, ...patch }));
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const result = notificationBody(form);
    if ("error" in result) {
      setInvalid(result.error);
      return;
    }
    setInvalid(null);
    send.mutate(result.body);
  };
  return (
    <section aria-labelledby="notify-heading" className="admin-section">
      <h2 id="notify-heading">Send a system notification</h2>
      <form onSubmit={submit} className="novel-form">
        <label>
          Level
          <select value={form.level} onChange={(e) => edit({ level: e.target.value as Level })}>
            <option value="info">info</option>
            <option value="warning">warning</option>
            <option value="critical">critical</option>
          </select>
        </label>
        <label>
          Message
          <textarea value={form.message} onChange={(e) => edit({ message: e.target.value })} maxLength={2000} />
        </label>
        <label>
          Suggested action (optional)
          <input value={form.suggestedAction} onChange={(e) => edit({ suggestedAction: e.target.value })} />
        </label>
        <label>
          Send to
          <select value={form.audience} onChange={(e) => edit({ audience: e.target.value as Audience })}>
            <option value="everyone">everyone</option>
            <option value="users">some users</option>
            <option value="session">one session</option>
          </select>
        </label>
        {form.audience !== "everyone" ? (
          <label>
            User ids
            <input value={form.userIds} onChange={(e) => edit({ userIds: e.target.value })} />
          </label>
        ) : null}
        {form.audience === "session" ? (
          <label>
            Session id
            <input value={form.sessionId} onChange={(e) => edit({ sessionId: e.target.value })} />
          </label>
        ) : null}
        <button type="submit" disabled={send.isPending}>
          Send notification
        </button>
      </form>
      {invalid ? <p role="alert">{invalid}</p> : null}
      {send.error ? <p role="alert">{send.error.message}</p> : null}
      {send.data && !send.isPending ? (
        <p role="status" data-testid="notification-sent">
          Sent: {send.data.events} event{send.data.events === 1 ? "" : "s"} ({send.variables?.level}: “
          {send.variables?.message}”).
        </p>
      ) : null}
    </section>
  );
}

/** Operations: the live report, the realtime mode switch and system notifications (admins only). */
export function Admin() {
  const { session } = useAuth();
  if (!session?.admin) {
    return (
      <div className="admin">
        <h1>Admin</h1>
        <p role="alert">This page needs the admin role: sign out and sign in again as an admin.</p>
      </div>
    );
  }
  return (
    <div className="admin">
      <h1>Admin</h1>
      <HealthReport />
      <RealtimeMode />
      <SendNotification />
    </div>
  );
}
