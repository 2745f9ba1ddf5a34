//! A bounded queue served round-robin over users: the generation thread
//! takes one request from each user with requests waiting in turn, so one
//! user's burst waits behind itself, never in front of someone else's
//! question. Producers are async handlers (they never block: a full queue
//! is an error at once); the consumer is the generation thread, which
//! blocks while there is nothing to do.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

/// The queue holds `capacity` requests already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is full ({waiting} requests waiting)")]
pub struct Full {
    pub waiting: usize,
}

/// The queue was closed: the service is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is closed")]
pub struct Closed;

struct State<T> {
    waiting: HashMap<Uuid, VecDeque<T>>,
    /// Users with requests waiting, in the order they are served.
    turns: VecDeque<Uuid>,
    len: usize,
    closed: bool,
}

pub struct FairQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> FairQueue<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: HashMap::new(),
                turns: VecDeque::new(),
                len: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves consistent state (every
        // mutation below is complete before anything can panic).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `item` behind `user`'s own earlier requests.
    pub fn push(&self, user: Uuid, item: T) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed(Closed));
        }
        if state.len >= self.capacity {
            return Err(PushError::Full(Full { waiting: state.len }));
        }
        let queue = state.waiting.entry(user).or_default();
        queue.push_back(item);
        if queue.len() == 1 {
            state.turns.push_back(user);
        }
        state.len += 1;
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next request in turn, if any waits.
    pub fn try_pop(&self) -> Option<T> {
        Self::pop_locked(&mut self.lock())
    }

    /// The next request in turn, waiting up to `timeout` for one; `None`
    /// on timeout or once the queue is closed and empty.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let mut state = self.lock();
        if state.len == 0 && !state.closed {
            state = self
                .ready
                .wait_timeout_while(state, timeout, |s| s.len == 0 && !s.closed)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        Self::pop_locked(&mut state)
    }

    fn pop_locked(state: &mut State<T>) -> Option<T> {
        let user = state.turns.pop_front()?;
        let queue = state.waiting.get_mut(&user)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            state.waiting.remove(&user);
        } else {
            state.turns.push_back(user);
        }
        if item.is_some() {
            state.len -= 1;
        }
        item
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses new requests and wakes the consumer; what waits is still
    /// handed out (`drain` takes it).
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Takes every waiting request.
    pub fn drain(&self) -> Vec<T> {
        let mut state = self.lock();
        let mut out = Vec::with_capacity(state.len);
        while let Some(item) = Self::pop_locked(&mut state) {
            out.push(item);
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Full(Full),
    #[error(transparent)]
    Closed(Closed),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_served_in_turn_whatever_they_queued() {
        let queue = FairQueue::new(100);
        let (flood, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for i in 0..20 {
            queue.push(flood, ("flood", i)).expect("room");
        }
        queue.push(other, ("other", 0)).expect("room");
        assert_eq!(queue.len(), 21);
        // The flood's first request was first; the other user's is second.
        assert_eq!(queue.try_pop(), Some(("flood", 0)));
        assert_eq!(queue.try_pop(), Some(("other", 0)));
        let rest: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(rest, (1..20).map(|i| ("flood", i)).collect::<Vec<_>>());
        assert!(queue.is_empty());
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_drains() {
        let queue = FairQueue::new(2);
        let user = Uuid::from_u128(7);
        queue.push(user, 1).expect("room");
        queue.push(user, 2).expect("room");
        assert_eq!(
            queue.push(Uuid::from_u128(8), 3),
            Err(PushError::Full(Full { waiting: 2 }))
        );
        queue.close();
        assert_eq!(queue.push(user, 4), Err(PushError::Closed(Closed)));
        assert_eq!(queue.drain(), vec![1, 2]);
        assert_eq!(queue.pop_timeout(Duration::from_millis(1)), None);
    }

    #[test]
    fn a_waiting_consumer_wakes_on_push() {
        let queue = std::sync::Arc::new(FairQueue::new(4));
        let consumer = {
            let queue = std::sync::Arc::clone(&queue);
            std::thread::spawn(move || queue.pop_timeout(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        queue.push(Uuid::from_u128(1), 42).expect("room");
        assert_eq!(consumer.join().expect("consumer"), Some(42));
    }
}
