"use client";

import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { ProfileForm } from "@/components/profile/ProfileForm";
import { ProfileNav } from "@/components/profile/ProfileNav";
import { useAuth } from "@/hooks/useAuth";
import { formatTime } from "@/lib/fieldErrors";

function Profile() {
  const { user } = useAuth();
  if (!user) return null;
  return (
    <>
      <h1>Your profile</h1>
      <ProfileNav />
      <dl className="card">
        <dt>Username</dt><dd>{user.username}</dd>
        <dt>Email</dt><dd>{user.email}</dd>
        <dt>Member since</dt><dd>{formatTime(user.created_at)}</dd>
        {user.is_admin && (<><dt>Role</dt><dd>Administrator</dd></>)}
      </dl>
      <h2>Edit</h2>
      <ProfileForm key={user.id} />
    </>
  );
}

export default function ProfilePage() {
  return <ProtectedRoute><Profile /></ProtectedRoute>;
}
