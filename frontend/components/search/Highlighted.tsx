import { Fragment } from "react";

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'", "#x27": "'", "#34": '"' };

function unescape(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    const key = name.toLowerCase();
    if (key in ENTITIES) return ENTITIES[key];
    if (key.startsWith("#x")) return String.fromCodePoint(parseInt(key.slice(2), 16));
    if (key.startsWith("#")) return String.fromCodePoint(parseInt(key.slice(1), 10));
    return whole;
  });
}

/**
 * A snippet the API escaped, with query terms in <b></b>: rendered as React
 * text and <b> elements only, never as HTML, so nothing else can get in.
 */
export function Highlighted({ snippet }: { snippet: string }) {
  let bold = false;
  const parts: { text: string; bold: boolean }[] = [];
  for (const piece of snippet.split(/(<\/?b>)/i)) {
    if (/^<b>$/i.test(piece)) bold = true;
    else if (/^<\/b>$/i.test(piece)) bold = false;
    else if (piece) parts.push({ text: unescape(piece), bold });
  }
  return (
    <span className="snippet">
      {parts.map((p, i) => (p.bold ? <b key={i}>{p.text}</b> : <Fragment key={i}>{p.text}</Fragment>))}
    </span>
  );
}
