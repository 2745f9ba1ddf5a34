-- The mail-sync service's schema: each user's connected mail accounts
-- (tokens encrypted), the OAuth connects in flight, and the synced mail.

-- A connect in flight: Google's redirect brings `state` back; it names the
-- user, is single use and expires. Only its SHA-256 is stored, so a
-- database read cannot complete someone's connect; the PKCE verifier is
-- encrypted like the tokens.
CREATE TABLE mail.oauth_sessions (
    state_sha256    bytea PRIMARY KEY,
    user_id         uuid NOT NULL,
    provider        text NOT NULL DEFAULT 'gmail',
    pkce_verifier   bytea NOT NULL,
    key_id          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX oauth_sessions_expires_idx ON mail.oauth_sessions (expires_at);

CREATE TABLE mail.email_accounts (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    provider        text NOT NULL DEFAULT 'gmail',
    email_address   text NOT NULL,
    -- AES-256-GCM: nonce || ciphertext || tag, under the key `key_id` names.
    access_token    bytea NOT NULL,
    refresh_token   bytea NOT NULL,
    key_id          text NOT NULL,
    token_expires_at timestamptz NOT NULL,
    scope           text NOT NULL DEFAULT '',
    -- Gmail's historyId after the last complete sync; NULL before the first.
    history_id      bigint,
    -- active, syncing, reauth_required or error
    state           text NOT NULL DEFAULT 'active',
    last_sync_at    timestamptz,
    last_error      text NOT NULL DEFAULT '',
    next_sync_at    timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The same address connected by two users is two accounts.
    UNIQUE (user_id, provider, email_address)
);
CREATE INDEX email_accounts_due_idx ON mail.email_accounts (next_sync_at) WHERE state <> 'reauth_required';

CREATE TABLE mail.emails (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    account_id      uuid NOT NULL REFERENCES mail.email_accounts (id) ON DELETE CASCADE,
    provider_id     text NOT NULL,
    thread_id       text NOT NULL,
    message_id      text NOT NULL DEFAULT '',
    in_reply_to     text NOT NULL DEFAULT '',
    "references"    text[] NOT NULL DEFAULT '{}',
    from_name       text NOT NULL DEFAULT '',
    from_email      text NOT NULL DEFAULT '',
    -- [{name, email}]
    to_addrs        jsonb NOT NULL DEFAULT '[]',
    cc_addrs        jsonb NOT NULL DEFAULT '[]',
    subject         text NOT NULL DEFAULT '',
    sent_at         timestamptz,
    -- The date to list by: the Date header, else when Gmail received it.
    sort_at         timestamptz NOT NULL,
    labels          text[] NOT NULL DEFAULT '{}',
    classification  text NOT NULL,
    text            text NOT NULL DEFAULT '',
    -- What parsing could not read (unknown charset, skipped parts).
    warnings        text[] NOT NULL DEFAULT '{}',
    -- queued, indexed or failed (search ingest)
    index_status    text NOT NULL DEFAULT 'queued',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Stored once per message of an account, whatever a sync replays.
    UNIQUE (account_id, provider_id)
);
CREATE INDEX emails_user_sort_idx ON mail.emails (user_id, sort_at DESC, id DESC);
CREATE INDEX emails_user_thread_idx ON mail.emails (user_id, thread_id);

-- A message Gmail listed that pai could not store, with why.
CREATE TABLE mail.skipped_messages (
    account_id      uuid NOT NULL REFERENCES mail.email_accounts (id) ON DELETE CASCADE,
    provider_id     text NOT NULL,
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, provider_id)
);

CREATE TABLE mail.email_attachments (
    id              uuid PRIMARY KEY,
    email_id        uuid NOT NULL REFERENCES mail.emails (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    filename        text NOT NULL,
    content_type    text NOT NULL,
    size            bigint NOT NULL,
    -- Relative to the mail blob folder; empty when not kept.
    path            text NOT NULL DEFAULT '',
    -- stored, indexed, skipped or failed
    status          text NOT NULL,
    error           text NOT NULL DEFAULT ''
);
CREATE INDEX email_attachments_email_idx ON mail.email_attachments (email_id);

-- Jobs for the broker, written in the same transaction as their rows.
CREATE TABLE mail.outbox (
    id              bigserial PRIMARY KEY,
    routing_key     text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Users whose account was deleted: nothing of theirs may be stored again
-- (the protocol of search.erased_users).
CREATE TABLE mail.erased_users (
    user_id         uuid PRIMARY KEY,
    erased_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION mail.record_erased(erased uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mail.erased_users'), hashtext(erased::text));
    INSERT INTO mail.erased_users (user_id) VALUES (erased) ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION mail.refuse_erased_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('mail.erased_users'), hashtext(NEW.user_id::text));
    IF EXISTS (SELECT 1 FROM mail.erased_users WHERE user_id = NEW.user_id) THEN
        RAISE EXCEPTION 'user % was erased: no mail of theirs is stored', NEW.user_id
            USING ERRCODE = 'PAI01';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER email_accounts_refuse_erased_users
    BEFORE INSERT ON mail.email_accounts
    FOR EACH ROW EXECUTE FUNCTION mail.refuse_erased_users();
CREATE TRIGGER emails_refuse_erased_users
    BEFORE INSERT ON mail.emails
    FOR EACH ROW EXECUTE FUNCTION mail.refuse_erased_users();
