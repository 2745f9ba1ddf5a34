"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";

const TABS = [
  { href: "/profile/", label: "Profile" },
  { href: "/profile/settings/", label: "Settings" },
  { href: "/profile/security/", label: "Security" },
];

export function ProfileNav() {
  const pathname = usePathname() ?? "";
  const norm = (p: string) => p.replace(/\/$/, "");
  return (
    <nav aria-label="Profile" className="actions" style={{ marginBottom: "1rem" }}>
      {TABS.map((tab) => (
        <Link key={tab.href} href={tab.href} aria-current={norm(pathname) === norm(tab.href) ? "page" : undefined}>
          {tab.label}
        </Link>
      ))}
    </nav>
  );
}
