import { NavLink, Outlet } from "react-router";
import { useAuth } from "../auth/session";
import { useContentNotifications, useSystemNotifications } from "@infinitescribe/realtime";
import { Notices } from "./Notices";
import { SSEConnectionStatus } from "./SSEConnectionStatus";

/** Header (navigation, unread count, sign out), connection status, notices, and the page. */
export function Layout() {
  const { session, signOut } = useAuth();
  const unread = useContentNotifications().unread + useSystemNotifications().unread;
  return (
    <div className="app">
      <header className="header">
        <strong className="brand">InfiniteScribe</strong>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Novels
          </NavLink>
          <NavLink to="/notifications">
            Notifications <span className={unread ? "badge" : "badge badge-empty"} data-testid="unread-count" aria-label={`${unread} unread`}>{unread}</span>
          </NavLink>
          {session?.admin ? <NavLink to="/admin">Admin</NavLink> : null}
        </nav>
        <span className="user">{session?.userId}</span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <SSEConnectionStatus />
      {session ? <Notices userId={session.userId} /> : null}
      <main>
        <Outlet />
      </main>
    </div>
  );
}
