import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { mintDevToken } from "../api/client";
import { isAdmin } from "./roles";

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

  const signIn = useCallback(async (userId: string, options: { admin?: boolean } = {}) => {
    const token = await mintDevToken(userId, options.admin ? ["admin"] : []);
    const next: Session = {
      jwt: token.access_token,
      userId,
      expiresAt: Date.now() + token.expires_in * 1000,
      admin: isAdmin(token.access_token),
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    setSession(next);
  }, []);

  const signOut = useCallback(() => {
    localStorage.removeItem(STORAGE_KEY);
    setSession(null);
  }, []);

  return <AuthContext.Provider value={{ session, signIn, signOut }}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
