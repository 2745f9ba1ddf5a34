"use client";

import Link from "next/link";
import { RegisterForm } from "@/components/auth/RegisterForm";

export default function RegisterPage() {
  return (
    <>
      <h1>Create your account</h1>
      <RegisterForm />
      <p>Already have one? <Link href="/auth/login/">Sign in</Link></p>
    </>
  );
}
