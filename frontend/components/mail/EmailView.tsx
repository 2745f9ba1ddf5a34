import Link from "next/link";
import { formatTime } from "@/lib/fieldErrors";
import type { Email } from "@/lib/types";

/** `Name <address>`, or the address alone. */
export function addressText(a: { name?: string | null; email: string } | null | undefined): string {
  if (!a) return "—";
  return a.name ? `${a.name} <${a.email}>` : a.email;
}

/** One email whole: headers, classification, text, attachments. */
export function EmailView({ email, headingLevel = 2, threadLink = true }: {
  email: Email; headingLevel?: 1 | 2; threadLink?: boolean;
}) {
  const Heading = headingLevel === 1 ? "h1" : "h2";
  return (
    <article className="card" aria-labelledby={`email-${email.id}`}>
      <Heading id={`email-${email.id}`} style={{ marginTop: 0 }}>{email.subject || "(no subject)"}</Heading>
      <dl className="facts">
        <dt>From</dt><dd>{addressText(email.from)}</dd>
        {email.to.length > 0 && (<><dt>To</dt><dd>{email.to.map(addressText).join(", ")}</dd></>)}
        {email.cc.length > 0 && (<><dt>Cc</dt><dd>{email.cc.map(addressText).join(", ")}</dd></>)}
        <dt>Date</dt><dd>{formatTime(email.date)}</dd>
        <dt>Class</dt><dd><span className={`badge class-${email.classification}`}>{email.classification}</span></dd>
      </dl>
      <pre className="email-text">{email.text ?? email.snippet}</pre>
      {email.attachments.length > 0 && (
        <>
          <h3>Attachments</h3>
          <ul>
            {email.attachments.map((a) => (
              <li key={a.id}>
                {a.filename} ({a.content_type || "unknown type"}, {Math.ceil(a.size / 1024)} kB) —{" "}
                <span className="badge">{a.status}</span>{a.error ? ` ${a.error}` : ""}
              </li>
            ))}
          </ul>
        </>
      )}
      {threadLink && (
        <p><Link href={`/mail/thread/?id=${encodeURIComponent(email.thread_id)}`}>Show the whole thread</Link></p>
      )}
    </article>
  );
}
