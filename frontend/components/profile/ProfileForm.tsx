"use client";

import { useState, type FormEvent } from "react";
import { Field } from "@/components/form/Field";
import { FormError } from "@/components/form/FormError";
import { useAuth } from "@/hooks/useAuth";
import { updateUserProfile } from "@/lib/api";
import { splitError } from "@/lib/fieldErrors";

type Errors = Partial<Record<"email" | "username" | "display_name" | "form", string>>;

/** Edit username, email and display name. */
export function ProfileForm() {
  const { user, setUser } = useAuth();
  const [values, setValues] = useState({
    email: user?.email ?? "",
    username: user?.username ?? "",
    display_name: user?.display_name ?? "",
  });
  const [errors, setErrors] = useState<Errors>({});
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  const set = (key: keyof typeof values) => (e: React.ChangeEvent<HTMLInputElement>) => {
    setSaved(false);
    setValues((v) => ({ ...v, [key]: e.target.value }));
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!user) return;
    const changes: Partial<typeof values> = {};
    (Object.keys(values) as (keyof typeof values)[]).forEach((key) => {
      if (values[key].trim() !== (user[key] ?? "")) changes[key] = values[key].trim();
    });
    setErrors({});
    if (!Object.keys(changes).length) {
      setSaved(true);
      return;
    }
    setBusy(true);
    try {
      setUser(await updateUserProfile(changes));
      setSaved(true);
    } catch (error) {
      const { field, message } = splitError(error, ["email", "username", "display_name"]);
      setErrors(field ? { [field]: message } : { form: message });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="card form" aria-busy={busy}>
      <Field label="Email" name="email" type="email" autoComplete="email" value={values.email}
        onChange={set("email")} error={errors.email} />
      <Field label="Username" name="username" autoComplete="username" value={values.username}
        onChange={set("username")} error={errors.username} />
      <Field label="Display name" name="display_name" autoComplete="name" value={values.display_name}
        onChange={set("display_name")} error={errors.display_name} />
      <FormError message={errors.form} />
      <p role="status" aria-live="polite" className="notice">{saved ? "Profile saved." : ""}</p>
      <button type="submit" className="primary" disabled={busy}>Save profile</button>
    </form>
  );
}
