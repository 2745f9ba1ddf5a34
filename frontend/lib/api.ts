// The API client (its types are generated from the gateway's OpenAPI
// document: see ./types): a fetch wrapper that adds the in-memory bearer token,
// refreshes it ONCE on a 401 (concurrent requests share the one in-flight
// refresh) and retries, and turns problem+json answers into ApiError.

import { clearAccessToken, cookieModeHeaders, getAccessToken, setAccessToken } from "./auth";
import { ApiError, problemFrom } from "./errors";
import { readSse } from "./sse";
import type {
  AccountStatus, AskBody, BrowserAccount, Document, DocumentPage, Email, EmailPage, EmailThread,
  GmailConnect, MailAccount, MailAccounts, QueryPage, QueryRecord, SearchMode, SearchResults,
  Session, TokenResponse, User, UserPage, Validation,
} from "./types";

export { ApiError } from "./errors";
export type * from "./types";

const BASE = "/api";

interface RequestOptions {
  method?: string;
  /** Sent as JSON. */
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Add the bearer token and refresh once on a 401 (default true). */
  auth?: boolean;
  signal?: AbortSignal;
}

// ---- sessions -------------------------------------------------------------

type SessionListener = (tokens: TokenResponse | null) => void;
const sessionListeners = new Set<SessionListener>();

/** Called with each new token response (sign-in, refresh, switch) and null on sign-out. */
export function onSession(listener: SessionListener): () => void {
  sessionListeners.add(listener);
  return () => {
    sessionListeners.delete(listener);
  };
}

function startSession(tokens: TokenResponse): TokenResponse {
  setAccessToken(tokens.access_token, tokens.expires_in);
  sessionListeners.forEach((listener) => listener(tokens));
  return tokens;
}

function endSession(): void {
  clearAccessToken();
  sessionListeners.forEach((listener) => listener(null));
}

let refreshing: Promise<TokenResponse> | null = null;

/**
 * A new access token from the refresh cookie (the current account, or
 * `userId`). Concurrent callers share one request.
 */
export function refreshToken(userId?: string): Promise<TokenResponse> {
  if (refreshing && !userId) return refreshing;
  const attempt = (async () => {
    const response = await fetch(`${BASE}/auth/refresh`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        ...cookieModeHeaders(),
        ...(userId ? { "Content-Type": "application/json" } : {}),
      },
      body: userId ? JSON.stringify({ user_id: userId }) : undefined,
    });
    if (!response.ok) throw await problemFrom(response);
    return startSession((await response.json()) as TokenResponse);
  })();
  if (!userId) {
    refreshing = attempt;
    attempt.then(
      () => { refreshing = null; },
      () => { refreshing = null; },
    );
  }
  return attempt;
}

// ---- the wrapper ----------------------------------------------------------

function buildInit(options: RequestOptions): RequestInit {
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const token = getAccessToken();
  if (options.auth !== false && token) headers.Authorization = `Bearer ${token}`;
  return { method: options.method ?? "GET", headers, body, credentials: "same-origin", signal: options.signal };
}

/** Fetches an API path; resolves to the Response when it is 2xx, else throws ApiError. */
export async function apiFetch(path: string, options: RequestOptions = {}): Promise<Response> {
  const url = `${BASE}${path}`;
  const sent = getAccessToken();
  let response = await fetch(url, buildInit(options));
  if (response.status === 401 && options.auth !== false) {
    const original = await problemFrom(response);
    // A refresh that finished while this request was in flight already gave
    // a new token: retry with it rather than refreshing again.
    const current = getAccessToken();
    if (!current || current === sent) {
      try {
        await refreshToken();
      } catch {
        endSession();
        throw original;
      }
    }
    response = await fetch(url, buildInit(options));
  }
  if (!response.ok) {
    const error = await problemFrom(response);
    if (response.status === 401 && options.auth !== false) endSession();
    throw error;
  }
  return response;
}

async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await apiFetch(path, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---- auth -----------------------------------------------------------------

export interface RegisterInput {
  email: string;
  username: string;
  password: string;
  display_name?: string;
}

export async function registerUser(input: RegisterInput): Promise<TokenResponse> {
  const tokens = await api<TokenResponse>("/auth/register", {
    method: "POST", json: input, auth: false, headers: cookieModeHeaders(),
  });
  return startSession(tokens);
}

/** Signs in by email or username (`login` is either). */
export async function login(loginName: string, password: string): Promise<TokenResponse> {
  const body = loginName.includes("@") ? { email: loginName, password } : { username: loginName, password };
  const tokens = await api<TokenResponse>("/auth/login", {
    method: "POST", json: body, auth: false, headers: cookieModeHeaders(),
  });
  return startSession(tokens);
}

/** Signs out of the current account only; the browser's other accounts stay. */
export async function logout(): Promise<void> {
  try {
    if (getAccessToken()) await api<void>("/auth/logout", { method: "POST", headers: cookieModeHeaders() });
  } finally {
    endSession();
  }
}

export function validateToken(): Promise<Validation> {
  return api<Validation>("/auth/validate");
}

export async function getAccountList(): Promise<BrowserAccount[]> {
  const body = await api<{ accounts: BrowserAccount[] }>("/auth/accounts", {
    auth: false, headers: cookieModeHeaders(),
  });
  return body.accounts;
}

export async function switchAccount(userId: string): Promise<TokenResponse> {
  const tokens = await api<TokenResponse>("/auth/switch", {
    method: "POST", json: { user_id: userId }, auth: false, headers: cookieModeHeaders(),
  });
  return startSession(tokens);
}

export async function listSessions(): Promise<Session[]> {
  return (await api<{ sessions: Session[] }>("/auth/sessions")).sessions;
}

export function revokeSession(id: string): Promise<void> {
  return api<void>(`/auth/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export function revokeOtherSessions(): Promise<{ revoked: number }> {
  return api<{ revoked: number }>("/auth/sessions/all?keep_current=true", { method: "DELETE" });
}

// ---- users ----------------------------------------------------------------

export function getCurrentUser(): Promise<User> {
  return api<User>("/users/profile");
}

export function updateUserProfile(changes: Partial<Pick<User, "email" | "username" | "display_name">>): Promise<User> {
  return api<User>("/users/profile", { method: "PUT", json: changes });
}

export function changePassword(oldPassword: string, newPassword: string): Promise<void> {
  return api<void>("/users/change-password", {
    method: "POST", json: { old_password: oldPassword, new_password: newPassword },
  });
}

export async function deleteAccount(password: string): Promise<void> {
  await api<void>("/users/account", { method: "DELETE", json: { password } });
  endSession();
}

export function getAccountStatus(): Promise<AccountStatus> {
  return api<AccountStatus>("/users/account-status");
}

export async function deactivateAccount(password: string): Promise<void> {
  await api<void>("/users/deactivate", { method: "POST", json: { password } });
  endSession();
}

export async function reactivateAccount(email: string, password: string): Promise<TokenResponse> {
  const tokens = await api<TokenResponse>("/users/reactivate", {
    method: "POST", json: { email, password }, auth: false, headers: cookieModeHeaders(),
  });
  return startSession(tokens);
}

// ---- admin ----------------------------------------------------------------

export function listUsers(cursor?: string, limit = 50): Promise<UserPage> {
  return api<UserPage>(`/admin/users${query({ cursor, limit })}`);
}

export function deactivateUser(id: string): Promise<User | void> {
  return api<User | void>(`/admin/users/${encodeURIComponent(id)}/deactivate`, { method: "POST" });
}

export function reactivateUser(id: string): Promise<User | void> {
  return api<User | void>(`/admin/users/${encodeURIComponent(id)}/reactivate`, { method: "POST" });
}

// ---- documents ------------------------------------------------------------

export interface DocumentFilters {
  status?: string;
  category?: string;
  cursor?: string;
  limit?: number;
}

export function listDocuments(filters: DocumentFilters = {}): Promise<DocumentPage> {
  return api<DocumentPage>(`/documents${query({ ...filters })}`);
}

export function getDocument(id: string): Promise<Document> {
  return api<Document>(`/documents/${encodeURIComponent(id)}`);
}

export function deleteDocument(id: string): Promise<void> {
  return api<void>(`/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export function reprocessDocument(id: string): Promise<Document> {
  return api<Document>(`/documents/${encodeURIComponent(id)}/reprocess`, { method: "POST" });
}

/** Uploads one PDF with progress (XHR: fetch cannot report upload progress). */
export async function uploadDocument(file: File, onProgress?: (fraction: number) => void): Promise<Document> {
  const send = () =>
    new Promise<{ status: number; text: string; statusText: string }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${BASE}/documents`);
      const token = getAccessToken();
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress?.(event.loaded / event.total);
      };
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, statusText: xhr.statusText });
      xhr.onerror = () => reject(new Error("The upload failed (network error)."));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  let result = await send();
  if (result.status === 401) {
    await refreshToken();
    result = await send();
  }
  const response = new Response(result.text || null, { status: result.status, statusText: result.statusText });
  if (!response.ok) throw await problemFrom(response);
  onProgress?.(1);
  return (await response.json()) as Document;
}

/** The original PDF, fetched with the bearer token. */
export async function fetchDocumentFile(id: string): Promise<Blob> {
  return (await apiFetch(`/documents/${encodeURIComponent(id)}/file`)).blob();
}

/**
 * Opens a document's PDF (at `page`, 1-based) in a new tab. The file route
 * needs the bearer token, so the PDF is fetched as a blob and opened as an
 * object URL; the tab is opened first so that popup blockers allow it.
 */
export async function openDocument(id: string, page?: number): Promise<void> {
  const tab = window.open("", "_blank");
  try {
    const url = URL.createObjectURL(await fetchDocumentFile(id));
    const target = page ? `${url}#page=${page}` : url;
    if (tab) {
      tab.opener = null;
      tab.location.href = target;
    } else {
      window.location.assign(target);
    }
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    tab?.close();
    throw error;
  }
}

/** Saves a document's PDF under its file name. */
export async function downloadDocument(doc: Pick<Document, "id" | "filename">): Promise<void> {
  const url = URL.createObjectURL(await fetchDocumentFile(doc.id));
  const link = document.createElement("a");
  link.href = url;
  link.download = doc.filename || "document.pdf";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- search ---------------------------------------------------------------

export interface SearchInput {
  q: string;
  k?: number;
  mode?: SearchMode;
  source?: string;
  category?: string;
  document_id?: string;
}

export function search(input: SearchInput, signal?: AbortSignal): Promise<SearchResults> {
  return api<SearchResults>(`/search${query({ ...input })}`, { signal });
}

// ---- ask and history ------------------------------------------------------

export interface AskHandlers {
  onStarted?: (queryId: string) => void;
  onDelta?: (text: string) => void;
  signal?: AbortSignal;
}

/** Asks without streaming: the whole record at once. */
export function ask(body: AskBody): Promise<QueryRecord> {
  return api<QueryRecord>("/queries", { method: "POST", json: body });
}

/** Asks and streams the answer: `started`, `delta`…, then `done` (resolves) or `error` (throws). */
export async function askStream(body: AskBody, handlers: AskHandlers = {}): Promise<QueryRecord> {
  const response = await apiFetch("/queries", {
    method: "POST", json: body, headers: { Accept: "text/event-stream" }, signal: handlers.signal,
  });
  if (!response.headers.get("content-type")?.includes("text/event-stream") || !response.body) {
    return (await response.json()) as QueryRecord;
  }
  for await (const event of readSse(response.body)) {
    const data = event.data ? JSON.parse(event.data) : {};
    switch (event.event) {
      case "started":
        handlers.onStarted?.(data.query_id);
        break;
      case "delta":
        handlers.onDelta?.(data.text ?? "");
        break;
      case "done":
        return data as QueryRecord;
      case "error":
        throw new ApiError(data.status ?? 500, data);
    }
  }
  throw new Error("The answer's stream ended before it was done.");
}

export function listQueries(cursor?: string, limit = 20): Promise<QueryPage> {
  return api<QueryPage>(`/queries${query({ cursor, limit })}`);
}

export function getQuery(id: string): Promise<QueryRecord> {
  return api<QueryRecord>(`/queries/${encodeURIComponent(id)}`);
}

export function deleteQuery(id: string): Promise<void> {
  return api<void>(`/queries/${encodeURIComponent(id)}`, { method: "DELETE" });
}

// ---- mail -----------------------------------------------------------------

/** Google's consent URL for connecting a Gmail account. */
export function gmailConnect(loginHint?: string): Promise<GmailConnect> {
  return api<GmailConnect>(`/gmail/connect${query({ login_hint: loginHint })}`);
}

export async function listMailAccounts(): Promise<MailAccount[]> {
  return (await api<MailAccounts>("/mail/accounts")).accounts;
}

export function syncMailAccount(id: string): Promise<MailAccount> {
  return api<MailAccount>(`/mail/accounts/${encodeURIComponent(id)}/sync`, { method: "POST" });
}

export function removeMailAccount(id: string): Promise<void> {
  return api<void>(`/mail/accounts/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export interface EmailFilters {
  classification?: string;
  account_id?: string;
  cursor?: string;
  limit?: number;
}

export function listEmails(filters: EmailFilters = {}): Promise<EmailPage> {
  return api<EmailPage>(`/emails${query({ ...filters })}`);
}

export function getEmail(id: string): Promise<Email> {
  return api<Email>(`/emails/${encodeURIComponent(id)}`);
}

export function getThread(id: string): Promise<EmailThread> {
  return api<EmailThread>(`/emails/threads/${encodeURIComponent(id)}`);
}
