import Link from "next/link";

/** The export's 404.html: what the gateway answers for a path the app does not have. */
export default function NotFound() {
  return (
    <>
      <h1>Page not found</h1>
      <p>There is no page at this address.</p>
      <p><Link href="/documents/">Go to your documents</Link> or <Link href="/auth/login/">sign in</Link>.</p>
    </>
  );
}
