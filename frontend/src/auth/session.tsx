import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { createApi, mintDevToken } from "../api/client";

export interface Session {
  jwt: string;
  userId: string;
  expiresAt: number;
  /** The server reads the role `admin` in the JWT (the header then links the admin page). */
  admin: boolean;
}

const STORAGE_KEY = "infinitescribe.session";

function load(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    return session && session.expiresAt > Date.now() ? session : null;
  } catch {
    return null;
  }
}

interface AuthValue {
  session: Session | null;
  signIn(userId: string, options?: { admin?: boolean }): Promise<void>;
  /** Sign in with a JWT from the platform's login (when the API mints no dev tokens). */
  signInWithToken(jwt: string): Promise<void>;
  signOut(): void;
}

const AuthContext = createContext<AuthValue | null>(null);

/** The signed-in user, shared by every tab through localStorage (signing out ends them all). */
export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(load);

  useEffect(() => {
    const onStorage = (event: StorageEvent) => {
      if (event.key === STORAGE_KEY || event.key === null) setSession(load());
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const keep = useCallback((next: Session) => {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    setSession(next);
  }, []);

  /** The session of ``jwt`` as the server reads it (the configured user and roles claims,
   * the signature and the expiry checked): never the page's own reading of the token. */
  const adopt = useCallback(
    async (jwt: string) => {
      const me = await createApi(jwt).me();
      keep({ jwt, userId: me.user_id, expiresAt: me.expires_at * 1000, admin: me.roles.includes("admin") });
    },
    [keep],
  );

  const signIn = useCallback(
    async (userId: string, options: { admin?: boolean } = {}) => {
      const token = await mintDevToken(userId, options.admin ? ["admin"] : []);
      await adopt(token.access_token);
    },
    [adopt],
  );

  const signInWithToken = useCallback((jwt: string) => adopt(jwt), [adopt]);

  const signOut = useCallback(() => {
    localStorage.removeItem(STORAGE_KEY);
    setSession(null);
  }, []);

  return <AuthContext.Provider value={{ session, signIn, signInWithToken, signOut }}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
