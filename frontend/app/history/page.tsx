"use client";

import { useState } from "react";
import { AnswerText } from "@/components/ask/AnswerText";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { usePagedList } from "@/hooks/usePagedList";
import { deleteQuery, listQueries } from "@/lib/api";
import { formatTime } from "@/lib/fieldErrors";
import type { QueryRecord } from "@/lib/types";

const PAGE = 20;

const fetchPage = (cursor?: string) => listQueries(cursor, PAGE);

function History() {
  const { items: queries, setItems: setQueries, hasMore, more, error, attempt } = usePagedList(fetchPage, "queries");
  const [message, setMessage] = useState<string | null>(null);

  const remove = (q: QueryRecord) => attempt(async () => {
    await deleteQuery(q.id);
    setQueries((list) => list?.filter((x) => x.id !== q.id) ?? null);
    setMessage("Question deleted.");
  });

  return (
    <>
      <h1>History</h1>
      <p role="status" aria-live="polite" className="notice">{message}</p>
      {error && <p role="alert" className="form-error">{error}</p>}
      {!queries ? (
        <p className="muted">Loading history…</p>
      ) : queries.length === 0 ? (
        <p className="muted">No questions yet.</p>
      ) : (
        <ol className="list">
          {queries.map((q) => (
            <li key={q.id} className="card">
              <h2 style={{ marginTop: 0 }}>{q.query}</h2>
              <p className="muted">
                {formatTime(q.created_at)} · <span className={`badge status-${q.status}`}>{q.status}</span>
              </p>
              {q.response && <AnswerText text={q.response} sources={q.sources} />}
              {q.error && <p className="field-error">{q.error}</p>}
              <button type="button" className="danger" onClick={() => remove(q)} aria-label={`Delete the question “${q.query}”`}>
                Delete
              </button>
            </li>
          ))}
        </ol>
      )}
      {hasMore && <p><button type="button" onClick={more}>Show older questions</button></p>}
    </>
  );
}

export default function HistoryPage() {
  return <ProtectedRoute><History /></ProtectedRoute>;
}
