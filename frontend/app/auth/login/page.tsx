"use client";

import Link from "next/link";
import { LoginForm } from "@/components/auth/LoginForm";
import { useAuth } from "@/hooks/useAuth";

export default function LoginPage() {
  const { user } = useAuth();
  return (
    <>
      <h1>{user ? "Sign in to another account" : "Sign in"}</h1>
      {user && <p className="muted">You stay signed in as {user.username}; switch between accounts from the account menu.</p>}
      <LoginForm />
      <p>New to pai? <Link href="/auth/register/">Create an account</Link></p>
    </>
  );
}
