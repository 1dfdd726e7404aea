import { createContext, type ReactNode, useContext, useMemo } from "react";
import { type Api, createApi } from "./client";

const ApiContext = createContext<Api | null>(null);

/** The API as the signed-in user (`jwt`) sees it, for every page below. */
export function ApiProvider({ jwt, children }: { jwt: string; children: ReactNode }) {
  const api = useMemo(() => createApi(jwt), [jwt]);
  return <ApiContext.Provider value={api}>{children}</ApiContext.Provider>;
}

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error("useApi outside ApiProvider");
  return api;
}
