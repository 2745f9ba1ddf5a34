//! The tokens a grant yields, and the token endpoint's JSON as Google sends
//! it (which bends RFC 6749 in two ways the `oauth2` crate's standard
//! response does not accept).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use serde::{Deserialize, Deserializer, Serialize};

/// How long an access token is taken to live when Google's answer names no
/// lifetime (RFC 6749 makes `expires_in` only recommended; Google's is 3599 s).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What a code exchange or refresh yields: what the service encrypts and
/// stores per account.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    /// Absent only when the grant was not offline; a refresh that omits it
    /// keeps the previous one.
    pub refresh_token: Option<String>,
    /// When the access token stops working, computed from `expires_in` at
    /// the moment the answer arrived.
    pub expires_at: DateTime<Utc>,
    /// The scopes granted (the user may grant fewer than asked).
    pub scope: Vec<String>,
}

impl Tokens {
    /// Returns whether the access token has expired or will within `margin`,
    /// so a call would likely meet 401.
    pub fn expires_within(&self, margin: Duration, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        self.expires_at
            <= now
                .checked_add_signed(margin)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Returns whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|granted| granted == scope)
    }

    pub(crate) fn from_response(
        response: &GoogleTokenResponse,
        previous_refresh_token: Option<&str>,
        requested_scope: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let lifetime = response.expires_in().unwrap_or(DEFAULT_LIFETIME);
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
        let scope = match &response.scope {
            Some(scopes) => scopes.iter().map(|scope| scope.to_string()).collect(),
            // RFC 6749 §5.1: an omitted scope is the one requested.
            None => vec![requested_scope.to_owned()],
        };
        Self {
            access_token: response.access_token.secret().clone(),
            refresh_token: response
                .refresh_token
                .as_ref()
                .map(|token| token.secret().clone())
                .or_else(|| previous_refresh_token.map(str::to_owned)),
            expires_at: now
                .checked_add_signed(lifetime)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            scope,
        }
    }
}

/// Tokens are secrets: Debug shows only whether each is there.
impl fmt::Debug for Tokens {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Tokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Google's token endpoint answer. Unlike `oauth2::StandardTokenResponse`
/// it accepts `expires_in` as a JSON string, which Google's own client
/// libraries accept because some Google endpoints send it so.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct GoogleTokenResponse {
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "seconds_from_number_or_string")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default, deserialize_with = "space_delimited")]
    scope: Option<Vec<Scope>>,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

impl TokenResponse for GoogleTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

/// A JSON number or a string of digits, as Google sends `expires_in`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

fn seconds_from_number_or_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match Option::<NumberOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrString::Number(seconds)) => Ok(Some(seconds)),
        Some(NumberOrString::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn space_delimited<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Scope>>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.map(|text| {
        text.split_whitespace()
            .map(|s| Scope::new(s.to_owned()))
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> GoogleTokenResponse {
        serde_json::from_str(json).expect("a token answer")
    }

    #[test]
    fn expires_in_may_be_a_string() {
        let response = parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":"3599"}"#);
        assert_eq!(response.expires_in(), Some(Duration::from_secs(3599)));
    }

    #[test]
    fn a_refresh_without_refresh_token_keeps_the_old_one() {
        let response =
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":3599,"scope":"x y"}"#);
        let now = Utc::now();
        let tokens = Tokens::from_response(&response, Some("old"), "x", now);
        assert_eq!(tokens.refresh_token.as_deref(), Some("old"));
        assert_eq!(tokens.scope, vec!["x", "y"]);
        assert_eq!(tokens.expires_at, now + chrono::Duration::seconds(3599));
    }

    #[test]
    fn debug_hides_the_tokens() {
        let response = parse(
            r#"{"access_token":"secret-a","refresh_token":"secret-r","token_type":"Bearer"}"#,
        );
        let tokens = Tokens::from_response(&response, None, "x", Utc::now());
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(tokens.scope, vec!["x"]);
    }
}
