/**
 * The claims a platform JWT carries, read without checking its signature. Only decides what the
 * UI offers and shows: the API checks the signature, the expiry and the roles on every request.
 */
export function claimsOf(jwt: string): Record<string, unknown> {
  const payload = jwt.split(".")[1];
  if (!payload) return {};
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const claims = JSON.parse(atob(padded)) as unknown;
    return claims !== null && typeof claims === "object" ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The roles of a platform JWT (its `roles` claim). */
export function rolesOf(jwt: string): string[] {
  const roles = claimsOf(jwt).roles;
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === "string") : [];
}

export function isAdmin(jwt: string): boolean {
  return rolesOf(jwt).includes("admin");
}
