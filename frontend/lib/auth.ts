// Token handling in the browser.
//
// The access token lives in this module's memory only: never in
// localStorage, sessionStorage or a script-readable cookie. The refresh
// token lives in an HttpOnly cookie (`pai_refresh_<user_id>`) the gateway
// sets in cookie mode; this script never sees it. The `pai_csrf` cookie is
// script-readable on purpose: it is echoed back as `X-CSRF-Token` on the
// cookie-authenticated routes.

export const TOKEN_MODE_HEADER = "X-Pai-Token-Mode";
export const CSRF_HEADER = "X-CSRF-Token";
export const CSRF_COOKIE = "pai_csrf";

let accessToken: string | null = null;
let expiresAt = 0;
const listeners = new Set<(token: string | null) => void>();

export function getAccessToken(): string | null {
  return accessToken;
}

/** Seconds left on the access token (0 when none). */
export function accessTokenTtl(): number {
  return accessToken ? Math.max(0, Math.round((expiresAt - Date.now()) / 1000)) : 0;
}

export function setAccessToken(token: string | null, expiresIn = 0): void {
  accessToken = token;
  expiresAt = token ? Date.now() + expiresIn * 1000 : 0;
  listeners.forEach((listener) => listener(token));
}

export function clearAccessToken(): void {
  setAccessToken(null);
}

/** Called whenever the in-memory access token changes (null: signed out). */
export function onAccessTokenChange(listener: (token: string | null) => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** The `pai_csrf` cookie, read fresh before each cookie-authenticated call. */
export function readCsrfToken(): string | null {
  if (typeof document === "undefined") return null;
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** Headers of a cookie-mode call: the mode, and the CSRF token when there is one. */
export function cookieModeHeaders(): Record<string, string> {
  const headers: Record<string, string> = { [TOKEN_MODE_HEADER]: "cookie" };
  const csrf = readCsrfToken();
  if (csrf) headers[CSRF_HEADER] = csrf;
  return headers;
}

/** Where to go back to after signing in: only same-origin paths. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//")) return "/documents/";
  return next;
}

/**
 * Where to go when the session ends on purpose (sign out, deactivate,
 * delete): protected pages then go there instead of to sign-in with a
 * `?next=` back to themselves. Taken once.
 */
let leavingTo: string | null = null;

export function leaveTo(path: string | null): void {
  leavingTo = path;
}

export function takeLeaveTo(): string | null {
  const path = leavingTo;
  leavingTo = null;
  return path;
}
