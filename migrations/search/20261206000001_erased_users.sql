-- Users whose account was deleted: no chunk of theirs may be stored again.
-- The erasure calls search.record_erased(user) in the transaction that
-- deletes the user's chunks: it takes the exclusive advisory lock on the
-- user and records them. Every insert or update of search.chunks takes the
-- shared lock on the row's user and is refused (SQLSTATE PAI01) once the
-- user is recorded, in the writer's own transaction. So a write either
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

CREATE FUNCTION search.refuse_erased_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('search.erased_users'), hashtext(NEW.user_id::text));
    IF EXISTS (SELECT 1 FROM search.erased_users WHERE user_id = NEW.user_id) THEN
        RAISE EXCEPTION 'user % was erased: no chunk of theirs is stored', NEW.user_id
            USING ERRCODE = 'PAI01';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER chunks_refuse_erased_users
    BEFORE INSERT OR UPDATE ON search.chunks
    FOR EACH ROW EXECUTE FUNCTION search.refuse_erased_user();
