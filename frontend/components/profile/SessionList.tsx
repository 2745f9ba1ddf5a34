"use client";

import { useCallback, useEffect, useState } from "react";
import { listSessions, revokeOtherSessions, revokeSession } from "@/lib/api";
import { messageOf } from "@/lib/errors";
import { formatTime } from "@/lib/fieldErrors";
import type { Session } from "@/lib/types";

/** Where this account is signed in; this device marked; revoke one or all others. */
export function SessionList({ reloadKey = 0 }: { reloadKey?: number }) {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setSessions(await listSessions());
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load, reloadKey]);

  async function revoke(session: Session) {
    try {
      await revokeSession(session.id);
      setMessage(`Signed out the session from ${session.user_agent || "an unknown device"}.`);
      await load();
    } catch (e) {
      setError(messageOf(e));
    }
  }

  async function revokeOthers() {
    try {
      const { revoked } = await revokeOtherSessions();
      setMessage(`Signed out ${revoked} other session${revoked === 1 ? "" : "s"}.`);
      await load();
    } catch (e) {
      setError(messageOf(e));
    }
  }

  return (
    <section aria-labelledby="sessions-heading">
      <h2 id="sessions-heading">Sessions</h2>
      <p role="status" aria-live="polite" className="notice">{message}</p>
      {error && <p role="alert" className="form-error">{error}</p>}
      {!sessions ? (
        <p className="muted">Loading sessions…</p>
      ) : (
        <div className="table-wrap" role="region" aria-label="Active sessions" tabIndex={0}>
          <table>
            <caption className="visually-hidden">Active sessions</caption>
            <thead>
              <tr><th scope="col">Device</th><th scope="col">IP</th><th scope="col">Signed in</th><th scope="col">Last used</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              {sessions.map((s) => (
                <tr key={s.id} aria-current={s.current ? "true" : undefined}>
                  <td>
                    {s.user_agent || "Unknown device"}
                    {s.current && <> <span className="badge status-active">This device</span></>}
                  </td>
                  <td>{s.ip || "—"}</td>
                  <td>{formatTime(s.created_at)}</td>
                  <td>{formatTime(s.last_used_at)}</td>
                  <td>
                    {!s.current && (
                      <button type="button" className="danger" onClick={() => revoke(s)}
                        aria-label={`Revoke session from ${s.user_agent || "unknown device"}, last used ${formatTime(s.last_used_at)}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p>
        <button type="button" onClick={revokeOthers} disabled={!sessions || sessions.length < 2}>
          Sign out all other sessions
        </button>
      </p>
    </section>
  );
}
