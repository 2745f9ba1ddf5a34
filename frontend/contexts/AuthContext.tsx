"use client";

import { createContext, useCallback, useEffect, useMemo, useState, type ReactNode } from "react";
import * as api from "@/lib/api";
import type { BrowserAccount, TokenResponse, User } from "@/lib/types";

export type AuthStatus = "loading" | "signed-in" | "signed-out";

/** An account this browser holds, with the names seen in this tab. */
export interface HeldAccount extends BrowserAccount {
  label: string;
}

export interface AuthValue {
  status: AuthStatus;
  user: User | null;
  accounts: HeldAccount[];
  login: (loginName: string, password: string) => Promise<User | null>;
  register: (input: api.RegisterInput) => Promise<User | null>;
  /** Signs out of the current account; resolves to the account now current, if the browser holds another. */
  logout: () => Promise<User | null>;
  reactivate: (email: string, password: string) => Promise<User | null>;
  switchAccount: (userId: string) => Promise<void>;
  reloadAccounts: () => Promise<void>;
  setUser: (user: User) => void;
}

export const AuthContext = createContext<AuthValue | null>(null);

/**
 * Usernames of the accounts this browser has signed into (user id →
 * username), kept in localStorage so that the account menu can name the
 * held accounts after a reload. Names only: never a token.
 */
const NAMES_KEY = "pai.accountNames";

function loadNames(): Map<string, string> {
  try {
    const raw = typeof localStorage === "undefined" ? null : localStorage.getItem(NAMES_KEY);
    return new Map(Object.entries(raw ? (JSON.parse(raw) as Record<string, string>) : {}));
  } catch {
    return new Map();
  }
}

const knownNames = loadNames();

function rememberName(id: string, username: string | null): void {
  if (username) knownNames.set(id, username);
  else knownNames.delete(id);
  try {
    localStorage.setItem(NAMES_KEY, JSON.stringify(Object.fromEntries(knownNames)));
  } catch {
    // storage unavailable: names for this tab only
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<AuthStatus>("loading");
  const [user, setUserState] = useState<User | null>(null);
  const [accounts, setAccounts] = useState<HeldAccount[]>([]);

  const setUser = useCallback((next: User) => {
    if (knownNames.get(next.id) !== next.username) rememberName(next.id, next.username);
    setUserState(next);
  }, []);

  const reloadAccounts = useCallback(async () => {
    try {
      const held = await api.getAccountList();
      setAccounts(held.map((a) => ({ ...a, label: knownNames.get(a.user_id) ?? `account ${a.user_id.slice(0, 8)}` })));
    } catch {
      setAccounts([]);
    }
  }, []);

  // Every new token pair (sign-in, refresh, switch) or sign-out lands here.
  useEffect(() => {
    return api.onSession((tokens: TokenResponse | null) => {
      if (!tokens) {
        setUserState(null);
        setStatus("signed-out");
        void reloadAccounts();
        return;
      }
      if (tokens.user) setUser(tokens.user);
      setStatus("signed-in");
      void reloadAccounts();
    });
  }, [reloadAccounts, setUser]);

  // On page load, restore the session from the refresh cookie.
  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const tokens = await api.refreshToken();
        const me = tokens.user ?? (await api.getCurrentUser());
        if (!cancelled) {
          setUser(me);
          setStatus("signed-in");
        }
      } catch {
        if (!cancelled) setStatus("signed-out");
      }
      if (!cancelled) void reloadAccounts();
    })();
    return () => {
      cancelled = true;
    };
  }, [reloadAccounts, setUser]);

  const afterTokens = useCallback(
    async (tokens: TokenResponse) => {
      const me = tokens.user ?? (await api.getCurrentUser());
      setUser(me);
      setStatus("signed-in");
      await reloadAccounts();
      return me;
    },
    [reloadAccounts, setUser],
  );

  const value = useMemo<AuthValue>(
    () => ({
      status,
      user,
      accounts,
      login: async (loginName, password) => afterTokens(await api.login(loginName, password)),
      register: async (input) => afterTokens(await api.registerUser(input)),
      logout: async () => {
        if (user) rememberName(user.id, null);
        await api.logout();
        // Another account this browser holds may now be current.
        try {
          return await afterTokens(await api.refreshToken());
        } catch {
          setStatus("signed-out");
          await reloadAccounts();
          return null;
        }
      },
      reactivate: async (email, password) => afterTokens(await api.reactivateAccount(email, password)),
      switchAccount: async (userId) => {
        await afterTokens(await api.switchAccount(userId));
      },
      reloadAccounts,
      setUser,
    }),
    [status, user, accounts, afterTokens, reloadAccounts, setUser],
  );

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
