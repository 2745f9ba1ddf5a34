"use client";

import Link from "next/link";
import { useCallback, useEffect, useId, useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { addressText } from "@/components/mail/EmailView";
import { usePagedList, usePolling } from "@/hooks/usePagedList";
import { gmailConnect, listEmails, listMailAccounts, removeMailAccount, syncMailAccount } from "@/lib/api";
import { ApiError, messageOf } from "@/lib/errors";
import { formatTime } from "@/lib/fieldErrors";
import { CLASSIFICATIONS, type MailAccount } from "@/lib/types";

const STATE_TEXT: Record<string, string> = {
  active: "up to date",
  syncing: "syncing…",
  reauth_required: "needs to be connected again",
  error: "last sync failed",
};

function Mail() {
  const [accounts, setAccounts] = useState<MailAccount[] | null>(null);
  const [classification, setClassification] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const classId = useId();

  // The first page comes with the accounts; later pages alone.
  const fetchPage = useCallback(async (cursor?: string) => {
    const filters = { classification: classification || undefined, cursor, limit: 50 };
    if (cursor) return listEmails(filters);
    const [list, page] = await Promise.all([listMailAccounts(), listEmails(filters)]);
    setAccounts(list);
    return page;
  }, [classification]);
  // A load leaves the error shown: it may be the connect's outcome.
  const { items: emails, hasMore, more, reload, error, setError, attempt } =
    usePagedList(fetchPage, "emails", { clearError: false });

  // Google sends the browser back here with the outcome of a connect.
  useEffect(() => {
    const params = new URLSearchParams(window.location.search);
    if (params.get("connected")) setMessage("Gmail account connected; its first sync has started.");
    const failed = params.get("error");
    if (failed) setError(`The account was not connected: ${failed}`);
  }, []);

  // Refresh while an account syncs or has not synced yet.
  const busy = accounts?.some((a) => a.state === "syncing" || !a.last_sync_at) ?? false;
  usePolling(busy, reload);

  async function connect() {
    setError(null);
    try {
      const { authorization_url } = await gmailConnect();
      window.location.assign(authorization_url);
    } catch (e) {
      setError(e instanceof ApiError && e.problem.reason === "gmail_not_configured"
        ? "Gmail is not configured on this server (GMAIL_CLIENT_ID, GMAIL_CLIENT_SECRET, MAIL_TOKEN_ENCRYPTION_KEY)."
        : messageOf(e));
    }
  }

  async function act(account: MailAccount, what: "sync" | "remove") {
    setError(null);
    await attempt(async () => {
      if (what === "sync") {
        await syncMailAccount(account.id);
        setMessage(`Syncing ${account.email_address}…`);
      } else {
        await removeMailAccount(account.id);
        setMessage(`${account.email_address} removed with its mail.`);
      }
      await reload();
    });
  }

  return (
    <>
      <h1>Mail</h1>
      <p role="status" aria-live="polite" className="notice">{message}</p>
      {error && <p role="alert" className="form-error">{error}</p>}

      <section aria-labelledby="accounts-heading" className="card">
        <h2 id="accounts-heading" style={{ marginTop: 0 }}>Accounts</h2>
        {!accounts ? (
          <p className="muted">Loading accounts…</p>
        ) : accounts.length === 0 ? (
          <p className="muted">No mail account yet.</p>
        ) : (
          <ul className="list">
            {accounts.map((a) => (
              <li key={a.id}>
                <strong>{a.email_address}</strong> — {STATE_TEXT[a.state] ?? a.state}, {a.messages} messages,
                last sync {formatTime(a.last_sync_at)}
                {a.last_error && <span className="field-error"> {a.last_error}</span>}{" "}
                <button type="button" onClick={() => act(a, "sync")} disabled={a.state === "syncing"}
                  aria-label={`Sync now ${a.email_address}`}>Sync now</button>{" "}
                <button type="button" className="danger" onClick={() => act(a, "remove")}
                  aria-label={`Remove ${a.email_address}`}>Remove</button>
              </li>
            ))}
          </ul>
        )}
        <p><button type="button" className="primary" onClick={connect}>Connect Gmail</button></p>
      </section>

      <section aria-labelledby="emails-heading">
        <h2 id="emails-heading">Messages</h2>
        <div className="field" style={{ maxWidth: "16rem" }}>
          <label htmlFor={classId}>Classification</label>
          <select id={classId} value={classification} onChange={(e) => setClassification(e.target.value)}>
            <option value="">any</option>
            {CLASSIFICATIONS.map((c) => <option key={c} value={c}>{c}</option>)}
          </select>
        </div>
        {!emails ? (
          <p className="muted">Loading messages…</p>
        ) : emails.length === 0 ? (
          <p className="muted">No messages.</p>
        ) : (
          <ol className="list">
            {emails.map((e) => (
              <li key={e.id} className="card">
                <Link href={`/mail/email/?id=${encodeURIComponent(e.id)}`}><strong>{e.subject || "(no subject)"}</strong></Link>
                <p className="muted">
                  {addressText(e.from)} · {formatTime(e.date)} · <span className={`badge class-${e.classification}`}>{e.classification}</span>
                  {e.attachments.length > 0 && ` · ${e.attachments.length} attachment${e.attachments.length === 1 ? "" : "s"}`}
                </p>
                <p>{e.snippet}</p>
              </li>
            ))}
          </ol>
        )}
        {hasMore && <p><button type="button" onClick={more}>Show older messages</button></p>}
      </section>
    </>
  );
}

export default function MailPage() {
  return <ProtectedRoute><Mail /></ProtectedRoute>;
}
