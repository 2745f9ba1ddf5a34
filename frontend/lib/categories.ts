/** The document categories the ingest worker assigns. */
export const CATEGORIES = ["financial", "long_form", "generic"] as const;
