"use client";

import { useCallback, useId, useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { DocumentTable } from "@/components/documents/DocumentTable";
import { UploadDropzone } from "@/components/documents/UploadDropzone";
import { usePagedList, usePolling } from "@/hooks/usePagedList";
import { listDocuments } from "@/lib/api";
import { CATEGORIES } from "@/lib/categories";

const STATUSES = ["", "queued", "processing", "indexed", "failed"];

function Documents() {
  const [status, setStatus] = useState("");
  const [category, setCategory] = useState("");
  const statusId = useId();
  const categoryId = useId();
  const fetchPage = useCallback(
    (cursor?: string) => listDocuments({ status: status || undefined, category: category || undefined, cursor, limit: 100 }),
    [status, category],
  );
  const { items: documents, hasMore, more, reload, error, fail } = usePagedList(fetchPage, "documents");

  // Poll every 2 s while any document is still queued or processing.
  const busy = documents?.some((d) => d.status === "queued" || d.status === "processing") ?? false;
  usePolling(busy, reload);

  return (
    <>
      <h1>Documents</h1>
      <UploadDropzone onUploaded={() => void reload()} />
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
        <DocumentTable documents={documents} onChanged={() => void reload()} onError={fail} />
      ) : (
        <p className="muted">Loading documents…</p>
      )}
      {hasMore && <p><button type="button" onClick={more}>Show more documents</button></p>}
    </>
  );
}

export default function DocumentsPage() {
  return <ProtectedRoute><Documents /></ProtectedRoute>;
}
