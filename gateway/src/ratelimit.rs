//! Per-client-IP and per-user rate limits (token buckets, governor).
//! `RATE_LIMIT_RPS=0` turns both off (benchmarks).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pai_common::ErrorCode;
use uuid::Uuid;

use crate::extract::ClientIp;
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Clone, Default)]
pub struct Limits {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    per_user: Option<Arc<DefaultKeyedRateLimiter<Uuid>>>,
}

impl Limits {
    pub fn new(rps: u32, burst: u32) -> Self {
        let (Some(rps), Some(burst)) = (NonZeroU32::new(rps), NonZeroU32::new(burst.max(rps)))
        else {
            return Self::default();
        };
        let quota = Quota::per_second(rps).allow_burst(burst);
        Self {
            per_ip: Some(Arc::new(RateLimiter::keyed(quota))),
            per_user: Some(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
        what: &str,
    ) -> Result<(), Problem> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Problem::new(
                ErrorCode::TooManyRequests,
                format!("rate limit exceeded for this {what}; retry later"),
            )
            .retry_after(seconds)
        })
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Problem> {
        Self::check(self.per_ip.as_deref(), &ip, "client address")
    }

    pub fn check_user(&self, user: Uuid) -> Result<(), Problem> {
        Self::check(self.per_user.as_deref(), &user, "user")
    }

    /// Forgets idle keys so memory stays bounded.
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
        }
    }
}

/// Middleware: the per-IP limit on every API request.
pub async fn per_ip(
    State(state): State<AppState>,
    ip: ClientIp,
    request: Request,
    next: Next,
) -> Response {
    match state.limits.check_ip(ip.0) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}
