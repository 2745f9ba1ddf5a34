// The API's shapes, from the types generated out of the gateway's OpenAPI
// document (lib/openapi.ts: `make web-types` writes it, `make test` fails
// when it is stale). Only the narrowings the app relies on are written here.

import type { components } from "./openapi";

type Schemas = components["schemas"];

export type User = Schemas["User"];
export type TokenResponse = Schemas["TokenResponse"];
export type BrowserAccount = Schemas["BrowserAccount"];
export type Session = Schemas["Session"];
export type Validation = Schemas["Validation"];
export type AccountStatus = Schemas["AccountStatus"];
export type Document = Schemas["Document"];
export type SearchHit = Schemas["SearchHit"];
export type SearchResults = Schemas["SearchResults"];
export type AnswerSource = Schemas["AnswerSource"];
export type AskTimings = Schemas["AskTimings"];
export type QueryRecord = Schemas["QueryRecord"];
export type AskBody = Schemas["AskBody"];
export type DocumentPage = Schemas["DocumentPage"];
export type QueryPage = Schemas["QueryPage"];
export type UserPage = Schemas["UserPage"];
export type GmailConnect = Schemas["GmailConnect"];
export type MailAccount = Schemas["MailAccount"];
export type MailAccounts = Schemas["MailAccounts"];
export type Email = Schemas["Email"];
export type EmailPage = Schemas["EmailPage"];
export type EmailThread = Schemas["EmailThread"];

/** An email's `classification`. */
export const CLASSIFICATIONS = ["personal", "work", "financial", "newsletter", "notification", "spam"] as const;

/** A document's `status` (the API sends it as a string). */
export type DocumentStatus = "queued" | "processing" | "indexed" | "failed";

/** The `mode` query parameter of `GET /api/search`. */
export type SearchMode = "hybrid" | "bm25" | "vector";

/** An RFC 9457 problem body (the standard members of `Problem`, all
 *  optional for a body that may not be one), with the members pai adds. */
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
