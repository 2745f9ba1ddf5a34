-- The ingest backlog (`pai_ingest_backlog{kind="email"}`, read every 15 s):
-- emails waiting for search, without a scan of the others.
CREATE INDEX emails_backlog_idx ON mail.emails (created_at)
    WHERE index_status = 'queued';
