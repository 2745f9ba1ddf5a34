//! Gathers concurrent embedding requests into batches for the model's
//! worker threads.
//!
//! The int8 encoder keeps each forward pass on one thread, so one worker
//! runs per core; candle's encoders spread a pass over every core
//! themselves and get one worker ([`Embedder::parallel_passes`]). Two queues
//! feed the workers. Each request is cut into pieces of similar-length texts;
//! a worker takes its next batch from the interactive queue whenever that
//! has work and no other worker runs queries (or enough queries wait, see
//! below), and from the bulk queue otherwise. A query waiting while
//! another worker runs a batch of queries starts a batch of its own on the
//! free core ([`EXTRA_BATCH_AT`]), and a worker that finds several queries
//! waiting and another worker idle shares them with it ([`SHARE_AT`]).
//! A bulk batch pauses between the steps of its forward pass
//! (each layer's attention and feed-forward) while queries wait, and resumes
//! once they are answered: a search query waits at most for one step of a
//! small bulk batch, never behind an ingest request.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::MAX_TEXTS_PER_REQUEST;
use crate::embedder::{Embedder, MAX_BATCH};
use crate::error::{InferenceError, Result};

/// Who waits for the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A person is waiting (search queries).
    Interactive,
    /// Background work (ingest).
    Bulk,
}

/// How many texts one forward pass takes from each queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSizes {
    pub interactive: usize,
    /// Smaller than `interactive`: it bounds how long a query can wait.
    pub bulk: usize,
}

impl Default for BatchSizes {
    fn default() -> Self {
        Self {
            interactive: MAX_BATCH,
            // Two chunks of ~250 tokens take ~0.13 s, in 12 steps that a
            // query can come between. Larger batches were no faster
            // (bench-ingest).
            bulk: 2,
        }
    }
}

/// Waiting queries (pieces: one per query) that start another batch beside
/// the one running (on two cores, a second), so that queries do not wait
/// for one running batch while the other core idles. With 1, bench-search
/// (b) at 16 clients answered 13,509 queries in 10 s at a p99 of 21.9 ms,
/// against 10,599 at 27.9 ms with 6 and 11,310 at 25.7 ms with 2.
const EXTRA_BATCH_AT: usize = 1;

/// Waiting queries that a worker shares with an idle worker: it takes half
/// and wakes the other for the rest, so one batch does not run on one core
/// while the other idles (bench-search (b) at 16 clients: the cores idle
/// 4.9 % of the time against 7.6 % without sharing). 2 and 4 did the same;
/// 4 keeps at least two queries a pass, which batches better on AMX.
const SHARE_AT: usize = 4;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>>>;

/// One request's progress: its vectors fill in as its pieces are embedded.
struct Job {
    state: Mutex<JobState>,
}

struct JobState {
    vectors: Vec<Vec<f32>>,
    remaining: usize,
    reply: Option<Reply>,
}

impl Job {
    fn state(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns whether nobody waits for this job any more (failed or dropped).
    fn is_abandoned(&self) -> bool {
        self.state()
            .reply
            .as_ref()
            .is_none_or(oneshot::Sender::is_closed)
    }

    fn deliver(&self, positions: &[usize], vectors: Vec<Vec<f32>>) {
        let mut state = self.state();
        for (&position, vector) in positions.iter().zip(vectors) {
            state.vectors[position] = vector;
        }
        state.remaining = state.remaining.saturating_sub(positions.len());
        if state.remaining == 0
            && let Some(reply) = state.reply.take()
        {
            let _ = reply.send(Ok(std::mem::take(&mut state.vectors)));
        }
    }

    fn fail(&self, err: InferenceError) {
        if let Some(reply) = self.state().reply.take() {
            let _ = reply.send(Err(err));
        }
    }
}

/// Up to one batch of a job's texts, with their places in the request.
struct Piece {
    job: Arc<Job>,
    positions: Vec<usize>,
    texts: Vec<String>,
}

#[derive(Default)]
struct Queues {
    interactive: VecDeque<Piece>,
    bulk: VecDeque<Piece>,
    closed: bool,
    /// Workers waiting on the condition variable for work.
    idle: usize,
    /// Batches of queries the workers run now.
    answering: usize,
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

impl Shared {
    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One wake-up per taking: hands what is left to an idle worker.
    fn hand_on_the_rest(&self, queues: &Queues) {
        if queues.idle > 0 && !(queues.interactive.is_empty() && queues.bulk.is_empty()) {
            self.wake.notify_one();
        }
    }
}

/// Batches embedding requests onto the model's worker threads.
pub struct Batcher {
    shared: Arc<Shared>,
    embedder: Arc<Embedder>,
    sizes: BatchSizes,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("embedder", &self.embedder)
            .field("sizes", &self.sizes)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts one worker thread per forward pass the model runs at once
    /// ([`Embedder::parallel_passes`]); they stop when the batcher is dropped.
    pub fn start(embedder: Arc<Embedder>, sizes: BatchSizes) -> std::io::Result<Self> {
        let workers = embedder.parallel_passes();
        Self::start_with_workers(embedder, sizes, workers)
    }

    /// Starts `workers` worker threads (at least one).
    pub fn start_with_workers(
        embedder: Arc<Embedder>,
        sizes: BatchSizes,
        workers: usize,
    ) -> std::io::Result<Self> {
        let sizes = BatchSizes {
            interactive: sizes.interactive.clamp(1, MAX_BATCH),
            bulk: sizes.bulk.clamp(1, MAX_BATCH),
        };
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
        });
        for index in 0..workers.max(1) {
            let worker_shared = Arc::clone(&shared);
            let worker_embedder = Arc::clone(&embedder);
            std::thread::Builder::new()
                .name(format!("pai-embed-{index}"))
                .spawn(move || run_worker(&worker_shared, &worker_embedder, sizes))?;
        }
        Ok(Self {
            shared,
            embedder,
            sizes,
        })
    }

    /// Returns the model the worker runs.
    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    /// Returns one unit-length vector per text, in order, once the worker
    /// has embedded them all.
    pub async fn embed(&self, texts: Vec<String>, priority: Priority) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(InferenceError::Invalid(
                "texts must not be empty".to_owned(),
            ));
        }
        if texts.len() > MAX_TEXTS_PER_REQUEST {
            return Err(InferenceError::TooManyTexts {
                max: MAX_TEXTS_PER_REQUEST,
                got: texts.len(),
            });
        }
        let (reply, answer) = oneshot::channel();
        let job = Arc::new(Job {
            state: Mutex::new(JobState {
                vectors: vec![Vec::new(); texts.len()],
                remaining: texts.len(),
                reply: Some(reply),
            }),
        });
        let batch = match priority {
            Priority::Interactive => self.sizes.interactive,
            Priority::Bulk => self.sizes.bulk,
        };
        let pieces = split(&job, texts, batch);
        {
            let mut queues = self.shared.queues();
            let queue = match priority {
                Priority::Interactive => &mut queues.interactive,
                Priority::Bulk => &mut queues.bulk,
            };
            queue.extend(pieces);
        }
        self.shared.wake.notify_one();
        answer.await.unwrap_or(Err(InferenceError::Stopped))
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.queues().closed = true;
        self.shared.wake.notify_all();
    }
}

/// Cuts a request into pieces of at most `batch` texts of similar length
/// (byte length stands in for token count), so little goes to padding.
fn split(job: &Arc<Job>, texts: Vec<String>, batch: usize) -> Vec<Piece> {
    let mut order: Vec<(usize, String)> = texts.into_iter().enumerate().collect();
    order.sort_by_key(|(_, text)| text.len());
    let mut pieces = Vec::with_capacity(order.len().div_ceil(batch));
    let mut order = order.into_iter().peekable();
    while order.peek().is_some() {
        let (positions, texts) = order.by_ref().take(batch).unzip();
        pieces.push(Piece {
            job: Arc::clone(job),
            positions,
            texts,
        });
    }
    pieces
}

/// Takes up to `limit` texts' worth of pieces from the front of `queue`,
/// dropping pieces nobody waits for any more.
fn take(queue: &mut VecDeque<Piece>, limit: usize) -> Vec<Piece> {
    let mut batch: Vec<Piece> = Vec::new();
    let mut count = 0;
    while let Some(front) = queue.front() {
        if front.job.is_abandoned() {
            queue.pop_front();
            continue;
        }
        if count > 0 && count + front.texts.len() > limit {
            break;
        }
        count += front.texts.len();
        batch.extend(queue.pop_front());
    }
    batch
}

/// Takes the next batch: the waiting queries when no other worker answers
/// queries, else bulk.
fn next_batch(queues: &mut Queues, sizes: BatchSizes) -> (Vec<Piece>, Priority) {
    if let Some(queries) = take_queries(queues, sizes) {
        return (queries, Priority::Interactive);
    }
    (take(&mut queues.bulk, sizes.bulk), Priority::Bulk)
}

/// Takes the waiting queries, up to a batch or half of them when another
/// worker is idle ([`batch_limit`]), unless another worker answers queries
/// now and fewer than [`EXTRA_BATCH_AT`] wait; the taker must call
/// [`answered`] once it has run them.
fn take_queries(queues: &mut Queues, sizes: BatchSizes) -> Option<Vec<Piece>> {
    if queues.answering > 0 && queues.interactive.len() < EXTRA_BATCH_AT {
        return None;
    }
    let waiting = queues
        .interactive
        .iter()
        .map(|piece| piece.texts.len())
        .sum();
    let limit = batch_limit(waiting, sizes, queues.idle > 0);
    let batch = take(&mut queues.interactive, limit);
    if batch.is_empty() {
        return None;
    }
    queues.answering += 1;
    Some(batch)
}

/// How many of `waiting` queries one worker takes: half when another worker
/// is idle and [`SHARE_AT`] or more wait, else up to a batch.
fn batch_limit(waiting: usize, sizes: BatchSizes, others_idle: bool) -> usize {
    if others_idle && waiting >= SHARE_AT {
        waiting.div_ceil(2).min(sizes.interactive)
    } else {
        sizes.interactive
    }
}

/// Ends a batch of queries: another may start.
fn answered(queues: &mut Queues) {
    queues.answering = queues.answering.saturating_sub(1);
}

fn run_worker(shared: &Shared, embedder: &Embedder, sizes: BatchSizes) {
    let mut answered_queries = false;
    loop {
        let (batch, priority) = {
            let mut queues = shared.queues();
            if answered_queries {
                answered(&mut queues);
            }
            loop {
                if queues.closed {
                    return;
                }
                let (batch, priority) = next_batch(&mut queues, sizes);
                if !batch.is_empty() {
                    shared.hand_on_the_rest(&queues);
                    break (batch, priority);
                }
                queues.idle += 1;
                queues = shared
                    .wake
                    .wait(queues)
                    .unwrap_or_else(PoisonError::into_inner);
                queues.idle -= 1;
            }
        };
        answered_queries = priority == Priority::Interactive;
        match priority {
            Priority::Interactive => run_batch(&batch, |texts| embedder.embed(texts)),
            Priority::Bulk => run_batch(&batch, |texts| {
                embedder.embed_pausing(texts, &mut || {
                    answer_waiting_queries(shared, embedder, sizes)
                })
            }),
        }
    }
}

/// Runs the batches of queries waiting now (a bulk batch pauses for them),
/// unless another worker answers queries.
fn answer_waiting_queries(shared: &Shared, embedder: &Embedder, sizes: BatchSizes) {
    loop {
        // The lock is let go before the batch runs.
        let mut queues = shared.queues();
        let Some(batch) = take_queries(&mut queues, sizes) else {
            return;
        };
        shared.hand_on_the_rest(&queues);
        drop(queues);
        run_batch(&batch, |texts| embedder.embed(texts));
        answered(&mut shared.queues());
    }
}

/// Embeds one batch's texts and hands each piece its vectors or the error.
fn run_batch(batch: &[Piece], embed: impl FnOnce(&[&str]) -> Result<Vec<Vec<f32>>>) {
    let texts: Vec<&str> = batch
        .iter()
        .flat_map(|piece| piece.texts.iter().map(String::as_str))
        .collect();
    // A panic inside the model fails this batch, not every later request.
    let result = catch_unwind(AssertUnwindSafe(|| embed(&texts)))
        .unwrap_or_else(|_| Err(InferenceError::Model("the model panicked".to_owned())));
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for piece in batch {
                let mine = vectors.by_ref().take(piece.texts.len()).collect();
                piece.job.deliver(&piece.positions, mine);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, texts = texts.len(), "embedding batch failed");
            for piece in batch {
                piece.job.fail(err.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: BatchSizes = BatchSizes {
        interactive: 32,
        bulk: 2,
    };

    #[test]
    fn an_idle_worker_gets_half_of_several_waiting_queries() {
        assert_eq!(batch_limit(SHARE_AT, SIZES, true), SHARE_AT / 2);
        assert_eq!(batch_limit(7, SIZES, true), 4);
        // Fewer than SHARE_AT, or nobody idle: one batch takes them all.
        assert_eq!(batch_limit(SHARE_AT - 1, SIZES, true), 32);
        assert_eq!(batch_limit(7, SIZES, false), 32);
        // Never more than a batch.
        assert_eq!(batch_limit(100, SIZES, true), 32);
    }
}
