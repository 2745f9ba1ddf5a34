"use client";

import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { AccountSettings } from "@/components/profile/AccountSettings";
import { ProfileNav } from "@/components/profile/ProfileNav";

export default function SettingsPage() {
  return (
    <ProtectedRoute>
      <h1>Account settings</h1>
      <ProfileNav />
      <AccountSettings />
    </ProtectedRoute>
  );
}
