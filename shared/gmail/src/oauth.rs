//! Google OAuth 2.0 for an installed web client: the consent URL (PKCE S256,
//! offline access, Gmail read-only), the code exchange, refresh and revoke.
//! Built on the `oauth2` crate over a rustls `reqwest` client that follows
//! no redirects (the crate's advice against SSRF through the token endpoint).

use std::error::Error as StdError;
use std::pin::Pin;

use chrono::Utc;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenUrl,
};

use crate::tokens::{GoogleTokenResponse, Tokens};

/// The one scope pai asks for: read mail and labels, change nothing.
pub const GMAIL_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// Bytes of randomness in `state` (256 bits; Google needs it only unguessable).
const STATE_BYTES: u32 = 32;

/// Where Google's endpoints are; tests point them at a local fake
/// (DESIGN §7: `GOOGLE_AUTH_URL`, `GOOGLE_TOKEN_URL`, `GOOGLE_REVOKE_URL`,
/// `GMAIL_API_BASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleEndpoints {
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: String,
    /// The Gmail API root; `/gmail/v1/users/...` is appended to it.
    pub api_base_url: String,
}

impl Default for GoogleEndpoints {
    /// Returns Google's real endpoints.
    fn default() -> Self {
        Self {
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".to_owned(),
            token_url: "https://oauth2.googleapis.com/token".to_owned(),
            revoke_url: "https://oauth2.googleapis.com/revoke".to_owned(),
            api_base_url: "https://gmail.googleapis.com".to_owned(),
        }
    }
}

/// A consent URL and the two secrets the caller keeps until the callback.
#[derive(Clone)]
pub struct Authorization {
    /// Where to send the user's browser.
    pub url: String,
    /// Echoed back on the callback; the caller looks the session up by it.
    pub state: String,
    /// Proves at the exchange that the code is the caller's own.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Authorization")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("pkce_verifier", &"[redacted]")
            .finish()
    }
}

/// Why a token endpoint call failed. `InvalidGrant` is the one that needs
/// the user: the others are configuration or a passing outage.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is bad, used, expired or revoked: the
    /// account needs a new consent.
    #[error("google refused the grant: {description}")]
    InvalidGrant { description: String },
    /// Any other OAuth error answer (`invalid_client`, `invalid_request`,
    /// `unauthorized_client`, `invalid_token` on revoke, ...): a
    /// configuration problem rather than the user's.
    #[error("google's oauth endpoint answered {error}: {description}")]
    Rejected { error: String, description: String },
    /// The endpoint answered 429 or 5xx; trying later may work.
    #[error("google's oauth endpoint answered HTTP {0}")]
    Server(u16),
    /// The endpoint could not be reached or the connection failed.
    #[error("could not reach google's oauth endpoint")]
    Transport(#[source] Box<dyn StdError + Send + Sync>),
    /// The answer was not the JSON expected.
    #[error("google's oauth answer could not be read: {0}")]
    Decode(String),
    /// An endpoint in the configuration is not a URL.
    #[error("invalid {name} url: {reason}")]
    InvalidUrl { name: &'static str, reason: String },
}

impl OAuthError {
    /// Returns whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Server(_) | Self::Transport(_) => true,
            Self::InvalidGrant { .. }
            | Self::Rejected { .. }
            | Self::Decode(_)
            | Self::InvalidUrl { .. } => false,
        }
    }
}

/// What the HTTP hook hands back to `oauth2` instead of a response: a
/// transport failure, or a status that is an outage rather than an OAuth
/// answer (so it is not parsed as one).
#[derive(Debug, thiserror::Error)]
enum HttpFailure {
    #[error("http transport")]
    Transport(#[source] reqwest::Error),
    #[error("http {0}")]
    Unavailable(u16),
    #[error("building the http response")]
    Http(#[source] oauth2::http::Error),
}

type GoogleClient = oauth2::Client<
    BasicErrorResponse,
    GoogleTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// One OAuth client of Google's (client id, secret, redirect URI); cheap to
/// clone and shared by every account.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    client: GoogleClient,
    http: HttpHook,
    revoke_url: reqwest::Url,
}

impl OAuthClient {
    /// Returns a client for Google's endpoints, or `InvalidUrl` naming the
    /// bad setting.
    pub fn new(
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        endpoints: &GoogleEndpoints,
    ) -> Result<Self, OAuthError> {
        let invalid = |name: &'static str| {
            move |error: oauth2::url::ParseError| OAuthError::InvalidUrl {
                name,
                reason: error.to_string(),
            }
        };
        let client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
            .set_client_secret(ClientSecret::new(client_secret.to_owned()))
            .set_auth_uri(AuthUrl::new(endpoints.auth_url.clone()).map_err(invalid("auth"))?)
            .set_token_uri(TokenUrl::new(endpoints.token_url.clone()).map_err(invalid("token"))?)
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(invalid("redirect"))?,
            )
            // Google documents the client secret in the form body.
            .set_auth_type(AuthType::RequestBody);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|error| OAuthError::Transport(Box::new(error)))?;
        let revoke_url = reqwest::Url::parse(&endpoints.revoke_url).map_err(invalid("revoke"))?;
        Ok(Self {
            client,
            http: HttpHook(http),
            revoke_url,
        })
    }

    /// Returns a consent URL for Gmail read-only with offline access and a
    /// fresh `state` and PKCE verifier; `login_hint` preselects an account.
    /// `prompt=consent` makes Google issue a refresh token even to a user
    /// who consented before.
    pub fn authorization(&self, login_hint: Option<&str>) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(|| CsrfToken::new_random_len(STATE_BYTES))
            .add_scope(Scope::new(GMAIL_READONLY_SCOPE.to_owned()))
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent");
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint);
        }
        let (url, state) = request.url();
        Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges the callback's `code` (with the verifier stored beside its
    /// `state`) for tokens. A wrong, used or expired code or verifier is
    /// `InvalidGrant`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<Tokens, OAuthError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(Tokens::from_response(
            &response,
            None,
            GMAIL_READONLY_SCOPE,
            Utc::now(),
        ))
    }

    /// Returns new tokens for a refresh token. Google usually omits the
    /// refresh token here; the result then carries the one given. A revoked
    /// or expired one is `InvalidGrant`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OAuthError> {
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(Tokens::from_response(
            &response,
            Some(refresh_token),
            GMAIL_READONLY_SCOPE,
            Utc::now(),
        ))
    }

    /// Revokes the whole grant behind an access or refresh token (Google
    /// revokes both either way). A token Google no longer knows answers
    /// `Rejected { error: "invalid_token" }`; a caller removing an account
    /// may treat that as done. Sent directly rather than through `oauth2`,
    /// which refuses a revocation URL that is not HTTPS (a local fake's).
    pub async fn revoke(&self, token: &str) -> Result<(), OAuthError> {
        let response = self
            .http
            .0
            .post(self.revoke_url.clone())
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|error| OAuthError::Transport(Box::new(error)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(OAuthError::Server(status.as_u16()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| OAuthError::Transport(Box::new(error)))?;
        let answer: BasicErrorResponse = serde_json::from_slice(&body)
            .map_err(|error| OAuthError::Decode(format!("revoke answered {status}: {error}")))?;
        Err(OAuthError::Rejected {
            error: answer.error().to_string(),
            description: answer.error_description().cloned().unwrap_or_default(),
        })
    }
}

/// `oauth2`'s HTTP client. A named type rather than a closure: with a
/// closure the futures that borrow it are not `Send` for every lifetime,
/// and a `Session` call could not go to `tokio::spawn`.
#[derive(Debug, Clone)]
struct HttpHook(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for HttpHook {
    type Error = HttpFailure;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one request for `oauth2`; 429 and 5xx become errors here so that an
/// outage is not read as an OAuth answer.
async fn send(http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let request = reqwest::Request::try_from(request).map_err(HttpFailure::Transport)?;
    let response = http
        .execute(request)
        .await
        .map_err(HttpFailure::Transport)?;
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(HttpFailure::Unavailable(status.as_u16()));
    }
    let mut builder = oauth2::http::Response::builder().status(status.as_u16());
    for (name, value) in response.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let body = response.bytes().await.map_err(HttpFailure::Transport)?;
    builder.body(body.to_vec()).map_err(HttpFailure::Http)
}

fn token_error(error: RequestTokenError<HttpFailure, BasicErrorResponse>) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let description = response.error_description().cloned().unwrap_or_default();
            // Only `invalid_grant` is about the user's grant; the others name
            // a client or request fault.
            if *response.error() == BasicErrorResponseType::InvalidGrant {
                return OAuthError::InvalidGrant { description };
            }
            OAuthError::Rejected {
                error: response.error().to_string(),
                description,
            }
        }
        RequestTokenError::Request(failure) => http_failure(failure),
        RequestTokenError::Parse(error, _) => OAuthError::Decode(error.to_string()),
        RequestTokenError::Other(message) => OAuthError::Decode(message),
    }
}

fn http_failure(failure: HttpFailure) -> OAuthError {
    match failure {
        HttpFailure::Transport(error) => OAuthError::Transport(Box::new(error)),
        HttpFailure::Unavailable(status) => OAuthError::Server(status),
        HttpFailure::Http(error) => OAuthError::Decode(error.to_string()),
    }
}
