import { Fragment } from "react";
import { PageLink } from "@/components/search/PageLink";
import type { AnswerSource } from "@/lib/types";

/** An answer's text with its `[n]` citations as links that open the PDF at the cited page. */
export function AnswerText({ text, sources }: { text: string; sources: AnswerSource[] }) {
  const parts = text.split(/(\[\d+\])/);
  return (
    <p className="answer">
      {parts.map((part, i) => {
        const match = /^\[(\d+)\]$/.exec(part);
        const source = match ? sources.find((s) => s.n === Number(match[1])) : undefined;
        if (!source) return <Fragment key={i}>{part}</Fragment>;
        return (
          <span key={i} className="citation">
            <PageLink id={source.source_id} page={source.page} kind={source.source_kind} title={`source ${source.n}: ${source.title}`}>{part}</PageLink>
          </span>
        );
      })}
    </p>
  );
}
