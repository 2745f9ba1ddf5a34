import { Highlighted } from "@/components/search/Highlighted";
import { PageLink } from "@/components/search/PageLink";
import type { AnswerSource } from "@/lib/types";

/** The passages the model was given; the cited ones marked. */
export function SourceList({ sources }: { sources: AnswerSource[] }) {
  if (!sources.length) return null;
  return (
    <section aria-labelledby="sources-heading">
      <h2 id="sources-heading">Sources</h2>
      <ol className="list">
        {sources.map((s) => (
          <li key={s.n} className={`card${s.cited ? " cited" : ""}`}>
            <p>
              <strong>[{s.n}]</strong> <PageLink id={s.source_id} page={s.page} title={s.title} kind={s.source_kind} />
              {s.cited && <> <span className="badge status-indexed">cited</span></>}
            </p>
            <p><Highlighted snippet={s.snippet} /></p>
          </li>
        ))}
      </ol>
    </section>
  );
}
