"use client";

import { useState, type FormEvent } from "react";
import { Field } from "@/components/form/Field";
import { FormError } from "@/components/form/FormError";
import { changePassword } from "@/lib/api";
import { ApiError, messageOf } from "@/lib/errors";

type Errors = Partial<Record<"old" | "new" | "form", string>>;

/** Change the password; the API signs out every other session. */
export function PasswordChangeForm({ onChanged }: { onChanged?: () => void }) {
  const [oldPassword, setOld] = useState("");
  const [newPassword, setNew] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setDone(false);
    const next: Errors = {};
    if (!oldPassword) next.old = "Enter your current password.";
    if (newPassword.length < 12) next.new = "Use at least 12 characters.";
    setErrors(next);
    if (Object.keys(next).length) return;
    setBusy(true);
    try {
      await changePassword(oldPassword, newPassword);
      setOld("");
      setNew("");
      setDone(true);
      onChanged?.();
    } catch (error) {
      if (error instanceof ApiError && (error.field === "old_password" || error.status === 401 || error.status === 403)) setErrors({ old: error.detail });
      else if (error instanceof ApiError && (error.field === "new_password" || error.field === "password")) setErrors({ new: error.detail });
      else setErrors({ form: messageOf(error) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="card form" aria-busy={busy}>
      <Field label="Current password" name="old_password" type="password" autoComplete="current-password"
        value={oldPassword} onChange={(e) => setOld(e.target.value)} error={errors.old} />
      <Field label="New password" name="new_password" type="password" autoComplete="new-password"
        value={newPassword} onChange={(e) => setNew(e.target.value)} error={errors.new}
        hint="At least 12 characters. Your other sessions are signed out." />
      <FormError message={errors.form} />
      <p role="status" aria-live="polite" className="notice">{done ? "Password changed; other sessions signed out." : ""}</p>
      <button type="submit" className="primary" disabled={busy}>Change password</button>
    </form>
  );
}
