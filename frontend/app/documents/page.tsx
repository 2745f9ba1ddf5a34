"use client";

import { useCallback, useEffect, useId, useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { DocumentTable } from "@/components/documents/DocumentTable";
import { UploadDropzone } from "@/components/documents/UploadDropzone";
import { listDocuments } from "@/lib/api";
import { CATEGORIES } from "@/lib/categories";
import { messageOf } from "@/lib/errors";
import type { Document } from "@/lib/types";

const POLL_MS = 2000;
const STATUSES = ["", "queued", "processing", "indexed", "failed"];

function Documents() {
  const [documents, setDocuments] = useState<Document[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  const [category, setCategory] = useState("");
  const [error, setError] = useState<string | null>(null);
  const statusId = useId();
  const categoryId = useId();

  const load = useCallback(async () => {
    try {
      const page = await listDocuments({ status: status || undefined, category: category || undefined, limit: 100 });
      setDocuments(page.documents);
      setCursor(page.next_cursor ?? null);
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }, [status, category]);

  useEffect(() => {
    void load();
  }, [load]);

  // Poll every 2 s while any document is still queued or processing.
  const busy = documents?.some((d) => d.status === "queued" || d.status === "processing") ?? false;
  useEffect(() => {
    if (!busy) return;
    const timer = setInterval(() => void load(), POLL_MS);
    return () => clearInterval(timer);
  }, [busy, load]);

  async function more() {
    if (!cursor) return;
    try {
      const page = await listDocuments({ status: status || undefined, category: category || undefined, cursor, limit: 100 });
      setDocuments((list) => [...(list ?? []), ...page.documents]);
      setCursor(page.next_cursor ?? null);
    } catch (e) {
      setError(messageOf(e));
    }
  }

  return (
    <>
      <h1>Documents</h1>
      <UploadDropzone onUploaded={() => void load()} />
      <h2>Your documents</h2>
      <div className="row" style={{ marginBottom: "1rem" }}>
        <div className="field">
          <label htmlFor={statusId}>Status</label>
          <select id={statusId} value={status} onChange={(e) => setStatus(e.target.value)}>
            {STATUSES.map((s) => <option key={s} value={s}>{s || "any"}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor={categoryId}>Category</label>
          <select id={categoryId} value={category} onChange={(e) => setCategory(e.target.value)}>
              <option value="">any</option>
              {CATEGORIES.map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
        </div>
      </div>
      <p role="status" aria-live="polite" className="muted">
        {busy ? "Processing documents… this list updates by itself." : ""}
      </p>
      {error && <p role="alert" className="form-error">{error}</p>}
      {documents ? (
        <DocumentTable documents={documents} onChanged={() => void load()} onError={(e) => setError(messageOf(e))} />
      ) : (
        <p className="muted">Loading documents…</p>
      )}
      {cursor && <p><button type="button" onClick={more}>Show more documents</button></p>}
    </>
  );
}

export default function DocumentsPage() {
  return <ProtectedRoute><Documents /></ProtectedRoute>;
}
