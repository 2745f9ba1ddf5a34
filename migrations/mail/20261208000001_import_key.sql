-- An imported email (`pai import-sqlite`) has no Gmail id. Its subject's and
-- text's ASCII letters and digits (the first thousand of the text) let the
-- account's first sync recognise Gmail's copy of it and fill that row in
-- instead of storing the message twice. NULL once matched, for synced mail,
-- and for an email with too little text to tell apart.
ALTER TABLE mail.emails ADD COLUMN import_subject text, ADD COLUMN import_body text;
-- Until when emails are being imported into an account (a minute past the
-- last batch): its first sync waits for that, and a "Sync now" is refused.
ALTER TABLE mail.email_accounts ADD COLUMN importing_until timestamptz;
CREATE INDEX emails_import_subject_idx ON mail.emails (account_id, import_subject)
    WHERE import_subject IS NOT NULL;
