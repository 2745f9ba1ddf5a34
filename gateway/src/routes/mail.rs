//! `/api/gmail/*` (connecting a Gmail account), `/api/mail/accounts*` and
//! `/api/emails*`: thin adapters over the mail-sync service.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use pai_proto::v1::{self as pb};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{EmailPage, EmailThread, GmailConnect, MailAccount, MailAccounts};
use crate::extract::AuthUser;
use crate::problem::ApiResult;
use crate::state::{AppState, authorized};

/// Where the browser lands after connecting (the web app's mail page).
const MAIL_PAGE: &str = "/mail/";

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConnectParams {
    /// Pre-fills Google's account chooser.
    pub login_hint: Option<String>,
}

#[utoipa::path(get, path = "/api/gmail/connect", operation_id = "gmail_connect", tag = "mail", security(("bearer" = [])),
    params(ConnectParams),
    description = "Google's consent URL for connecting a Gmail account (read-only, offline \
        access, PKCE). 503 with `reason: gmail_not_configured` when the server has no Gmail client.",
    responses((status = 200, body = GmailConnect), (status = 503, body = crate::problem::Problem)))]
pub async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<ConnectParams>,
) -> ApiResult<axum::Json<GmailConnect>> {
    let started = state
        .mail
        .clone()
        .start_gmail_connect(authorized(
            &auth.token,
            pb::StartGmailConnectRequest {
                login_hint: params.login_hint.unwrap_or_default(),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(GmailConnect {
        authorization_url: started.authorization_url,
        expires_at: pai_common::time::from_proto(started.expires_at),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    /// Google's answer when the user declined.
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/gmail/callback", operation_id = "gmail_callback", tag = "mail",
    params(CallbackParams),
    description = "Google's browser redirect after consent. Needs no bearer token: the \
        single-use `state` names the user. Redirects to the web app's mail page with \
        `connected=<account id>` or `error=<reason>`.",
    responses((status = 303, description = "to /mail/")))]
pub async fn callback(
    State(state): State<AppState>,
    Query(params): Query<CallbackParams>,
) -> Response {
    let completed = state
        .mail_connect
        .clone()
        .complete_gmail_connect(pb::CompleteGmailConnectRequest {
            state: params.state.unwrap_or_default(),
            code: params.code.unwrap_or_default(),
            error: params.error.unwrap_or_default(),
        })
        .await;
    let target = match completed {
        Ok(account) => format!("{MAIL_PAGE}?connected={}", account.into_inner().id),
        Err(status) => {
            let problem = crate::problem::Problem::from(status);
            format!("{MAIL_PAGE}?error={}", urlencode(&problem.detail))
        }
    };
    Redirect::to(&target).into_response()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[utoipa::path(get, path = "/api/mail/accounts", operation_id = "list_mail_accounts", tag = "mail", security(("bearer" = [])),
    responses((status = 200, body = MailAccounts)))]
pub async fn accounts(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<axum::Json<MailAccounts>> {
    let list = state
        .mail
        .clone()
        .list_accounts(authorized(&auth.token, pb::ListMailAccountsRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(MailAccounts {
        accounts: list.accounts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/mail/accounts/{id}/sync", operation_id = "sync_mail_account", tag = "mail", security(("bearer" = [])),
    params(("id" = String, Path)),
    description = "Queues a sync of the account now; its state and counts show in the list.",
    responses((status = 202, body = MailAccount), (status = 404, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem, description = "the account must be connected again, or mail is being imported into it")))]
pub async fn sync(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<MailAccount>)> {
    let account = state
        .mail
        .clone()
        .sync_now(authorized(&auth.token, pb::MailAccountRef { id }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, axum::Json(account.into())))
}

#[utoipa::path(delete, path = "/api/mail/accounts/{id}", operation_id = "remove_mail_account", tag = "mail", security(("bearer" = [])),
    params(("id" = String, Path)),
    description = "Revokes the account's token at Google and deletes its emails, attachments, \
        tokens and search entries.",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .mail
        .clone()
        .remove_account(authorized(&auth.token, pb::MailAccountRef { id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EmailParams {
    /// `personal`, `work`, `financial`, `newsletter`, `notification` or `spam`.
    pub classification: Option<String>,
    pub account_id: Option<String>,
    pub thread_id: Option<String>,
    /// Only mail dated at or after this time (RFC 3339).
    pub after: Option<DateTime<Utc>>,
    /// Only mail dated before this time (RFC 3339).
    pub before: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/emails", operation_id = "list_emails", tag = "mail", security(("bearer" = [])),
    params(EmailParams), responses((status = 200, body = EmailPage)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<EmailParams>,
) -> ApiResult<axum::Json<EmailPage>> {
    let page = state
        .mail
        .clone()
        .list_emails(authorized(
            &auth.token,
            pb::ListEmailsRequest {
                page: Some(pb::PageRequest {
                    limit: params.limit.unwrap_or(0),
                    cursor: params.cursor.unwrap_or_default(),
                }),
                classification: params.classification.unwrap_or_default(),
                account_id: params.account_id.unwrap_or_default(),
                thread_id: params.thread_id.unwrap_or_default(),
                after: params.after.and_then(pai_common::time::to_proto),
                before: params.before.and_then(pai_common::time::to_proto),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(EmailPage {
        emails: page.emails.into_iter().map(Into::into).collect(),
        next_cursor: Some(page.next_cursor).filter(|c| !c.is_empty()),
    }))
}

#[utoipa::path(get, path = "/api/emails/{id}", operation_id = "get_email", tag = "mail", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = crate::dto::Email), (status = 404, body = crate::problem::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<crate::dto::Email>> {
    let email = state
        .mail
        .clone()
        .get_email(authorized(&auth.token, pb::EmailRef { id }))
        .await?
        .into_inner();
    Ok(axum::Json(email.into()))
}

#[utoipa::path(get, path = "/api/emails/threads/{id}", operation_id = "get_thread", tag = "mail", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = EmailThread), (status = 404, body = crate::problem::Problem)))]
pub async fn thread(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EmailThread>> {
    let thread = state
        .mail
        .clone()
        .get_thread(authorized(&auth.token, pb::ThreadRef { id }))
        .await?
        .into_inner();
    Ok(axum::Json(EmailThread {
        id: thread.id,
        subject: thread.subject,
        emails: thread.emails.into_iter().map(Into::into).collect(),
    }))
}
