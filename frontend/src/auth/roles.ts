/**
 * The roles a platform JWT carries (its `roles` claim). Only decides what the UI offers: the API
 * checks the signature and the role itself on every admin request.
 */
export function rolesOf(jwt: string): string[] {
  const payload = jwt.split(".")[1];
  if (!payload) return [];
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const claims = JSON.parse(atob(padded)) as { roles?: unknown };
    return Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === "string") : [];
  } catch {
    return [];
  }
}

export function isAdmin(jwt: string): boolean {
  return rolesOf(jwt).includes("admin");
}
