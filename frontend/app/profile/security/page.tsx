"use client";

import { useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { PasswordChangeForm } from "@/components/profile/PasswordChangeForm";
import { ProfileNav } from "@/components/profile/ProfileNav";
import { SessionList } from "@/components/profile/SessionList";

export default function SecurityPage() {
  const [reloadKey, setReloadKey] = useState(0);
  return (
    <ProtectedRoute>
      <h1>Security</h1>
      <ProfileNav />
      <SessionList reloadKey={reloadKey} />
      <h2>Change password</h2>
      <PasswordChangeForm onChanged={() => setReloadKey((k) => k + 1)} />
    </ProtectedRoute>
  );
}
