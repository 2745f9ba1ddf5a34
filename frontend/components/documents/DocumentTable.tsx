"use client";

import { deleteDocument, downloadDocument, openDocument, reprocessDocument } from "@/lib/api";
import { formatTime } from "@/lib/fieldErrors";
import type { Document } from "@/lib/types";

interface Props {
  documents: Document[];
  onChanged: () => void;
  onError: (message: unknown) => void;
}

/** The documents with their status, category, pages, chunks and error; per-row actions. */
export function DocumentTable({ documents, onChanged, onError }: Props) {
  const act = (work: () => Promise<unknown>) => async () => {
    try {
      await work();
      onChanged();
    } catch (error) {
      onError(error);
    }
  };

  if (!documents.length) return <p className="muted">No documents yet. Upload a PDF to start.</p>;

  return (
    <div className="table-wrap" role="region" aria-label="Your documents" tabIndex={0}>
      <table>
        <caption className="visually-hidden">Your documents</caption>
        <thead>
          <tr>
            <th scope="col">Title</th><th scope="col">Status</th><th scope="col">Category</th>
            <th scope="col">Pages</th><th scope="col">Chunks</th><th scope="col">Uploaded</th>
            <th scope="col"><span className="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {documents.map((doc) => {
            const name = doc.title || doc.filename;
            return (
              <tr key={doc.id} data-status={doc.status}>
                <td>
                  <button type="button" className="link-button" onClick={act(() => openDocument(doc.id))}
                    aria-label={`Open ${name}`}>{name}</button>
                  {doc.error && <p className="field-error">{doc.error}</p>}
                </td>
                <td><span className={`badge status-${doc.status}`}>{doc.status}</span></td>
                <td>{doc.category ?? "—"}</td>
                <td>{doc.pages || "—"}</td>
                <td>{doc.chunks || "—"}</td>
                <td>{formatTime(doc.created_at)}</td>
                <td>
                  <div className="actions">
                    <button type="button" onClick={act(() => downloadDocument(doc))} aria-label={`Download ${name}`}>Download</button>
                    <button type="button" onClick={act(() => reprocessDocument(doc.id))}
                      disabled={doc.status === "queued" || doc.status === "processing"} aria-label={`Reprocess ${name}`}>Reprocess</button>
                    <button type="button" className="danger" aria-label={`Delete ${name}`}
                      onClick={act(async () => {
                        if (window.confirm(`Delete “${name}” and everything indexed from it?`)) await deleteDocument(doc.id);
                      })}>Delete</button>
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
