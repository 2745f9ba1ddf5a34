//! tonic handlers: thin adapters from protobuf to [`MailCore`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use pai_common::UserContext;
use pai_proto::v1::mail_connect_server::MailConnect;
use pai_proto::v1::mail_import_server::MailImport;
use pai_proto::v1::mail_service_server::MailService;
use pai_proto::v1::{self as pb};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::MailError;
use crate::repo::{AccountRow, AttachmentRow, EmailFilter, EmailRow, StoredAddress};
use crate::service::MailCore;

pub(crate) const CLASSIFICATIONS: [&str; 6] = [
    "personal",
    "work",
    "financial",
    "newsletter",
    "notification",
    "spam",
];
/// How much of an email's text a list shows.
const SNIPPET_CHARS: usize = 160;

/// Holds the core weakly: a stopped service's handlers, still registered
/// for in-process calls, must not keep it alive.
#[derive(Clone)]
pub struct Grpc {
    pub core: Weak<MailCore>,
}

impl Grpc {
    fn core(&self) -> Result<Arc<MailCore>, Status> {
        self.core
            .upgrade()
            .ok_or_else(|| Status::unavailable("the mail-sync service has stopped"))
    }
}

use pai_common::time::to_proto as timestamp;

/// Another user's account or email answers exactly like a missing one.
fn id(value: &str, what: &'static str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| MailError::NotFound(what).into())
}

fn account_proto(row: &AccountRow) -> pb::MailAccount {
    pb::MailAccount {
        id: row.id.to_string(),
        email_address: row.email_address.clone(),
        provider: row.provider.clone(),
        state: row.state.clone(),
        messages: u64::try_from(row.messages).unwrap_or_default(),
        last_sync_at: row.last_sync_at.and_then(timestamp),
        last_error: row.last_error.clone(),
        created_at: timestamp(row.created_at),
    }
}

fn address(a: &StoredAddress) -> pb::EmailAddress {
    pb::EmailAddress {
        name: a.name.clone(),
        email: a.email.clone(),
    }
}

fn attachment_proto(a: &AttachmentRow) -> pb::EmailAttachment {
    pb::EmailAttachment {
        id: a.id.to_string(),
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        size: u64::try_from(a.size).unwrap_or_default(),
        status: a.status.clone(),
        error: a.error.clone(),
    }
}

fn snippet(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

/// An email as the API shows it; `with_text` for a single email or thread.
fn email_proto(row: &EmailRow, attachments: &[&AttachmentRow], with_text: bool) -> pb::Email {
    pb::Email {
        id: row.id.to_string(),
        account_id: row.account_id.to_string(),
        thread_id: row.thread_id.clone(),
        message_id: row.message_id.clone(),
        in_reply_to: row.in_reply_to.clone(),
        references: row.references.clone(),
        from: Some(pb::EmailAddress {
            name: row.from_name.clone(),
            email: row.from_email.clone(),
        }),
        to: row.to_addrs.iter().map(address).collect(),
        cc: row.cc_addrs.iter().map(address).collect(),
        subject: row.subject.clone(),
        date: timestamp(row.sent_at.unwrap_or(row.sort_at)),
        labels: row.labels.clone(),
        classification: row.classification.clone(),
        text: if with_text {
            row.text.clone()
        } else {
            String::new()
        },
        snippet: snippet(&row.text),
        attachments: attachments.iter().map(|a| attachment_proto(a)).collect(),
    }
}

fn by_email(attachments: &[AttachmentRow]) -> HashMap<Uuid, Vec<&AttachmentRow>> {
    let mut map: HashMap<Uuid, Vec<&AttachmentRow>> = HashMap::new();
    for attachment in attachments {
        map.entry(attachment.email_id).or_default().push(attachment);
    }
    map
}

#[tonic::async_trait]
impl MailService for Grpc {
    async fn start_gmail_connect(
        &self,
        request: Request<pb::StartGmailConnectRequest>,
    ) -> Result<Response<pb::StartGmailConnectResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let hint = request.into_inner().login_hint;
        let hint = (!hint.trim().is_empty()).then_some(hint.trim());
        let (url, expires_at) = self.core()?.start_connect(user.user_id, hint).await?;
        Ok(Response::new(pb::StartGmailConnectResponse {
            authorization_url: url,
            expires_at: timestamp(expires_at),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListMailAccountsRequest>,
    ) -> Result<Response<pb::ListMailAccountsResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let rows = self.core()?.list_accounts(user.user_id).await?;
        Ok(Response::new(pb::ListMailAccountsResponse {
            accounts: rows.iter().map(account_proto).collect(),
        }))
    }

    async fn sync_now(
        &self,
        request: Request<pb::MailAccountRef>,
    ) -> Result<Response<pb::MailAccount>, Status> {
        let user = UserContext::from_request(&request)?;
        let account_id = id(&request.get_ref().id, "mail account")?;
        let row = self.core()?.sync_now(user.user_id, account_id).await?;
        Ok(Response::new(account_proto(&row)))
    }

    async fn remove_account(
        &self,
        request: Request<pb::MailAccountRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let user = UserContext::from_request(&request)?;
        let account_id = id(&request.get_ref().id, "mail account")?;
        self.core()?
            .remove_account(user.user_id, account_id)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_emails(
        &self,
        request: Request<pb::ListEmailsRequest>,
    ) -> Result<Response<pb::ListEmailsResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let limit = if page.limit == 0 {
            50
        } else {
            page.limit.min(200)
        };
        let classification = if req.classification.is_empty() {
            None
        } else if CLASSIFICATIONS.contains(&req.classification.as_str()) {
            Some(req.classification)
        } else {
            return Err(MailError::Invalid(format!(
                "classification: must be one of {CLASSIFICATIONS:?}"
            ))
            .into());
        };
        let account_id =
            if req.account_id.is_empty() {
                None
            } else {
                Some(Uuid::parse_str(&req.account_id).map_err(|_| {
                    Status::from(MailError::Invalid("account_id: not a UUID".into()))
                })?)
            };
        let filter = EmailFilter {
            classification,
            account_id,
            thread_id: (!req.thread_id.is_empty()).then_some(req.thread_id),
            after: pai_common::time::from_proto(req.after),
            before: pai_common::time::from_proto(req.before),
        };
        let cursor = pai_common::page::parse_cursor(&page.cursor)
            .map_err(|err| Status::from(MailError::Invalid(err.to_string())))?;
        let core = self.core()?;
        let rows = core
            .list_emails(user.user_id, &filter, cursor, limit)
            .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let attachments = crate::repo::attachments(&core.pool, user.user_id, &ids)
            .await
            .map_err(Status::from)?;
        let attachments = by_email(&attachments);
        let next_cursor = match rows.last() {
            Some(last) if rows.len() == limit as usize => {
                pai_common::page::cursor(last.sort_at, last.id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListEmailsResponse {
            emails: rows
                .iter()
                .map(|row| {
                    email_proto(
                        row,
                        attachments.get(&row.id).map_or(&[][..], Vec::as_slice),
                        false,
                    )
                })
                .collect(),
            next_cursor,
        }))
    }

    async fn get_email(
        &self,
        request: Request<pb::EmailRef>,
    ) -> Result<Response<pb::Email>, Status> {
        let user = UserContext::from_request(&request)?;
        let email_id = id(&request.get_ref().id, "email")?;
        let (row, attachments) = self.core()?.email(user.user_id, email_id).await?;
        let attachments: Vec<&AttachmentRow> = attachments.iter().collect();
        Ok(Response::new(email_proto(&row, &attachments, true)))
    }

    async fn get_thread(
        &self,
        request: Request<pb::ThreadRef>,
    ) -> Result<Response<pb::Thread>, Status> {
        let user = UserContext::from_request(&request)?;
        let thread_id = request.into_inner().id;
        let (rows, attachments) = self.core()?.thread(user.user_id, &thread_id).await?;
        let attachments = by_email(&attachments);
        Ok(Response::new(pb::Thread {
            id: thread_id,
            subject: rows.first().map(|r| r.subject.clone()).unwrap_or_default(),
            emails: rows
                .iter()
                .map(|row| {
                    email_proto(
                        row,
                        attachments.get(&row.id).map_or(&[][..], Vec::as_slice),
                        true,
                    )
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl MailConnect for Grpc {
    async fn complete_gmail_connect(
        &self,
        request: Request<pb::CompleteGmailConnectRequest>,
    ) -> Result<Response<pb::MailAccount>, Status> {
        let req = request.into_inner();
        let row = self
            .core()?
            .complete_connect(&req.state, &req.code, &req.error)
            .await?;
        Ok(Response::new(account_proto(&row)))
    }
}

fn uuid_field(value: &str, name: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| Status::invalid_argument(format!("{name}: not a UUID")))
}

fn imported_at(value: Option<pai_proto::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    pai_common::time::from_proto(value).unwrap_or_else(chrono::Utc::now)
}

#[tonic::async_trait]
impl MailImport for Grpc {
    async fn import_account(
        &self,
        request: Request<pb::ImportAccountRequest>,
    ) -> Result<Response<pb::ImportAccountResponse>, Status> {
        let req = request.into_inner();
        let id = uuid_field(&req.id, "id")?;
        let created = self
            .core()?
            .import_account(&crate::import::ImportedAccount {
                id,
                user_id: uuid_field(&req.user_id, "user_id")?,
                email_address: &req.email_address,
                access_token: &req.access_token,
                refresh_token: &req.refresh_token,
                created_at: imported_at(req.created_at),
            })
            .await?;
        Ok(Response::new(pb::ImportAccountResponse {
            id: id.to_string(),
            created,
        }))
    }

    #[tracing::instrument(skip_all, fields(emails = request.get_ref().emails.len()))]
    async fn import_emails(
        &self,
        request: Request<pb::ImportEmailsRequest>,
    ) -> Result<Response<pb::ImportEmailsResponse>, Status> {
        let req = request.into_inner();
        let account_id = uuid_field(&req.account_id, "account_id")?;
        let emails = req
            .emails
            .into_iter()
            .map(|email| {
                Ok(crate::import::ImportedEmail {
                    id: uuid_field(&email.id, "emails.id")?,
                    thread_id: email.thread_id,
                    subject: email.subject,
                    text: email.text,
                    classification: email.classification,
                    created_at: imported_at(email.created_at),
                    attachments: email
                        .attachments
                        .into_iter()
                        .map(|a| crate::import::ImportedAttachment {
                            filename: a.filename,
                            content_type: a.content_type,
                            data: a.data,
                        })
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let created = self.core()?.import_emails(account_id, emails).await?;
        Ok(Response::new(pb::ImportEmailsResponse { created }))
    }
}
