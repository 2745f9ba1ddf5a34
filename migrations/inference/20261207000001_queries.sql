-- The inference service's schema: every question asked (Ask) and what pai
-- answered, per user. A row is written when the question arrives (status
-- `running`) and completed when the answer ends.

CREATE TABLE inference.queries (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    query           text NOT NULL,
    response        text NOT NULL DEFAULT '',
    -- [{n, source_kind, source_id, title, page, snippet, score, cited}]
    sources         jsonb NOT NULL DEFAULT '[]',
    -- {source_kind, category, source_ids, k, max_tokens}
    filters         jsonb NOT NULL DEFAULT '{}',
    model           text NOT NULL DEFAULT '',
    -- {queue_ms, retrieval_ms, first_token_ms, total_ms, prompt_tokens, ...}
    timings         jsonb NOT NULL DEFAULT '{}',
    -- running, answered, not_found, cancelled, failed
    status          text NOT NULL DEFAULT 'running',
    error           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- History pages: newest first, (created_at, id) as the cursor.
CREATE INDEX queries_user_created_idx ON inference.queries (user_id, created_at DESC, id DESC);

-- Users whose account was deleted: no query of theirs may be stored again
-- (the same protocol as search.erased_users: the erasure takes the
-- exclusive advisory lock on the user, every write the shared one).
CREATE TABLE inference.erased_users (
    user_id         uuid PRIMARY KEY,
    erased_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION inference.record_erased(erased uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('inference.erased_users'), hashtext(erased::text));
    INSERT INTO inference.erased_users (user_id) VALUES (erased) ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION inference.refuse_erased_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('inference.erased_users'), hashtext(NEW.user_id::text));
    IF EXISTS (SELECT 1 FROM inference.erased_users WHERE user_id = NEW.user_id) THEN
        RAISE EXCEPTION 'user % was erased: no query of theirs is stored', NEW.user_id
            USING ERRCODE = 'PAI01';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER queries_refuse_erased_users
    BEFORE INSERT ON inference.queries
    FOR EACH ROW EXECUTE FUNCTION inference.refuse_erased_users();
