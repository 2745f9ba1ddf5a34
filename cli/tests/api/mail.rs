//! Mail end to end against the fake Google (`pai-fake-google`, Google's
//! real wire format): connecting with PKCE, tokens sealed at rest, full and
//! incremental sync, refresh, backoff, resync, re-consent, threads,
//! search, isolation and removal.

use std::time::Duration;

use base64::Engine;
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, FakeGoogleHandle, Mailbox};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Options, TestApp, corpus, spawn_app_with};

const KEY: [u8; 32] = [7; 32];
/// Messages in the e-mail corpus (77 files, and an mbox of 21).
const CORPUS_MESSAGES: u64 = 98;

pub(crate) struct Mail {
    pub(crate) app: TestApp,
    pub(crate) google: FakeGoogleHandle,
}

async fn mail_app(mailboxes: &[&str], extra: &[(&'static str, &str)]) -> Mail {
    let mut fake = FakeGoogle::new(FakeGoogleConfig::default());
    for address in mailboxes {
        fake = fake.with_mailbox(
            *address,
            Mailbox::from_eml_dir(corpus("email/dev")).expect("the corpus loads"),
        );
    }
    serve(fake, extra).await
}

/// The stack against `fake`, the fake Google, with `extra` settings.
pub(crate) async fn serve(fake: FakeGoogle, extra: &[(&'static str, &str)]) -> Mail {
    let (_, google) = pai_fake_google::spawn(fake).await;
    let mut options = google_options(&google);
    for (name, value) in extra {
        options = options.var(name, *value);
    }
    Mail {
        app: spawn_app_with(options).await,
        google,
    }
}

/// The settings that point mail-sync at the fake Google, with a token key
/// and no scheduled sync during a test.
pub(crate) fn google_options(google: &FakeGoogleHandle) -> Options {
    let config = FakeGoogleConfig::default();
    Options::default()
        .var("GMAIL_CLIENT_ID", config.client_id.clone())
        .var("GMAIL_CLIENT_SECRET", config.client_secret.clone())
        .var(
            "GMAIL_REDIRECT_URI",
            "http://127.0.0.1:9/api/gmail/callback",
        )
        .var("GOOGLE_AUTH_URL", google.auth_url())
        .var("GOOGLE_TOKEN_URL", google.token_url())
        .var("GOOGLE_REVOKE_URL", google.revoke_url())
        .var("GMAIL_API_BASE_URL", google.base_url())
        .var(
            "MAIL_TOKEN_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode(KEY),
        )
        .var("MAIL_BACKOFF_BASE_MS", "5")
        .var("MAIL_SYNC_INTERVAL_SECS", "3600")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asks for the consent URL and follows Google's redirect; returns the
/// callback path (with `state` and `code`) the browser would be sent to.
async fn consent(mail: &Mail, token: &str, login_hint: &str) -> String {
    let started = mail
        .app
        .get(
            &format!("/api/gmail/connect?login_hint={login_hint}"),
            token,
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let url = started.body["authorization_url"].as_str().unwrap();
    let google = no_redirects().get(url).send().await.unwrap();
    assert_eq!(google.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(google.headers()["location"].to_str().unwrap()).unwrap();
    format!("{}?{}", location.path(), location.query().unwrap())
}

/// The browser's return to pai: the redirect target (`/mail/?...`).
async fn callback(mail: &Mail, path: &str) -> String {
    let r = no_redirects().get(mail.app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The `error` the mail page is sent with, decoded.
async fn callback_error(mail: &Mail, path: &str) -> String {
    let landed = callback(mail, path).await;
    let url = reqwest::Url::parse(&format!("http://pai{landed}")).unwrap();
    url.query_pairs()
        .find(|(name, _)| name == "error")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no error in {landed}"))
}

pub(crate) async fn connect(mail: &Mail, token: &str, address: &str) -> String {
    let path = consent(mail, token, address).await;
    let landed = callback(mail, &path).await;
    landed
        .strip_prefix("/mail/?connected=")
        .unwrap_or_else(|| panic!("not connected: {landed}"))
        .to_owned()
}

async fn account(mail: &Mail, token: &str, id: &str) -> Value {
    let r = mail.app.get("/api/mail/accounts", token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("account {id} not listed: {}", r.body))
}

/// Waits until the account's first sync ended (a `last_sync_at`, or an
/// error state) and returns it.
pub(crate) async fn synced(mail: &Mail, token: &str, id: &str) -> Value {
    wait_for(mail, token, id, |account| match account["state"].as_str() {
        Some("active") => account["last_sync_at"].is_string(),
        Some("syncing") => false,
        _ => true,
    })
    .await
}

/// Polls the account until `done` says so; returns it.
async fn wait_for(mail: &Mail, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let account = account(mail, token, id).await;
        if done(&account) {
            return account;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("account {id} never got there");
}

/// Asks for a sync and waits until it ended: a new `last_sync_at`, or a
/// state other than the one before (an error, re-consent).
pub(crate) async fn sync_now(mail: &Mail, token: &str, id: &str) -> Value {
    let before = account(mail, token, id).await;
    let r = mail
        .app
        .post(
            &format!("/api/mail/accounts/{id}/sync"),
            Some(token),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    wait_for(mail, token, id, |account| {
        let state = account["state"].as_str().unwrap_or_default();
        state != "syncing"
            && (account["last_sync_at"] != before["last_sync_at"]
                || account["state"] != before["state"]
                || account["last_error"] != before["last_error"])
    })
    .await
}

/// Waits until every stored email is indexed, with its PDF attachments (as
/// long as a document may take: a loaded machine is slow).
pub(crate) async fn all_indexed(app: &TestApp) {
    let mut queued: i64 = 0;
    for _ in 0..6000 {
        queued =
            sqlx::query_scalar("SELECT count(*) FROM mail.emails WHERE index_status <> 'indexed'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{queued} emails still not indexed after 10 minutes");
}

fn reply_to(parent_message_id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Carol Reply <carol@example.org>\r\nTo: owner@example.com\r\n\
         Subject: Re: {subject}\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <reply-{}@example.org>\r\nIn-Reply-To: <{parent_message_id}>\r\n\
         References: <{parent_message_id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        uuid::Uuid::new_v4().simple()
    )
    .into_bytes()
}

#[tokio::test]
async fn connect_sync_incrementally_thread_and_search_mail() {
    let mail = mail_app(&["owner@example.com"], &[]).await;
    let token = mail.app.register("mailer").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Consent: PKCE S256, offline access, read-only scope.
    let path = consent(&mail, &token, "owner@example.com").await;
    let asked = mail.google.last_authorization().unwrap();
    assert_eq!(asked.code_challenge_method.as_deref(), Some("S256"));
    assert!(
        asked
            .code_challenge
            .as_deref()
            .is_some_and(|c| c.len() >= 43)
    );
    assert_eq!(asked.access_type.as_deref(), Some("offline"));
    assert_eq!(
        asked.scope.as_deref(),
        Some("https://www.googleapis.com/auth/gmail.readonly")
    );
    let landed = callback(&mail, &path).await;
    let id = landed.strip_prefix("/mail/?connected=").unwrap().to_owned();
    // The state is single use, and a forged one names no one.
    assert!(callback_error(&mail, &path).await.contains("already used"));
    assert!(
        callback_error(&mail, "/api/gmail/callback?state=forged&code=x")
            .await
            .contains("unknown")
    );

    // The tokens are stored sealed: only the key opens them.
    let grant = mail.google.grants().pop().unwrap();
    let refresh = grant.refresh_token.unwrap();
    let (sealed, key_id, user_id): (Vec<u8>, String, uuid::Uuid) = sqlx::query_as(
        "SELECT refresh_token, key_id, user_id FROM mail.email_accounts WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mail.app.db)
    .await
    .unwrap();
    assert!(
        !sealed
            .windows(refresh.len())
            .any(|w| w == refresh.as_bytes())
    );
    let ring = pai_mail_sync::crypto::KeyRing::new(
        &base64::engine::general_purpose::STANDARD.encode(KEY),
        &[],
    )
    .unwrap();
    let context = format!("{user_id}:owner@example.com:refresh");
    assert_eq!(
        ring.open_string(&key_id, &sealed, context.as_bytes())
            .unwrap(),
        refresh
    );
    let other = pai_mail_sync::crypto::KeyRing::new(
        &base64::engine::general_purpose::STANDARD.encode([8u8; 32]),
        &[],
    )
    .unwrap();
    assert!(other.open(&key_id, &sealed, context.as_bytes()).is_err());

    // The first sync is full: every corpus message, fetched once.
    let first = synced(&mail, &token, &id).await;
    assert_eq!(first["state"], "active", "{first}");
    assert_eq!(first["messages"], CORPUS_MESSAGES, "{first}");
    assert_eq!(mail.google.count("users.messages.get"), CORPUS_MESSAGES);
    let listed = mail.app.get("/api/emails?limit=200", &token).await;
    let emails = listed.body["emails"].as_array().unwrap();
    assert_eq!(emails.len() as u64, CORPUS_MESSAGES);
    assert!(emails.iter().all(|e| e["classification"].is_string()));

    // Every email is indexed, and so is the text of PDF attachments.
    all_indexed(&mail.app).await;
    let pdfs: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM mail.email_attachments WHERE content_type = 'application/pdf'",
    )
    .fetch_all(&mail.app.db)
    .await
    .unwrap();
    assert!(!pdfs.is_empty());
    assert!(
        pdfs.iter()
            .all(|(_, status)| status == "indexed" || status == "failed"),
        "{pdfs:?}"
    );
    let indexed: Vec<uuid::Uuid> = pdfs
        .iter()
        .filter(|(_, status)| status == "indexed")
        .map(|(id, _)| *id)
        .collect();
    let chunks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM search.chunks WHERE source_kind = 'email' AND source_id = ANY($1)",
    )
    .bind(&indexed)
    .fetch_one(&mail.app.db)
    .await
    .unwrap();
    assert!(
        !indexed.is_empty() && chunks > 0,
        "{pdfs:?}, {chunks} chunks"
    );

    // A reply arrives and a message is deleted: the next sync reads the
    // history and fetches only the new message.
    let parent = emails
        .iter()
        .find(|e| {
            e["message_id"].is_string() && e["subject"].as_str().is_some_and(|s| !s.is_empty())
        })
        .unwrap();
    let parent = mail
        .app
        .get(
            &format!("/api/emails/{}", parent["id"].as_str().unwrap()),
            &token,
        )
        .await
        .body;
    let new_id = mail
        .google
        .add_message(
            "owner@example.com",
            reply_to(
                parent["message_id"].as_str().unwrap(),
                parent["subject"].as_str().unwrap(),
                "The quartermaster code for the harbour shed is PLOVER-7731.",
            ),
            &["INBOX"],
        )
        .unwrap();
    let doomed = mail
        .google
        .message_ids("owner@example.com")
        .into_iter()
        .find(|m| *m != new_id)
        .unwrap();
    assert!(mail.google.delete_message("owner@example.com", &doomed));
    mail.google.reset_counters();
    let second = sync_now(&mail, &token, &id).await;
    assert_eq!(second["state"], "active", "{second}");
    assert_eq!(second["messages"], CORPUS_MESSAGES, "{second}");
    assert_eq!(mail.google.count("users.messages.get"), 1);
    assert_eq!(mail.google.count("users.messages.list"), 0);
    assert!(mail.google.count("users.history.list") >= 1);

    // The reply is in its parent's thread.
    let thread_id = parent["thread_id"].as_str().unwrap();
    let thread = mail
        .app
        .get(&format!("/api/emails/threads/{thread_id}"), &token)
        .await;
    assert_eq!(thread.status, StatusCode::OK, "{}", thread.body);
    let subjects: Vec<&str> = thread.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        subjects.iter().any(|t| t.contains("PLOVER-7731")),
        "{}",
        thread.body
    );

    // Searchable once indexed, as an email.
    let mut found = Value::Null;
    for _ in 0..600 {
        let r = mail
            .app
            .get(
                "/api/search?q=PLOVER-7731%20quartermaster&mode=bm25",
                &token,
            )
            .await;
        if r.body["hits"].as_array().is_some_and(|h| !h.is_empty()) {
            found = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found["hits"][0]["source"]["kind"], "email", "{found}");
    assert!(
        found["hits"][0]["text"]
            .as_str()
            .unwrap()
            .contains("PLOVER-7731")
    );

    // Answers draw on mail too; an email source names its subject, sender
    // and date.
    let answer = mail
        .app
        .post(
            "/api/queries",
            Some(&token),
            serde_json::json!({ "query": "What is the codename of Ximian Evolution 0.10?" }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sources = answer.body["sources"].as_array().unwrap();
    let ximian = sources
        .iter()
        .find(|s| s["source_kind"] == "email" && s["title"].as_str().unwrap().contains("Ximian"))
        .unwrap_or_else(|| panic!("no Ximian email among the sources: {}", answer.body));
    assert!(
        ximian["title"].as_str().unwrap().contains("2001-"),
        "{}",
        ximian["title"]
    );
    if answer.body["status"] == "answered" {
        let cited: Vec<&Value> = sources.iter().filter(|s| s["cited"] == true).collect();
        assert!(
            cited.iter().all(|s| s["source_kind"] == "email"),
            "{}",
            answer.body
        );
    }
    mail.app.finish().await;
}

#[tokio::test]
async fn refresh_backoff_resync_and_reauth_keep_the_account_right() {
    let mail = mail_app(&["owner@example.com"], &[("MAIL_CONNECT_TTL_SECS", "1")]).await;
    let token = mail.app.register("syncer").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // An expired connect link is refused.
    let late = consent(&mail, &token, "owner@example.com").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(callback_error(&mail, &late).await.contains("expired"));
    let id = connect(&mail, &token, "owner@example.com").await;
    synced(&mail, &token, &id).await;

    // An expired access token is refreshed; 429s are waited out; a
    // message with nothing to read is recorded as skipped and the sync
    // goes on.
    mail.google.expire_access_tokens();
    mail.google.fail_next(2, 429);
    mail.google
        .add_message("owner@example.com", Vec::new(), &[])
        .unwrap();
    let tokens_before = mail.google.count("oauth.token");
    let after = sync_now(&mail, &token, &id).await;
    assert_eq!(after["state"], "active", "{after}");
    assert_eq!(mail.google.count("oauth.token"), tokens_before + 1);
    let skipped: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM mail.skipped_messages WHERE account_id = $1::uuid")
            .bind(&id)
            .fetch_all(&mail.app.db)
            .await
            .unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");

    // Once the stored history id has expired, the sync is full again and
    // fetches only what it does not have.
    mail.google
        .add_message(
            "owner@example.com",
            reply_to("none@example.org", "Late", "Arrived while history expired."),
            &["INBOX"],
        )
        .unwrap();
    mail.google.expire_history("owner@example.com");
    mail.google.reset_counters();
    let resynced = sync_now(&mail, &token, &id).await;
    assert_eq!(resynced["state"], "active", "{resynced}");
    assert!(mail.google.count("users.history.list") >= 1);
    assert!(mail.google.count("users.messages.list") >= 1);
    assert_eq!(mail.google.count("users.messages.get"), 1);
    assert_eq!(resynced["messages"], CORPUS_MESSAGES + 1);

    // A revoked grant: the account asks to be connected again.
    mail.google.revoke_account("owner@example.com");
    mail.google.expire_access_tokens();
    let revoked = sync_now(&mail, &token, &id).await;
    assert_eq!(revoked["state"], "reauth_required", "{revoked}");
    assert!(
        revoked["last_error"]
            .as_str()
            .unwrap()
            .contains("connect it again")
    );
    let refused = mail
        .app
        .post(
            &format!("/api/mail/accounts/{id}/sync"),
            Some(&token),
            Value::Null,
        )
        .await;
    refused.assert_problem(409);
    mail.app.finish().await;
}

#[tokio::test]
async fn each_users_mail_is_their_own_until_removed() {
    let mail = mail_app(&["alice@example.com", "bob@example.com"], &[]).await;
    let alice = mail.app.register("alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = mail.app.register("bob").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice_account = connect(&mail, &alice, "alice@example.com").await;
    let bob_account = connect(&mail, &bob, "bob@example.com").await;
    synced(&mail, &alice, &alice_account).await;
    synced(&mail, &bob, &bob_account).await;
    mail.google
        .add_message(
            "alice@example.com",
            reply_to(
                "none@example.org",
                "Locker",
                "Alice's locker combination is WREN-4408.",
            ),
            &["INBOX"],
        )
        .unwrap();
    sync_now(&mail, &alice, &alice_account).await;

    let alice_mail = mail.app.get("/api/emails?limit=200", &alice).await.body;
    let secret = alice_mail["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "Re: Locker")
        .unwrap()
        .clone();
    let secret_id = secret["id"].as_str().unwrap();
    // Bob sees neither Alice's account, nor her email by id, by thread, in
    // his list, nor by search.
    mail.app
        .get(&format!("/api/emails/{secret_id}"), &bob)
        .await
        .assert_problem(404);
    mail.app
        .get(
            &format!(
                "/api/emails/threads/{}",
                secret["thread_id"].as_str().unwrap()
            ),
            &bob,
        )
        .await
        .assert_problem(404);
    mail.app
        .post(
            &format!("/api/mail/accounts/{alice_account}/sync"),
            Some(&bob),
            Value::Null,
        )
        .await
        .assert_problem(404);
    let bob_mail = mail.app.get("/api/emails?limit=200", &bob).await.body;
    assert!(
        bob_mail["emails"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != secret_id)
    );
    for _ in 0..600 {
        let r = mail
            .app
            .get("/api/search?q=WREN-4408&mode=bm25", &alice)
            .await;
        if r.body["hits"].as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bob_search = mail
        .app
        .get("/api/search?q=WREN-4408&mode=bm25", &bob)
        .await;
    assert!(
        bob_search.body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["text"].as_str().unwrap_or_default().contains("WREN-4408")),
        "{}",
        bob_search.body
    );

    // Removing the account revokes it at Google and deletes its mail and
    // its search entries.
    let removed = mail
        .app
        .delete(&format!("/api/mail/accounts/{alice_account}"), &alice, None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    assert!(
        mail.google
            .grants()
            .iter()
            .filter(|g| g.email == "alice@example.com")
            .all(|g| g.revoked)
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail.emails WHERE account_id = $1::uuid")
            .bind(&alice_account)
            .fetch_one(&mail.app.db)
            .await
            .unwrap();
    assert_eq!(left, 0);
    let gone = mail
        .app
        .get("/api/search?q=WREN-4408&mode=bm25", &alice)
        .await;
    assert!(
        gone.body["hits"].as_array().unwrap().is_empty(),
        "{}",
        gone.body
    );
    mail.app
        .get(&format!("/api/emails/{secret_id}"), &alice)
        .await
        .assert_problem(404);
    mail.app.finish().await;
}

#[tokio::test]
async fn without_a_gmail_client_connecting_says_so() {
    let app = crate::helpers::spawn_app().await;
    let token = app.register("plain").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get("/api/gmail/connect", &token).await;
    r.assert_problem(503);
    assert_eq!(r.body["reason"], "gmail_not_configured", "{}", r.body);
    // The rest of mail still answers: no accounts, no mail.
    let accounts = app.get("/api/mail/accounts", &token).await;
    assert_eq!(accounts.body["accounts"], serde_json::json!([]));
    let emails = app.get("/api/emails", &token).await;
    assert_eq!(emails.body["emails"], serde_json::json!([]));
    app.finish().await;
}

#[tokio::test]
async fn a_sync_cut_off_halfway_finishes_with_every_message_stored_once() {
    let mail = mail_app(
        &["owner@example.com"],
        &[("MAIL_BACKOFF_MAX_ATTEMPTS", "1")],
    )
    .await;
    let token = mail.app.register("cutoff").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Google answers the connect and the first 40 calls of the sync, then
    // fails until told otherwise: the sync stops partway.
    mail.google.fail_after(42, u32::MAX, 503);
    let id = connect(&mail, &token, "owner@example.com").await;
    let cut = synced(&mail, &token, &id).await;
    assert_eq!(cut["state"], "error", "{cut}");
    let partial = cut["messages"].as_u64().unwrap();
    assert!(partial > 0 && partial < CORPUS_MESSAGES, "{cut}");

    // The next sync lists everything again and fetches only what is missing.
    mail.google.fail_next(0, 503);
    mail.google.reset_counters();
    let done = sync_now(&mail, &token, &id).await;
    assert_eq!(done["state"], "active", "{done}");
    assert_eq!(done["messages"], CORPUS_MESSAGES, "{done}");
    assert_eq!(
        mail.google.count("users.messages.get"),
        CORPUS_MESSAGES - partial
    );
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT provider_id) FROM mail.emails WHERE account_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mail.app.db)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct),
        (CORPUS_MESSAGES as i64, CORPUS_MESSAGES as i64)
    );
    mail.app.finish().await;
}

#[tokio::test]
async fn deleting_the_user_erases_their_mail_and_revokes_google() {
    let mail = mail_app(&["owner@example.com"], &[]).await;
    let token = mail.app.register("leaver").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = connect(&mail, &token, "owner@example.com").await;
    synced(&mail, &token, &id).await;
    mail.app.delete_account(&token).await;
    let mut left = i64::MAX;
    for _ in 0..300 {
        left = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM mail.email_accounts) + (SELECT count(*) FROM mail.emails)",
        )
        .fetch_one(&mail.app.db)
        .await
        .unwrap();
        if left == 0 && mail.google.grants().iter().all(|g| g.revoked) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    assert!(mail.google.grants().iter().all(|g| g.revoked));
    let erased: i64 = sqlx::query_scalar("SELECT count(*) FROM mail.erased_users")
        .fetch_one(&mail.app.db)
        .await
        .unwrap();
    assert_eq!(erased, 1);
    mail.app.finish().await;
}
