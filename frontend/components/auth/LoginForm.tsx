"use client";

import { useState, type FormEvent } from "react";
import { useRouter } from "next/navigation";
import { Field } from "@/components/form/Field";
import { FormError } from "@/components/form/FormError";
import { useAuth } from "@/hooks/useAuth";
import { safeNext } from "@/lib/auth";
import { ApiError, messageOf } from "@/lib/errors";
import { formatTime } from "@/lib/fieldErrors";

/** Sign in by email (or username) and password; goes back to `?next=` after. */
export function LoginForm() {
  const { login, reactivate } = useAuth();
  const router = useRouter();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<{ email?: string; password?: string; form?: string }>({});
  const [canReactivate, setCanReactivate] = useState(false);

  const goOn = () => router.replace(safeNext(new URLSearchParams(window.location.search).get("next")));

  async function onReactivate() {
    setBusy(true);
    try {
      await reactivate(email.trim(), password);
      goOn();
    } catch (error) {
      setErrors(describe(error));
      setCanReactivate(false);
    } finally {
      setBusy(false);
    }
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    const next: typeof errors = {};
    if (!email.trim()) next.email = "Enter your email (or username).";
    if (!password) next.password = "Enter your password.";
    setErrors(next);
    if (next.email || next.password) return;
    setBusy(true);
    try {
      await login(email.trim(), password);
      goOn();
    } catch (error) {
      setErrors(describe(error));
      // The user's own deactivation is undone by reactivating (an admin's is not).
      setCanReactivate(error instanceof ApiError && /deactivated;/.test(error.detail) && email.includes("@"));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="card form" aria-busy={busy}>
      <Field label="Email" name="email" type="text" autoComplete="username" value={email}
        onChange={(e) => setEmail(e.target.value)} error={errors.email} required />
      <Field label="Password" name="password" type="password" autoComplete="current-password" value={password}
        onChange={(e) => setPassword(e.target.value)} error={errors.password} required />
      <FormError message={errors.form} />
      <button type="submit" className="primary" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      {canReactivate && (
        <button type="button" onClick={onReactivate} disabled={busy}>Reactivate account and sign in</button>
      )}
    </form>
  );
}

function describe(error: unknown): { email?: string; password?: string; form?: string } {
  if (error instanceof ApiError) {
    if (error.status === 423) {
      const until = error.lockedUntil;
      const minutes = until ? Math.max(1, Math.ceil((until.getTime() - Date.now()) / 60_000)) : null;
      return {
        form: until
          ? `This account is locked after too many failed sign-ins until ${formatTime(until)} (about ${minutes} minute${minutes === 1 ? "" : "s"}).`
          : `This account is locked after too many failed sign-ins. ${error.detail}`,
      };
    }
    if (error.status === 429) {
      return { form: `Too many attempts; try again${error.retryAfter ? ` in ${error.retryAfter} s` : " later"}.` };
    }
    if (/deactivated by an administrator/.test(error.detail)) {
      return { form: "This account was deactivated by an administrator; only an administrator can reactivate it." };
    }
    if (/deactivated/.test(error.detail)) {
      return { form: "This account is deactivated. Reactivate it to sign in: your data is still there." };
    }
    if (error.status === 401) return { password: error.detail || "Wrong email or password." };
    if (error.field === "email" || error.field === "username") return { email: error.detail };
    if (error.field === "password") return { password: error.detail };
  }
  return { form: messageOf(error) };
}
