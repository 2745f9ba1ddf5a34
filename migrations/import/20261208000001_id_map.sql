-- `pai import-sqlite`'s own schema: which row of which older install
-- became which pai row. A row found here is not imported again, so a run
-- repeated, or cut off and run again, brings each row in once.
CREATE TABLE import.id_map (
    -- The install (a fingerprint of its first user).
    source          text NOT NULL,
    -- The old table: users, documents, queries, email_accounts, emails.
    kind            text NOT NULL,
    old_id          bigint NOT NULL,
    new_id          uuid NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, kind, old_id)
);
