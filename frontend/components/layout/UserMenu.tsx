"use client";

import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useAuth } from "@/hooks/useAuth";
import { leaveTo } from "@/lib/auth";
import { messageOf } from "@/lib/errors";

/** The signed-in account, the other accounts this browser holds, switch, add, sign out. */
export function UserMenu() {
  const { user, accounts, switchAccount, logout } = useAuth();
  const router = useRouter();
  const [open, setOpen] = useState(false);
  const [target, setTarget] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const menuId = useId();
  const selectId = useId();
  const root = useRef<HTMLDivElement>(null);
  const toggle = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    const other = accounts.find((a) => !a.current);
    setTarget((t) => (accounts.some((a) => a.user_id === t && !a.current) ? t : other?.user_id ?? ""));
  }, [accounts]);

  if (!user) return null;
  const others = accounts.filter((a) => a.user_id !== user.id);

  async function onSwitch(event: FormEvent) {
    event.preventDefault();
    if (!target) return;
    setMessage(null);
    try {
      await switchAccount(target);
      setOpen(false);
      router.refresh();
    } catch (error) {
      setMessage(messageOf(error));
    }
  }

  async function onSignOut() {
    leaveTo("/auth/login/");
    const next = await logout().catch(() => null);
    leaveTo(null);
    setOpen(false);
    router.replace(next ? "/documents/" : "/auth/login/");
  }

  return (
    <div className="user-menu" ref={root}
      onKeyDown={(e) => {
        // Escape closes the menu and gives the focus back to its button.
        if (e.key === "Escape" && open) {
          setOpen(false);
          toggle.current?.focus();
        }
      }}
      onBlur={(e) => {
        // Focus or a click moving outside the menu closes it.
        if (open && !root.current?.contains(e.relatedTarget as Node | null)) setOpen(false);
      }}>
      <button type="button" ref={toggle} aria-expanded={open} aria-controls={menuId} onClick={() => setOpen((o) => !o)}>
        {user.display_name || user.username}
        <span className="visually-hidden"> — account menu</span>
      </button>
      <div id={menuId} className="user-menu-panel" hidden={!open} tabIndex={-1}>
        <p className="muted">Signed in as <strong>{user.username}</strong> ({user.email})</p>
        {others.length > 0 && (
          <form onSubmit={onSwitch} className="switch-form">
            <label htmlFor={selectId}>Other accounts in this browser</label>
            <select id={selectId} value={target} onChange={(e) => setTarget(e.target.value)}>
              {others.map((a) => (
                <option key={a.user_id} value={a.user_id}>{a.label}</option>
              ))}
            </select>
            <button type="submit">Switch account</button>
          </form>
        )}
        {message && <p role="alert" className="field-error">{message}</p>}
        <ul className="menu-links">
          <li><Link href="/profile/" onClick={() => setOpen(false)}>Profile</Link></li>
          <li><Link href="/auth/login/?add=1" onClick={() => setOpen(false)}>Add another account</Link></li>
        </ul>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </div>
    </div>
  );
}
