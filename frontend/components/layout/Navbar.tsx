"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { useAuth } from "@/hooks/useAuth";
import { UserMenu } from "./UserMenu";

const LINKS = [
  { href: "/documents/", label: "Documents" },
  { href: "/search/", label: "Search" },
  { href: "/ask/", label: "Ask" },
  { href: "/mail/", label: "Mail" },
  { href: "/history/", label: "History" },
];

/** The site header: the app's sections for a signed-in user, else sign in / create account. */
export function Navbar() {
  const { status, user } = useAuth();
  const pathname = usePathname() ?? "/";
  const links = user?.is_admin ? [...LINKS, { href: "/admin/", label: "Admin" }] : LINKS;
  const current = (href: string) => (pathname.startsWith(href.replace(/\/$/, "")) ? "page" : undefined);

  return (
    <header className="navbar">
      <a href="#main" className="skip-link">Skip to content</a>
      <Link href="/" className="brand">pai</Link>
      {status === "signed-in" && user ? (
        <>
          <nav aria-label="Main">
            <ul>
              {links.map((link) => (
                <li key={link.href}>
                  <Link href={link.href} aria-current={current(link.href)}>{link.label}</Link>
                </li>
              ))}
            </ul>
          </nav>
          <UserMenu />
        </>
      ) : (
        <nav aria-label="Account">
          <ul>
            <li><Link href="/auth/login/" aria-current={current("/auth/login/")}>Sign in</Link></li>
            <li><Link href="/auth/register/" aria-current={current("/auth/register/")}>Create account</Link></li>
          </ul>
        </nav>
      )}
    </header>
  );
}
