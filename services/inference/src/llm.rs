//! Generation: the GGUF at `LLM_MODEL_PATH` run by llama.cpp (llama-cpp-2)
//! on one thread that owns the model's context.
//!
//! The thread serves up to `ASK_PARALLEL` sequences at once, continuously
//! batched: every step decodes one token of each sequence that is
//! generating and a slice of the prompt of each that is still being read,
//! in one `llama_decode`. Requests wait in a [`FairQueue`] (round-robin
//! over users) for a free sequence. Every prompt starts with the same
//! tokens (the chat template's opening and the sources header): they are
//! decoded once at start-up into a sequence of their own, and each request
//! copies that KV cache instead of computing it again.
//!
//! A request whose receiver is gone (the client disconnected) is dropped
//! at the next step and its sequence freed; one past its deadline or its
//! token budget ends there.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::context::SOURCES_HEADER;
use crate::fair_queue::{FairQueue, PushError};

/// Tokens decoded in one step at most (prompt slices and generated tokens).
const BATCH_TOKENS: usize = 512;
/// How long the idle thread waits for work before looking at shutdown again.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Stands for the user message when the template's opening is cut out.
const MARK: &str = "\u{1}pai\u{1}";

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{path}: {reason}")]
    Load { path: String, reason: String },
    /// Not a readable GGUF file (the text names it).
    #[error("{0}")]
    File(String),
    #[error("the generation thread could not start: {0}")]
    Thread(String),
}

/// How the model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSettings {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// `ASK_THREADS`: CPU threads of llama.cpp.
    pub threads: usize,
    /// `ASK_PARALLEL`: sequences generated at once.
    pub parallel: usize,
    /// `ASK_CONTEXT_TOKENS`: prompt and answer tokens one sequence may hold.
    pub context_tokens: u32,
    /// `ASK_QUEUE_MAX`: requests that may wait for a sequence.
    pub queue_max: usize,
}

/// Checks that `path` is a readable GGUF file (its magic number), so that
/// a wrong path fails at start-up with one line, before the model loads.
pub fn check_model_file(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|err| format!("{}: {err}", path.display()))?;
    file.read_exact(&mut magic)
        .map_err(|err| format!("{}: {err}", path.display()))?;
    if &magic != b"GGUF" {
        return Err(format!("{}: not a GGUF model file", path.display()));
    }
    Ok(())
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The model ended its answer.
    EndOfText,
    /// It reached the request's token budget.
    MaxTokens,
    /// It ran past the request's deadline.
    Deadline,
    /// Its client went away.
    Cancelled,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndOfText => "end_of_text",
            Self::MaxTokens => "max_tokens",
            Self::Deadline => "deadline",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a finished generation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenStats {
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV cache came from the shared prefix.
    pub cached_prompt_tokens: u32,
    pub generated_tokens: u32,
    /// From the first prompt slice decoded to the first token sampled.
    pub prefill: Duration,
    /// From the first token to the last.
    pub decode: Duration,
    pub stop: Stop,
}

/// What the generation thread tells a request, in order: `Started`, then
/// `Text` pieces, then `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// A sequence took the request after `queue_wait`.
    Started {
        queue_wait: Duration,
    },
    /// The next piece of the answer: whole UTF-8 characters.
    Text(String),
    Done(GenStats),
    Failed(String),
}

/// A request for the generation thread.
pub struct Job {
    /// The user message.
    pub prompt: String,
    pub max_tokens: u32,
    pub deadline: Instant,
    pub enqueued: Instant,
    pub events: mpsc::UnboundedSender<GenEvent>,
}

/// The generation engine: a handle on the thread and its queue.
pub struct Llm {
    queue: Arc<FairQueue<Job>>,
    active: Arc<AtomicUsize>,
    model_name: String,
    settings: LlmSettings,
}

impl Drop for Llm {
    fn drop(&mut self) {
        // The thread ends once it has nothing left to serve.
        self.queue.close();
    }
}

/// The process's llama.cpp backend (it may be initialised once), with its
/// logs sent to tracing.
pub fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Llm {
    /// Loads the model and starts the generation thread; blocks until the
    /// model is loaded and the shared prefix decoded (call it off the async
    /// workers). An unreadable or corrupt model file is an error naming it
    /// (checked here too: llama-cpp-2 asserts, in debug builds, that the
    /// file exists).
    pub fn start(settings: LlmSettings) -> Result<Self, LlmError> {
        let load_error = |reason: String| LlmError::Load {
            path: settings.model_path.display().to_string(),
            reason,
        };
        check_model_file(&settings.model_path).map_err(LlmError::File)?;
        let model_name = settings
            .model_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let queue = Arc::new(FairQueue::new(settings.queue_max));
        let active = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let (settings, queue, active) =
                (settings.clone(), Arc::clone(&queue), Arc::clone(&active));
            std::thread::Builder::new()
                .name("pai-generate".into())
                .spawn(move || thread_main(&settings, &queue, &active, &ready_tx))
                .map_err(|err| LlmError::Thread(err.to_string()))?;
        }
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                queue,
                active,
                model_name,
                settings,
            }),
            Ok(Err(reason)) => Err(load_error(reason)),
            Err(_) => Err(LlmError::Thread("it stopped while loading".into())),
        }
    }

    /// Queues `job` behind `user`'s own earlier requests.
    pub fn submit(&self, user: uuid::Uuid, job: Job) -> Result<(), PushError> {
        self.queue.push(user, job)?;
        metrics::gauge!("pai_inference_ask_queue_depth").set(self.queue.len() as f64);
        Ok(())
    }

    /// Requests waiting for a sequence.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Sequences generating now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The model file's name.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }
}

/// Applies the model's chat template (`chatml` when it has none) to an
/// empty system message and `user`.
fn chat_prompt(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    user: &str,
) -> Result<String, String> {
    let messages = [
        LlamaChatMessage::new("system".into(), String::new()),
        LlamaChatMessage::new("user".into(), user.to_owned()),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|err| format!("the prompt holds a NUL character: {err}"))?;
    model
        .apply_chat_template(template, &messages, true)
        .map_err(|err| format!("chat template: {err}"))
}

fn thread_main(
    settings: &LlmSettings,
    queue: &FairQueue<Job>,
    active: &AtomicUsize,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) {
    let loaded = (|| {
        let backend = backend()?;
        let model =
            LlamaModel::load_from_file(backend, &settings.model_path, &LlamaModelParams::default())
                .map_err(|err| format!("not a model llama.cpp can load ({err})"))?;
        Ok::<_, String>((backend, model))
    })();
    let (backend, model) = match loaded {
        Ok(loaded) => loaded,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    let template = model
        .chat_template(None)
        .or_else(|_| LlamaChatTemplate::new("chatml"))
        .map_err(|err| err.to_string());
    let parallel = settings.parallel.max(1);
    let threads = i32::try_from(settings.threads.max(1)).unwrap_or(1);
    let sequences = u32::try_from(parallel + 1).unwrap_or(u32::MAX);
    let n_ctx = settings
        .context_tokens
        .saturating_mul(u32::try_from(parallel).unwrap_or(u32::MAX))
        .saturating_add(256);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(sequences)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_kv_unified(true)
        .with_no_perf(false);
    let setup = template.and_then(|template| {
        let ctx = model
            .new_context(backend, params)
            .map_err(|err| format!("creating a context of {n_ctx} tokens: {err}"))?;
        Ok((template, ctx))
    });
    let (template, mut ctx) = match setup {
        Ok(setup) => setup,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    let prefix_seq = i32::try_from(parallel).unwrap_or(i32::MAX);
    let prefix = match decode_prefix(&model, &template, &mut ctx, prefix_seq) {
        Ok(prefix) => prefix,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    tracing::info!(
        model = %settings.model_path.display(),
        parallel,
        threads,
        n_ctx,
        prefix_tokens = prefix.len(),
        "language model loaded"
    );
    let mut engine = Engine {
        model: &model,
        template,
        ctx,
        prefix,
        prefix_seq,
        slots: (0..parallel).map(|_| None).collect(),
        batch: LlamaBatch::new(BATCH_TOKENS, 1),
        context_tokens: settings.context_tokens as usize,
        active,
    };
    engine.run(queue);
}

/// Decodes the tokens every prompt starts with into `seq`.
fn decode_prefix(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    ctx: &mut LlamaContext<'_>,
    seq: i32,
) -> Result<Vec<LlamaToken>, String> {
    let marked = chat_prompt(model, template, &format!("{SOURCES_HEADER}{MARK}"))?;
    let opening = marked.split(MARK).next().unwrap_or_default();
    let tokens = model.vocab().tokenize(opening.as_bytes(), false, true);
    if tokens.is_empty() || tokens.len() > BATCH_TOKENS {
        return Ok(Vec::new());
    }
    let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
    batch
        .add_sequence(&tokens, seq, false)
        .map_err(|err| format!("prefix batch: {err}"))?;
    ctx.decode(&mut batch)
        .map_err(|err| format!("decoding the prompt prefix: {err}"))?;
    Ok(tokens)
}

/// One request being served.
struct Sequence {
    job: Job,
    /// Prompt tokens not decoded yet.
    pending: Vec<LlamaToken>,
    /// The next position in the sequence.
    pos: i32,
    /// The sampled token to decode next step.
    next: Option<LlamaToken>,
    sampler: LlamaSampler,
    /// Bytes of a character cut in half between tokens.
    partial: Vec<u8>,
    prompt_tokens: u32,
    cached_tokens: u32,
    generated: u32,
    prefill_started: Option<Instant>,
    first_token: Option<Instant>,
    prefill: Duration,
}

impl Sequence {
    fn stats(&self, stop: Stop) -> GenStats {
        GenStats {
            prompt_tokens: self.prompt_tokens,
            cached_prompt_tokens: self.cached_tokens,
            generated_tokens: self.generated,
            prefill: self.prefill,
            decode: self.first_token.map(|t| t.elapsed()).unwrap_or_default(),
            stop,
        }
    }

    /// Appends a token's bytes and sends the whole characters they complete.
    fn emit(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(_) => self.partial.len(),
            // Bytes that can never start a character: replace them now.
            Err(err) if err.error_len().is_some() => self.partial.len(),
            Err(err) => err.valid_up_to(),
        };
        if valid == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&self.partial[..valid]).into_owned();
        self.partial.drain(..valid);
        let _ = self.job.events.send(GenEvent::Text(text));
    }

    /// Sends what is left of a cut character.
    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            let _ = self.job.events.send(GenEvent::Text(text));
        }
    }
}

struct Engine<'m> {
    model: &'m LlamaModel,
    template: LlamaChatTemplate,
    ctx: LlamaContext<'m>,
    prefix: Vec<LlamaToken>,
    prefix_seq: i32,
    slots: Vec<Option<Sequence>>,
    /// Reused by every step.
    batch: LlamaBatch<'m>,
    context_tokens: usize,
    active: &'m AtomicUsize,
}

impl Engine<'_> {
    fn run(&mut self, queue: &FairQueue<Job>) {
        loop {
            // Take waiting requests into free sequences, in the queue's turn.
            for slot in 0..self.slots.len() {
                if self.slots[slot].is_some() {
                    continue;
                }
                let Some(job) = queue.try_pop() else { break };
                self.admit(slot, job);
            }
            self.active.store(self.busy(), Ordering::Relaxed);
            metrics::gauge!("pai_inference_active_sequences").set(self.busy() as f64);
            metrics::gauge!("pai_inference_ask_queue_depth").set(queue.len() as f64);
            if self.busy() == 0 {
                if queue.is_closed() && queue.is_empty() {
                    return;
                }
                if let Some(job) = queue.pop_timeout(IDLE_WAIT) {
                    self.admit(0, job);
                }
                continue;
            }
            if queue.is_closed() {
                self.fail_all("the service is stopping");
                for job in queue.drain() {
                    let _ = job
                        .events
                        .send(GenEvent::Failed("the service is stopping".into()));
                }
                continue;
            }
            self.drop_finished_clients();
            self.step();
        }
    }

    fn busy(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn seq_id(slot: usize) -> i32 {
        i32::try_from(slot).unwrap_or(i32::MAX)
    }

    /// Starts `job` on the free sequence `slot`.
    fn admit(&mut self, slot: usize, job: Job) {
        if job.events.is_closed() {
            metrics::counter!("pai_inference_generations_total", "stop" => "cancelled")
                .increment(1);
            return;
        }
        let queue_wait = job.enqueued.elapsed();
        metrics::histogram!("pai_inference_ask_queue_wait_seconds")
            .record(queue_wait.as_secs_f64());
        let prompt = match chat_prompt(self.model, &self.template, &job.prompt) {
            Ok(prompt) => prompt,
            Err(reason) => {
                let _ = job.events.send(GenEvent::Failed(reason));
                return;
            }
        };
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), false, true);
        let budget = job.max_tokens as usize;
        if tokens.len() + budget > self.context_tokens {
            let _ = job.events.send(GenEvent::Failed(format!(
                "the question and its sources take {} tokens; with {budget} for the answer \
                 that is more than the {} a sequence holds (ASK_CONTEXT_TOKENS)",
                tokens.len(),
                self.context_tokens
            )));
            return;
        }
        let seq = Self::seq_id(slot);
        // A sequence starts empty; reuse the shared opening when it matches.
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        let cached = if !self.prefix.is_empty() && tokens.starts_with(&self.prefix) {
            let copied = u32::try_from(self.prefix.len()).ok();
            match self
                .ctx
                .copy_kv_cache_seq(self.prefix_seq, seq, Some(0), copied)
            {
                Ok(()) => self.prefix.len(),
                Err(_) => 0,
            }
        } else {
            0
        };
        let _ = job.events.send(GenEvent::Started { queue_wait });
        self.slots[slot] = Some(Sequence {
            pending: tokens[cached..].to_vec(),
            pos: i32::try_from(cached).unwrap_or(0),
            next: None,
            sampler: LlamaSampler::greedy(),
            partial: Vec::new(),
            prompt_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            cached_tokens: u32::try_from(cached).unwrap_or(0),
            generated: 0,
            prefill_started: None,
            first_token: None,
            prefill: Duration::ZERO,
            job,
        });
    }

    /// Frees `slot`, telling its client how it ended.
    fn finish(&mut self, slot: usize, stop: Stop) {
        let Some(mut sequence) = self.slots[slot].take() else {
            return;
        };
        let _ = self
            .ctx
            .clear_kv_cache_seq(Some(Self::seq_id(slot) as u32), None, None);
        metrics::counter!("pai_inference_generations_total", "stop" => stop.as_str()).increment(1);
        metrics::counter!("pai_inference_generated_tokens_total")
            .increment(u64::from(sequence.generated));
        if stop != Stop::Cancelled {
            sequence.flush();
            let _ = sequence
                .job
                .events
                .send(GenEvent::Done(sequence.stats(stop)));
        }
    }

    fn fail(&mut self, slot: usize, reason: &str) {
        if let Some(sequence) = self.slots[slot].take() {
            let _ = self
                .ctx
                .clear_kv_cache_seq(Some(Self::seq_id(slot) as u32), None, None);
            metrics::counter!("pai_inference_generations_total", "stop" => "failed").increment(1);
            let _ = sequence
                .job
                .events
                .send(GenEvent::Failed(reason.to_owned()));
        }
    }

    fn fail_all(&mut self, reason: &str) {
        for slot in 0..self.slots.len() {
            self.fail(slot, reason);
        }
    }

    /// Ends the sequences whose client left or whose deadline passed.
    fn drop_finished_clients(&mut self) {
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            let stop = match &self.slots[slot] {
                Some(s) if s.job.events.is_closed() => Stop::Cancelled,
                Some(s) if now >= s.job.deadline => Stop::Deadline,
                _ => continue,
            };
            self.finish(slot, stop);
        }
    }

    /// Decodes one batch: a token of every generating sequence and a slice
    /// of every prompt being read; samples where a sequence needs a token.
    fn step(&mut self) {
        let batch = &mut self.batch;
        batch.clear();
        let mut sample_at: Vec<(usize, i32)> = Vec::new();
        let mut in_batch: Vec<usize> = Vec::new();
        let mut added = 0usize;
        let mut failed: Option<String> = None;
        // Generating sequences first: one token each.
        for slot in 0..self.slots.len() {
            let Some(sequence) = self.slots[slot].as_mut() else {
                continue;
            };
            let Some(token) = sequence.next.take() else {
                continue;
            };
            let index = i32::try_from(added).unwrap_or(i32::MAX);
            if let Err(err) = batch.add(token, sequence.pos, &[Self::seq_id(slot)], true) {
                failed = Some(err.to_string());
                break;
            }
            sequence.pos += 1;
            added += 1;
            sample_at.push((slot, index));
            in_batch.push(slot);
        }
        // Then prompt slices, while the batch has room.
        for slot in 0..self.slots.len() {
            if failed.is_some() || added >= BATCH_TOKENS {
                break;
            }
            let Some(sequence) = self.slots[slot].as_mut() else {
                continue;
            };
            if sequence.pending.is_empty() {
                continue;
            }
            let take = sequence.pending.len().min(BATCH_TOKENS - added);
            let last_slice = take == sequence.pending.len();
            sequence.prefill_started.get_or_insert_with(Instant::now);
            for (i, token) in sequence.pending.drain(..take).enumerate() {
                let wants_logits = last_slice && i + 1 == take;
                if let Err(err) =
                    batch.add(token, sequence.pos, &[Self::seq_id(slot)], wants_logits)
                {
                    failed = Some(err.to_string());
                    break;
                }
                if wants_logits {
                    sample_at.push((slot, i32::try_from(added).unwrap_or(i32::MAX)));
                }
                sequence.pos += 1;
                added += 1;
            }
            in_batch.push(slot);
        }
        if failed.is_none()
            && added > 0
            && let Err(err) = self.ctx.decode(batch)
        {
            failed = Some(format!("llama.cpp could not decode: {err}"));
        }
        if let Some(reason) = failed {
            tracing::error!(reason, "generation step failed");
            for slot in in_batch {
                self.fail(slot, &reason);
            }
            return;
        }

        let vocab = self.model.vocab();
        for (slot, index) in sample_at {
            let Some(sequence) = self.slots[slot].as_mut() else {
                continue;
            };
            let token = sequence.sampler.sample(&self.ctx, index);
            if sequence.first_token.is_none() {
                let now = Instant::now();
                sequence.first_token = Some(now);
                sequence.prefill = sequence
                    .prefill_started
                    .map(|t| now.duration_since(t))
                    .unwrap_or_default();
            }
            if vocab.is_eog(token) {
                self.finish(slot, Stop::EndOfText);
                continue;
            }
            sequence.generated += 1;
            let piece = vocab.token_to_piece(token, false, None);
            sequence.emit(&piece);
            let full = sequence.pos as usize + 1 >= self.context_tokens;
            if sequence.generated >= sequence.job.max_tokens || full {
                self.finish(slot, Stop::MaxTokens);
            } else {
                sequence.next = Some(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence() -> (Sequence, mpsc::UnboundedReceiver<GenEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let job = Job {
            prompt: String::new(),
            max_tokens: 8,
            deadline: Instant::now(),
            enqueued: Instant::now(),
            events,
        };
        let sequence = Sequence {
            job,
            pending: Vec::new(),
            pos: 0,
            next: None,
            sampler: LlamaSampler::greedy(),
            partial: Vec::new(),
            prompt_tokens: 0,
            cached_tokens: 0,
            generated: 0,
            prefill_started: None,
            first_token: None,
            prefill: Duration::ZERO,
        };
        (sequence, rx)
    }

    #[test]
    fn a_character_cut_between_tokens_is_sent_whole() {
        let (mut sequence, mut rx) = sequence();
        let euro = "€".as_bytes();
        sequence.emit(b"29.99 ");
        sequence.emit(&euro[..1]);
        sequence.emit(&euro[1..]);
        sequence.emit(b" TTC");
        let mut text = Vec::new();
        while let Ok(GenEvent::Text(piece)) = rx.try_recv() {
            text.push(piece);
        }
        assert_eq!(text, ["29.99 ", "€", " TTC"]);
    }

    #[test]
    fn a_file_that_is_not_gguf_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("pai-llm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("model.gguf");
        std::fs::write(&path, b"<html>not a model</html>").expect("write");
        let err = check_model_file(&path).expect_err("not GGUF");
        assert!(
            err.contains("model.gguf") && err.contains("not a GGUF"),
            "{err}"
        );
        let missing = check_model_file(&dir.join("missing.gguf")).expect_err("missing");
        assert!(missing.contains("missing.gguf"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
