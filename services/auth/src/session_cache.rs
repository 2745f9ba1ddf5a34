//! Sessions recently found valid, with their user's row, so that a burst of
//! reads on one session costs one PostgreSQL query per time-to-live instead
//! of one per request.
//!
//! Only the profile read uses it; anything that
//! writes or checks a password reads the rows afresh. Every write this
//! replica makes to a user or their sessions forgets the user's entries at
//! once; a write made by another replica is seen after at most the
//! time-to-live (250 ms by default), well inside the one second in which a
//! revocation must reach every verifier.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::repo::UserRow;

/// Past this many entries, expired ones are swept before inserting.
const SWEEP_AT: usize = 65_536;

struct Entry {
    user: Arc<UserRow>,
    checked_at: Instant,
}

pub struct SessionCache {
    ttl: Duration,
    entries: RwLock<HashMap<Uuid, Entry>>,
}

impl SessionCache {
    /// A cache whose entries live `ttl`; a zero `ttl` turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The user of `session_id` if it was found valid for `user_id` within
    /// the time-to-live.
    pub fn get(&self, session_id: Uuid, user_id: Uuid) -> Option<Arc<UserRow>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&session_id)?;
        (entry.user.id == user_id && entry.checked_at.elapsed() < self.ttl)
            .then(|| Arc::clone(&entry.user))
    }

    /// Remembers that `session_id` was valid for `user` as of `checked_at`
    /// (taken before the query, so the entry never outlives what it saw).
    pub fn put(&self, session_id: Uuid, user: Arc<UserRow>, checked_at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, entry| entry.checked_at.elapsed() < self.ttl);
        }
        entries.insert(session_id, Entry { user, checked_at });
    }

    /// Drops every entry of `user_id`: called after each write to the user's
    /// row or sessions.
    pub fn forget_user(&self, user_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, entry| entry.user.id != user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn user() -> Arc<UserRow> {
        Arc::new(UserRow {
            id: Uuid::new_v4(),
            email: "ada@example.com".into(),
            username: "ada".into(),
            display_name: String::new(),
            password_hash: String::new(),
            is_admin: false,
            is_active: true,
            failed_logins: 0,
            locked_until: None,
            deactivated_by: None,
            created_at: Utc::now(),
        })
    }

    #[test]
    fn entries_expire_belong_to_their_user_and_are_forgotten() {
        // A time-to-live no test run outlasts: a loaded machine can pause
        // this thread for tens of milliseconds between two lines.
        let ttl = Duration::from_secs(60);
        let cache = SessionCache::new(ttl);
        let (ada, bob) = (user(), user());
        let (session, other) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put(session, Arc::clone(&ada), Instant::now());
        cache.put(other, Arc::clone(&bob), Instant::now());
        assert_eq!(cache.get(session, ada.id).map(|u| u.id), Some(ada.id));
        // Another user's id with this session id is a miss, not a hit.
        assert!(cache.get(session, bob.id).is_none());

        cache.forget_user(ada.id);
        assert!(cache.get(session, ada.id).is_none());
        assert!(cache.get(other, bob.id).is_some());

        // An entry checked longer ago than the time-to-live is a miss.
        let long_ago = Instant::now()
            .checked_sub(ttl + Duration::from_millis(1))
            .expect("the monotonic clock reaches a minute back");
        cache.put(other, Arc::clone(&bob), long_ago);
        assert!(cache.get(other, bob.id).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        let ada = user();
        let session = Uuid::new_v4();
        cache.put(session, Arc::clone(&ada), Instant::now());
        assert!(cache.get(session, ada.id).is_none());
    }
}
