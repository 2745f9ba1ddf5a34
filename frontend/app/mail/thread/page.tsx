"use client";

import Link from "next/link";
import { useEffect, useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { EmailView } from "@/components/mail/EmailView";
import { getThread } from "@/lib/api";
import { messageOf } from "@/lib/errors";
import type { EmailThread } from "@/lib/types";

/** A thread, oldest first (`/mail/thread/?id=…`). */
function ThreadPage() {
  const [thread, setThread] = useState<EmailThread | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const id = new URLSearchParams(window.location.search).get("id");
    if (!id) {
      setError("No thread named.");
      return;
    }
    getThread(id).then(setThread, (e) => setError(messageOf(e)));
  }, []);

  return (
    <>
      <p><Link href="/mail/">← Mail</Link></p>
      <h1>{thread ? thread.subject || "(no subject)" : "Thread"}</h1>
      {error && <p role="alert" className="form-error">{error}</p>}
      {!thread && !error && <p className="muted">Loading the thread…</p>}
      {thread && (
        <>
          <p className="muted">{thread.emails.length} message{thread.emails.length === 1 ? "" : "s"}, oldest first</p>
          <ol className="list">
            {thread.emails.map((email) => (
              <li key={email.id}><EmailView email={email} threadLink={false} /></li>
            ))}
          </ol>
        </>
      )}
    </>
  );
}

export default function Page() {
  return <ProtectedRoute><ThreadPage /></ProtectedRoute>;
}
