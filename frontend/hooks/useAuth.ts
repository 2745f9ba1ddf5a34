"use client";

import { useContext } from "react";
import { AuthContext, type AuthValue } from "@/contexts/AuthContext";

/** The signed-in user and the session actions; inside <AuthProvider> only. */
export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth must be used inside <AuthProvider>");
  return value;
}
