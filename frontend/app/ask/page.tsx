"use client";

import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { AnswerText } from "@/components/ask/AnswerText";
import { SourceList } from "@/components/ask/SourceList";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { askStream } from "@/lib/api";
import { ApiError, messageOf } from "@/lib/errors";
import type { QueryRecord } from "@/lib/types";

type Phase = "idle" | "waiting" | "streaming" | "done";

const STATUS_TEXT: Record<string, string> = {
  answered: "Answered.",
  not_found: "Your data does not say.",
  cancelled: "Cancelled.",
  failed: "The answer failed.",
};

function Ask() {
  const questionId = useId();
  const [question, setQuestion] = useState("");
  const [phase, setPhase] = useState<Phase>("idle");
  const [text, setText] = useState("");
  const [record, setRecord] = useState<QueryRecord | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fieldError, setFieldError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  const [elapsed, setElapsed] = useState(0);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!question.trim()) {
      setFieldError("Type a question.");
      return;
    }
    setFieldError(null);
    setError(null);
    setText("");
    setRecord(null);
    setPhase("waiting");
    abort.current = new AbortController();
    try {
      const done = await askStream({ query: question.trim() }, {
        signal: abort.current.signal,
        onDelta: (piece) => {
          setPhase("streaming");
          setText((t) => t + piece);
        },
      });
      setRecord(done);
      setText(done.response);
    } catch (e) {
      if ((e as Error).name === "AbortError") setError("Stopped.");
      else if (e instanceof ApiError && e.field === "query") setFieldError(e.detail);
      else setError(messageOf(e));
    } finally {
      setPhase("done");
      abort.current = null;
    }
  }

  const working = phase === "waiting" || phase === "streaming";

  // Progress while the answer comes: seconds elapsed, repainted once a
  // second. (An animated bar repaints every frame, and the browser's
  // frames compete with the model for the same cores on a small machine.)
  useEffect(() => {
    if (!working) return;
    setElapsed(0);
    const started = Date.now();
    const timer = setInterval(() => setElapsed(Math.floor((Date.now() - started) / 1000)), 1000);
    return () => clearInterval(timer);
  }, [working]);
  const statusLine = phase === "waiting" ? "Searching your data and starting the answer…"
    : phase === "streaming" ? "Answering…"
    : record ? STATUS_TEXT[record.status] ?? record.status : "";

  return (
    <>
      <h1>Ask</h1>
      <form onSubmit={submit} className="card form" style={{ maxWidth: "none" }} aria-busy={working}>
        <div className="field">
          <label htmlFor={questionId}>Question</label>
          <textarea id={questionId} value={question} onChange={(e) => setQuestion(e.target.value)}
            aria-invalid={fieldError ? true : undefined} aria-describedby={fieldError ? `${questionId}-error` : undefined}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
            }} />
          {fieldError && <p id={`${questionId}-error`} className="field-error">{fieldError}</p>}
        </div>
        <div className="actions">
          <button type="submit" className="primary" disabled={working}>Ask</button>
          {working && <button type="button" onClick={() => abort.current?.abort()}>Stop</button>}
        </div>
      </form>
      <p role="status" aria-live="polite" className="muted">
        {statusLine}
        {working && elapsed > 0 && <span aria-hidden="true"> ({elapsed} s)</span>}
      </p>
      {error && <p role="alert" className="form-error">{error}</p>}
      {(text || record) && (
        <section aria-labelledby="answer-heading" aria-busy={working} className="card">
          <h2 id="answer-heading">Answer</h2>
          <AnswerText text={text} sources={record?.sources ?? []} />
          {record && record.timings.total_ms > 0 && (
            <p className="muted">
              First token after {Math.round(record.timings.first_token_ms)} ms, done in {Math.round(record.timings.total_ms)} ms
              {record.model ? ` · ${record.model}` : ""}
            </p>
          )}
        </section>
      )}
      {record && <SourceList sources={record.sources} />}
    </>
  );
}

export default function AskPage() {
  return <ProtectedRoute><Ask /></ProtectedRoute>;
}
