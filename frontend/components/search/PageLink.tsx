"use client";

import Link from "next/link";
import { useState } from "react";
import { openDocument } from "@/lib/api";
import { messageOf } from "@/lib/errors";

/** Opens a source: a document's PDF at a page (fetched with the token, then
 *  an object URL #page=N), or an email on its page. */
export function PageLink({ id, page, title, kind = "document", children }: {
  id: string; page: number; title: string; kind?: string; children?: React.ReactNode;
}) {
  const [error, setError] = useState<string | null>(null);
  if (kind === "email") {
    return (
      <Link href={`/mail/email/?id=${encodeURIComponent(id)}`} className="page-link" aria-label={`Open the email ${title}`}>
        {children ?? title}
      </Link>
    );
  }
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
