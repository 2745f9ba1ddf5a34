//! Ask: answers from the real default LLM grounded on the user's own
//! documents, streamed, cited, refused when the data does not say, kept in
//! a per-user history, and queued fairly.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, corpus, normalize, spawn_app, spawn_app_with};

/// An event of a `text/event-stream` answer and when it arrived.
#[derive(Debug)]
struct Event {
    name: String,
    data: Value,
    at: Instant,
}

/// Reads server-sent events until the stream ends, or until `stop` says so
/// (then the connection is dropped).
async fn ask_stream(
    app: &TestApp,
    token: &str,
    body: Value,
    stop: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let response = app
        .http
        .post(app.url("/api/queries"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .expect("ask");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = bytes.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            let event = Event {
                name,
                data: serde_json::from_str(&data).expect("event data is JSON"),
                at: Instant::now(),
            };
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
    events
}

async fn ask(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .post("/api/queries", Some(token), json!({ "query": query }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn user_with(app: &TestApp, name: &str, files: &[&str]) -> (String, Vec<String>) {
    let user = app.register(name).await;
    let token = user["access_token"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for file in files {
        let doc = app.upload(&token, file).await;
        ids.push(doc["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let doc = app.wait_document(&token, id).await;
        assert_eq!(doc["status"], "indexed", "{doc}");
    }
    (token, ids)
}

/// The cited sources of an answer.
fn cited(answer: &Value) -> Vec<&Value> {
    answer["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["cited"] == true)
        .collect()
}

/// Facts of the corpus manifest (`testdata/pdf/facts.tsv`) with their file.
fn facts(files: &[&str]) -> Vec<(String, String, String)> {
    let manifest = std::fs::read_to_string(corpus("pdf/facts.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let file = fields.next()?.strip_prefix("dev/")?.to_owned();
            let question = fields.next()?.to_owned();
            let answer = fields.next()?.to_owned();
            files
                .contains(&file.as_str())
                .then_some((file, question, answer))
        })
        .collect()
}

#[tokio::test]
async fn answers_come_from_the_document_holding_the_fact_and_cite_it() {
    let app = spawn_app().await;
    let files = [
        "fin_aws_invoice_2014.pdf",
        "gen_crazy_ones_pdfa.pdf",
        "gen_scotus_transcript_p1.pdf",
    ];
    let (token, ids) = user_with(&app, "asker", &files).await;
    let by_file: std::collections::HashMap<&str, &str> = files
        .iter()
        .copied()
        .zip(ids.iter().map(String::as_str))
        .collect();

    let mut answered = 0;
    let facts = facts(&files);
    assert!(facts.len() >= 6, "{facts:?}");
    for (file, question, expected) in &facts {
        let holder = by_file[file.as_str()];
        let answer = ask(&app, &token, question).await;
        assert_eq!(answer["status"], "answered", "{question}: {answer}");
        assert_eq!(answer["query"], question.as_str());
        let sources: Vec<&str> = answer["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["source_id"].as_str())
            .collect();
        assert!(
            sources.contains(&holder),
            "{question}: the sources {sources:?} miss {file} ({holder})"
        );
        for source in answer["sources"].as_array().unwrap() {
            assert!(ids.contains(&source["source_id"].as_str().unwrap().to_owned()));
            assert_eq!(source["source_kind"], "document");
            assert!(source["page"].as_u64().unwrap() >= 1, "{source}");
            assert!(!source["snippet"].as_str().unwrap().is_empty());
        }
        // When the answer holds the fact, it cites the document holding it,
        // as [n] in the text.
        let response = answer["response"].as_str().unwrap();
        eprintln!("{question} -> {response:?} (expected {expected:?})");
        if normalize(response).contains(&normalize(expected)) {
            answered += 1;
            let cited = cited(&answer);
            assert_eq!(cited.len(), 1, "{question}: {answer}");
            assert_eq!(cited[0]["source_id"], holder, "{question}: {answer}");
            let marker = format!("[{}]", cited[0]["n"]);
            assert!(response.ends_with(&marker), "{response:?} lacks {marker}");
        }
        let timings = &answer["timings"];
        assert!(timings["prompt_tokens"].as_u64().unwrap() > 0, "{answer}");
        assert!(timings["generated_tokens"].as_u64().unwrap() > 0);
        assert!(timings["cached_prompt_tokens"].as_u64().unwrap() > 0);
        assert!(timings["first_token_ms"].as_f64().unwrap() > 0.0);
        assert!(answer["model"].as_str().unwrap().ends_with(".gguf"));
    }
    assert!(
        answered * 2 >= facts.len(),
        "only {answered} of {} answers hold their fact",
        facts.len()
    );

    // Streamed: token deltas arrive before the answer ends, the last event
    // carries the sources, and the deltas make up the stored response.
    let events = ask_stream(
        &app,
        &token,
        json!({"query": "What is the docket number of Knowles v. Mirzayance?"}),
        |_| false,
    )
    .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"started"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let deltas: Vec<&Event> = events.iter().filter(|e| e.name == "delta").collect();
    assert!(deltas.len() >= 2, "{names:?}");
    let done = events.last().unwrap();
    assert!(
        done.at.duration_since(deltas[0].at) > Duration::from_millis(10),
        "the first delta came with the end"
    );
    let streamed: String = deltas
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    let id = done.data["id"].as_str().unwrap();
    assert_eq!(events[0].data["query_id"], id);
    assert!(!done.data["sources"].as_array().unwrap().is_empty());
    let stored = app.get(&format!("/api/queries/{id}"), &token).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.body["response"], streamed.as_str());
    assert_eq!(done.data["response"], streamed.as_str());
    app.finish().await;
}

#[tokio::test]
async fn questions_the_data_cannot_answer_are_refused_without_citation() {
    let app = spawn_app().await;
    let (token, _) = user_with(&app, "refused", &["fin_aws_invoice_2014.pdf"]).await;
    for question in [
        "Who won the football world cup in 1954?",
        "What is the boiling point of liquid nitrogen?",
    ] {
        let answer = ask(&app, &token, question).await;
        assert_eq!(answer["status"], "not_found", "{question}: {answer}");
        assert!(
            answer["response"]
                .as_str()
                .unwrap()
                .starts_with("Your data does not say"),
            "{answer}"
        );
        assert!(cited(&answer).is_empty(), "{answer}");
        assert_eq!(answer["model"], "", "the model was not called: {answer}");
        assert_eq!(answer["timings"]["generated_tokens"], 0);
    }
    // Someone with no data at all gets the same answer.
    let empty = app.register("nodata").await;
    let answer = ask(
        &app,
        empty["access_token"].as_str().unwrap(),
        "What is the AWS invoice number?",
    )
    .await;
    assert_eq!(answer["status"], "not_found", "{answer}");
    app.finish().await;
}

#[tokio::test]
async fn history_is_the_callers_own_and_bad_questions_are_refused() {
    let app = spawn_app().await;
    let (alice, docs) = user_with(&app, "alice", &["fin_aws_invoice_2014.pdf"]).await;
    let bob = app.register("bob").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();

    // Bob asks about Alice's document: nothing of hers is a source.
    let answer = ask(&app, &bob, "What is the AWS invoice number?").await;
    assert_eq!(answer["status"], "not_found", "{answer}");
    assert!(answer["sources"].as_array().unwrap().is_empty());

    let first = ask(&app, &alice, "What is the AWS invoice number?").await;
    let second = ask(
        &app,
        &alice,
        "What is the total amount due on the AWS invoice?",
    )
    .await;
    for answer in [&first, &second] {
        for source in answer["sources"].as_array().unwrap() {
            assert_eq!(source["source_id"], docs[0].as_str());
        }
    }
    // Newest first, a page at a time.
    let page = app.get("/api/queries?limit=1", &alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["queries"][0]["id"], second["id"]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let page = app
        .get(&format!("/api/queries?limit=1&cursor={cursor}"), &alice)
        .await;
    assert_eq!(page.body["queries"][0]["id"], first["id"]);
    assert_eq!(
        page.body["queries"][0]["response"], first["response"],
        "{}",
        page.body
    );

    // Bob sees none of it.
    let listed = app.get("/api/queries", &bob).await;
    let ids: Vec<&Value> = listed.body["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| &q["id"])
        .collect();
    assert_eq!(ids, [&answer["id"]], "{}", listed.body);
    let id = first["id"].as_str().unwrap();
    app.get(&format!("/api/queries/{id}"), &bob)
        .await
        .assert_problem(404);
    app.delete(&format!("/api/queries/{id}"), &bob, None)
        .await
        .assert_problem(404);
    // Alice forgets one.
    let r = app
        .delete(&format!("/api/queries/{id}"), &alice, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    app.get(&format!("/api/queries/{id}"), &alice)
        .await
        .assert_problem(404);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inference.queries WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(rows, 0);

    // Empty and oversized questions.
    for query in ["", "   ", &"why ".repeat(300)] {
        app.post("/api/queries", Some(&alice), json!({ "query": query }))
            .await
            .assert_problem(422);
    }

    // Deleting the account erases the history.
    app.delete_account(&alice).await;
    let mut left = 1;
    for _ in 0..200 {
        left = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM inference.queries")
            .fetch_one(&app.db)
            .await
            .unwrap()
            - 1; // Bob's
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "Alice's queries outlived her account");
    app.finish().await;
}

#[tokio::test]
async fn a_dropped_stream_stops_its_generation() {
    let app = spawn_app_with(Options::default().var("ASK_MAX_TOKENS", "200")).await;
    let (token, _) = user_with(&app, "dropper", &["gen_crazy_ones_pdfa.pdf"]).await;
    let body = json!({
        "query": "Quote everything about the crazy ones, the misfits, the rebels and the troublemakers, word by word."
    });
    // Read up to the first token, then hang up.
    let events = ask_stream(&app, &token, body, |e| e.name == "delta").await;
    let id = events[0].data["query_id"].as_str().unwrap().to_owned();
    let mut stored = Value::Null;
    for _ in 0..400 {
        stored = app.get(&format!("/api/queries/{id}"), &token).await.body;
        if stored["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stored["status"], "cancelled", "{stored}");
    assert!(
        stored["timings"]["generated_tokens"].as_u64().unwrap() < 200,
        "{stored}"
    );
    // The generation thread frees the sequence at its next step.
    let mut counted = false;
    for _ in 0..200 {
        let metrics = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        counted = metrics
            .lines()
            .any(|l| l.starts_with("pai_inference_generations_total{stop=\"cancelled\"}"));
        if counted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "no cancelled generation in the metrics");
    app.finish().await;
}

#[tokio::test]
async fn one_users_flood_does_not_starve_another() {
    let app = spawn_app_with(
        Options::default()
            .var("ASK_PARALLEL", "1")
            .var("ASK_MAX_TOKENS", "6"),
    )
    .await;
    let (flooder, _) = user_with(&app, "flooder", &["gen_crazy_ones_pdfa.pdf"]).await;
    let (other, _) = user_with(&app, "other", &["gen_crazy_ones_pdfa.pdf"]).await;
    let question = "Who are described as the round pegs?";
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url, token, finished) = (
            app.http.clone(),
            app.url("/api/queries"),
            flooder.clone(),
            std::sync::Arc::clone(&finished),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": question }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            finished.lock().unwrap().push(format!("flood{i}"));
        }));
    }
    // The flood is queued before the other user asks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = ask(&app, &other, question).await;
    assert_eq!(answer["status"], "answered", "{answer}");
    let before = finished.lock().unwrap().len();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        before < 10,
        "the other user waited for {before} of the flood's 20 answers"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let app = spawn_app_with(
        Options::default()
            .var("ASK_PARALLEL", "1")
            .var("ASK_QUEUE_MAX", "1")
            .var("ASK_MAX_TOKENS", "4"),
    )
    .await;
    let (token, _) = user_with(&app, "busy", &["gen_crazy_ones_pdfa.pdf"]).await;
    let asks = (0..6).map(|_| {
        let (http, url, token) = (app.http.clone(), app.url("/api/queries"), token.clone());
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"query": "Who are described as the round pegs?"}))
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures::future::join_all(asks).await;
    let busy: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!busy.is_empty(), "six questions fit a queue of one");
    for r in &busy {
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    assert!(responses.iter().any(|r| r.status() == StatusCode::OK));
    app.finish().await;
}

/// `pai run --service inference` with a missing or corrupt model stops with
/// one line naming the variable and the path.
#[tokio::test]
async fn a_missing_or_corrupt_model_stops_start_up_naming_the_path() {
    let dir = std::env::temp_dir().join(format!("pai-llm-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("truncated.gguf");
    let model = crate::helpers::llm_path();
    let head: Vec<u8> = std::fs::read(&model)
        .unwrap()
        .into_iter()
        .take(64 * 1024)
        .collect();
    std::fs::write(&corrupt, head).unwrap();
    let missing = dir.join("missing.gguf");
    for path in [&missing, &corrupt] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pai"))
            .args(["run", "--no-migrate", "--service", "inference"])
            .env("LLM_MODEL_PATH", path)
            .env("EMBEDDING_MODEL_PATH", crate::helpers::model_path())
            .env("JWT_SECRET_KEY", "Kq3v9ZxR2mTt7LpW8yNc4HbF6jDs1GaE")
            .env("INFERENCE_GRPC_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", crate::helpers::admin_db_url())
            .env("RUST_LOG", "off")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("pai run stopped")
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .find(|l| l.contains(&path.display().to_string()))
            .unwrap_or_else(|| panic!("no line names {}: {stderr}", path.display()));
        assert!(line.contains("LLM_MODEL_PATH"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
