//! Tokens in the browser ("cookie mode"): the refresh token of each account
//! a browser is signed into lives in an HttpOnly cookie, never in script
//! reach, and the requests those cookies authenticate carry a double-submit
//! CSRF token.
//!
//! - `pai_refresh_<user_id>`: the account's refresh token (HttpOnly,
//!   SameSite=Strict, Path=/api/auth, Max-Age `REFRESH_TOKEN_LIFETIME_DAYS`).
//! - `pai_current=<user_id>`: the account refresh and the browser use by
//!   default (HttpOnly, SameSite=Strict, Path=/api/auth).
//! - `pai_csrf`: 256 random bits, base64url (SameSite=Strict, Path=/, readable
//!   by script); a cookie-authenticated request sends it back in `X-CSRF-Token`.
//!
//! All carry `Secure` when `COOKIE_SECURE` is set (behind TLS).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, SameSite};
use pai_common::ErrorCode;
use uuid::Uuid;

use crate::problem::Problem;

pub const MODE_HEADER: &str = "x-pai-token-mode";
pub const CSRF_HEADER: &str = "x-csrf-token";
const REFRESH_PREFIX: &str = "pai_refresh_";
const CURRENT: &str = "pai_current";
const CSRF: &str = "pai_csrf";
const AUTH_PATH: &str = "/api/auth";

/// How the gateway writes cookies.
#[derive(Debug, Clone, Copy)]
pub struct CookieSettings {
    /// `Secure` on every cookie (`COOKIE_SECURE`).
    pub secure: bool,
    /// The Max-Age of a refresh cookie (`REFRESH_TOKEN_LIFETIME_DAYS`).
    pub refresh_lifetime: std::time::Duration,
}

/// Whether the client asked for cookie mode (`X-Pai-Token-Mode: cookie`).
#[derive(Debug, Clone, Copy)]
pub struct TokenMode {
    pub cookie: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for TokenMode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let cookie = parts
            .headers
            .get(MODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"));
        Ok(Self { cookie })
    }
}

/// The pai cookies a request carries, and its CSRF header.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    /// `(user_id, refresh token)` for each `pai_refresh_<user_id>`, in order.
    pub accounts: Vec<(Uuid, String)>,
    pub current: Option<Uuid>,
    csrf_cookie: Option<String>,
    csrf_header: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Jar {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl Jar {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut jar = Self {
            csrf_header: headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ..Self::default()
        };
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| Cookie::split_parse(v.to_owned()))
            .filter_map(Result::ok);
        for cookie in cookies {
            let (name, value) = (cookie.name(), cookie.value());
            if let Some(id) = name.strip_prefix(REFRESH_PREFIX) {
                if let Ok(id) = Uuid::parse_str(id)
                    && !value.is_empty()
                    && !jar.accounts.iter().any(|(held, _)| *held == id)
                {
                    jar.accounts.push((id, value.to_owned()));
                }
            } else if name == CURRENT {
                jar.current = jar.current.or(Uuid::parse_str(value).ok());
            } else if name == CSRF && jar.csrf_cookie.is_none() {
                jar.csrf_cookie = Some(value.to_owned());
            }
        }
        jar
    }

    /// The refresh token this browser holds for `user_id`.
    pub fn refresh_token(&self, user_id: Uuid) -> Option<&str> {
        self.accounts
            .iter()
            .find(|(id, _)| *id == user_id)
            .map(|(_, token)| token.as_str())
    }

    /// Refuses a cookie-authenticated request whose `X-CSRF-Token` is not
    /// the `pai_csrf` cookie (403).
    pub fn check_csrf(&self) -> Result<(), Problem> {
        match (&self.csrf_cookie, &self.csrf_header) {
            (Some(cookie), Some(header))
                if !cookie.is_empty() && constant_time_eq(cookie.as_bytes(), header.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(Problem::new(
                ErrorCode::Forbidden,
                "a cookie-authenticated request needs the X-CSRF-Token header equal to the pai_csrf cookie",
            )),
        }
    }
}

/// Compares in time that depends on the length only (which is public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh CSRF token: 256 random bits, base64url without padding.
pub fn new_csrf_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The `Set-Cookie` headers a response adds.
#[derive(Debug, Default)]
pub struct SetCookies(Vec<Cookie<'static>>);

impl SetCookies {
    fn base(&self, settings: CookieSettings, name: String, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path(AUTH_PATH)
            .secure(settings.secure)
            .build()
    }

    /// Stores `user_id`'s refresh token and makes it the current account.
    pub fn sign_in(&mut self, settings: CookieSettings, user_id: Uuid, refresh_token: String) {
        let lifetime = i64::try_from(settings.refresh_lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut refresh = self.base(
            settings,
            format!("{REFRESH_PREFIX}{user_id}"),
            refresh_token,
        );
        refresh.set_max_age(CookieDuration::seconds(lifetime));
        self.0.push(refresh);
        self.current(settings, user_id);
    }

    pub fn current(&mut self, settings: CookieSettings, user_id: Uuid) {
        let cookie = self.base(settings, CURRENT.to_owned(), user_id.to_string());
        self.0.push(cookie);
    }

    pub fn clear_current(&mut self, settings: CookieSettings) {
        let mut cookie = self.base(settings, CURRENT.to_owned(), String::new());
        cookie.make_removal();
        self.0.push(cookie);
    }

    pub fn forget(&mut self, settings: CookieSettings, user_id: Uuid) {
        let mut cookie = self.base(
            settings,
            format!("{REFRESH_PREFIX}{user_id}"),
            String::new(),
        );
        cookie.make_removal();
        self.0.push(cookie);
    }

    /// Sets a new `pai_csrf` cookie and returns its value.
    pub fn csrf(&mut self, settings: CookieSettings) -> String {
        let token = new_csrf_token();
        let cookie = Cookie::build((CSRF, token.clone()))
            .http_only(false)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(settings.secure)
            .build();
        self.0.push(cookie);
        token
    }

    /// Appends the cookies to `response`.
    pub fn apply(self, response: &mut Response) -> Result<(), Problem> {
        for cookie in self.0 {
            let value = HeaderValue::try_from(cookie.to_string()).map_err(|_| {
                Problem::new(ErrorCode::Internal, pai_common::error::INTERNAL_MESSAGE)
            })?;
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_well_formed_pai_cookies() {
        let id = Uuid::new_v4();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "pai_refresh_nope=x; pai_refresh_{id}=tok; pai_current={id}; pai_csrf=abc; other=1"
            ))
            .unwrap(),
        );
        headers.insert(CSRF_HEADER, HeaderValue::from_static("abc"));
        let jar = Jar::from_headers(&headers);
        assert_eq!(jar.accounts, vec![(id, "tok".to_owned())]);
        assert_eq!(jar.current, Some(id));
        assert!(jar.check_csrf().is_ok());
        headers.insert(CSRF_HEADER, HeaderValue::from_static("abd"));
        assert!(Jar::from_headers(&headers).check_csrf().is_err());
    }

    #[test]
    fn csrf_tokens_are_256_bits() {
        let token = new_csrf_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, new_csrf_token());
    }
}
