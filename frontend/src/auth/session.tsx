import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { createApi, mintDevToken } from "../api/client";
import { claimsOf, isAdmin } from "./roles";

export interface Session {
  jwt: string;
  userId: string;
  expiresAt: number;
  /** The JWT carries the role `admin` (the header then links the admin page). */
  admin: boolean;
}

const STORAGE_KEY = "infinitescribe.session";

function load(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    return session && session.expiresAt > Date.now() ? { ...session, admin: isAdmin(session.jwt) } : null;
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

  const signIn = useCallback(
    async (userId: string, options: { admin?: boolean } = {}) => {
      const token = await mintDevToken(userId, options.admin ? ["admin"] : []);
      keep({
        jwt: token.access_token,
        userId,
        expiresAt: Date.now() + token.expires_in * 1000,
        admin: isAdmin(token.access_token),
      });
    },
    [keep],
  );

  const signInWithToken = useCallback(
    async (jwt: string) => {
      const { sub, exp } = claimsOf(jwt);
      if (typeof sub !== "string" || typeof exp !== "number") {
        throw new Error("This is not a platform token: it has no user (sub) or expiry (exp).");
      }
      await createApi(jwt).sseToken(); // the API checks the signature and the expiry
      keep({ jwt, userId: sub, expiresAt: exp * 1000, admin: isAdmin(jwt) });
    },
    [keep],
  );

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
