use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use pai_fake_google::{GenerateOptions, Mailbox, generate_messages};
use serde_json::{Value, json};

use crate::helpers::{OWNER, client, connect, gmail, start};

#[tokio::test]
async fn injected_429_and_503_then_recovery() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    fake.fail_next(2, 429);
    for _ in 0..2 {
        let (status, body) = gmail(&fake, &token, "messages", &[]).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
    }
    assert_eq!(gmail(&fake, &token, "messages", &[]).await.0, 200);
    fake.fail_next(1, 503);
    let (status, body) = gmail(&fake, &token, "profile", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 200);
}

#[tokio::test]
async fn latency_slows_gmail_calls_only() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let latency = std::time::Duration::from_secs(1);
    fake.set_latency(latency);
    let started = std::time::Instant::now();
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 200);
    assert!(started.elapsed() >= latency);
    // OAuth is not slowed down.
    let started = std::time::Instant::now();
    connect(&fake).await;
    assert!(started.elapsed() < latency);
    // Over HTTP too; zero turns it off.
    let r = client()
        .put(format!("{}/_fake/latency", fake.base_url()))
        .json(&json!({"millis": 0}))
        .send()
        .await
        .expect("latency");
    assert_eq!(r.status(), 204);
    let started = std::time::Instant::now();
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 200);
    assert!(started.elapsed() < latency);
}

#[tokio::test]
async fn counters_count_each_endpoint_and_reset() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    assert_eq!(fake.count("oauth.token"), 1);
    assert_eq!(fake.count("oauth.authorize"), 1);
    let ids = fake.message_ids(OWNER);
    for id in &ids[..3] {
        gmail(
            &fake,
            &token,
            &format!("messages/{id}"),
            &[("format", "raw")],
        )
        .await;
    }
    gmail(&fake, &token, "messages", &[]).await;
    assert_eq!(fake.count("users.messages.get"), 3);
    assert_eq!(fake.count("users.messages.list"), 1);
    fake.reset_counters();
    assert!(fake.counters().is_empty());
    assert_eq!(fake.count("users.messages.get"), 0);
}

#[tokio::test]
async fn the_control_routes_work_over_http() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let http = client();
    let base = fake.base_url();
    let start_id = fake.history_id(OWNER).expect("mailbox").to_string();

    let raw = b"From: a@example.org\r\nSubject: over http\r\n\r\nhello\r\n";
    let added: Value = http
        .post(format!("{base}/_fake/mailboxes/{OWNER}/messages"))
        .json(&json!({"raw": URL_SAFE.encode(raw), "labelIds": ["INBOX"]}))
        .send()
        .await
        .expect("add")
        .json()
        .await
        .expect("json");
    let id = added["id"].as_str().expect("id").to_owned();
    let (_, message) = gmail(
        &fake,
        &token,
        &format!("messages/{id}"),
        &[("format", "raw")],
    )
    .await;
    assert_eq!(
        URL_SAFE
            .decode(message["raw"].as_str().expect("raw"))
            .expect("b64"),
        raw
    );
    assert_eq!(message["labelIds"], json!(["INBOX"]));

    let status = http
        .delete(format!("{base}/_fake/mailboxes/{OWNER}/messages/{id}"))
        .send()
        .await
        .expect("delete")
        .status();
    assert_eq!(status, 204);
    let (_, history) = gmail(
        &fake,
        &token,
        "history",
        &[("startHistoryId", start_id.as_str())],
    )
    .await;
    assert_eq!(history["history"].as_array().expect("history").len(), 2);

    http.post(format!("{base}/_fake/fail-next"))
        .json(&json!({"count": 1, "status": 429}))
        .send()
        .await
        .expect("fail");
    assert_eq!(gmail(&fake, &token, "labels", &[]).await.0, 429);

    let counters: Value = http
        .get(format!("{base}/_fake/counters"))
        .send()
        .await
        .expect("counters")
        .json()
        .await
        .expect("json");
    assert_eq!(counters["users.labels.list"], 1);
    assert_eq!(counters["users.messages.get"], 1);
    http.delete(format!("{base}/_fake/counters"))
        .send()
        .await
        .expect("reset");
    assert!(fake.counters().is_empty());

    let last: Value = http
        .get(format!("{base}/_fake/last-authorization"))
        .send()
        .await
        .expect("last")
        .json()
        .await
        .expect("json");
    assert_eq!(last["code_challenge_method"], "S256");
    assert_eq!(last["access_type"], "offline");
    let grants: Value = http
        .get(format!("{base}/_fake/grants"))
        .send()
        .await
        .expect("grants")
        .json()
        .await
        .expect("json");
    assert_eq!(grants[0]["offline"], true);

    http.post(format!("{base}/_fake/mailboxes/{OWNER}/expire-history"))
        .send()
        .await
        .expect("expire");
    assert_eq!(
        gmail(
            &fake,
            &token,
            "history",
            &[("startHistoryId", start_id.as_str())]
        )
        .await
        .0,
        404
    );

    http.post(format!("{base}/_fake/expire-access-tokens"))
        .send()
        .await
        .expect("expire");
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 401);

    let revoked: Value = http
        .post(format!("{base}/_fake/revoke"))
        .json(&json!({"email": OWNER}))
        .send()
        .await
        .expect("revoke")
        .json()
        .await
        .expect("json");
    assert_eq!(revoked["revoked"], 1);

    assert_eq!(
        http.put(format!("{base}/_fake/mailboxes/new@example.com"))
            .send()
            .await
            .expect("create")
            .status(),
        204
    );
    http.put(format!("{base}/_fake/default-account"))
        .json(&json!({"email": "new@example.com"}))
        .send()
        .await
        .expect("default");
    let token = connect(&fake).await.access_token;
    let (_, profile) = gmail(&fake, &token, "profile", &[]).await;
    assert_eq!(profile["emailAddress"], "new@example.com");
    assert_eq!(profile["messagesTotal"], 0);
    let (_, empty) = gmail(&fake, &token, "messages", &[]).await;
    assert_eq!(empty, json!({"resultSizeEstimate": 0}));
}

#[test]
fn generated_mail_is_deterministic_threaded_and_attached() {
    let pdf = b"%PDF-1.4 tiny".to_vec();
    let options = GenerateOptions {
        count: 200,
        seed: 7,
        reply_every: 4,
        attachment: Some(("statement.pdf".to_owned(), pdf)),
        attachment_every: 50,
    };
    let first = generate_messages(&options);
    assert_eq!(first, generate_messages(&options));
    assert_eq!(first.len(), 200);
    let subjects: std::collections::BTreeSet<String> = first
        .iter()
        .filter_map(|(_, raw)| {
            let text = String::from_utf8_lossy(raw);
            text.lines()
                .find_map(|line| line.strip_prefix("Subject: ").map(str::to_owned))
        })
        .filter(|subject| !subject.starts_with("Re: "))
        .collect();
    assert_eq!(subjects.len(), 150, "distinct subjects for non-replies");
    let attached = first
        .iter()
        .filter(|(_, raw)| String::from_utf8_lossy(raw).contains("filename=\"statement.pdf\""))
        .count();
    assert_eq!(attached, 4);
    let mailbox = Mailbox::from_messages(first);
    assert_eq!(mailbox.len(), 200);
    assert_eq!(mailbox.thread_count(), 150);
}
