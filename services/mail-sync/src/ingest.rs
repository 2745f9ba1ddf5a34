//! Indexing stored mail for search: each email's text (subject, sender,
//! recipients, date, body) and each kept PDF attachment's pages, extracted
//! by the same isolated child process as uploads, under source kind
//! `email`. Jobs come through RabbitMQ from the sync's outbox.

use std::sync::Arc;

use pai_common::amqp::EventRetry;
use pai_common::config::AmqpSettings;
use pai_extract::Page;
use pai_proto::v1::{ChunkInput, IndexChunksRequest};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, EmailRow};
use crate::service::{MailCore, SOURCE_KIND};

#[derive(Debug, Deserialize)]
struct IngestJob {
    user_id: Uuid,
    email_id: Uuid,
}

/// Runs ingest jobs until `shutdown`.
pub async fn consume(
    core: Arc<MailCore>,
    amqp: AmqpSettings,
    retry: EventRetry,
    shutdown: CancellationToken,
) {
    let queue = pai_common::amqp::MAIL_INGEST.queue(&amqp.events_exchange);
    let core = &core;
    pai_common::amqp::consume_events(
        amqp,
        retry,
        queue,
        pai_common::amqp::MAIL_INGEST.routing_key,
        shutdown,
        move |body| async move {
            let job: IngestJob = serde_json::from_slice(&body)
                .map_err(|e| format!("malformed mail ingest job: {e}"))?;
            core.index_email(job.user_id, job.email_id)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// The title search shows for an email: what a citation names it by.
pub fn email_title(email: &EmailRow) -> String {
    let subject = if email.subject.trim().is_empty() {
        "(no subject)"
    } else {
        email.subject.trim()
    };
    let sender = if email.from_name.is_empty() {
        email.from_email.as_str()
    } else {
        email.from_name.as_str()
    };
    let date = email.sent_at.unwrap_or(email.sort_at).format("%Y-%m-%d");
    format!("{subject} — {sender}, {date}")
}

/// The text indexed for an email: its headers, then its body.
fn email_text(email: &EmailRow) -> String {
    let mut text = format!("Subject: {}\n", email.subject);
    if email.from_name.is_empty() {
        text.push_str(&format!("From: {}\n", email.from_email));
    } else {
        text.push_str(&format!(
            "From: {} <{}>\n",
            email.from_name, email.from_email
        ));
    }
    let list = |addrs: &[repo::StoredAddress]| {
        addrs
            .iter()
            .map(|a| a.email.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !email.to_addrs.is_empty() {
        text.push_str(&format!("To: {}\n", list(&email.to_addrs)));
    }
    if !email.cc_addrs.is_empty() {
        text.push_str(&format!("Cc: {}\n", list(&email.cc_addrs)));
    }
    if let Some(date) = email.sent_at {
        text.push_str(&format!("Date: {}\n", date.format("%Y-%m-%d %H:%M UTC")));
    }
    text.push('\n');
    text.push_str(&email.text);
    text
}

fn chunk_inputs(pages: &[Page]) -> Vec<ChunkInput> {
    pai_extract::chunk(
        pages,
        pai_extract::DEFAULT_TARGET_WORDS,
        pai_extract::DEFAULT_OVERLAP_WORDS,
    )
    .iter()
    .map(|c| ChunkInput {
        ordinal: c.ordinal,
        page: c.page,
        start: u32::try_from(c.start).unwrap_or(u32::MAX),
        end: u32::try_from(c.end).unwrap_or(u32::MAX),
        text: c.text.clone(),
    })
    .collect()
}

impl MailCore {
    /// Indexes an email and its kept PDF attachments. An email deleted in
    /// the meantime is nothing to do; a PDF that does not extract is marked
    /// failed with the reason and the rest goes on.
    pub async fn index_email(&self, user_id: Uuid, email_id: Uuid) -> Result<()> {
        let Some(email) = repo::get_email(&self.pool, user_id, email_id).await? else {
            return Ok(());
        };
        let title = email_title(&email);
        self.index(
            user_id,
            email.id,
            &title,
            &email.classification,
            chunk_inputs(&[Page {
                number: 1,
                text: email_text(&email),
            }]),
        )
        .await?;
        for attachment in repo::attachments(&self.pool, user_id, &[email.id]).await? {
            if attachment.status != "stored" {
                continue;
            }
            let path = self.attachment_path(user_id, attachment.id);
            let extracted = pai_extract::extract_isolated(
                &self.extractor.program,
                &["extract"],
                &path,
                &self.extractor.limits,
            )
            .await;
            let (status, error) = match extracted {
                Ok(pages) => {
                    let title = format!("{} (attached to {title})", attachment.filename);
                    self.index(
                        user_id,
                        attachment.id,
                        &title,
                        &email.classification,
                        chunk_inputs(&pages),
                    )
                    .await?;
                    ("indexed", String::new())
                }
                Err(err) if err.is_transient() => return Err(MailError::Search(err.to_string())),
                Err(err) => ("failed", err.to_string()),
            };
            repo::set_attachment_status(&self.pool, attachment.id, status, &error).await?;
        }
        repo::set_index_status(&self.pool, email.id, "indexed").await?;
        Ok(())
    }

    async fn index(
        &self,
        user_id: Uuid,
        source_id: Uuid,
        title: &str,
        category: &str,
        chunks: Vec<ChunkInput>,
    ) -> Result<()> {
        self.search
            .clone()
            .index_chunks(IndexChunksRequest {
                user_id: user_id.to_string(),
                source_kind: SOURCE_KIND.to_owned(),
                source_id: source_id.to_string(),
                title: title.to_owned(),
                category: category.to_owned(),
                chunks,
            })
            .await
            .map_err(|status| MailError::Search(status.message().to_owned()))?;
        Ok(())
    }
}
