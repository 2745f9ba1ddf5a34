-- The documents service's schema: uploaded documents and their ingest state.
-- The original files live under UPLOAD_PATH/{user_id}/{id}.pdf.

CREATE TABLE documents.documents (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    title           text NOT NULL,
    filename        text NOT NULL,
    category        text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'indexed', 'failed')),
    error           text,
    pages           integer NOT NULL DEFAULT 0,
    chunks          integer NOT NULL DEFAULT 0,
    bytes           bigint NOT NULL,
    sha256          text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    namespace       text NOT NULL DEFAULT 'default',
    -- Ingest attempts of the current job (reset when reprocessed).
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_user_created_idx ON documents.documents (user_id, created_at DESC, id);
CREATE INDEX documents_user_status_idx ON documents.documents (user_id, status);

CREATE TABLE documents.outbox (
    id              bigserial PRIMARY KEY,
    routing_key     text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
