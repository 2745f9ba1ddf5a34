-- Users whose account was deleted. Their documents were erased, and no
-- write may bring any back: a writer takes the shared advisory lock on the
-- user and checks this table in the transaction of its write; the erasure
-- takes the exclusive lock, records the user and deletes their rows in one
-- transaction (services/documents/src/repo.rs). So an upload or reprocess
-- either commits before the erasure, which then removes it, or sees the
-- record and is refused.
CREATE TABLE documents.erased_users (
    user_id         uuid PRIMARY KEY,
    erased_at       timestamptz NOT NULL DEFAULT now()
);
