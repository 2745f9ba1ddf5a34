-- The auth service's schema: users, sessions (one refresh-token family each),
-- the refresh tokens issued in each family, login attempts, the revocation
-- feed and the outbox. Every table with user data leads an index with user_id.

CREATE TABLE auth.users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    username        text NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    password_hash   text NOT NULL,
    is_admin        boolean NOT NULL DEFAULT false,
    is_active       boolean NOT NULL DEFAULT true,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON auth.users (lower(username));
CREATE INDEX users_created_at_idx ON auth.users (created_at, id);

-- A session is one login: its refresh tokens rotate, and reusing an old one
-- revokes the session (the whole family).
CREATE TABLE auth.sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    user_agent      text NOT NULL DEFAULT '',
    ip              text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    -- Absolute lifetime: refreshing never extends it.
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user_idx ON auth.sessions (user_id, created_at DESC);

-- Every refresh token ever issued in a session, by SHA-256 of the token.
CREATE TABLE auth.refresh_tokens (
    token_hash      bytea PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    used_at         timestamptz
);
CREATE INDEX refresh_tokens_user_idx ON auth.refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session_idx ON auth.refresh_tokens (session_id);

-- Login attempts, for auditing; an unknown login is stored without user_id.
CREATE TABLE auth.login_attempts (
    id              bigserial PRIMARY KEY,
    user_id         uuid REFERENCES auth.users (id) ON DELETE CASCADE,
    ip              text NOT NULL DEFAULT '',
    success         boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_user_idx ON auth.login_attempts (user_id, created_at DESC);

-- Revoked sessions, in order, for verifiers that must refuse their access
-- tokens before they expire. Holds session ids only, pruned after expiry.
CREATE TABLE auth.revocations (
    seq             bigserial PRIMARY KEY,
    session_id      uuid NOT NULL,
    -- After this time no access token of the session can still be valid.
    expires_at      timestamptz NOT NULL
);

CREATE TABLE auth.outbox (
    id              bigserial PRIMARY KEY,
    routing_key     text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
