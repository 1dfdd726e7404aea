import { type FormEvent, useState } from "react";
import { ApiError } from "@infinitescribe/realtime";
import { useAuth } from "../auth/session";

function messageOf(failure: unknown): string {
  return failure instanceof Error ? failure.message : String(failure);
}

/**
 * Sign-in: a development JWT for any user id (POST /api/v1/auth/dev-token) while the API mints
 * them; otherwise the token the platform's login service gave the user, pasted here.
 */
export function SignIn() {
  const { signIn, signInWithToken } = useAuth();
  const [userId, setUserId] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [admin, setAdmin] = useState(false);
  const [devTokensOff, setDevTokensOff] = useState(false);

  const attempt = async (event: FormEvent, action: () => Promise<void>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (failure) {
      if (failure instanceof ApiError && failure.code === "not_found" && !devTokensOff) {
        setDevTokensOff(true); // this server mints no dev tokens: say what to do instead
      } else {
        setError(messageOf(failure));
      }
    } finally {
      setBusy(false);
    }
  };

  if (devTokensOff) {
    return (
      <main className="signin">
        <h1>Sign in to InfiniteScribe</h1>
        <p role="status">
          This server does not issue development tokens. Sign in through your platform&apos;s
          login: it gives you a token (a JWT) for this app. Paste it below.
        </p>
        <form onSubmit={(event) => attempt(event, () => signInWithToken(token.trim()))}>
          <label>
            Token from your login
            <textarea
              name="token"
              value={token}
              onChange={(e) => setToken(e.target.value)}
              rows={4}
              required
              autoFocus
            />
          </label>
          <button type="submit" disabled={busy}>
            Sign in with this token
          </button>
          {error ? <p role="alert">{error}</p> : null}
        </form>
        <p className="hint">
          Operators: for a development stack, start the API with SSE_DEV_TOKENS_ENABLED=true
          (docker-compose.dev.yml does).
        </p>
      </main>
    );
  }

  return (
    <main className="signin">
      <h1>Sign in to InfiniteScribe</h1>
      <form onSubmit={(event) => attempt(event, () => signIn(userId.trim(), { admin }))}>
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
