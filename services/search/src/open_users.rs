//! The per-user indexes kept open, least recently used closed first.
//!
//! A user's BM25 index holds memory maps of its segment files and their
//! vector index lives in memory: open for every user at once, 100,000 users
//! would exhaust the process's memory and its map and file limits. An
//! index is opened when a search or a change first needs it, and opening
//! one more than `max` closes the least recently used that is idle: no
//! search or change holds it ([`Open`] pins it) and it has nothing unsaved
//! ([`Resident::is_dirty`]). Pinned or unsaved indexes stay, so the count
//! may pass `max` by those in use until they are released; a writer saves
//! the unsaved ones beyond it with [`OpenUsers::flush_excess`].
//!
//! `pai_search_index_opens_total` and `pai_search_index_evictions_total`
//! count opens and closes, `pai_search_open_users` is the count open, each
//! by `index` (`text`, `vector`).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use lru::LruCache;
use uuid::Uuid;

use crate::error::Result;

/// An index that may hold changes not yet on disk.
pub trait Resident: Send + Sync {
    /// Whether closing it now would lose changes: it is saved, not closed.
    fn is_dirty(&self) -> bool;
}

/// A user's place in the cache; its index is set once, by the first caller
/// that needs it, while the others wait on `opening`.
struct Slot<T> {
    value: OnceLock<Arc<T>>,
    opening: Mutex<()>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: OnceLock::new(),
            opening: Mutex::new(()),
        }
    }
}

/// An open index, kept open (never evicted) while this lives.
pub struct Open<T> {
    /// The pin: a slot only the cache holds is idle.
    _slot: Arc<Slot<T>>,
    value: Arc<T>,
}

impl<T> std::ops::Deref for Open<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

pub struct OpenUsers<T> {
    /// The `index` label of the metrics.
    kind: &'static str,
    max: usize,
    open: Mutex<LruCache<Uuid, Arc<Slot<T>>>>,
}

impl<T: Resident> OpenUsers<T> {
    /// At most `max` (at least 1) idle indexes stay open.
    pub fn new(kind: &'static str, max: usize) -> Self {
        Self {
            kind,
            max: max.max(1),
            open: Mutex::new(LruCache::unbounded()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<Uuid, Arc<Slot<T>>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user's index when it is open; `None`, without waiting, while
    /// another caller opens it.
    pub fn cached(&self, user_id: Uuid) -> Option<Open<T>> {
        let slot = Arc::clone(self.lock().get(&user_id)?);
        let value = Arc::clone(slot.value.get()?);
        Some(Open { _slot: slot, value })
    }

    /// The user's index, opened by `load` when closed; `None` when `load`
    /// finds none. Two callers never load the same user's index at once:
    /// the second waits for the first's.
    pub fn open(
        &self,
        user_id: Uuid,
        load: impl Fn() -> Result<Option<T>>,
    ) -> Result<Option<Open<T>>> {
        loop {
            let (slot, evicted) = {
                let mut open = self.lock();
                match open.get(&user_id) {
                    Some(slot) => (Arc::clone(slot), Vec::new()),
                    None => {
                        let slot = Arc::new(Slot::default());
                        open.put(user_id, Arc::clone(&slot));
                        let evicted = self.evict(&mut open);
                        (slot, evicted)
                    }
                }
            };
            // Closed here, outside the lock.
            drop(evicted);
            if let Some(value) = slot.value.get() {
                let value = Arc::clone(value);
                return Ok(Some(Open { _slot: slot, value }));
            }
            let opening = slot.opening.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(value) = slot.value.get() {
                let value = Arc::clone(value);
                drop(opening);
                return Ok(Some(Open { _slot: slot, value }));
            }
            // Dropped from the cache while this waited (the first opener
            // found nothing, or the user was erased): an index opened
            // into it would be lost to the next caller. Start again.
            if !self.holds(user_id, &slot) {
                continue;
            }
            let loaded = match load() {
                Ok(Some(value)) => Arc::new(value),
                other => {
                    self.discard(user_id, &slot);
                    return other.map(|_| None);
                }
            };
            metrics::counter!("pai_search_index_opens_total", "index" => self.kind).increment(1);
            let value = Arc::clone(slot.value.get_or_init(|| loaded));
            drop(opening);
            return Ok(Some(Open { _slot: slot, value }));
        }
    }

    fn holds(&self, user_id: Uuid, slot: &Arc<Slot<T>>) -> bool {
        self.lock()
            .peek(&user_id)
            .is_some_and(|held| Arc::ptr_eq(held, slot))
    }

    /// Removes a slot whose opening found nothing (unless replaced since).
    fn discard(&self, user_id: Uuid, slot: &Arc<Slot<T>>) {
        let mut open = self.lock();
        if open
            .peek(&user_id)
            .is_some_and(|held| Arc::ptr_eq(held, slot))
        {
            open.pop(&user_id);
        }
        self.count(&open);
    }

    /// Takes the least recently used idle indexes beyond `max` out of the
    /// cache; the caller drops them (closing their files) after the lock.
    fn evict(&self, open: &mut LruCache<Uuid, Arc<Slot<T>>>) -> Vec<Arc<Slot<T>>> {
        let excess = open.len().saturating_sub(self.max);
        let mut evicted = Vec::new();
        if excess > 0 {
            // Only the cache holds an idle slot, and a slot is cloned only
            // under the lock held here: one counted idle stays idle.
            let idle: Vec<Uuid> = open
                .iter()
                .rev()
                .filter(|(_, slot)| {
                    Arc::strong_count(slot) == 1
                        && slot.value.get().is_none_or(|value| !value.is_dirty())
                })
                .take(excess)
                .map(|(user_id, _)| *user_id)
                .collect();
            evicted.extend(idle.iter().filter_map(|user_id| open.pop(user_id)));
            metrics::counter!("pai_search_index_evictions_total", "index" => self.kind)
                .increment(evicted.len() as u64);
        }
        self.count(open);
        evicted
    }

    fn count(&self, open: &LruCache<Uuid, Arc<Slot<T>>>) {
        metrics::gauge!("pai_search_open_users", "index" => self.kind).set(open.len() as f64);
    }

    /// Saves, with `flush`, the least recently used idle indexes beyond
    /// `max` that hold unsaved changes, then closes them. A writer calls it
    /// (a rebuild touches every user once before its final save).
    pub fn flush_excess(&self, flush: impl Fn(Uuid, &T) -> Result<()>) -> Result<()> {
        let dirty: Vec<(Uuid, Open<T>)> = {
            let open = self.lock();
            let excess = open.len().saturating_sub(self.max);
            open.iter()
                .rev()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .filter_map(|(user_id, slot)| {
                    let value = Arc::clone(slot.value.get()?);
                    value.is_dirty().then(|| {
                        let pin = Open {
                            _slot: Arc::clone(slot),
                            value,
                        };
                        (*user_id, pin)
                    })
                })
                .take(excess)
                .collect()
        };
        if dirty.is_empty() {
            return Ok(());
        }
        for (user_id, index) in &dirty {
            flush(*user_id, index)?;
        }
        drop(dirty);
        self.shrink();
        Ok(())
    }

    /// Closes idle indexes beyond `max`.
    pub fn shrink(&self) {
        let evicted = self.evict(&mut self.lock());
        drop(evicted);
    }

    /// Every open index, pinned while the caller holds them.
    pub fn all(&self) -> Vec<(Uuid, Open<T>)> {
        self.lock()
            .iter()
            .filter_map(|(user_id, slot)| {
                let value = Arc::clone(slot.value.get()?);
                let pin = Open {
                    _slot: Arc::clone(slot),
                    value,
                };
                Some((*user_id, pin))
            })
            .collect()
    }

    /// Closes the user's index and runs `then` (which removes it from the
    /// disk) before any other caller can open it again. `then` gets the
    /// index, when it was open.
    pub fn forget<R>(&self, user_id: Uuid, then: impl FnOnce(Option<&T>) -> R) -> R {
        let mut open = self.lock();
        let removed = open.pop(&user_id);
        let result = then(
            removed
                .as_ref()
                .and_then(|slot| slot.value.get())
                .map(|v| &**v),
        );
        self.count(&open);
        drop(open);
        result
    }

    /// The users whose index is open.
    pub fn users(&self) -> Vec<Uuid> {
        self.lock().iter().map(|(user_id, _)| *user_id).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// File descriptors and memory maps this process holds under `dir` (Linux:
/// read from `/proc/self`; `(0, 0)` where it cannot be read), to see what
/// open indexes cost: tantivy maps its segment files and closes them, so
/// maps are what grows with the open users.
pub fn held_under(dir: &std::path::Path) -> (usize, usize) {
    let dir = dir.to_string_lossy().into_owned();
    let files = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with(&dir))
                .count()
        })
        .unwrap_or_default();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&dir))
        .count();
    (files, maps)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Fake {
        dirty: AtomicBool,
    }

    impl Resident for Fake {
        fn is_dirty(&self) -> bool {
            self.dirty.load(Ordering::Relaxed)
        }
    }

    fn fake() -> Result<Option<Fake>> {
        Ok(Some(Fake::default()))
    }

    #[test]
    fn the_least_recently_used_idle_index_is_closed() {
        let cache = OpenUsers::<Fake>::new("test", 2);
        let (a, b, c, d) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        drop(cache.open(a, fake).unwrap());
        drop(cache.open(b, fake).unwrap());
        // a used again: b is now the least recently used.
        drop(cache.open(a, fake).unwrap());
        drop(cache.open(c, fake).unwrap());
        let mut users = cache.users();
        users.sort();
        let mut expected = vec![a, c];
        expected.sort();
        assert_eq!(users, expected);

        // A pinned index stays open, past the cap.
        let pinned = cache.open(a, fake).unwrap().unwrap();
        drop(cache.open(c, fake).unwrap());
        drop(cache.open(d, fake).unwrap());
        assert!(cache.users().contains(&a));
        assert_eq!(cache.len(), 2);
        // So does one with unsaved changes, until flushed.
        pinned.dirty.store(true, Ordering::Relaxed);
        drop(pinned);
        let in_use = cache.open(b, fake).unwrap();
        drop(cache.open(c, fake).unwrap());
        assert!(cache.users().contains(&a), "{:?}", cache.users());
        assert_eq!(cache.len(), 3);
        drop(in_use);
        let flushed = AtomicUsize::new(0);
        cache
            .flush_excess(|user_id, index| {
                assert_eq!(user_id, a);
                index.dirty.store(false, Ordering::Relaxed);
                flushed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
        assert_eq!(flushed.into_inner(), 1);
        let mut users = cache.users();
        users.sort();
        let mut expected = vec![b, c];
        expected.sort();
        assert_eq!(users, expected);
    }

    #[test]
    fn a_user_is_loaded_once_and_nothing_found_is_not_kept() {
        let cache = OpenUsers::<Fake>::new("test", 4);
        let user = Uuid::new_v4();
        assert!(cache.open(user, || Ok(None)).unwrap().is_none());
        assert_eq!(cache.len(), 0);
        assert!(cache.cached(user).is_none());
        let loads = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let open = cache.open(user, || {
                        loads.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        fake()
                    });
                    assert!(open.unwrap().is_some());
                });
            }
        });
        assert_eq!(loads.into_inner(), 1);
        assert!(cache.cached(user).is_some());
        let was_open = cache.forget(user, |index| index.is_some());
        assert!(was_open);
        assert!(cache.cached(user).is_none());
    }
}
