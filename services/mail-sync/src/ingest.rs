//! Indexing stored mail for search: each email's text (subject, sender,
//! recipients, date, body) and each kept PDF attachment's pages, extracted
//! by the same isolated child process as uploads, under source kind
//! `email`. Jobs come through RabbitMQ from the sync's outbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pai_common::amqp::EventRetry;
use pai_common::config::AmqpSettings;
use pai_extract::Page;
use pai_proto::v1::{ChunkInput, IndexSourcesRequest, SourceChunks};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, AttachmentRow, EmailRow};
use crate::service::{MailCore, SOURCE_KIND};

#[derive(Debug, Deserialize)]
struct IngestJob {
    user_id: Uuid,
    email_id: Uuid,
}

/// Jobs handled together: their emails are embedded, stored and committed
/// to the indexes as one change (one commit per email made a large sync's
/// indexing wait on commits, not on the model).
const INGEST_BATCH: usize = 64;

/// Runs ingest jobs until `shutdown`, in batches of those waiting.
pub async fn consume(
    core: Arc<MailCore>,
    amqp: AmqpSettings,
    retry: EventRetry,
    shutdown: CancellationToken,
) {
    let queue = pai_common::amqp::MAIL_INGEST.queue(&amqp.events_exchange);
    let core = &core;
    pai_common::amqp::consume_event_batches(
        amqp,
        retry,
        queue,
        pai_common::amqp::MAIL_INGEST.routing_key,
        INGEST_BATCH,
        shutdown,
        move |bodies| async move {
            let jobs: Vec<Result<IngestJob, String>> = bodies
                .iter()
                .map(|body| {
                    serde_json::from_slice(body)
                        .map_err(|e| format!("malformed mail ingest job: {e}"))
                })
                .collect();
            let wanted: Vec<(Uuid, Uuid)> = jobs
                .iter()
                .flatten()
                .map(|job| (job.user_id, job.email_id))
                .collect();
            let outcomes = core.index_emails(&wanted).await;
            jobs.into_iter()
                .map(|job| {
                    let job = job?;
                    match outcomes.get(&job.email_id) {
                        Some(Err(reason)) => Err(reason.clone()),
                        _ => Ok(()),
                    }
                })
                .collect()
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
    /// Indexes emails (user, email id) and their kept PDF attachments:
    /// each user's emails in one search change. An email deleted in the
    /// meantime is nothing to do; a PDF that does not extract is marked
    /// failed with the reason and the rest goes on. Returns the emails that
    /// could not be indexed now, with why (to be tried again).
    pub async fn index_emails(&self, jobs: &[(Uuid, Uuid)]) -> HashMap<Uuid, Result<(), String>> {
        let mut by_user: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for (user_id, email_id) in jobs {
            by_user.entry(*user_id).or_default().push(*email_id);
        }
        let mut outcomes = HashMap::new();
        for (user_id, email_ids) in by_user {
            if let Err(err) = self
                .index_user_emails(user_id, &email_ids, &mut outcomes)
                .await
            {
                for id in email_ids {
                    outcomes.insert(id, Err(err.to_string()));
                }
            }
        }
        outcomes
    }

    async fn index_user_emails(
        &self,
        user_id: Uuid,
        email_ids: &[Uuid],
        outcomes: &mut HashMap<Uuid, Result<(), String>>,
    ) -> Result<()> {
        let emails = repo::get_emails(&self.pool, user_id, email_ids).await?;
        let mut titles = HashMap::with_capacity(emails.len());
        let mut sources = Vec::with_capacity(emails.len());
        for email in &emails {
            let title = email_title(email);
            sources.push(SourceChunks {
                source_kind: SOURCE_KIND.to_owned(),
                source_id: email.id.to_string(),
                title: title.clone(),
                category: email.classification.clone(),
                chunks: chunk_inputs(&[Page {
                    number: 1,
                    text: email_text(email),
                }]),
            });
            titles.insert(email.id, title);
        }
        self.index(user_id, sources).await?;
        let classification: HashMap<Uuid, &str> = emails
            .iter()
            .map(|e| (e.id, e.classification.as_str()))
            .collect();
        for attachment in repo::attachments(&self.pool, user_id, email_ids).await? {
            if attachment.status != "stored" {
                continue;
            }
            let (Some(title), Some(category)) = (
                titles.get(&attachment.email_id),
                classification.get(&attachment.email_id),
            ) else {
                continue;
            };
            if let Err(err) = self
                .index_attachment(user_id, &attachment, title, category)
                .await
            {
                outcomes.insert(attachment.email_id, Err(err.to_string()));
            }
        }
        let indexed: Vec<Uuid> = emails
            .iter()
            .map(|e| e.id)
            .filter(|id| !outcomes.contains_key(id))
            .collect();
        repo::set_index_status(&self.pool, &indexed, "indexed").await?;
        for id in indexed {
            outcomes.insert(id, Ok(()));
        }
        Ok(())
    }

    /// Extracts a kept PDF attachment in the isolated child and indexes its
    /// pages; one that does not extract is marked failed with the reason.
    async fn index_attachment(
        &self,
        user_id: Uuid,
        attachment: &AttachmentRow,
        email_title: &str,
        category: &str,
    ) -> Result<()> {
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
                let source = SourceChunks {
                    source_kind: SOURCE_KIND.to_owned(),
                    source_id: attachment.id.to_string(),
                    title: format!("{} (attached to {email_title})", attachment.filename),
                    category: category.to_owned(),
                    chunks: chunk_inputs(&pages),
                };
                self.index(user_id, vec![source]).await?;
                ("indexed", String::new())
            }
            Err(err) if err.is_transient() => return Err(MailError::Search(err.to_string())),
            Err(err) => ("failed", err.to_string()),
        };
        repo::set_attachment_status(&self.pool, attachment.id, status, &error).await
    }

    async fn index(&self, user_id: Uuid, sources: Vec<SourceChunks>) -> Result<()> {
        if sources.is_empty() {
            return Ok(());
        }
        self.search
            .for_user(user_id)
            .index_sources(IndexSourcesRequest {
                user_id: user_id.to_string(),
                sources,
            })
            .await
            .map_err(|status| MailError::Search(status.message().to_owned()))?;
        Ok(())
    }
}
