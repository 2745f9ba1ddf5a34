import { ApiError, messageOf } from "./errors";

/** Splits an error between the field it names (one of `fields`) and the form. */
export function splitError(
  error: unknown,
  fields: string[],
): { field: string | null; message: string } {
  const message = messageOf(error);
  if (error instanceof ApiError && error.field && fields.includes(error.field)) {
    return { field: error.field, message };
  }
  return { field: null, message };
}

export function formatTime(iso: string | Date | null | undefined): string {
  if (!iso) return "—";
  const date = typeof iso === "string" ? new Date(iso) : iso;
  return Number.isNaN(date.getTime()) ? "—" : date.toLocaleString();
}
