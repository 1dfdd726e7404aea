import { type FormEvent, useState } from "react";
import { useAuth } from "../auth/session";

/** Development sign-in: a JWT for any user id from POST /api/v1/auth/dev-token. */
export function SignIn() {
  const { signIn } = useAuth();
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [admin, setAdmin] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(userId.trim(), { admin });
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>Sign in to InfiniteScribe</h1>
      <form onSubmit={submit}>
        <label>
          User id
          <input
            name="user"
            value={userId}
            onChange={(e) => setUserId(e.target.value)}
            pattern="[A-Za-z0-9_.@\-]{1,64}"
            required
            autoFocus
          />
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} />
          Sign in as admin (role <code>admin</code> in the dev token)
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error ? <p role="alert">{error}</p> : null}
      </form>
      <p className="hint">Development tokens: any user id works while the API allows dev tokens.</p>
    </main>
  );
}
