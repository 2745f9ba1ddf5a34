//! `make bench-ask`: answers (`POST /api/queries`, issue 29) through the
//! whole stack, each figure beside a reference measured in the same run.
//!
//! 1. Ingests the PDF corpus into one account through the stack.
//! 2. One at a time, asks every fact of `testdata/pdf/facts.tsv` whose
//!    document is indexed, streamed (`Accept: text/event-stream`), timing
//!    the first `delta` event from the moment the request is sent; then 10
//!    questions nothing in the corpus answers.
//! 3. 8 askers at once, each looping over the fact questions (48 answers in
//!    all, JSON): answers/min and the p99 of `timings.queue_ms`.
//! 4. With the stack idle, llama-cpp-2 called directly in this process on
//!    the same GGUF, threads and context (`AskSettings` read from the
//!    stack's own environment):
//!    - every prompt pai sent, rebuilt exactly from the answer's sources,
//!      prefilled in one go (no shared prefix) and generated greedily up
//!      to the tokens pai generated (one more when pai stopped at the end
//!      of text, so that the end-of-text step is timed on both sides): the
//!      reference for prompt and generation tokens/s, time to first token
//!      and answers/min;
//!    - the same model given the top 5 hits of `GET /api/search` whole
//!      (FINDINGS' setup), greedy, `ASK_MAX_TOKENS` tokens: the reference
//!      for answer quality.
//!
//! Quality: (r) the fact is in the context pai built (normalised substring
//! of its sources' snippets), (f) in the answer, (c) a cited source is the
//! fact's document (counted over all questions, whatever the answer says);
//! refusals are `not_found` answers to the unanswerable questions.
//!
//! Prompt tokens/s counts the tokens actually computed: pai copies the
//! chat template's opening from a cached prefix (`cached_prompt_tokens`),
//! the direct run computes the whole prompt. Generation tokens/s leaves out
//! the first token (it comes with the prefill), on both sides.
//!
//! Prints plain lines and one markdown table per benchmark, and appends a
//! row to `docs/benchmarks/ask.csv`. Estimated at about 10 minutes on 2 cores
//! (the whole-chunk prompts, ~1,000+ tokens each, take half of it).
//!
//! ```text
//! make bench-ask    # or: cargo run --release -p pai --example bench_ask [QUESTIONS] [ANSWERS]
//! ```

mod common;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::{Bench, Client, facts, normalize, settle};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use pai_inference::context::{Context, Passage};
use pai_inference::{AskSettings, LlmSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Questions nothing in the corpus answers.
const UNANSWERABLE: [&str; 10] = [
    "Who won the 1954 football world cup?",
    "What is the capital of Australia?",
    "How tall is Mount Kilimanjaro?",
    "Who painted the Mona Lisa?",
    "In which year did the Berlin Wall fall?",
    "What is the boiling point of ethanol?",
    "Who wrote the novel Moby-Dick?",
    "Which planet has the most moons?",
    "What is the speed of light in a vacuum?",
    "How many players are on a rugby union team?",
];
/// Askers at once in the throughput phase.
const ASKERS: usize = 8;
/// Tokens the service decodes in one step at most (its `BATCH_TOKENS`).
const BATCH_TOKENS: usize = 512;

/// One streamed answer.
struct Streamed {
    record: Value,
    /// From sending the request to the first `delta` event.
    first_delta: Option<Duration>,
}

/// One direct llama-cpp-2 generation, measured as the service measures.
struct DirectRun {
    prompt_tokens: usize,
    /// From the first prompt slice decoded to the first token sampled.
    prefill: Duration,
    /// Tokens generated (the end-of-text token not counted).
    generated: u32,
    /// From the first token sampled to the last.
    decode: Duration,
    text: String,
}

/// A prompt for the direct runs: the user message and its token budget.
struct DirectJob {
    user: String,
    max_tokens: u32,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The `p` quantile of `values`.
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n as f64 - 1.0) * p).round() as usize],
    }
}

fn ratio(value: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        value / reference
    } else {
        0.0
    }
}

/// The seconds a 429 asks to wait (1 when it does not say).
fn retry_after(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds)
}

/// Posts a question; waits out full queues (429). Returns the response and
/// how many times it was turned away.
async fn post_query(
    client: &Client,
    question: &str,
    stream: bool,
) -> anyhow::Result<(reqwest::Response, Instant, u32)> {
    let mut refused = 0;
    loop {
        let mut request = client
            .http
            .post(format!("{}/api/queries", client.base))
            .bearer_auth(&client.token)
            .json(&json!({ "query": question }));
        if stream {
            request = request.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let sent = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            tokio::time::sleep(retry_after(&response)).await;
            continue;
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("POST /api/queries {question:?}: {status} {body}");
        }
        return Ok((response, sent, refused));
    }
}

/// Asks `question` with `Accept: text/event-stream` and reads the events
/// to `done`.
async fn ask_streamed(client: &Client, question: &str) -> anyhow::Result<Streamed> {
    let (mut response, sent, _) = post_query(client, question, true).await?;
    let mut buffer: Vec<u8> = Vec::new();
    let mut first_delta = None;
    while let Some(bytes) = response.chunk().await? {
        buffer.extend_from_slice(&bytes);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let mut event = "";
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            match event {
                "delta" => {
                    first_delta.get_or_insert_with(|| sent.elapsed());
                }
                "done" => {
                    let record = serde_json::from_str(&data.join("\n"))
                        .context("the done event's record")?;
                    return Ok(Streamed {
                        record,
                        first_delta,
                    });
                }
                "error" => bail!("{question:?} streamed an error: {}", data.join("\n")),
                _ => {}
            }
        }
    }
    bail!("{question:?}: the stream ended before its done event")
}

/// Asks `question` for the whole JSON record.
async fn ask_json(client: &Client, question: &str) -> anyhow::Result<(Value, u32)> {
    let (response, _, refused) = post_query(client, question, false).await?;
    Ok((response.json().await?, refused))
}

/// The top 5 hits of a hybrid search: their whole chunk texts.
async fn top5(client: &Client, question: &str) -> anyhow::Result<Vec<String>> {
    let body = client.search(question, "hybrid").await?;
    let hits = body["hits"]
        .as_array()
        .with_context(|| format!("search {question:?} answered {body}"))?;
    Ok(hits
        .iter()
        .filter_map(|hit| hit["text"].as_str().map(str::to_owned))
        .collect())
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
fn whole_chunks_prompt(texts: &[String], question: &str) -> String {
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

fn timing(record: &Value, name: &str) -> f64 {
    record["timings"][name].as_f64().unwrap_or(0.0)
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
fn direct(
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

/// A figure beside its reference: one markdown row, and CSV columns
/// `{key}`, `{key}_ref`, `{key}_ratio`.
struct Figure {
    key: &'static str,
    label: String,
    pai: f64,
    reference: Option<f64>,
    target: &'static str,
}

fn figure(
    key: &'static str,
    label: impl Into<String>,
    pai: f64,
    reference: Option<f64>,
    target: &'static str,
) -> Figure {
    Figure {
        key,
        label: label.into(),
        pai,
        reference,
        target,
    }
}

/// Whole numbers as such, others with one decimal.
fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Prints `title` and the figures as a markdown table.
fn print_table(title: &str, figures: &[Figure]) {
    println!("\n{title}\n\n| figure | pai | reference | ratio | target |\n|---|---|---|---|---|");
    for f in figures {
        let (reference, ratio) = match f.reference {
            Some(r) => (number(r), format!("{:.2}", ratio(f.pai, r))),
            None => ("—".into(), "—".into()),
        };
        let pai = number(f.pai);
        println!(
            "| {} | {pai} | {reference} | {ratio} | {} |",
            f.label, f.target
        );
    }
}

/// Appends a row to `docs/benchmarks/ask.csv`, the header first when new.
fn append_csv(settings: &AskSettings, figures: &[Figure]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut columns = vec![
        ("date".to_owned(), date),
        ("recorded_in".to_owned(), recorded_in()),
        ("cpu".to_owned(), cpu()),
        ("threads".to_owned(), settings.llm.threads.to_string()),
        ("parallel".to_owned(), settings.llm.parallel.to_string()),
    ];
    for f in figures {
        columns.push((f.key.to_owned(), format!("{:.2}", f.pai)));
        if let Some(r) = f.reference {
            columns.push((format!("{}_ref", f.key), format!("{r:.2}")));
            columns.push((
                format!("{}_ratio", f.key),
                format!("{:.2}", ratio(f.pai, r)),
            ));
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks/ask.csv");
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    if new {
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        writeln!(file, "{}", names.join(","))?;
    }
    let values: Vec<String> = columns.iter().map(|(_, v)| v.replace(',', ";")).collect();
    writeln!(file, "{}", values.join(","))?;
    println!("\nappended a row to {}", path.display());
    Ok(())
}

/// The CPU's model name and this process's cores.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or("unknown CPU", |v| v.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{name} {cores} cores")
}

fn recorded_in() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Answers from [`ASKERS`] askers at once, `answers` in all, each asker
/// looping over `questions` from its own starting point. Returns the
/// records (with how often each was turned away) and the time they took.
async fn concurrent(
    client: &Client,
    questions: &[&str],
    answers: usize,
) -> anyhow::Result<(Vec<(Value, u32)>, Duration)> {
    let per_asker = answers.div_ceil(ASKERS);
    let started = Instant::now();
    let askers = (0..ASKERS).map(|asker| async move {
        let first = asker * questions.len() / ASKERS;
        let mut records = Vec::new();
        for i in 0..per_asker {
            let question = questions[(first + i) % questions.len()];
            records.push(ask_json(client, question).await?);
        }
        anyhow::Ok(records)
    });
    let mut all = Vec::new();
    for records in futures::future::join_all(askers).await {
        all.extend(records?);
    }
    Ok((all, started.elapsed()))
}

/// The direct run of each answered question's prompt: one more token than
/// pai generated unless it used its whole budget, so that the end-of-text
/// token is sampled (and timed) as in the service.
fn rebuilt_jobs(answered: &[&Streamed], max_tokens: u32) -> Vec<DirectJob> {
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

/// Prompt and generation tokens/s, summed over the answered questions.
fn speed(answered: &[&Streamed], runs: &[DirectRun]) -> Vec<Figure> {
    let (mut pai, mut direct) = ([0.0; 4], [0.0; 4]);
    let mut same_text = 0;
    for (streamed, run) in answered.iter().zip(runs) {
        let record = &streamed.record;
        let computed = timing(record, "prompt_tokens") - timing(record, "cached_prompt_tokens");
        let rate = timing(record, "prompt_tokens_per_s");
        if computed > 0.0 && rate > 0.0 {
            pai[0] += computed;
            pai[1] += computed / rate;
            direct[0] += run.prompt_tokens as f64;
            direct[1] += run.prefill.as_secs_f64();
        }
        let after_first = timing(record, "generated_tokens") - 1.0;
        let rate = timing(record, "generation_tokens_per_s");
        if after_first > 0.0 && rate > 0.0 && run.generated > 1 {
            pai[2] += after_first;
            pai[3] += after_first / rate;
            direct[2] += f64::from(run.generated - 1);
            direct[3] += run.decode.as_secs_f64();
        }
        // pai appends " [n]" for the passage it cites.
        let response = record["response"].as_str().unwrap_or_default().trim();
        let response = match response.rsplit_once(" [") {
            Some((text, n)) if n.ends_with(']') => text.trim(),
            _ => response,
        };
        same_text += usize::from(response == run.text.trim());
    }
    println!(
        "speed: {} answered questions one at a time; prompt tokens computed: pai {:.0} \
         (the chat template's opening comes from its cached prefix), direct {:.0} (all); \
         the direct greedy answer is pai's in {same_text} of them",
        answered.len(),
        pai[0],
        direct[0]
    );
    vec![
        figure(
            "prompt_tok_s",
            "prompt tokens/s (tokens computed)",
            ratio(pai[0], pai[1]),
            Some(ratio(direct[0], direct[1])),
            "≥ 0.95",
        ),
        figure(
            "generation_tok_s",
            "generation tokens/s (after the first)",
            ratio(pai[2], pai[3]),
            Some(ratio(direct[2], direct[3])),
            "≥ 0.95",
        ),
    ]
}

/// Time to first token, in the service and at the client, against the
/// direct prefill of the same prompts.
fn first_token(answered: &[&Streamed], runs: &[DirectRun]) -> Vec<Figure> {
    let of =
        |name: &str| -> Vec<f64> { answered.iter().map(|s| timing(&s.record, name)).collect() };
    let (inside, prompts, retrieval) = (
        of("first_token_ms"),
        of("prompt_tokens"),
        of("retrieval_ms"),
    );
    let client: Vec<f64> = answered
        .iter()
        .filter_map(|s| s.first_delta.map(millis))
        .collect();
    let prefill: Vec<f64> = runs.iter().map(|r| millis(r.prefill)).collect();
    let bound = 1.1 * quantile(&prefill, 0.5) + 100.0;
    let verdict = |values: &[f64]| {
        if quantile(values, 0.5) <= bound {
            "met"
        } else {
            "missed"
        }
    };
    println!(
        "first token: prompts p50 {:.0} / p99 {:.0} tokens, retrieval p50 {:.1} ms; \
         p50 target 1.1 × direct prefill + 100 ms = {bound:.0} ms: {} in the service, {} at the client",
        quantile(&prompts, 0.5),
        quantile(&prompts, 0.99),
        quantile(&retrieval, 0.5),
        verdict(&inside),
        verdict(&client)
    );
    let quantiles = [
        (
            0.5,
            "p50",
            ["first_token_p50_ms", "sse_first_delta_p50_ms"],
            "≤ 1.1 × ref + 100 ms",
        ),
        (
            0.99,
            "p99",
            ["first_token_p99_ms", "sse_first_delta_p99_ms"],
            "—",
        ),
    ];
    let mut figures = vec![
        figure(
            "prompt_tokens_p50",
            "prompt tokens p50",
            quantile(&prompts, 0.5),
            None,
            "—",
        ),
        figure(
            "prompt_tokens_p99",
            "prompt tokens p99",
            quantile(&prompts, 0.99),
            None,
            "—",
        ),
    ];
    for (p, name, [inside_key, client_key], target) in quantiles {
        let reference = Some(quantile(&prefill, p));
        figures.push(figure(
            inside_key,
            format!("first token {name}, `timings.first_token_ms` (ms; ref: direct prefill)"),
            quantile(&inside, p),
            reference,
            target,
        ));
        figures.push(figure(
            client_key,
            format!("first `delta` {name} at the client, SSE (ms; ref: direct prefill)"),
            quantile(&client, p),
            reference,
            target,
        ));
    }
    figures
}

/// Facts in pai's context, in its answers, cited from the right document;
/// the same model given whole chunks; refusals.
fn quality(
    facts: &[common::Fact],
    asked: &[Streamed],
    whole: &[DirectRun],
    documents: &HashMap<String, String>,
    refused: usize,
) -> Vec<Figure> {
    let (mut r, mut f, mut c, mut w) = (0, 0, 0, 0);
    for ((fact, streamed), whole) in facts.iter().zip(asked).zip(whole) {
        let record = &streamed.record;
        let answer = normalize(&fact.answer);
        let sources = record["sources"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let snippets: Vec<&str> = sources
            .iter()
            .filter_map(|s| s["snippet"].as_str())
            .collect();
        let response = record["response"].as_str().unwrap_or_default();
        let in_context = normalize(&snippets.join(" ")).contains(&answer);
        let in_answer = normalize(response).contains(&answer);
        let document = documents.get(&fact.file).map(String::as_str);
        let cited = sources
            .iter()
            .any(|s| s["cited"] == true && s["source_id"].as_str() == document);
        r += usize::from(in_context);
        f += usize::from(in_answer);
        c += usize::from(cited);
        w += usize::from(normalize(&whole.text).contains(&answer));
        if in_context && !in_answer {
            println!(
                "  in the context, not the answer: {:?} ({:?}) → {response:?}",
                fact.question, fact.answer
            );
        }
    }
    let n = facts.len();
    let count = |k: usize| k as f64;
    vec![
        figure(
            "in_context",
            format!("(r) fact in pai's context, of {n}"),
            count(r),
            None,
            "—",
        ),
        figure(
            "in_answer",
            format!("(f) fact in the answer, of {n} (ref: r)"),
            count(f),
            Some(count(r)),
            "≥ 0.9",
        ),
        figure(
            "cited_right",
            format!("(c) cited source is the fact's document, of {n} (ref: f)"),
            count(c),
            Some(count(f)),
            "≥ 0.9",
        ),
        figure(
            "refused",
            "refusals (`not_found`) of unanswerable questions",
            count(refused),
            Some(count(UNANSWERABLE.len())),
            "≥ 0.9",
        ),
        figure(
            "in_answer_vs_top5_whole",
            format!("(f) against the model given the top 5 chunks whole, of {n}"),
            count(f),
            Some(count(w)),
            "—",
        ),
    ]
}

/// Answers/min with [`ASKERS`] askers and with one, against the direct
/// runs one after another; the p99 of the time waited for a sequence.
fn throughput(
    concurrent: &[(Value, u32)],
    took: Duration,
    one_at_a_time: (usize, Duration),
    runs: &[DirectRun],
) -> Vec<Figure> {
    let per_min = |count: usize, time: Duration| 60.0 * count as f64 / time.as_secs_f64().max(1e-9);
    let direct_time: Duration = runs.iter().map(|r| r.prefill + r.decode).sum();
    let direct = per_min(runs.len(), direct_time);
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for (record, _) in concurrent {
        *statuses
            .entry(record["status"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let queue: Vec<f64> = concurrent
        .iter()
        .map(|(r, _)| timing(r, "queue_ms"))
        .collect();
    println!(
        "throughput: {} answers in {:.1} s ({statuses:?}, turned away with 429 {} times), \
         queue p50 {:.0} ms; reference: pai's prompts run directly one after another",
        concurrent.len(),
        took.as_secs_f64(),
        concurrent.iter().map(|(_, refused)| refused).sum::<u32>(),
        quantile(&queue, 0.5)
    );
    vec![
        figure(
            "answers_per_min",
            format!("answers/min, {ASKERS} askers"),
            per_min(concurrent.len(), took),
            Some(direct),
            "—",
        ),
        figure(
            "answers_per_min_1",
            "answers/min, 1 asker (streamed)",
            per_min(one_at_a_time.0, one_at_a_time.1),
            Some(direct),
            "—",
        ),
        figure(
            "queue_p99_ms",
            format!("`timings.queue_ms` p99, {ASKERS} askers"),
            quantile(&queue, 0.99),
            None,
            "—",
        ),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let max_questions: usize = args.first().map_or(Ok(usize::MAX), |n| n.parse())?;
    let answers: usize = args.get(1).map_or(Ok(48), |n| n.parse())?;
    let bench = Bench::start().await?;
    // The settings the stack's inference service runs with.
    let settings = AskSettings::from_env(&bench.env)?;
    let max_tokens = settings.limits.max_tokens;
    println!(
        "model {}: {} threads, {} sequences at once of {} tokens, answers of {max_tokens} tokens at most",
        settings.llm.model_path.display(),
        settings.llm.threads,
        settings.llm.parallel,
        settings.llm.context_tokens
    );
    let client = bench.user("asker").await?;

    // 1. The corpus.
    let started = Instant::now();
    let (files, rows) = client.ingest_corpus().await?;
    let documents: HashMap<String, String> = files
        .iter()
        .zip(&rows)
        .filter(|(_, row)| row["status"] == "indexed")
        .filter_map(|(file, row)| {
            let id = row["id"].as_str()?.to_owned();
            Some((file.file_name()?.to_str()?.to_owned(), id))
        })
        .collect();
    let all = facts("pdf")?;
    let total = all.len();
    let facts: Vec<common::Fact> = all
        .into_iter()
        .filter(|f| documents.contains_key(&f.file))
        .take(max_questions)
        .collect();
    println!(
        "ingest: {} of {} files indexed in {:.1} s; asking {} of the {total} facts (those of indexed documents)",
        documents.len(),
        files.len(),
        started.elapsed().as_secs_f64(),
        facts.len()
    );
    settle(Duration::from_secs(120)).await?;
    // Warm-up.
    ask_streamed(&client, &facts.first().context("no facts")?.question).await?;

    // 2. One question at a time, streamed.
    let started = Instant::now();
    let mut asked = Vec::new();
    for fact in &facts {
        asked.push(ask_streamed(&client, &fact.question).await?);
    }
    let one_at_a_time = (asked.len(), started.elapsed());
    let mut refused = 0;
    for question in UNANSWERABLE {
        let record = ask_streamed(&client, question).await?.record;
        if record["status"] == "not_found" {
            refused += 1;
        } else {
            println!(
                "  not refused: {question:?} → {}: {}",
                record["status"], record["response"]
            );
        }
    }
    let mut whole = Vec::new();
    for fact in &facts {
        let texts = top5(&client, &fact.question).await?;
        let user = whole_chunks_prompt(&texts, &fact.question);
        whole.push(DirectJob { user, max_tokens });
    }

    // 3. Askers at once.
    let questions: Vec<&str> = facts.iter().map(|f| f.question.as_str()).collect();
    let (together, took) = concurrent(&client, &questions, answers).await?;

    // 4. The same model called directly, the stack idle.
    settle(Duration::from_secs(30)).await?;
    let answered: Vec<&Streamed> = asked
        .iter()
        .filter(|s| s.record["status"] == "answered")
        .collect();
    let rebuilt = rebuilt_jobs(&answered, max_tokens);
    let llm = settings.llm.clone();
    let started = Instant::now();
    let (runs, whole_runs) = tokio::task::spawn_blocking(move || direct(&llm, &rebuilt, &whole))
        .await
        .context("the direct runs")??;
    println!(
        "direct: {} of pai's prompts and {} whole-chunk prompts in {:.1} s\n",
        runs.len(),
        whole_runs.len(),
        started.elapsed().as_secs_f64()
    );

    let speed = speed(&answered, &runs);
    let first = first_token(&answered, &runs);
    let quality = quality(&facts, &asked, &whole_runs, &documents, refused);
    let throughput = throughput(&together, took, one_at_a_time, &runs);
    print_table("### Speed, one question at a time", &speed);
    print_table("### Time to first token", &first);
    print_table(
        &format!(
            "### Answer quality ({} facts, {} unanswerable questions)",
            facts.len(),
            UNANSWERABLE.len()
        ),
        &quality,
    );
    print_table(
        &format!(
            "### Throughput ({ASKERS} askers, {} answers)",
            together.len()
        ),
        &throughput,
    );
    let figures: Vec<Figure> = [speed, first, quality, throughput]
        .into_iter()
        .flatten()
        .collect();
    append_csv(&settings, &figures)?;
    bench.finish().await
}
