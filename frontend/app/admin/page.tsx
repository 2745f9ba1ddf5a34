"use client";

import { useState } from "react";
import { ProtectedRoute } from "@/components/auth/ProtectedRoute";
import { useAuth } from "@/hooks/useAuth";
import { usePagedList } from "@/hooks/usePagedList";
import { deactivateUser, listUsers, reactivateUser } from "@/lib/api";
import { formatTime } from "@/lib/fieldErrors";
import type { User } from "@/lib/types";

function Admin() {
  const { user: me } = useAuth();
  const { items: users, setItems: setUsers, hasMore, more, error, attempt } = usePagedList(listUsers, "users");
  const [message, setMessage] = useState<string | null>(null);

  const toggle = (user: User) => attempt(async () => {
    if (user.is_active) await deactivateUser(user.id);
    else await reactivateUser(user.id);
    setMessage(`${user.username} ${user.is_active ? "deactivated" : "reactivated"}.`);
    setUsers((list) => list?.map((u) => (u.id === user.id ? { ...u, is_active: !u.is_active } : u)) ?? null);
  });

  return (
    <>
      <h1>Users</h1>
      <p role="status" aria-live="polite" className="notice">{message}</p>
      {error && <p role="alert" className="form-error">{error}</p>}
      {!users ? (
        <p className="muted">Loading users…</p>
      ) : (
        <div className="table-wrap" role="region" aria-label="All users" tabIndex={0}>
          <table>
            <caption className="visually-hidden">All users</caption>
            <thead>
              <tr><th scope="col">Username</th><th scope="col">Email</th><th scope="col">Status</th><th scope="col">Joined</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              {users.map((u) => (
                <tr key={u.id}>
                  <td>{u.username}{u.is_admin && " (admin)"}</td>
                  <td>{u.email}</td>
                  <td><span className={`badge status-${u.is_active ? "active" : "deactivated"}`}>{u.is_active ? "active" : "deactivated"}</span></td>
                  <td>{formatTime(u.created_at)}</td>
                  <td>
                    {u.id !== me?.id && (
                      <button type="button" className={u.is_active ? "danger" : undefined} onClick={() => toggle(u)}
                        aria-label={`${u.is_active ? "Deactivate" : "Reactivate"} ${u.username}`}>
                        {u.is_active ? "Deactivate" : "Reactivate"}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {hasMore && <p><button type="button" onClick={more}>Show more users</button></p>}
    </>
  );
}

export default function AdminPage() {
  return <ProtectedRoute admin><Admin /></ProtectedRoute>;
}
