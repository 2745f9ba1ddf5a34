//! `make bench-mail`: a full Gmail sync of `COUNT` (default 10,000)
//! generated messages from the fake Google, through the whole stack in one
//! release process, against two references measured in this same run:
//!
//! - sync: messages/s from the connect callback until the account's first
//!   sync ended (list + fetch + parse + classify + store + enqueue), against
//!   the raw MIME parse rate of the same bytes (`pai_email::parse` in a
//!   loop, one core; target ≥ 0.5);
//! - searchable: messages/s from the callback until every email is indexed
//!   (chunked, embedded, stored in `search.chunks`, in tantivy and usearch),
//!   against the embedding rate of the same text (each message's searchable
//!   text chunked as the ingest does, embedded directly in batches of the
//!   service's bulk size; target ≥ 0.8);
//! - and, to show what bounds the sync, the fetch-only rate: every message
//!   fetched from the fake (`format=raw`, as many at a time as the sync),
//!   nothing parsed or stored.
//!
//! ```text
//! cargo run --release -p pai --example bench_mail [COUNT]
//! ```

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use common::Bench;
use futures::{StreamExt, TryStreamExt};
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, GenerateOptions, Mailbox};
use pai_inference::{BatchSizes, Embedder};
use serde_json::Value;

const ADDRESS: &str = "owner@example.com";
/// The sync's `messages.get` concurrency (services/mail-sync/src/sync.rs).
const FETCH_CONCURRENCY: usize = 8;

/// Raw MIME parse rate: messages/s of `pai_email::parse` over `messages`.
/// Returns it with the searchable text of each message.
fn parse_rate(messages: &[(String, Vec<u8>)]) -> anyhow::Result<(f64, Vec<String>)> {
    let limits = pai_email::Limits::default();
    let started = Instant::now();
    let mut parsed = Vec::with_capacity(messages.len());
    for (name, raw) in messages {
        parsed.push(pai_email::parse(raw, &limits).with_context(|| format!("parsing {name}"))?);
    }
    let rate = messages.len() as f64 / started.elapsed().as_secs_f64();
    Ok((
        rate,
        parsed.iter().map(pai_email::searchable_text).collect(),
    ))
}

/// Embedding rate: messages/s embedding every chunk of `texts` directly.
fn embedding_rate(texts: &[String]) -> anyhow::Result<(f64, usize)> {
    let home = std::env::var("HOME").unwrap_or_default();
    let model = std::env::var("EMBEDDING_MODEL_PATH")
        .unwrap_or_else(|_| format!("{home}/.cache/pai/models/all-minilm-l6-v2"));
    let embedder = Embedder::load(Path::new(&model))?;
    let chunks: Vec<String> = texts
        .iter()
        .flat_map(|text| {
            let page = pai_extract::Page {
                number: 1,
                text: text.clone(),
            };
            pai_extract::chunk(
                &[page],
                pai_extract::DEFAULT_TARGET_WORDS,
                pai_extract::DEFAULT_OVERLAP_WORDS,
            )
            .into_iter()
            .map(|chunk| chunk.text)
        })
        .collect();
    let started = Instant::now();
    for batch in chunks.chunks(BatchSizes::default().bulk) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        embedder.embed(&refs)?;
    }
    Ok((
        texts.len() as f64 / started.elapsed().as_secs_f64(),
        chunks.len(),
    ))
}

/// Connects the fake's mailbox as a new user; returns the client and the
/// moment the browser came back to pai (when the first sync is queued).
async fn connect(bench: &Bench) -> anyhow::Result<(common::Client, String, Instant)> {
    let client = bench.user("mailbench").await?;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started: Value = bench
        .http
        .get(format!(
            "{}/api/gmail/connect?login_hint={ADDRESS}",
            bench.base
        ))
        .bearer_auth(&client.token)
        .send()
        .await?
        .json()
        .await?;
    let consent = started["authorization_url"]
        .as_str()
        .with_context(|| format!("connect answered {started}"))?;
    let google = no_redirects.get(consent).send().await?;
    let back = reqwest::Url::parse(
        google
            .headers()
            .get("location")
            .context("Google did not redirect")?
            .to_str()?,
    )?;
    let at = Instant::now();
    let landed = no_redirects
        .get(format!(
            "{}{}?{}",
            bench.base,
            back.path(),
            back.query().unwrap_or_default()
        ))
        .send()
        .await?;
    let location = landed
        .headers()
        .get("location")
        .context("the callback did not redirect")?
        .to_str()?;
    let account = location
        .strip_prefix("/mail/?connected=")
        .with_context(|| format!("not connected: {location}"))?
        .to_owned();
    Ok((client, account, at))
}

/// Fetch-only rate: messages/s of `messages.get` (`format=raw`) over the
/// whole mailbox with the sync's concurrency, storing nothing: how fast
/// pai could go if storing cost nothing.
async fn fetch_rate(
    google: &pai_fake_google::FakeGoogleHandle,
    config: &FakeGoogleConfig,
) -> anyhow::Result<f64> {
    let endpoints = pai_gmail::GoogleEndpoints {
        auth_url: google.auth_url(),
        token_url: google.token_url(),
        revoke_url: google.revoke_url(),
        api_base_url: google.base_url(),
    };
    let oauth = pai_gmail::OAuthClient::new(
        &config.client_id,
        &config.client_secret,
        "http://127.0.0.1:9/api/gmail/callback",
        &endpoints,
    )?;
    let consent = oauth.authorization(Some(ADDRESS));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let back = no_redirects.get(&consent.url).send().await?;
    let back = reqwest::Url::parse(
        back.headers()
            .get("location")
            .context("Google did not redirect")?
            .to_str()?,
    )?;
    let code = back
        .query_pairs()
        .find(|(name, _)| name == "code")
        .context("no code")?
        .1
        .into_owned();
    let tokens = oauth.exchange_code(&code, &consent.pkce_verifier).await?;
    let gmail = pai_gmail::GmailClient::new(reqwest::Client::new(), &endpoints.api_base_url)?;
    let ids = google.message_ids(ADDRESS);
    let started = Instant::now();
    let token = tokens.access_token.as_str();
    let fetched: Vec<_> = futures::stream::iter(&ids)
        .map(|id| gmail.get_raw(token, id))
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    anyhow::ensure!(
        fetched.len() == ids.len(),
        "fetched {} of {}",
        fetched.len(),
        ids.len()
    );
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

async fn account(client: &common::Client, id: &str) -> anyhow::Result<Value> {
    let body: Value = client
        .http
        .get(format!("{}/api/mail/accounts", client.base))
        .bearer_auth(&client.token)
        .send()
        .await?
        .json()
        .await?;
    body["accounts"]
        .as_array()
        .and_then(|accounts| accounts.iter().find(|a| a["id"] == id))
        .cloned()
        .with_context(|| format!("account {id} not listed: {body}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let messages = pai_fake_google::generate_messages(&GenerateOptions {
        count,
        seed: 31,
        reply_every: 4,
        attachment: None,
        attachment_every: 0,
    });
    let bytes: usize = messages.iter().map(|(_, raw)| raw.len()).sum();
    println!(
        "{count} generated messages, {:.1} MiB of MIME",
        bytes as f64 / (1024.0 * 1024.0)
    );

    let (parse_per_s, texts) = parse_rate(&messages)?;
    let (embed_per_s, chunks) = embedding_rate(&texts)?;
    println!("reference: MIME parse {parse_per_s:.0} messages/s (one core, in process)");
    println!(
        "reference: embedding {embed_per_s:.1} messages/s ({chunks} chunks, direct, batches of {})",
        BatchSizes::default().bulk
    );

    let config = FakeGoogleConfig::default();
    let fake =
        FakeGoogle::new(config.clone()).with_mailbox(ADDRESS, Mailbox::from_messages(messages));
    let (_, google) = pai_fake_google::spawn(fake).await;
    let bench = Bench::start_with(&[
        ("GMAIL_CLIENT_ID", config.client_id.clone()),
        ("GMAIL_CLIENT_SECRET", config.client_secret.clone()),
        (
            "GMAIL_REDIRECT_URI",
            "http://127.0.0.1:9/api/gmail/callback".into(),
        ),
        ("GOOGLE_AUTH_URL", google.auth_url()),
        ("GOOGLE_TOKEN_URL", google.token_url()),
        ("GOOGLE_REVOKE_URL", google.revoke_url()),
        ("GMAIL_API_BASE_URL", google.base_url()),
        (
            "MAIL_TOKEN_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        ),
        ("MAIL_SYNC_INTERVAL_SECS", "86400".into()),
    ])
    .await?;
    let database = bench.env.get("DATABASE_URL").context("no DATABASE_URL")?;
    let pool = sqlx::PgPool::connect(database).await?;

    let (client, id, started) = connect(&bench).await?;
    let mut synced: Option<(Duration, u64)> = None;
    let searchable = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if synced.is_none() {
            let account = account(&client, &id).await?;
            match account["state"].as_str() {
                Some("active") if account["last_sync_at"].is_string() => {
                    synced = Some((started.elapsed(), account["messages"].as_u64().unwrap_or(0)));
                }
                Some("active" | "syncing") => {}
                _ => bail!("the sync failed: {account}"),
            }
        }
        let (queued, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE index_status = 'queued'), \
                    count(*) FILTER (WHERE index_status = 'failed') FROM mail.emails",
        )
        .fetch_one(&pool)
        .await?;
        anyhow::ensure!(failed == 0, "{failed} emails failed to index");
        if synced.is_some() && queued == 0 {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(7200),
            "not searchable after two hours ({queued} queued)"
        );
    };
    let (sync_time, stored) = synced.context("never synced")?;
    anyhow::ensure!(
        stored == count as u64,
        "the sync stored {stored} of {count} messages"
    );
    // A spot check that "searchable" means found: a late message's subject.
    let probe = format!("Message {}", count.saturating_sub(2));
    let hits = client.search(&probe, "bm25").await?;
    anyhow::ensure!(
        hits["hits"]
            .as_array()
            .is_some_and(|h| h.iter().any(|hit| hit["source"]["title"]
                .as_str()
                .is_some_and(|t| t.contains(&format!("{probe}:"))))),
        "a search for {probe:?} did not find it: {hits}"
    );

    let sync_per_s = count as f64 / sync_time.as_secs_f64();
    let searchable_per_s = count as f64 / searchable.as_secs_f64();
    println!(
        "full sync: {count} messages in {:.1} s = {sync_per_s:.0} messages/s; ratio to MIME parse {:.3} (target ≥ 0.5)",
        sync_time.as_secs_f64(),
        sync_per_s / parse_per_s
    );
    println!(
        "searchable: all {count} in {:.1} s = {searchable_per_s:.1} messages/s; ratio to embedding {:.3} (target ≥ 0.8)",
        searchable.as_secs_f64(),
        searchable_per_s / embed_per_s
    );
    let fetch_per_s = fetch_rate(&google, &config).await?;
    println!(
        "reference: fetch only {fetch_per_s:.0} messages/s (messages.get, {FETCH_CONCURRENCY} at a time, nothing stored); sync / fetch {:.3}",
        sync_per_s / fetch_per_s
    );
    println!(
        "fake Google calls: {:?}",
        google
            .counters()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    );
    pool.close().await;
    bench.finish().await
}
