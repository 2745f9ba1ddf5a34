"use client";

import { useState, type FormEvent } from "react";
import { useRouter } from "next/navigation";
import { Field } from "@/components/form/Field";
import { FormError } from "@/components/form/FormError";
import { useAuth } from "@/hooks/useAuth";
import { safeNext } from "@/lib/auth";
import { splitError } from "@/lib/fieldErrors";

type Errors = Partial<Record<"email" | "username" | "password" | "form", string>>;

/** Create an account; signs in to it (cookie mode) and goes on. */
export function RegisterForm() {
  const { register } = useAuth();
  const router = useRouter();
  const [values, setValues] = useState({ email: "", username: "", password: "" });
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Errors>({});

  const set = (key: keyof typeof values) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setValues((v) => ({ ...v, [key]: e.target.value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const next: Errors = {};
    if (!values.email.includes("@")) next.email = "Enter an email address.";
    if (!values.username.trim()) next.username = "Choose a username.";
    if (values.password.length < 12) next.password = "Use at least 12 characters.";
    setErrors(next);
    if (Object.keys(next).length) return;
    setBusy(true);
    try {
      await register({ email: values.email.trim(), username: values.username.trim(), password: values.password });
      router.replace(safeNext(new URLSearchParams(window.location.search).get("next")));
    } catch (error) {
      const { field, message } = splitError(error, ["email", "username", "password"]);
      setErrors(field ? { [field]: message } : { form: message });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="card form" aria-busy={busy}>
      <Field label="Email" name="email" type="email" autoComplete="email" value={values.email}
        onChange={set("email")} error={errors.email} required />
      <Field label="Username" name="username" autoComplete="username" value={values.username}
        onChange={set("username")} error={errors.username} required />
      <Field label="Password" name="password" type="password" autoComplete="new-password" value={values.password}
        onChange={set("password")} error={errors.password} hint="At least 12 characters, not a common password." required />
      <FormError message={errors.form} />
      <button type="submit" className="primary" disabled={busy}>{busy ? "Creating account…" : "Create account"}</button>
    </form>
  );
}
