-- Users whose account was deleted: no chunk of theirs may be stored again.
-- The erasure calls search.record_erased(user) in the transaction that
-- deletes the user's chunks: it takes the exclusive advisory lock on the
-- user and records them. Every insert or update of search.chunks takes the
-- shared lock on each written row's user and is refused (SQLSTATE PAI01)
-- once the user is recorded, in the writer's own transaction. So a write either
-- commits before the erasure, whose delete then sees it, or is refused.
CREATE TABLE search.erased_users (
    user_id         uuid PRIMARY KEY,
    erased_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION search.record_erased(erased uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('search.erased_users'), hashtext(erased::text));
    INSERT INTO search.erased_users (user_id) VALUES (erased) ON CONFLICT DO NOTHING;
END
$$;

-- Statement-level, over the rows the statement wrote: one lock per user
-- and one lookup per statement, not a function call per chunk (ingest and
-- rebuilds write chunks a thousand at a time).
CREATE FUNCTION search.refuse_erased_users() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    writer uuid;
BEGIN
    FOR writer IN SELECT DISTINCT user_id FROM written LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtext('search.erased_users'), hashtext(writer::text));
    END LOOP;
    SELECT w.user_id INTO writer FROM written w
        JOIN search.erased_users e ON e.user_id = w.user_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user % was erased: no chunk of theirs is stored', writer
            USING ERRCODE = 'PAI01';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_refuse_erased_users_on_insert
    AFTER INSERT ON search.chunks REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION search.refuse_erased_users();
CREATE TRIGGER chunks_refuse_erased_users_on_update
    AFTER UPDATE ON search.chunks REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION search.refuse_erased_users();
