"use client";

import { useEffect, useRef, useState } from "react";
import Link from "next/link";
import { useAuth } from "@/hooks/useAuth";

/** Signs out of the current account (the browser's other accounts stay). */
export default function LogoutPage() {
  const { status, logout } = useAuth();
  const [done, setDone] = useState(false);
  const started = useRef(false);

  useEffect(() => {
    if (status === "loading" || started.current) return;
    started.current = true;
    if (status === "signed-out") {
      setDone(true);
      return;
    }
    logout().catch(() => undefined).finally(() => setDone(true));
  }, [status, logout]);

  return (
    <>
      <h1>Sign out</h1>
      <p role="status" aria-live="polite">{done ? "You are signed out." : "Signing out…"}</p>
      {done && <p><Link href="/auth/login/">Sign in again</Link></p>}
    </>
  );
}
