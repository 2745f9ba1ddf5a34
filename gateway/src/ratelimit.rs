//! Per-client-IP and per-user rate limits (token buckets, governor).
//! `RATE_LIMIT_RPS=0` turns both off (benchmarks).
//!
//! An IPv6 client is limited per /64: one subscriber (one home, one VM) is
//! usually handed a whole /64 and could otherwise take a fresh bucket for
//! every request.

use std::net::{IpAddr, Ipv6Addr};
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
        Self::check(self.per_ip.as_deref(), &bucket(ip), "client address")
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

/// The bucket an address draws from: an IPv4 address (an IPv4-mapped IPv6
/// one too) is its own, an IPv6 address shares its /64's.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let limits = Limits::new(1, 1);
        assert!(limits.check_ip(ip("2001:db8:1:2::1")).is_ok());
        // Another address of the same /64: the same, empty, bucket.
        let refused = limits.check_ip(ip("2001:db8:1:2:ffff:1:2:3")).unwrap_err();
        assert_eq!(refused.status, 429);
        // The next /64 is another client.
        assert!(limits.check_ip(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn ipv4_clients_have_a_bucket_each() {
        let limits = Limits::new(1, 1);
        assert!(limits.check_ip(ip("192.0.2.1")).is_ok());
        assert!(limits.check_ip(ip("192.0.2.2")).is_ok());
        assert!(limits.check_ip(ip("192.0.2.1")).is_err());
        // The same client over an IPv4-mapped IPv6 address.
        assert!(limits.check_ip(ip("::ffff:192.0.2.2")).is_err());
        assert_eq!(bucket(ip("::ffff:192.0.2.2")), ip("192.0.2.2"));
    }
}
