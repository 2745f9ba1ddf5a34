//! The reference: llama-cpp-2 called directly in this process on the
//! stack's GGUF, threads and context, one prompt at a time.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use pai_inference::LlmSettings;
use pai_inference::context::{Context, Passage};
use serde_json::Value;

use crate::{Streamed, timing};

/// Tokens the service decodes in one step at most (its `BATCH_TOKENS`).
const BATCH_TOKENS: usize = 512;

/// One direct llama-cpp-2 generation, measured as the service measures.
pub struct DirectRun {
    pub prompt_tokens: usize,
    /// From the first prompt slice decoded to the first token sampled.
    pub prefill: Duration,
    /// Tokens generated (the end-of-text token not counted).
    pub generated: u32,
    /// From the first token sampled to the last.
    pub decode: Duration,
    pub text: String,
}

/// A prompt for the direct runs: the user message and its token budget.
pub struct DirectJob {
    pub user: String,
    pub max_tokens: u32,
}

/// The direct run of each answered question's prompt: one more token than
/// pai generated unless it used its whole budget, so that the end-of-text
/// token is sampled (and timed) as in the service.
pub fn rebuilt_jobs(answered: &[&Streamed], max_tokens: u32) -> Vec<DirectJob> {
    answered
        .iter()
        .map(|streamed| {
            let generated = timing(&streamed.record, "generated_tokens") as u32;
            DirectJob {
                user: rebuilt_prompt(&streamed.record),
                max_tokens: if generated < max_tokens {
                    generated + 1
                } else {
                    max_tokens
                },
            }
        })
        .collect()
}

/// The user message pai sent, rebuilt from the answer's sources.
fn rebuilt_prompt(record: &Value) -> String {
    let passages = record["sources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|source| Passage {
            n: source["n"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            chunk: 0,
            text: source["snippet"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let question = record["query"].as_str().unwrap_or_default();
    Context {
        passages,
        coverage: 1.0,
    }
    .prompt(question)
}

/// The prompt the model reads when given `texts` whole, numbered from 1.
pub fn whole_chunks_prompt(texts: &[String], question: &str) -> String {
    let passages = texts
        .iter()
        .zip(1..)
        .map(|(text, n)| Passage {
            n,
            chunk: 0,
            text: text.clone(),
        })
        .collect();
    Context {
        passages,
        coverage: 1.0,
    }
    .prompt(question)
}

/// Prefills `tokens` in slices of [`BATCH_TOKENS`], then samples greedily
/// until the end of text or `max_tokens` tokens, timed as the service
/// times its sequences.
fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    tokens: &[LlamaToken],
    max_tokens: u32,
) -> anyhow::Result<DirectRun> {
    if tokens.is_empty() {
        bail!("an empty prompt");
    }
    ctx.clear_kv_cache();
    let vocab = model.vocab();
    let mut sampler = LlamaSampler::greedy();
    let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
    let started = Instant::now();
    let mut pos = 0i32;
    for slice in tokens.chunks(BATCH_TOKENS) {
        batch.clear();
        let last = pos as usize + slice.len() == tokens.len();
        for (i, &token) in slice.iter().enumerate() {
            batch.add(token, pos, &[0], last && i + 1 == slice.len())?;
            pos += 1;
        }
        ctx.decode(&mut batch)?;
    }
    let mut token = sampler.sample(ctx, batch.n_tokens() - 1);
    let first_token = Instant::now();
    let prefill = first_token - started;
    let mut generated = 0;
    let mut bytes = Vec::new();
    while !vocab.is_eog(token) {
        generated += 1;
        bytes.extend(vocab.token_to_piece(token, false, None));
        if generated >= max_tokens {
            break;
        }
        batch.clear();
        batch.add(token, pos, &[0], true)?;
        pos += 1;
        ctx.decode(&mut batch)?;
        token = sampler.sample(ctx, 0);
    }
    Ok(DirectRun {
        prompt_tokens: tokens.len(),
        prefill,
        generated,
        decode: first_token.elapsed(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Runs `rebuilt` then `whole` on the model at `settings` in this process,
/// one prompt at a time (the stack must be idle).
pub fn direct(
    settings: &LlmSettings,
    rebuilt: &[DirectJob],
    whole: &[DirectJob],
) -> anyhow::Result<(Vec<DirectRun>, Vec<DirectRun>)> {
    let backend = pai_inference::llm::backend().map_err(anyhow::Error::msg)?;
    let model =
        LlamaModel::load_from_file(backend, &settings.model_path, &LlamaModelParams::default())
            .with_context(|| settings.model_path.display().to_string())?;
    let template = model
        .chat_template(None)
        .or_else(|_| LlamaChatTemplate::new("chatml"))?;
    let tokenize = |job: &DirectJob| -> anyhow::Result<Vec<LlamaToken>> {
        let messages = vec![
            LlamaChatMessage::new("system".into(), String::new())?,
            LlamaChatMessage::new("user".into(), job.user.clone())?,
        ];
        let prompt = model.apply_chat_template(&template, &messages, true)?;
        Ok(model.vocab().tokenize(prompt.as_bytes(), false, true))
    };
    let threads = i32::try_from(settings.threads.max(1))?;
    let params = |n_ctx: u32| {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(BATCH_TOKENS as u32)
            .with_n_ubatch(BATCH_TOKENS as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_no_perf(false)
    };

    // pai's prompts, in a context of one sequence's size.
    let mut ctx = model.new_context(backend, params(settings.context_tokens + 256))?;
    let mut runs = Vec::new();
    for (i, job) in rebuilt.iter().enumerate() {
        let tokens = tokenize(job)?;
        if i == 0 {
            // Warm-up: the first decode of a context allocates its buffers.
            generate(&model, &mut ctx, &tokens, job.max_tokens)?;
        }
        runs.push(generate(&model, &mut ctx, &tokens, job.max_tokens)?);
    }
    drop(ctx);

    // Whole chunks: a context as long as the longest prompt needs.
    let prompts = whole
        .iter()
        .map(tokenize)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let budget = whole.iter().map(|job| job.max_tokens).max().unwrap_or(0);
    let n_ctx = (u32::try_from(longest)? + budget + 1)
        .next_multiple_of(256)
        .max(settings.context_tokens + 256);
    let mut ctx = model.new_context(backend, params(n_ctx))?;
    let mut whole_runs = Vec::new();
    for (tokens, job) in prompts.iter().zip(whole) {
        whole_runs.push(generate(&model, &mut ctx, tokens, job.max_tokens)?);
    }
    Ok((runs, whole_runs))
}
