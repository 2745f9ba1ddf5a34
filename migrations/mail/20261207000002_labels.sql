-- Each account's Gmail labels as `labels.list` last reported them: user
-- labels have opaque ids (`Label_12`), so mail lists show them by name.
-- Refreshed at every sync, so a label renamed in Gmail shows its new name.
CREATE TABLE mail.labels (
    account_id      uuid NOT NULL REFERENCES mail.email_accounts (id) ON DELETE CASCADE,
    label_id        text NOT NULL,
    name            text NOT NULL,
    -- system or user
    kind            text NOT NULL,
    PRIMARY KEY (account_id, label_id)
);
