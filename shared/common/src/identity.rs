//! Access and service tokens: issuing, verifying, and the tonic interceptors
//! that turn a bearer token into a [`UserContext`] for handlers.
//!
//! Verification checks the signature first with an allow-list of one
//! algorithm (so `alg: none` and algorithm confusion are refused), then
//! `exp`/`nbf` with no leeway, `iss`, `aud` and the token type.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};
use uuid::Uuid;

use crate::config::JwtSettings;
use crate::revocation::RevocationSet;

const ALGORITHM: Algorithm = Algorithm::HS256;
const ACCESS: &str = "access";
const SERVICE: &str = "service";
/// The audience of service credentials: never accepted as a user token.
const INTERNAL_AUDIENCE: &str = "pai-internal";
const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Who is calling: the subject of a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserContext {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub is_admin: bool,
}

impl UserContext {
    /// Returns the context an interceptor attached to the request.
    pub fn from_request<T>(request: &Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .ok_or_else(|| Status::unauthenticated("missing access token"))
    }
}

/// The claims pai puts in its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// Token type: `access` or `service`.
    pub typ: String,
    /// Session id (access tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Admin role (access tokens only).
    #[serde(default)]
    pub adm: bool,
}

/// Why a token was refused. The text is safe to show to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
    #[error("session revoked")]
    Revoked,
}

impl From<TokenError> for Status {
    fn from(err: TokenError) -> Self {
        Status::unauthenticated(err.to_string())
    }
}

/// Signs and verifies pai's tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access: Validation,
    service: Validation,
    issuer: String,
    audience: String,
    access_lifetime: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(ALGORITHM);
    validation.algorithms = vec![ALGORITHM];
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation
}

impl JwtKeys {
    pub fn new(settings: &JwtSettings) -> Self {
        let secret = settings.secret.expose_secret().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access: validation(&settings.issuer, &settings.audience),
            service: validation(&settings.issuer, INTERNAL_AUDIENCE),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_lifetime: settings.access_lifetime,
        }
    }

    pub fn access_lifetime(&self) -> Duration {
        self.access_lifetime
    }

    fn sign(&self, claims: &Claims) -> String {
        // Encoding HS256 with a valid key cannot fail for these claims.
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.encoding).unwrap_or_default()
    }

    /// Returns a signed access token for the session.
    pub fn issue_access(&self, user: &UserContext) -> String {
        let now = now_secs();
        self.sign(&Claims {
            sub: user.user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + self.access_lifetime.as_secs(),
            nbf: now,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            typ: ACCESS.to_owned(),
            sid: Some(user.session_id.to_string()),
            adm: user.is_admin,
        })
    }

    /// Returns a short-lived credential for service-to-service calls.
    pub fn issue_service(&self, service: &str) -> String {
        let now = now_secs();
        self.sign(&Claims {
            sub: service.to_owned(),
            iss: self.issuer.clone(),
            aud: INTERNAL_AUDIENCE.to_owned(),
            exp: now + SERVICE_TOKEN_LIFETIME.as_secs(),
            nbf: now,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            typ: SERVICE.to_owned(),
            sid: None,
            adm: false,
        })
    }

    fn decode(&self, token: &str, validation: &Validation) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, validation)
            .map(|data| data.claims)
            .map_err(|err| {
                if matches!(
                    err.kind(),
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature
                ) {
                    TokenError::Expired
                } else {
                    TokenError::Invalid
                }
            })
    }

    /// Verifies an access token and returns its subject.
    pub fn verify_access(&self, token: &str) -> Result<UserContext, TokenError> {
        self.verify_access_claims(token).map(|(_, user)| user)
    }

    /// Verifies an access token and returns its claims and subject.
    pub fn verify_access_claims(&self, token: &str) -> Result<(Claims, UserContext), TokenError> {
        let claims = self.decode(token, &self.access)?;
        if claims.typ != ACCESS {
            return Err(TokenError::Invalid);
        }
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Invalid)?;
        let session_id = claims
            .sid
            .as_deref()
            .and_then(|sid| Uuid::parse_str(sid).ok())
            .ok_or(TokenError::Invalid)?;
        let user = UserContext {
            user_id,
            session_id,
            is_admin: claims.adm,
        };
        Ok((claims, user))
    }

    /// Verifies a service credential and returns the calling service's name.
    pub fn verify_service(&self, token: &str) -> Result<String, TokenError> {
        let claims = self.decode(token, &self.service)?;
        if claims.typ != SERVICE {
            return Err(TokenError::Invalid);
        }
        Ok(claims.sub)
    }
}

/// Returns the bearer token of an `authorization` header value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn metadata_bearer(metadata: &MetadataMap) -> Result<&str, TokenError> {
    metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(TokenError::Missing)
}

/// Adds `authorization: Bearer <token>` to an outgoing request.
pub fn with_bearer<T>(mut request: Request<T>, token: &str) -> Request<T> {
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Interceptor for user-scoped services: refuses calls without a valid access
/// token (and, with `admin_only`, without the admin role).
#[derive(Clone)]
pub struct RequireUser {
    keys: Arc<JwtKeys>,
    revocations: Option<Arc<RevocationSet>>,
    admin_only: bool,
}

impl RequireUser {
    pub fn new(keys: Arc<JwtKeys>) -> Self {
        Self {
            keys,
            revocations: None,
            admin_only: false,
        }
    }

    #[must_use]
    pub fn admin_only(mut self) -> Self {
        self.admin_only = true;
        self
    }

    /// Also refuses tokens whose session is in the revocation set.
    #[must_use]
    pub fn with_revocations(mut self, revocations: Arc<RevocationSet>) -> Self {
        self.revocations = Some(revocations);
        self
    }
}

impl tonic::service::Interceptor for RequireUser {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = metadata_bearer(request.metadata())?;
        let user = self.keys.verify_access(token)?;
        if let Some(revocations) = &self.revocations
            && revocations.is_revoked(user.session_id)
        {
            return Err(TokenError::Revoked.into());
        }
        if self.admin_only && !user.is_admin {
            return Err(Status::permission_denied("administrator role required"));
        }
        request.extensions_mut().insert(user);
        Ok(request)
    }
}

/// Interceptor for internal services: refuses calls without a service credential.
#[derive(Clone)]
pub struct RequireService {
    keys: Arc<JwtKeys>,
}

impl RequireService {
    pub fn new(keys: Arc<JwtKeys>) -> Self {
        Self { keys }
    }
}

impl tonic::service::Interceptor for RequireService {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let token = metadata_bearer(request.metadata())?;
        self.keys.verify_service(token)?;
        Ok(request)
    }
}

/// Client interceptor that attaches a service credential to every call.
#[derive(Clone)]
pub struct ServiceCredential {
    keys: Arc<JwtKeys>,
    service: &'static str,
}

impl ServiceCredential {
    pub fn new(keys: Arc<JwtKeys>, service: &'static str) -> Self {
        Self { keys, service }
    }
}

impl tonic::service::Interceptor for ServiceCredential {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        Ok(with_bearer(request, &self.keys.issue_service(self.service)))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn keys(secret: &str, audience: &str) -> JwtKeys {
        JwtKeys::new(&JwtSettings {
            secret: SecretString::from(secret.to_owned()),
            issuer: "pai".into(),
            audience: audience.into(),
            access_lifetime: Duration::from_secs(60),
        })
    }

    fn user() -> UserContext {
        UserContext {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            is_admin: false,
        }
    }

    #[test]
    fn access_token_round_trips() {
        let keys = keys("0123456789abcdef0123456789abcdef", "pai-api");
        let user = user();
        assert_eq!(keys.verify_access(&keys.issue_access(&user)), Ok(user));
    }

    #[test]
    fn service_token_is_not_an_access_token_and_back() {
        let keys = keys("0123456789abcdef0123456789abcdef", "pai-api");
        let service = keys.issue_service("gateway");
        assert_eq!(keys.verify_access(&service), Err(TokenError::Invalid));
        let access = keys.issue_access(&user());
        assert_eq!(keys.verify_service(&access), Err(TokenError::Invalid));
        assert_eq!(keys.verify_service(&service).as_deref(), Ok("gateway"));
    }

    #[test]
    fn wrong_key_and_wrong_audience_are_refused() {
        let ours = keys("0123456789abcdef0123456789abcdef", "pai-api");
        let theirs = keys("ffffffffffffffffffffffffffffffff", "pai-api");
        let other_aud = keys("0123456789abcdef0123456789abcdef", "other");
        let user = user();
        assert_eq!(
            ours.verify_access(&theirs.issue_access(&user)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            ours.verify_access(&other_aud.issue_access(&user)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
