// TODO(types): generate from /api/openapi.json with openapi-typescript
// (these shapes are written by hand from DESIGN.md §6, the README and
// gateway/src/dto.rs; replace them with the generated `components["schemas"]`).

export interface User {
  id: string;
  email: string;
  username: string;
  display_name: string;
  is_admin: boolean;
  is_active: boolean;
  created_at: string | null;
}

export interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  csrf_token?: string;
  token_type: string;
  expires_in: number;
  user: User | null;
}

export interface BrowserAccount {
  user_id: string;
  current: boolean;
}

export interface Session {
  id: string;
  user_agent: string;
  ip: string;
  created_at: string | null;
  last_used_at: string | null;
  expires_at: string | null;
  current: boolean;
}

export interface Validation {
  valid: boolean;
  user_id: string;
  session_id: string;
  is_admin: boolean;
  issuer: string;
  audience: string;
  issued_at: string | null;
  expires_at: string | null;
}

export interface AccountStatus {
  status: "active" | "deactivated" | "locked" | string;
  locked_until: string | null;
}

export type DocumentStatus = "queued" | "processing" | "indexed" | "failed";

export interface Document {
  id: string;
  title: string;
  filename: string;
  category: string | null;
  status: DocumentStatus | string;
  error: string | null;
  pages: number;
  chunks: number;
  bytes: number;
  sha256: string;
  created_at: string | null;
  updated_at: string | null;
}

export interface SearchHit {
  text: string;
  snippet: string;
  score: number;
  source: { kind: string; id: string; title: string; page: number; category: string | null };
}

export interface SearchResults {
  hits: SearchHit[];
  took_ms: number;
}

export type SearchMode = "hybrid" | "bm25" | "vector";

export interface AnswerSource {
  n: number;
  source_kind: string;
  source_id: string;
  title: string;
  page: number;
  snippet: string;
  score: number;
  cited: boolean;
}

export interface AskTimings {
  queue_ms: number;
  retrieval_ms: number;
  first_token_ms: number;
  total_ms: number;
  prompt_tokens: number;
  generated_tokens: number;
  prompt_tokens_per_s: number;
  generation_tokens_per_s: number;
  cached_prompt_tokens: number;
}

export interface QueryRecord {
  id: string;
  query: string;
  response: string;
  sources: AnswerSource[];
  model: string;
  status: "answered" | "not_found" | "cancelled" | "failed" | string;
  error: string | null;
  timings: AskTimings;
  created_at: string | null;
}

export interface AskBody {
  query: string;
  k?: number;
  source?: string;
  category?: string;
  document_ids?: string[];
  max_tokens?: number;
}


export interface DocumentPage {
  documents: Document[];
  next_cursor: string | null;
}
export interface QueryPage {
  queries: QueryRecord[];
  next_cursor: string | null;
}
export interface UserPage {
  users: User[];
  next_cursor: string | null;
}

/** An RFC 9457 problem body, with the members pai adds. */
export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  field?: string;
  locked_until?: string;
  retry_after?: number;
  rule?: string;
  [member: string]: unknown;
}
