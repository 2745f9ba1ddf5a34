import type { ProblemBody } from "./types";

const FIELDS = ["email", "username", "password", "new_password", "old_password", "display_name", "query", "q", "file"];

/** An error answer of the API, read from its RFC 9457 problem+json body. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  /** The request field the problem names, when it names one. */
  readonly field?: string;
  readonly problem: ProblemBody;

  constructor(status: number, problem: ProblemBody) {
    const title = problem.title || `HTTP ${status}`;
    const detail = problem.detail || title;
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
    this.field = typeof problem.field === "string" ? problem.field : guessField(detail);
  }

  /** When a locked account unlocks (423), if the problem says. */
  get lockedUntil(): Date | null {
    const until = this.problem.locked_until;
    return typeof until === "string" ? new Date(until) : null;
  }

  get retryAfter(): number | null {
    return typeof this.problem.retry_after === "number" ? this.problem.retry_after : null;
  }
}

/** The first field name a detail sentence mentions ("password is too short" → password). */
function guessField(detail: string): string | undefined {
  const words: string[] = detail.toLowerCase().match(/[a-z_]+/g) ?? [];
  return FIELDS.find((field) => words.includes(field));
}

/** Reads a failed response into an ApiError, whatever its body. */
export async function problemFrom(response: Response): Promise<ApiError> {
  let body: ProblemBody = {};
  try {
    const text = await response.text();
    body = text ? (JSON.parse(text) as ProblemBody) : {};
  } catch {
    body = {};
  }
  if (!body.title) body.title = response.statusText || `HTTP ${response.status}`;
  return new ApiError(response.status, body);
}

/** A human sentence for any thrown value. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof Error) return error.message;
  return String(error);
}
