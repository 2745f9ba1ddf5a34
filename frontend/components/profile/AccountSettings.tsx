"use client";

import { useEffect, useState, type FormEvent } from "react";
import { useRouter } from "next/navigation";
import { Field } from "@/components/form/Field";
import { FormError } from "@/components/form/FormError";
import { deactivateAccount, deleteAccount, getAccountStatus } from "@/lib/api";
import { leaveTo } from "@/lib/auth";
import { ApiError, messageOf } from "@/lib/errors";
import { formatTime } from "@/lib/fieldErrors";
import type { AccountStatus } from "@/lib/types";

/** Account status, deactivate (reversible by signing in again) and delete (final). */
export function AccountSettings() {
  const router = useRouter();
  const [status, setStatus] = useState<AccountStatus | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);

  useEffect(() => {
    getAccountStatus().then(setStatus, (e) => setStatusError(messageOf(e)));
  }, []);

  return (
    <>
      <section aria-labelledby="status-heading" className="card">
        <h2 id="status-heading">Account status</h2>
        {status ? (
          <p>
            <span className={`badge status-${status.status}`}>{status.status}</span>
            {status.locked_until && <> until {formatTime(status.locked_until)}</>}
          </p>
        ) : (
          <p role="status" className="muted">{statusError ?? "Loading…"}</p>
        )}
      </section>
      <ConfirmWithPassword
        heading="Deactivate the account"
        explain="Signs out every session. Sign in again later to reactivate it; your data stays."
        action="Deactivate account"
        run={async (password) => {
          leaveTo("/auth/login/");
          try {
            await deactivateAccount(password);
          } catch (error) {
            leaveTo(null);
            throw error;
          }
          router.replace("/auth/login/");
        }}
      />
      <ConfirmWithPassword
        heading="Delete the account"
        explain="Erases the account and all its documents, history and sessions. This cannot be undone."
        action="Delete account"
        run={async (password) => {
          leaveTo("/auth/register/");
          try {
            await deleteAccount(password);
          } catch (error) {
            leaveTo(null);
            throw error;
          }
          router.replace("/auth/register/");
        }}
      />
    </>
  );
}

function ConfirmWithPassword({ heading, explain, action, run }: {
  heading: string; explain: string; action: string; run: (password: string) => Promise<void>;
}) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<{ field?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);
  const headingId = `${action.replace(/\s+/g, "-").toLowerCase()}-heading`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!password) {
      setError({ field: "Enter your password to confirm." });
      return;
    }
    setBusy(true);
    setError({});
    try {
      await run(password);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.field === "password")) setError({ field: e.detail });
      else setError({ form: messageOf(e) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>{heading}</h2>
      <form onSubmit={submit} noValidate className="card form" aria-busy={busy}>
        <p className="muted">{explain}</p>
        <Field label={`Password (to ${action.toLowerCase()})`} type="password" autoComplete="current-password"
          value={password} onChange={(e) => setPassword(e.target.value)} error={error.field} />
        <FormError message={error.form} />
        <button type="submit" className="danger" disabled={busy}>{action}</button>
      </form>
    </section>
  );
}
