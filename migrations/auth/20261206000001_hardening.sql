-- Issue 27: lockout counted before verification, who deactivated an account,
-- and a revocation feed that no late commit can skip.

-- Whether the password was checked against the stored hash for this attempt
-- (false for an attempt refused by the lock, or for an unknown login), and
-- what was attempted: a login or a password confirmation behind a session.
ALTER TABLE auth.login_attempts
    ADD COLUMN password_checked boolean NOT NULL DEFAULT false,
    ADD COLUMN kind text NOT NULL DEFAULT 'login';

-- 'self' or 'admin' while the account is deactivated, NULL while active:
-- only an admin undoes an admin's deactivation.
ALTER TABLE auth.users ADD COLUMN deactivated_by text
    CHECK (deactivated_by IN ('self', 'admin'));

-- The transaction that wrote each revocation. The feed's cursor is a
-- transaction id below which every transaction had finished when the feed
-- was last read, so a row whose transaction commits late is still read.
ALTER TABLE auth.revocations ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX revocations_xid_idx ON auth.revocations (xid);
