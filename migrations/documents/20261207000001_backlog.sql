-- The ingest backlog (`pai_ingest_backlog{kind="document"}`, read every
-- 15 s): documents waiting or in progress, without a scan of the others.
CREATE INDEX documents_backlog_idx ON documents.documents (updated_at)
    WHERE status IN ('queued', 'processing');
