"use client";

import { Fragment, useEffect, type ReactNode } from "react";
import { useRouter } from "next/navigation";
import { useAuth } from "@/hooks/useAuth";
import { takeLeaveTo } from "@/lib/auth";

/** Renders its children for a signed-in user; sends anyone else to sign in, and back after. */
export function ProtectedRoute({ children, admin = false }: { children: ReactNode; admin?: boolean }) {
  const { status, user } = useAuth();
  const router = useRouter();

  useEffect(() => {
    if (status === "signed-out") {
      const here = window.location.pathname + window.location.search;
      router.replace(takeLeaveTo() ?? `/auth/login/?next=${encodeURIComponent(here)}`);
    }
  }, [status, router]);

  if (status !== "signed-in" || !user) {
    return (
      <p role="status" aria-live="polite" className="muted">
        {status === "loading" ? "Loading your session…" : "Redirecting to sign in…"}
      </p>
    );
  }
  if (admin && !user.is_admin) {
    return <p role="alert">This page is for administrators.</p>;
  }
  // Keyed by the account: switching accounts remounts the page, so it loads
  // the new account's data rather than showing the previous one's.
  return <Fragment key={user.id}>{children}</Fragment>;
}
