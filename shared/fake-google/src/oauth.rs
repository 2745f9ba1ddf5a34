//! Google's OAuth 2.0 endpoints: authorization (consents at once), token
//! (code exchange with PKCE, refresh) and revoke.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::OAuthError;
use crate::state::{
    AccessToken, AuthorizationRequest, GrantInfo, PendingCode, Shared, random_token,
};

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Parses a query string or form body into a map (the last value wins).
pub(crate) fn parse_pairs(bytes: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// `GET /o/oauth2/v2/auth`: records the request and, as if the user
/// consented at once, redirects to `redirect_uri` with `code` and `state`.
#[tracing::instrument(skip_all)]
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let parameters = parse_pairs(query.unwrap_or_default().as_bytes());
    let get = |name: &str| parameters.get(name).cloned();
    let request = AuthorizationRequest {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        access_type: get("access_type"),
        prompt: get("prompt"),
        login_hint: get("login_hint"),
        parameters: parameters.clone(),
    };
    let mut inner = shared.lock();
    inner.count("oauth.authorize");
    inner.last_authorization = Some(request.clone());
    // Google shows an error page (no redirect) for a bad client or redirect.
    if request.client_id.as_deref() != Some(shared.config.client_id.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "Error 401: invalid_client\nThe OAuth client was not found.",
        )
            .into_response();
    }
    let Some(redirect_uri) = request.redirect_uri.clone() else {
        return (
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request\nMissing required parameter: redirect_uri",
        )
            .into_response();
    };
    let mut answer = form_urlencoded::Serializer::new(String::new());
    if let Some(state) = &request.state {
        answer.append_pair("state", state);
    }
    if request.response_type.as_deref() != Some("code") {
        answer.append_pair("error", "unsupported_response_type");
        return found(&join_query(&redirect_uri, &answer.finish()));
    }
    if request.scope.as_deref().unwrap_or_default().is_empty() {
        answer.append_pair("error", "invalid_scope");
        return found(&join_query(&redirect_uri, &answer.finish()));
    }
    if std::mem::take(&mut inner.deny_next_authorization) {
        answer.append_pair("error", "access_denied");
        return found(&join_query(&redirect_uri, &answer.finish()));
    }
    let account = request
        .login_hint
        .clone()
        .filter(|hint| inner.mailboxes.contains_key(hint))
        .or_else(|| inner.default_account.clone());
    let Some(email) = account else {
        return (StatusCode::BAD_REQUEST, "fake google: no account to sign in (no mailbox matches login_hint and no default account)").into_response();
    };
    let code = random_token("4/0A", 70);
    answer.append_pair("code", &code);
    answer.append_pair("scope", request.scope.as_deref().unwrap_or_default());
    inner.codes.insert(
        code,
        PendingCode {
            request,
            email,
            used: false,
            expires_at: Instant::now() + CODE_LIFETIME,
        },
    );
    found(&join_query(&redirect_uri, &answer.finish()))
}

/// Google's consent screen answers 302 Found (axum's `Redirect::to` is 303).
fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn join_query(uri: &str, query: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// `POST /token`: `grant_type=authorization_code` or `refresh_token`.
#[tracing::instrument(skip_all)]
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_pairs(&body);
    shared.lock().count("oauth.token");
    match exchange(&shared, &headers, &form) {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

fn exchange(
    shared: &Shared,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let (client_id, client_secret) = client_credentials(headers, form);
    if client_id.as_deref() != Some(shared.config.client_id.as_str())
        || client_secret.as_deref() != Some(shared.config.client_secret.as_str())
    {
        return Err(OAuthError::invalid_client());
    }
    let required = |name: &str| {
        form.get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                OAuthError::invalid_request(&format!("Missing required parameter: {name}"))
            })
    };
    let grant_type = required("grant_type")?;
    let mut inner = shared.lock();
    let lifetime = shared.config.access_token_lifetime;
    match grant_type.as_str() {
        "authorization_code" => {
            let code = required("code")?;
            let pending = inner
                .codes
                .get_mut(code)
                .ok_or_else(|| OAuthError::invalid_grant("Malformed auth code."))?;
            if pending.used {
                return Err(OAuthError::invalid_grant("Bad Request"));
            }
            pending.used = true;
            if pending.expires_at < Instant::now() {
                return Err(OAuthError::invalid_grant("Bad Request"));
            }
            if form.get("redirect_uri") != pending.request.redirect_uri.as_ref() {
                return Err(OAuthError::invalid_grant("Bad Request"));
            }
            if let Some(challenge) = &pending.request.code_challenge {
                let verifier = form
                    .get("code_verifier")
                    .ok_or_else(|| OAuthError::invalid_grant("Missing code verifier."))?;
                let expected = match pending.request.code_challenge_method.as_deref() {
                    Some("S256") => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
                    _ => verifier.clone(),
                };
                if &expected != challenge {
                    return Err(OAuthError::invalid_grant("Invalid code verifier."));
                }
            }
            let offline = pending.request.access_type.as_deref() == Some("offline");
            let scope = pending.request.scope.clone().unwrap_or_default();
            let email = pending.email.clone();
            let refresh_token = offline.then(|| random_token("1//0", 100));
            inner.grants.push(GrantInfo {
                email,
                client_id: shared.config.client_id.clone(),
                scope: scope.clone(),
                offline,
                refresh_token: refresh_token.clone(),
                revoked: false,
            });
            let grant = inner.grants.len() - 1;
            let access_token = issue_access_token(&mut inner.access_tokens, grant, lifetime);
            let mut answer = json!({
                "access_token": access_token,
                "expires_in": lifetime.as_secs(),
                "scope": scope,
                "token_type": "Bearer",
            });
            if let Some(refresh_token) = refresh_token {
                answer["refresh_token"] = json!(refresh_token);
            }
            Ok(answer)
        }
        "refresh_token" => {
            let refresh_token = required("refresh_token")?;
            let grant = inner
                .grants
                .iter()
                .position(|grant| grant.refresh_token.as_ref() == Some(refresh_token))
                .ok_or_else(|| OAuthError::invalid_grant("Bad Request"))?;
            if inner.grants[grant].revoked {
                return Err(OAuthError::invalid_grant(
                    "Token has been expired or revoked.",
                ));
            }
            let scope = inner.grants[grant].scope.clone();
            let access_token = issue_access_token(&mut inner.access_tokens, grant, lifetime);
            Ok(json!({
                "access_token": access_token,
                "expires_in": lifetime.as_secs(),
                "scope": scope,
                "token_type": "Bearer",
            }))
        }
        _ => Err(OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: format!("Invalid grant_type: {grant_type}"),
        }),
    }
}

fn issue_access_token(
    tokens: &mut BTreeMap<String, AccessToken>,
    grant: usize,
    lifetime: Duration,
) -> String {
    let token = random_token("ya29.a0", 150);
    tokens.insert(
        token.clone(),
        AccessToken {
            grant,
            expires_at: Instant::now() + lifetime,
        },
    );
    token
}

/// Returns the client id and secret from HTTP Basic auth (the `oauth2`
/// crate's default) or else from the form body.
fn client_credentials(
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    if let Some(pair) = basic
        && let Some((id, secret)) = pair.split_once(':')
    {
        // RFC 6749 §2.3.1: both halves are form-urlencoded before joining.
        let decode = |text: &str| parse_pairs(format!("v={text}").as_bytes()).remove("v");
        return (decode(id), decode(secret));
    }
    (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    )
}

/// `POST /revoke`: revokes the grant behind an access or refresh token
/// (`token` in the form body or the query).
#[tracing::instrument(skip_all)]
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut parameters = parse_pairs(query.unwrap_or_default().as_bytes());
    parameters.extend(parse_pairs(&body));
    let mut inner = shared.lock();
    inner.count("oauth.revoke");
    let token = parameters.get("token").cloned().unwrap_or_default();
    let grant = inner
        .grants
        .iter()
        .position(|grant| grant.refresh_token.as_ref() == Some(&token) && !grant.revoked)
        .or_else(|| inner.access_tokens.get(&token).map(|access| access.grant));
    let Some(grant) = grant else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
            ),
        )
            .into_response();
    };
    inner.grants[grant].revoked = true;
    inner
        .access_tokens
        .retain(|_, access| access.grant != grant);
    Json(json!({})).into_response()
}
