"use client";

import { useId, useState, type FormEvent } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { Highlighted } from "@/components/search/Highlighted";
import { PageLink } from "@/components/search/PageLink";
import { search } from "@/lib/api";
import { CATEGORIES } from "@/lib/categories";
import { messageOf } from "@/lib/errors";
import type { SearchMode, SearchResults } from "@/lib/types";

function Search() {
  const ids = { q: useId(), mode: useId(), k: useId(), category: useId(), source: useId() };
  const [q, setQ] = useState("");
  const [mode, setMode] = useState<SearchMode>("hybrid");
  const [k, setK] = useState(10);
  const [category, setCategory] = useState("");
  const [source, setSource] = useState("");
  const [results, setResults] = useState<SearchResults | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!q.trim()) {
      setError("Type what to search for.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setResults(await search({ q: q.trim(), mode, k, category: category || undefined, source: source || undefined }));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <h1>Search</h1>
      <form onSubmit={submit} className="card form" style={{ maxWidth: "none" }} role="search" aria-busy={busy}>
        <div className="field">
          <label htmlFor={ids.q}>Search your documents</label>
          <input id={ids.q} type="search" value={q} maxLength={1000} onChange={(e) => setQ(e.target.value)}
            aria-invalid={error ? true : undefined} aria-describedby={error ? `${ids.q}-error` : undefined} />
          {error && <p id={`${ids.q}-error`} className="field-error">{error}</p>}
        </div>
        <div className="row">
          <div className="field">
            <label htmlFor={ids.mode}>Mode</label>
            <select id={ids.mode} value={mode} onChange={(e) => setMode(e.target.value as SearchMode)}>
              <option value="hybrid">hybrid</option>
              <option value="bm25">bm25 (words)</option>
              <option value="vector">vector (meaning)</option>
            </select>
          </div>
          <div className="field">
            <label htmlFor={ids.k}>Results</label>
            <input id={ids.k} type="number" min={1} max={50} value={k} onChange={(e) => setK(Number(e.target.value) || 10)} />
          </div>
          <div className="field">
            <label htmlFor={ids.category}>Category</label>
            <select id={ids.category} value={category} onChange={(e) => setCategory(e.target.value)}>
              <option value="">any</option>
              {CATEGORIES.map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
          </div>
          <div className="field">
            <label htmlFor={ids.source}>Source</label>
            <select id={ids.source} value={source} onChange={(e) => setSource(e.target.value)}>
              <option value="">any</option>
              <option value="document">documents</option>
              <option value="email">emails</option>
            </select>
          </div>
        </div>
        <button type="submit" className="primary" disabled={busy}>Search</button>
      </form>
      <p role="status" aria-live="polite" className="muted">
        {busy ? "Searching…" : results ? `${results.hits.length} result${results.hits.length === 1 ? "" : "s"} in ${Math.round(results.took_ms)} ms` : ""}
      </p>
      {results && (
        <ol className="list">
          {results.hits.map((hit, i) => (
            <li key={`${hit.source.id}-${hit.source.page}-${i}`} className="card">
              <p><PageLink id={hit.source.id} page={hit.source.page} title={hit.source.title} kind={hit.source.kind} /></p>
              <p><Highlighted snippet={hit.snippet} /></p>
              <p className="muted">score {hit.score.toFixed(3)}{hit.source.category ? ` · ${hit.source.category}` : ""}</p>
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

export default function SearchPage() {
  return <ProtectedRoute><Search /></ProtectedRoute>;
}
