//! tonic handlers: thin adapters from protobuf to [`AuthService`].

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use pai_common::UserContext;
use pai_common::identity::bearer_token;
use pai_proto::v1::{
    self as pb, account_service_server::AccountService, admin_service_server::AdminService,
    auth_internal_server::AuthInternal, auth_service_server::AuthService as AuthRpc,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::AuthError;
use crate::repo::{self, Actor, Revoke, SessionRow, UserRow};
use crate::service::{AuthService, Client, Tokens};

#[derive(Clone)]
pub struct Grpc {
    pub service: Arc<AuthService>,
}

use pai_common::time::to_proto as timestamp;

pub fn user_to_proto(user: &UserRow) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        is_admin: user.is_admin,
        is_active: user.is_active,
        created_at: timestamp(user.created_at),
    }
}

fn session_to_proto(session: &SessionRow, current: Uuid) -> pb::Session {
    pb::Session {
        id: session.id.to_string(),
        user_agent: session.user_agent.clone(),
        ip: session.ip.clone(),
        created_at: timestamp(session.created_at),
        last_used_at: timestamp(session.last_used_at),
        expires_at: timestamp(session.expires_at),
        current: session.id == current,
    }
}

fn token_response(tokens: Tokens) -> Response<pb::TokenResponse> {
    Response::new(pb::TokenResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: "Bearer".to_owned(),
        expires_in: u32::try_from(tokens.expires_in).unwrap_or(u32::MAX),
        user: Some(user_to_proto(&tokens.user)),
    })
}

/// The TCP peer's address, or empty for an in-process call.
fn peer_ip<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default()
}

impl Grpc {
    /// Where a public call came from. The client address in the message is
    /// the gateway's word, taken only with its service credential; anyone
    /// else calling this port directly is recorded (and locked out) by the
    /// TCP peer's address, whatever the message says.
    fn client<T>(&self, request: &Request<T>, info: Option<pb::ClientInfo>) -> Client {
        let info = info.unwrap_or_default();
        let from_service = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .is_some_and(|token| self.service.keys.verify_service(token).is_ok());
        Client {
            ip: if from_service {
                info.ip
            } else {
                peer_ip(request)
            },
            user_agent: info.user_agent.chars().take(512).collect(),
        }
    }

    /// The request's message and the [`Client`] it came from.
    fn split_client<T>(
        &self,
        mut request: Request<T>,
        info: impl FnOnce(&mut T) -> Option<pb::ClientInfo>,
    ) -> (Client, T) {
        let info = info(request.get_mut());
        (self.client(&request, info), request.into_inner())
    }
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(AuthError::Invalid(format!("{field}: is required")).into())
    } else {
        Ok(value)
    }
}

fn parse_cursor(cursor: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Status::from(AuthError::Invalid(
            "cursor: not a cursor of this list".into(),
        ))
    };
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let time = Utc.timestamp_micros(micros).single().ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((time, id)))
}

fn cursor_of(user: &UserRow) -> String {
    format!("{}_{}", user.created_at.timestamp_micros(), user.id)
}

#[tonic::async_trait]
impl AuthRpc for Grpc {
    #[tracing::instrument(skip_all)]
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let (client, req) = self.split_client(request, |req| req.client.take());
        let tokens = self
            .service
            .register(
                required(&req.email, "email")?,
                required(&req.username, "username")?,
                &req.display_name,
                required(&req.password, "password")?,
                &client,
            )
            .await?;
        Ok(token_response(tokens))
    }

    #[tracing::instrument(skip_all)]
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let (client, req) = self.split_client(request, |req| req.client.take());
        let tokens = self
            .service
            .login(
                required(&req.login, "email")?,
                required(&req.password, "password")?,
                &client,
            )
            .await?;
        Ok(token_response(tokens))
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let req = request.into_inner();
        let tokens = self
            .service
            .refresh(required(&req.refresh_token, "refresh_token")?)
            .await?;
        Ok(token_response(tokens))
    }

    #[tracing::instrument(skip_all)]
    async fn reactivate(
        &self,
        request: Request<pb::ReactivateRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let (client, req) = self.split_client(request, |req| req.client.take());
        let tokens = self
            .service
            .reactivate(
                required(&req.email, "email")?,
                required(&req.password, "password")?,
                &client,
            )
            .await?;
        Ok(token_response(tokens))
    }
}

#[tonic::async_trait]
impl AccountService for Grpc {
    async fn logout(&self, request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        self.service
            .revoke(&ctx, Revoke::One(ctx.session_id), "logout")
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        let sessions = self.service.list_sessions(&ctx).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .iter()
                .map(|s| session_to_proto(s, ctx.session_id))
                .collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        // Someone else's session answers exactly like a missing one.
        let session_id = Uuid::parse_str(&request.get_ref().session_id)
            .map_err(|_| AuthError::NotFound("session"))?;
        let revoked = self
            .service
            .revoke(&ctx, Revoke::One(session_id), "revoked by user")
            .await?;
        if revoked == 0 {
            return Err(AuthError::NotFound("session").into());
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn revoke_all_sessions(
        &self,
        request: Request<pb::RevokeAllSessionsRequest>,
    ) -> Result<Response<pb::RevokeAllSessionsResponse>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        let keep = request.get_ref().keep_current.then_some(ctx.session_id);
        let revoked = self
            .service
            .revoke(&ctx, Revoke::AllBut(keep), "all sessions revoked by user")
            .await?;
        Ok(Response::new(pb::RevokeAllSessionsResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn get_profile(&self, request: Request<pb::Empty>) -> Result<Response<pb::User>, Status> {
        let ctx = UserContext::from_request(&request)?;
        let user = self.service.authorize_cached(&ctx).await?;
        Ok(Response::new(user_to_proto(&user)))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        let req = request.into_inner();
        let user = self
            .service
            .update_profile(
                &ctx,
                req.email.as_deref(),
                req.username.as_deref(),
                req.display_name.as_deref(),
            )
            .await?;
        Ok(Response::new(user_to_proto(&user)))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let ctx = UserContext::from_request(&request)?;
        let ip = peer_ip(&request);
        let req = request.into_inner();
        self.service
            .change_password(
                &ctx,
                required(&req.old_password, "old_password")?,
                required(&req.new_password, "new_password")?,
                &ip,
            )
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn delete_account(
        &self,
        request: Request<pb::PasswordConfirmation>,
    ) -> Result<Response<pb::Empty>, Status> {
        let ctx = UserContext::from_request(&request)?;
        let password = &request.get_ref().password;
        self.service
            .delete_account(&ctx, required(password, "password")?, &peer_ip(&request))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn account_status(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::AccountStatusResponse>, Status> {
        let ctx = UserContext::from_request(&request)?;
        let (status, locked_until) = self.service.status(&ctx).await?;
        Ok(Response::new(pb::AccountStatusResponse {
            status,
            locked_until: locked_until.and_then(timestamp),
        }))
    }

    async fn deactivate(
        &self,
        request: Request<pb::PasswordConfirmation>,
    ) -> Result<Response<pb::Empty>, Status> {
        let ctx = UserContext::from_request(&request)?;
        let password = &request.get_ref().password;
        self.service
            .deactivate(&ctx, required(password, "password")?, &peer_ip(&request))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }
}

#[tonic::async_trait]
impl AdminService for Grpc {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        let page = request.into_inner().page.unwrap_or_default();
        let limit = if page.limit == 0 {
            50
        } else {
            page.limit.min(200)
        };
        let after = parse_cursor(&page.cursor)?;
        let users = self.service.list_users(after, limit).await?;
        let next_cursor = if users.len() == limit as usize {
            users.last().map(cursor_of).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(user_to_proto).collect(),
            next_cursor,
        }))
    }

    async fn set_user_active(
        &self,
        request: Request<pb::SetUserActiveRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let ctx = UserContext::from_request(&request)?;
        self.service.authorize(&ctx).await?;
        let req = request.into_inner();
        let user_id = Uuid::parse_str(&req.user_id).map_err(|_| AuthError::NotFound("user"))?;
        let user = self
            .service
            .set_active(user_id, req.active, Actor::Admin)
            .await?;
        Ok(Response::new(user_to_proto(&user)))
    }
}

#[tonic::async_trait]
impl AuthInternal for Grpc {
    async fn revocation_feed(
        &self,
        request: Request<pb::RevocationFeedRequest>,
    ) -> Result<Response<pb::RevocationFeedResponse>, Status> {
        let cursor = request.get_ref().cursor;
        let (rows, next_cursor) = repo::revocation_feed(&self.service.pool, cursor)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::RevocationFeedResponse {
            revocations: rows
                .into_iter()
                .map(|row| pb::Revocation {
                    seq: row.seq,
                    session_id: row.session_id.to_string(),
                    expires_at: timestamp(row.expires_at),
                })
                .collect(),
            next_cursor,
        }))
    }

    async fn import_user(
        &self,
        request: Request<pb::ImportUserRequest>,
    ) -> Result<Response<pb::ImportUserResponse>, Status> {
        let req = request.into_inner();
        let id =
            Uuid::parse_str(&req.id).map_err(|_| Status::invalid_argument("id: not a UUID"))?;
        let now = Utc::now();
        let created_at = pai_common::time::from_proto(req.created_at).unwrap_or(now);
        let created = self
            .service
            .import_user(&repo::ImportedUser {
                id,
                email: req.email.trim(),
                username: req.username.trim(),
                password_hash: &req.password_hash,
                is_admin: req.is_admin,
                is_active: req.is_active,
                created_at,
                updated_at: pai_common::time::from_proto(req.updated_at).unwrap_or(created_at),
            })
            .await?;
        Ok(Response::new(pb::ImportUserResponse {
            id: id.to_string(),
            created,
        }))
    }
}
