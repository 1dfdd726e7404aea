import { NotificationSettings } from "../components/NotificationSettings";
import { type Notifications, useContentNotifications, useSystemNotifications } from "@infinitescribe/realtime";

function NotificationList({ title, list }: { title: string; list: Notifications }) {
  return (
    <section aria-label={title} className="notification-list">
      <h2>
        {title} <span className={list.unread ? "badge" : "badge badge-empty"}>{list.unread} unread</span>
      </h2>
      <button type="button" onClick={list.markAllRead} disabled={list.unread === 0}>
        Mark all read
      </button>
      {list.items.length === 0 ? <p>Nothing yet.</p> : null}
      <ul>
        {list.items.map((item) => (
          <li key={item.id} className={item.read ? "read" : "unread"} data-testid="notification">
            <strong>{item.title}</strong>
            {item.body ? <span className="notification-body">{item.body}</span> : null}
            <time dateTime={item.at}>{new Date(item.at).toLocaleTimeString()}</time>
            {!item.read ? (
              <button type="button" onClick={() => list.markRead(item.id)} aria-label={`Mark read: ${item.title}`}>
                Mark read
              </button>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Content and system notifications with unread counts, kept across reloads. */
export function NotificationCenter() {
  const content = useContentNotifications();
  const system = useSystemNotifications();
  return (
    <div className="notifications">
      <h1>Notifications</h1>
      <NotificationList title="Your novels" list={content} />
      <NotificationList title="System" list={system} />
      <NotificationSettings />
    </div>
  );
}
