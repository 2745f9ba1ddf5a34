//! The benchmark's figures, pai beside the direct reference: speed, time
//! to first token, answer quality, throughput.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, normalize};
use crate::direct::DirectRun;
use crate::report::{Figure, figure, ratio};
use crate::{ASKERS, Streamed, UNANSWERABLE, timing};

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

/// Prompt and generation tokens/s, summed over the answered questions.
pub fn speed(answered: &[&Streamed], runs: &[DirectRun]) -> Vec<Figure> {
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
pub fn first_token(answered: &[&Streamed], runs: &[DirectRun]) -> Vec<Figure> {
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
pub fn quality(
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
pub fn throughput(
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
