-- The search service's schema. search.chunks is the source of truth for
-- indexed text and vectors; the tantivy and usearch indexes under
-- VECTOR_DB_PATH are derived from it and rebuilt when they fall behind.

CREATE TABLE search.chunks (
    id              bigserial PRIMARY KEY,
    user_id         uuid NOT NULL,
    source_kind     text NOT NULL,
    source_id       uuid NOT NULL,
    ordinal         integer NOT NULL,
    title           text NOT NULL DEFAULT '',
    category        text NOT NULL DEFAULT '',
    page            integer NOT NULL DEFAULT 0,
    start_offset    integer NOT NULL DEFAULT 0,
    end_offset      integer NOT NULL DEFAULT 0,
    text            text NOT NULL,
    -- all-MiniLM-L6-v2: 384 dimensions, L2-normalised.
    embedding       real[] NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, source_kind, source_id, ordinal)
);
CREATE INDEX chunks_user_source_idx ON search.chunks (user_id, source_kind, source_id);

-- One counter bumped by every change to search.chunks; the on-disk indexes
-- record the value they reflect, so start-up knows whether they are current.
CREATE TABLE search.generation (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    value           bigint NOT NULL
);
INSERT INTO search.generation (value) VALUES (0);
