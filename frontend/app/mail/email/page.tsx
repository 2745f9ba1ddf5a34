"use client";

import Link from "next/link";
import { useEffect, useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { EmailView } from "@/components/mail/EmailView";
import { getEmail } from "@/lib/api";
import { messageOf } from "@/lib/errors";
import type { Email } from "@/lib/types";

/** One email (`/mail/email/?id=…`): where a search hit or a citation of an email leads. */
function EmailPage() {
  const [email, setEmail] = useState<Email | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const id = new URLSearchParams(window.location.search).get("id");
    if (!id) {
      setError("No email named.");
      return;
    }
    getEmail(id).then(setEmail, (e) => setError(messageOf(e)));
  }, []);

  return (
    <>
      <p><Link href="/mail/">← Mail</Link></p>
      {error && (<><h1>Email</h1><p role="alert" className="form-error">{error}</p></>)}
      {!email && !error && <p className="muted">Loading the email…</p>}
      {email && <EmailView email={email} headingLevel={1} />}
    </>
  );
}

export default function Page() {
  return <ProtectedRoute><EmailPage /></ProtectedRoute>;
}
