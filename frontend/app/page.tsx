"use client";

import { useEffect } from "react";
import { useRouter } from "next/navigation";
import { useAuth } from "@/hooks/useAuth";

/** `/`: to the documents when signed in, else to sign in. */
export default function Home() {
  const { status } = useAuth();
  const router = useRouter();
  useEffect(() => {
    if (status === "signed-in") router.replace("/documents/");
    else if (status === "signed-out") router.replace("/auth/login/");
  }, [status, router]);
  return <p role="status" className="muted">Loading…</p>;
}
