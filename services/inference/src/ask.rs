//! The Ask flow: search the caller's data, build the context, generate
//! (or refuse), cite, and keep the history.
//!
//! A question is searched and its context built before it queues, so a
//! full queue answers 429 at once and the refusal path never queues. The
//! answer streams as it is generated; the query row is written when the
//! question is taken (status `running`) and completed when the stream ends,
//! however it ends (answered, not_found, cancelled, failed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_common::UserContext;
use pai_common::grpc::GrpcChannel;
use pai_common::shards::Shards;
use pai_proto::v1::search_service_client::SearchServiceClient;
use pai_proto::v1::{self as pb, ask_event};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;

use crate::context::{self, Chunk, Context, NOT_IN_YOUR_DATA};
use crate::error::{InferenceError, Result};
use crate::fair_queue::PushError;
use crate::llm::{GenEvent, GenStats, Job, Llm, Stop};
use crate::repo::{self, Outcome, QueryRow, StoredFilters, StoredSource, StoredTimings};

/// Characters a question may hold.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Chunks retrieved when the request does not say.
pub const DEFAULT_K: u32 = 8;
/// Chunks a request may ask for.
pub const MAX_K: u32 = 20;
/// Sources a request may be narrowed to.
pub const MAX_SOURCE_IDS: usize = 100;
/// Queries a history page holds by default, and at most.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// Limits every question gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskLimits {
    /// `ASK_MAX_TOKENS`: the answer's length at most (and by default).
    pub max_tokens: u32,
    /// `ASK_DEADLINE_SECS`: from arrival to the last token.
    pub deadline: Duration,
}

/// What one `Ask` stream carries.
pub type AskStream = mpsc::Receiver<std::result::Result<pb::AskEvent, Status>>;

pub struct AskCore {
    pool: PgPool,
    llm: Arc<Llm>,
    /// A client per search shard.
    search: Shards<SearchServiceClient<GrpcChannel>>,
    limits: AskLimits,
}

/// A validated request.
struct Question {
    text: String,
    filters: StoredFilters,
}

fn validate(request: pb::AskRequest, limits: AskLimits) -> Result<Question> {
    let text = request.query.trim().to_owned();
    if text.is_empty() {
        return Err(InferenceError::Unprocessable(
            "query: must not be empty".into(),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(InferenceError::Unprocessable(format!(
            "query: at most {MAX_QUERY_CHARS} characters, got {chars}"
        )));
    }
    let k = match request.k {
        0 => DEFAULT_K,
        k if k <= MAX_K => k,
        k => {
            return Err(InferenceError::Unprocessable(format!(
                "k: must be between 1 and {MAX_K}, got {k}"
            )));
        }
    };
    if request.source_ids.len() > MAX_SOURCE_IDS {
        return Err(InferenceError::Unprocessable(format!(
            "document_ids: at most {MAX_SOURCE_IDS}"
        )));
    }
    for id in &request.source_ids {
        if Uuid::parse_str(id).is_err() {
            return Err(InferenceError::Unprocessable(format!(
                "document_ids: {id:?} is not a UUID"
            )));
        }
    }
    let max_tokens = match request.max_tokens {
        0 => limits.max_tokens,
        n => n.min(limits.max_tokens),
    };
    Ok(Question {
        text,
        filters: StoredFilters {
            source_kind: request.source_kind,
            category: request.category,
            source_ids: request.source_ids,
            k,
            max_tokens,
        },
    })
}

fn millis(duration: Duration) -> f32 {
    duration.as_secs_f32() * 1000.0
}

fn per_second(tokens: u32, duration: Duration) -> f32 {
    if duration.is_zero() {
        0.0
    } else {
        tokens as f32 / duration.as_secs_f32()
    }
}

impl AskCore {
    pub fn new(
        pool: PgPool,
        llm: Arc<Llm>,
        search: Shards<SearchServiceClient<GrpcChannel>>,
        limits: AskLimits,
    ) -> Self {
        Self {
            pool,
            llm,
            search,
            limits,
        }
    }

    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// Seconds a client turned away should wait: the queue ahead of it
    /// served `parallel` at a time, a few seconds an answer.
    fn retry_after(&self, waiting: usize) -> u64 {
        let parallel = self.llm.settings().parallel.max(1);
        let per_answer_secs = 2;
        u64::try_from(waiting.div_ceil(parallel))
            .unwrap_or(u64::MAX)
            .saturating_mul(per_answer_secs)
            .max(1)
    }

    /// Searches the caller's data with their own token, so search applies
    /// the same identity and isolation as for a search of theirs.
    async fn retrieve(
        &self,
        user: Uuid,
        token: &str,
        question: &Question,
    ) -> Result<Vec<Chunk>, Status> {
        let request = pai_common::identity::with_bearer(
            tonic::Request::new(pb::SearchRequest {
                query: question.text.clone(),
                k: question.filters.k,
                mode: pb::SearchMode::Hybrid as i32,
                source_kind: question.filters.source_kind.clone(),
                category: question.filters.category.clone(),
                source_ids: question.filters.source_ids.clone(),
            }),
            token,
        );
        let hits = self
            .search
            .for_user(user)
            .search(request)
            .await?
            .into_inner()
            .hits;
        Ok(hits
            .into_iter()
            .map(|hit| Chunk {
                source_kind: hit.source_kind,
                source_id: hit.source_id,
                title: hit.title,
                page: hit.page,
                text: hit.text,
                score: hit.score,
            })
            .collect())
    }

    /// Starts answering; the stream's first event names the stored query.
    pub async fn ask(
        self: &Arc<Self>,
        user: UserContext,
        token: &str,
        request: pb::AskRequest,
    ) -> std::result::Result<AskStream, Status> {
        let arrived = Instant::now();
        let question = validate(request, self.limits)?;
        let chunks = self.retrieve(user.user_id, token, &question).await?;
        let retrieval = arrived.elapsed();
        let context = context::build(&question.text, &chunks);
        let id = Uuid::new_v4();
        let (out, stream) = mpsc::channel(64);
        let answer = Answer {
            core: Arc::clone(self),
            user: user.user_id,
            id,
            arrived,
            retrieval,
            chunks,
            context,
            out,
        };

        // Queued before it is stored: a question turned away (429) leaves
        // no row. Dropping `generated` on an error below cancels the job.
        let generated = if answer.context.answerable() {
            Some(self.enqueue(user.user_id, &answer, &question, arrived)?)
        } else {
            None
        };
        repo::insert(
            &self.pool,
            id,
            user.user_id,
            &question.text,
            &question.filters,
        )
        .await?;
        match generated {
            Some(generated) => tokio::spawn(answer.generate(generated)),
            None => tokio::spawn(answer.refuse()),
        };
        Ok(stream)
    }

    /// Queues the generation of `answer` for `user`.
    fn enqueue(
        &self,
        user: Uuid,
        answer: &Answer,
        question: &Question,
        arrived: Instant,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>> {
        let (events, generated) = mpsc::unbounded_channel();
        let job = Job {
            prompt: answer.context.prompt(&question.text),
            max_tokens: question.filters.max_tokens,
            deadline: arrived + self.limits.deadline,
            enqueued: Instant::now(),
            events,
        };
        match self.llm.submit(user, job) {
            Ok(()) => Ok(generated),
            Err(PushError::Full(full)) => {
                metrics::counter!("pai_inference_ask_refused_total", "reason" => "queue_full")
                    .increment(1);
                Err(InferenceError::Busy {
                    waiting: full.waiting,
                    retry_after_secs: self.retry_after(full.waiting),
                })
            }
            Err(PushError::Closed(_)) => Err(InferenceError::GenerationStopped),
        }
    }

    pub async fn list(&self, user: Uuid, page: pb::PageRequest) -> Result<(Vec<QueryRow>, String)> {
        let limit = match page.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = pai_common::page::parse_cursor(&page.cursor)
            .map_err(|err| InferenceError::Invalid(err.to_string()))?;
        let rows = repo::list(&self.pool, user, after, i64::from(limit)).await?;
        let next = if rows.len() == limit as usize {
            rows.last()
                .map(|r| pai_common::page::cursor(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((rows, next))
    }

    pub async fn get(&self, user: Uuid, id: &str) -> Result<QueryRow> {
        let id = Uuid::parse_str(id).map_err(|_| InferenceError::NotFound)?;
        repo::get(&self.pool, user, id)
            .await?
            .ok_or(InferenceError::NotFound)
    }

    pub async fn delete(&self, user: Uuid, id: &str) -> Result<()> {
        let id = Uuid::parse_str(id).map_err(|_| InferenceError::NotFound)?;
        if repo::delete(&self.pool, user, id).await? {
            Ok(())
        } else {
            Err(InferenceError::NotFound)
        }
    }

    /// Erases every query of `user` (their account was deleted).
    pub async fn delete_user(&self, user: Uuid) -> Result<u64> {
        repo::delete_user(&self.pool, user).await
    }
}

/// One question being answered, from its context to the stored record.
struct Answer {
    core: Arc<AskCore>,
    user: Uuid,
    id: Uuid,
    arrived: Instant,
    retrieval: Duration,
    chunks: Vec<Chunk>,
    context: Context,
    out: mpsc::Sender<std::result::Result<pb::AskEvent, Status>>,
}

fn event(event: ask_event::Event) -> std::result::Result<pb::AskEvent, Status> {
    Ok(pb::AskEvent { event: Some(event) })
}

impl Answer {
    async fn send(&self, e: ask_event::Event) -> bool {
        self.out.send(event(e)).await.is_ok()
    }

    fn started(&self, queue_wait: Duration) -> ask_event::Event {
        ask_event::Event::Started(pb::AskStarted {
            query_id: self.id.to_string(),
            queue_ms: millis(queue_wait),
        })
    }

    fn sources(&self, cited: Option<u32>) -> Vec<StoredSource> {
        self.context
            .passages
            .iter()
            .filter_map(|passage| {
                let chunk = self.chunks.get(passage.chunk)?;
                Some(StoredSource {
                    n: passage.n,
                    source_kind: chunk.source_kind.clone(),
                    source_id: chunk.source_id.clone(),
                    title: chunk.title.clone(),
                    page: chunk.page,
                    snippet: passage.text.clone(),
                    score: chunk.score,
                    cited: cited == Some(passage.n),
                })
            })
            .collect()
    }

    /// Stores how the query ended and sends the record as the last event.
    async fn finish(&self, outcome: Outcome<'_>) {
        match repo::finish(&self.core.pool, self.user, self.id, &outcome).await {
            Ok(Some(row)) => {
                let _ = self.send(ask_event::Event::Done(record(&row))).await;
            }
            Ok(None) => {
                let _ = self.out.send(Err(InferenceError::NotFound.into())).await;
            }
            Err(err) => {
                let _ = self.out.send(Err(err.into())).await;
            }
        }
    }

    /// The data does not answer the question: say so, without the model.
    async fn refuse(self) {
        metrics::counter!("pai_inference_ask_total", "status" => "not_found").increment(1);
        self.send(self.started(Duration::ZERO)).await;
        self.send(ask_event::Event::Delta(NOT_IN_YOUR_DATA.to_owned()))
            .await;
        let timings = StoredTimings {
            retrieval_ms: millis(self.retrieval),
            total_ms: millis(self.arrived.elapsed()),
            ..StoredTimings::default()
        };
        self.finish(Outcome {
            response: NOT_IN_YOUR_DATA,
            sources: &[],
            model: "",
            timings: &timings,
            status: "not_found",
            error: "",
        })
        .await;
    }

    /// Streams the generation, then cites and stores the answer.
    async fn generate(self, mut generated: mpsc::UnboundedReceiver<GenEvent>) {
        let mut response = String::new();
        let mut queue_wait = Duration::ZERO;
        let mut first_token: Option<Duration> = None;
        let ending = loop {
            let next = tokio::select! {
                next = generated.recv() => next,
                () = self.out.closed() => break Ending::Cancelled,
            };
            match next {
                Some(GenEvent::Started { queue_wait: waited }) => {
                    queue_wait = waited;
                    if !self.send(self.started(waited)).await {
                        break Ending::Cancelled;
                    }
                }
                Some(GenEvent::Text(piece)) => {
                    first_token.get_or_insert_with(|| self.arrived.elapsed());
                    response.push_str(&piece);
                    if !self.send(ask_event::Event::Delta(piece)).await {
                        break Ending::Cancelled;
                    }
                }
                Some(GenEvent::Done(stats)) => break Ending::Done(stats),
                Some(GenEvent::Failed(reason)) => break Ending::Failed(reason),
                None => break Ending::Failed("the generation thread has stopped".into()),
            }
        };
        // Dropping the receiver frees the sequence at the next step.
        drop(generated);

        let (status, error, stats) = match &ending {
            Ending::Done(stats) if stats.stop == Stop::Deadline => (
                "failed",
                format!(
                    "the answer ran past its deadline of {} s (ASK_DEADLINE_SECS)",
                    self.core.limits.deadline.as_secs()
                ),
                Some(*stats),
            ),
            Ending::Done(stats) => ("answered", String::new(), Some(*stats)),
            Ending::Cancelled => ("cancelled", "the client disconnected".to_owned(), None),
            Ending::Failed(reason) => ("failed", reason.clone(), None),
        };
        let cited = if status == "answered" {
            context::cite(&response, &self.context.passages)
        } else {
            None
        };
        if let Some(n) = cited {
            let marker = format!(" [{n}]");
            response.push_str(&marker);
            self.send(ask_event::Event::Delta(marker)).await;
        }
        metrics::counter!("pai_inference_ask_total", "status" => status).increment(1);
        let timings = timings(
            queue_wait,
            self.retrieval,
            first_token,
            self.arrived.elapsed(),
            stats,
        );
        let sources = self.sources(cited);
        self.finish(Outcome {
            response: &response,
            sources: &sources,
            model: self.core.llm.model_name(),
            timings: &timings,
            status,
            error: &error,
        })
        .await;
    }
}

enum Ending {
    Done(GenStats),
    Cancelled,
    Failed(String),
}

fn timings(
    queue: Duration,
    retrieval: Duration,
    first_token: Option<Duration>,
    total: Duration,
    stats: Option<GenStats>,
) -> StoredTimings {
    let stats = stats.unwrap_or(GenStats {
        prompt_tokens: 0,
        cached_prompt_tokens: 0,
        generated_tokens: 0,
        prefill: Duration::ZERO,
        decode: Duration::ZERO,
        stop: Stop::Cancelled,
    });
    StoredTimings {
        queue_ms: millis(queue),
        retrieval_ms: millis(retrieval),
        first_token_ms: first_token.map(millis).unwrap_or_default(),
        total_ms: millis(total),
        prompt_tokens: stats.prompt_tokens,
        generated_tokens: stats.generated_tokens,
        prompt_tokens_per_s: per_second(
            stats.prompt_tokens - stats.cached_prompt_tokens.min(stats.prompt_tokens),
            stats.prefill,
        ),
        // The first token comes from the prefill; the others from decoding.
        generation_tokens_per_s: per_second(stats.generated_tokens.saturating_sub(1), stats.decode),
        cached_prompt_tokens: stats.cached_prompt_tokens,
    }
}

/// The wire form of a stored query.
pub fn record(row: &QueryRow) -> pb::QueryRecord {
    let t = row.timings.0;
    pb::QueryRecord {
        id: row.id.to_string(),
        query: row.query.clone(),
        response: row.response.clone(),
        sources: row
            .sources
            .0
            .iter()
            .map(|s| pb::AnswerSource {
                n: s.n,
                source_kind: s.source_kind.clone(),
                source_id: s.source_id.clone(),
                title: s.title.clone(),
                page: s.page,
                snippet: s.snippet.clone(),
                score: s.score,
                cited: s.cited,
            })
            .collect(),
        model: row.model.clone(),
        timings: Some(pb::AskTimings {
            queue_ms: t.queue_ms,
            retrieval_ms: t.retrieval_ms,
            first_token_ms: t.first_token_ms,
            total_ms: t.total_ms,
            prompt_tokens: t.prompt_tokens,
            generated_tokens: t.generated_tokens,
            prompt_tokens_per_s: t.prompt_tokens_per_s,
            generation_tokens_per_s: t.generation_tokens_per_s,
            cached_prompt_tokens: t.cached_prompt_tokens,
        }),
        status: row.status.clone(),
        error: row.error.clone(),
        created_at: pai_common::time::to_proto(row.created_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AskLimits = AskLimits {
        max_tokens: 48,
        deadline: Duration::from_secs(60),
    };

    fn request(query: &str) -> pb::AskRequest {
        pb::AskRequest {
            query: query.into(),
            ..pb::AskRequest::default()
        }
    }

    #[test]
    fn questions_are_validated_and_defaults_filled() {
        assert!(matches!(
            validate(request("   "), LIMITS),
            Err(InferenceError::Unprocessable(_))
        ));
        assert!(matches!(
            validate(request(&"x".repeat(MAX_QUERY_CHARS + 1)), LIMITS),
            Err(InferenceError::Unprocessable(_))
        ));
        let ok = validate(request(&"é".repeat(MAX_QUERY_CHARS)), LIMITS).expect("1,000 chars");
        assert_eq!(ok.filters.k, DEFAULT_K);
        assert_eq!(ok.filters.max_tokens, 48);
        let capped = validate(
            pb::AskRequest {
                max_tokens: 4_000,
                k: 3,
                ..request("q")
            },
            LIMITS,
        )
        .expect("valid");
        assert_eq!((capped.filters.k, capped.filters.max_tokens), (3, 48));
        let bad_id = pb::AskRequest {
            source_ids: vec!["nope".into()],
            ..request("q")
        };
        assert!(validate(bad_id, LIMITS).is_err());
        let too_many_k = pb::AskRequest {
            k: MAX_K + 1,
            ..request("q")
        };
        assert!(validate(too_many_k, LIMITS).is_err());
    }

    #[test]
    fn speeds_leave_out_the_cached_prefix_and_the_first_token() {
        let t = timings(
            Duration::from_millis(5),
            Duration::from_millis(20),
            Some(Duration::from_millis(900)),
            Duration::from_secs(2),
            Some(GenStats {
                prompt_tokens: 250,
                cached_prompt_tokens: 50,
                generated_tokens: 11,
                prefill: Duration::from_secs(1),
                decode: Duration::from_millis(500),
                stop: Stop::EndOfText,
            }),
        );
        assert_eq!(t.prompt_tokens_per_s, 200.0);
        assert_eq!(t.generation_tokens_per_s, 20.0);
        assert_eq!(t.first_token_ms, 900.0);
    }
}
