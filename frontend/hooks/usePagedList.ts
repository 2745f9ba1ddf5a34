"use client";

import { useCallback, useEffect, useState } from "react";
import { messageOf } from "@/lib/errors";

/** A page of a cursor-paged list route: its items under `K`, and the cursor of the next page. */
type Page<K extends string> = Record<K, unknown[]> & { next_cursor?: string | null };

export interface PagedListOptions {
  /** Whether a successful load clears the error shown (default true). */
  clearError?: boolean;
}

/**
 * A cursor-paged list (documents, questions, users, emails): loads the first
 * page from `fetchPage()` on mount and again whenever `fetchPage` changes (a
 * filter), appends the next page on `more()`, and keeps the one error the
 * page shows, for its actions too.
 */
export function usePagedList<K extends string, P extends Page<K>>(
  fetchPage: (cursor?: string) => Promise<P>,
  key: K,
  { clearError = true }: PagedListOptions = {},
) {
  const [items, setItems] = useState<P[K][number][] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const fail = useCallback((e: unknown) => setError(messageOf(e)), []);

  const load = useCallback(async (after?: string) => {
    try {
      const page = await fetchPage(after);
      setItems((list) => [...(after ? list ?? [] : []), ...page[key]]);
      setCursor(page.next_cursor ?? null);
      if (clearError) setError(null);
    } catch (e) {
      fail(e);
    }
  }, [fetchPage, key, clearError, fail]);

  /** The first page again, in place of the list (after an action, or a poll). */
  const reload = useCallback(() => load(), [load]);

  useEffect(() => {
    void reload();
  }, [reload]);

  /** Appends the next page, when there is one. */
  const more = useCallback(async () => {
    if (cursor) await load(cursor);
  }, [cursor, load]);

  /** Runs an action, showing what it throws as the error. */
  const attempt = useCallback(async (work: () => Promise<void>) => {
    try {
      await work();
    } catch (e) {
      fail(e);
    }
  }, [fail]);

  return { items, setItems, hasMore: Boolean(cursor), more, reload, error, setError, fail, attempt };
}

/** Calls `reload` every `ms` while `active` (work the server is still doing). */
export function usePolling(active: boolean, reload: () => unknown, ms = 2000) {
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => void reload(), ms);
    return () => clearInterval(timer);
  }, [active, reload, ms]);
}
