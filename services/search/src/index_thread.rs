//! The one thread that writes the indexes, below normal CPU priority.
//!
//! Indexing a document's text (tantivy's analysis, commit and merges) is
//! background work that shares two cores with searches. It runs here,
//! niced, and tantivy's indexing and merge threads, started from here,
//! inherit the priority. Writes were serialised already, so one thread
//! loses nothing. Vector changes run at normal priority beside it
//! (`SearchCore::apply`): they hold a lock that searches of the same user
//! wait for.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::error::{Result, SearchError};

/// Added to the thread's nice value (0 = normal, 19 = lowest).
const INDEX_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

pub struct IndexThread {
    jobs: mpsc::Sender<Job>,
}

impl IndexThread {
    /// Starts the thread; it stops once this is dropped and its work is done.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pai-index".to_owned())
            .spawn(move || {
                // On Linux, nice(2) applies to the calling thread only.
                if let Err(error) = rustix::process::nice(INDEX_NICENESS) {
                    tracing::warn!(%error, "cannot lower the index thread's priority");
                }
                for job in queue {
                    job();
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the index thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(catch_unwind(AssertUnwindSafe(work)));
            }))
            .map_err(|_| SearchError::VectorIndex("the index thread stopped".into()))?;
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SearchError::VectorIndex("index work panicked".into())),
            Err(_) => Err(SearchError::VectorIndex("the index thread stopped".into())),
        }
    }
}
