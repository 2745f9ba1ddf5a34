"use client";

import { useState } from "react";
import { openDocument } from "@/lib/api";
import { messageOf } from "@/lib/errors";

/** Opens a document's PDF at a page (fetched with the token, then an object URL #page=N). */
export function PageLink({ id, page, title, children }: { id: string; page: number; title: string; children?: React.ReactNode }) {
  const [error, setError] = useState<string | null>(null);
  return (
    <>
      <a href={`/api/documents/${id}/file#page=${page}`} className="page-link"
        aria-label={`Open ${title}${page ? `, page ${page}` : ""}`}
        onClick={(event) => {
          event.preventDefault();
          setError(null);
          openDocument(id, page || undefined).catch((e) => setError(messageOf(e)));
        }}>
        {children ?? <>{title}{page ? `, page ${page}` : ""}</>}
      </a>
      {error && <span role="alert" className="field-error"> {error}</span>}
    </>
  );
}
