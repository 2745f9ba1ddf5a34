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

#[path = "../common/mod.rs"]
mod common;
mod direct;
mod figures;
mod report;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::{Bench, Client, facts, settle};
use direct::{DirectJob, direct, rebuilt_jobs, whole_chunks_prompt};
use figures::{first_token, quality, speed, throughput};
use pai_inference::AskSettings;
use report::{Figure, append_csv, print_table};
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

/// One streamed answer.
struct Streamed {
    record: Value,
    /// From sending the request to the first `delta` event.
    first_delta: Option<Duration>,
}

fn timing(record: &Value, name: &str) -> f64 {
    record["timings"][name].as_f64().unwrap_or(0.0)
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
