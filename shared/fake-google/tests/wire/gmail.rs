use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, Mailbox};
use serde_json::Value;

use crate::helpers::{OWNER, client, connect, corpus_dir, gmail, start};

/// Lists every message id through paging.
async fn list_all(
    fake: &pai_fake_google::FakeGoogleHandle,
    token: &str,
    page_size: &str,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("maxResults", page_size.to_owned())];
        if let Some(page_token) = &page_token {
            query.push(("pageToken", page_token.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = gmail(fake, token, "messages", &query).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for message in body["messages"].as_array().expect("messages") {
            assert_eq!(
                message.as_object().expect("object").len(),
                2,
                "only id and threadId: {message}"
            );
            ids.push(message["id"].as_str().expect("id").to_owned());
        }
        match body["nextPageToken"].as_str() {
            Some(next) => page_token = Some(next.to_owned()),
            None => break,
        }
    }
    (ids, pages)
}

#[tokio::test]
async fn paging_covers_every_message_once_newest_first() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let (ids, pages) = list_all(&fake, &token, "7").await;
    let expected = fake.message_ids(OWNER);
    assert_eq!(expected.len(), 98, "77 .eml files and a 21-message mbox");
    assert_eq!(ids, expected, "newest first, each once");
    assert_eq!(pages, 14);
    assert!(ids.iter().all(|id| id.len() == 16
        && id.starts_with('1')
        && id.chars().all(|c| c.is_ascii_hexdigit())));

    let (_, first) = gmail(&fake, &token, "messages", &[]).await;
    assert_eq!(first["messages"].as_array().expect("messages").len(), 98);
    assert_eq!(first["resultSizeEstimate"], 98);
    assert!(first.get("nextPageToken").is_none());

    let mut previous_date = i64::MAX;
    for id in &ids {
        let (_, message) = gmail(
            &fake,
            &token,
            &format!("messages/{id}"),
            &[("format", "minimal")],
        )
        .await;
        let date: i64 = message["internalDate"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("digits");
        assert!(date <= previous_date);
        previous_date = date;
    }
}

#[tokio::test]
async fn raw_is_padded_base64url_of_the_exact_eml_bytes() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let mut served = BTreeSet::new();
    for id in fake.message_ids(OWNER) {
        let (status, message) = gmail(
            &fake,
            &token,
            &format!("messages/{id}"),
            &[("format", "raw")],
        )
        .await;
        assert_eq!(status, 200);
        let keys: BTreeSet<&str> = message
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "id",
            "threadId",
            "labelIds",
            "snippet",
            "sizeEstimate",
            "raw",
            "historyId",
            "internalDate",
        ]
        .into();
        assert_eq!(keys, expected);
        assert!(message["historyId"].is_string() && message["internalDate"].is_string());
        let raw = message["raw"].as_str().expect("raw");
        assert!(!raw.contains('+') && !raw.contains('/'));
        let bytes = URL_SAFE.decode(raw).expect("padded base64url");
        if bytes.len() % 3 != 0 {
            assert!(raw.ends_with('='), "padded");
        }
        assert_eq!(message["sizeEstimate"], bytes.len());
        served.insert(bytes);
    }
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "eml") {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                served.contains(&bytes),
                "{} served unchanged",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn threads_follow_the_manifest() {
    let mailbox = Mailbox::from_eml_dir(corpus_dir()).expect("corpus");
    let by_raw: BTreeMap<Vec<u8>, (String, String)> = mailbox
        .newest_first()
        .into_iter()
        .map(|message| {
            (
                message.raw.clone(),
                (message.id.clone(), message.thread_id.clone()),
            )
        })
        .collect();
    let manifest = std::fs::read_to_string(corpus_dir().join("../manifest.tsv")).expect("manifest");
    let mut threads: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in manifest.lines().skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        let (file, thread) = (columns[0], columns[5]);
        if thread.is_empty() || !file.ends_with(".eml") {
            continue;
        }
        let bytes = std::fs::read(corpus_dir().join("..").join(file)).expect("eml");
        threads
            .entry(thread.to_owned())
            .or_default()
            .push(by_raw[&bytes].clone());
    }
    assert!(threads.len() >= 10);
    let mut seen_thread_ids = BTreeSet::new();
    for (name, members) in &threads {
        let thread_id = &members[0].1;
        assert!(
            members.iter().all(|(_, other)| other == thread_id),
            "{name}: one thread"
        );
        assert!(
            members.iter().any(|(id, _)| id == thread_id),
            "{name}: threadId is a member's id"
        );
        assert!(
            seen_thread_ids.insert(thread_id.clone()),
            "{name}: a thread of its own"
        );
    }
    // The 21-message LKML mbox is one thread too.
    let big = mailbox.newest_first().into_iter().fold(
        BTreeMap::<&str, usize>::new(),
        |mut sizes, message| {
            *sizes.entry(message.thread_id.as_str()).or_default() += 1;
            sizes
        },
    );
    assert_eq!(big.values().max(), Some(&21));
}

#[tokio::test]
async fn profile_labels_and_metadata() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let (_, profile) = gmail(&fake, &token, "profile", &[]).await;
    assert_eq!(profile["emailAddress"], OWNER);
    assert_eq!(profile["messagesTotal"], 98);
    assert!(profile["historyId"].is_string());

    let (_, labels) = gmail(&fake, &token, "labels", &[]).await;
    let labels = labels["labels"].as_array().expect("labels");
    assert!(
        labels
            .iter()
            .any(|label| label["id"] == "INBOX" && label["type"] == "system")
    );
    assert!(labels.iter().any(|label| {
        label["type"] == "user"
            && label["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("Label_"))
    }));
    let unread = labels
        .iter()
        .find(|label| label["id"] == "UNREAD")
        .expect("UNREAD");
    assert!(unread.get("messageListVisibility").is_none());

    let id = &fake.message_ids(OWNER)[0];
    let (_, message) = gmail(
        &fake,
        &token,
        &format!("messages/{id}"),
        &[("format", "metadata"), ("metadataHeaders", "Subject")],
    )
    .await;
    let headers = message["payload"]["headers"].as_array().expect("headers");
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0]["name"], "Subject");

    let (status, _) = gmail(
        &fake,
        &token,
        "messages/0000000000000000",
        &[("format", "raw")],
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = gmail(
        &fake,
        &token,
        &format!("messages/{id}"),
        &[("format", "bogus")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");

    let response = client()
        .get(format!(
            "{}/users/someone@else.example/profile",
            fake.gmail_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("profile");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn label_filter_and_spam_exclusion() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let spam = fake
        .add_message(OWNER, b"Subject: buy\r\n\r\nnow\r\n".to_vec(), &["SPAM"])
        .expect("added");
    let (_, all) = gmail(&fake, &token, "messages", &[("maxResults", "500")]).await;
    assert_eq!(all["resultSizeEstimate"], 98);
    let (_, with_spam) = gmail(
        &fake,
        &token,
        "messages",
        &[("maxResults", "500"), ("includeSpamTrash", "true")],
    )
    .await;
    assert_eq!(with_spam["resultSizeEstimate"], 99);
    let (_, only_spam) = gmail(
        &fake,
        &token,
        "messages",
        &[("labelIds", "SPAM"), ("includeSpamTrash", "true")],
    )
    .await;
    assert_eq!(only_spam["messages"][0]["id"], spam.as_str());
    let (_, unread_inbox) = gmail(
        &fake,
        &token,
        "messages",
        &[("labelIds", "INBOX"), ("labelIds", "UNREAD")],
    )
    .await;
    let count = unread_inbox["resultSizeEstimate"].as_u64().expect("count");
    assert!(count > 0 && count < 98);
    let (_, none) = gmail(&fake, &token, "messages", &[("labelIds", "Label_956")]).await;
    assert_eq!(none, serde_json::json!({"resultSizeEstimate": 0}));
}

#[tokio::test]
async fn history_reports_adds_and_deletes_then_expires() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let (_, profile) = gmail(&fake, &token, "profile", &[]).await;
    let start_id = profile["historyId"].as_str().expect("string").to_owned();

    let (status, quiet) = gmail(
        &fake,
        &token,
        "history",
        &[("startHistoryId", start_id.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        quiet.get("history").is_none(),
        "no changes: no history key, as Gmail"
    );
    assert_eq!(quiet["historyId"], start_id.as_str());

    let reply = format!(
        "From: a@example.org\r\nSubject: Re: [notmuch] archive\r\nMessage-ID: <new@x>\r\nIn-Reply-To: <yunzl6kd1w0.fsf@aiko.keithp.com>\r\nDate: {}\r\n\r\nThanks!\r\n",
        "Wed, 18 Nov 2009 10:00:00 +0000"
    );
    let added = fake
        .add_message(OWNER, reply.into_bytes(), &[])
        .expect("added");
    let deleted = fake
        .message_ids(OWNER)
        .into_iter()
        .find(|id| *id != added)
        .expect("another");
    assert!(fake.delete_message(OWNER, &deleted));

    let (_, history) = gmail(
        &fake,
        &token,
        "history",
        &[("startHistoryId", start_id.as_str())],
    )
    .await;
    let records = history["history"].as_array().expect("history");
    assert_eq!(records.len(), 2);
    let added_record = &records[0]["messagesAdded"][0]["message"];
    assert_eq!(added_record["id"], added.as_str());
    assert!(
        added_record["labelIds"]
            .as_array()
            .expect("labels")
            .contains(&Value::from("INBOX"))
    );
    assert_eq!(records[0]["messages"][0]["id"], added.as_str());
    assert!(records[0]["id"].is_string());
    assert_eq!(
        records[1]["messagesDeleted"][0]["message"]["id"],
        deleted.as_str()
    );
    assert_ne!(history["historyId"], start_id.as_str());

    // The reply joined its thread: its threadId is an older message's id.
    let thread_id = added_record["threadId"].as_str().expect("threadId");
    assert_ne!(thread_id, added);
    let (_, parent) = gmail(
        &fake,
        &token,
        &format!("messages/{thread_id}"),
        &[("format", "minimal")],
    )
    .await;
    assert_eq!(parent["threadId"], thread_id);

    let (_, only_deleted) = gmail(
        &fake,
        &token,
        "history",
        &[
            ("startHistoryId", start_id.as_str()),
            ("historyTypes", "messageDeleted"),
        ],
    )
    .await;
    assert_eq!(
        only_deleted["history"].as_array().expect("history").len(),
        1
    );

    let (_, first_page) = gmail(
        &fake,
        &token,
        "history",
        &[("startHistoryId", start_id.as_str()), ("maxResults", "1")],
    )
    .await;
    assert_eq!(first_page["history"].as_array().expect("history").len(), 1);
    let next = first_page["nextPageToken"].as_str().expect("a next page");
    let (_, second_page) = gmail(
        &fake,
        &token,
        "history",
        &[
            ("startHistoryId", start_id.as_str()),
            ("maxResults", "1"),
            ("pageToken", next),
        ],
    )
    .await;
    assert_eq!(
        second_page["history"][0]["messagesDeleted"][0]["message"]["id"],
        deleted.as_str()
    );
    assert!(second_page.get("nextPageToken").is_none());

    let (status, deleted_get) = gmail(
        &fake,
        &token,
        &format!("messages/{deleted}"),
        &[("format", "raw")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(deleted_get["error"]["status"], "NOT_FOUND");

    fake.expire_history(OWNER);
    let (status, expired) = gmail(
        &fake,
        &token,
        "history",
        &[("startHistoryId", start_id.as_str())],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(expired["error"]["code"], 404);
    assert_eq!(expired["error"]["status"], "NOT_FOUND");
    let now = fake.history_id(OWNER).expect("mailbox").to_string();
    assert_eq!(
        gmail(
            &fake,
            &token,
            "history",
            &[("startHistoryId", now.as_str())]
        )
        .await
        .0,
        200
    );
    assert_eq!(gmail(&fake, &token, "history", &[]).await.0, 400);
}

#[tokio::test]
async fn an_expired_access_token_gets_401_in_googles_envelope() {
    let fake = start().await;
    let tokens = connect(&fake).await;
    fake.expire_access_tokens();
    let response = client()
        .get(format!("{}/users/me/messages", fake.gmail_url()))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(body["error"]["errors"][0]["domain"], "global");

    let refreshed: Value =
        crate::helpers::refresh(&fake, tokens.refresh_token.as_deref().expect("offline"))
            .await
            .json()
            .await
            .expect("json");
    let fresh = refreshed["access_token"].as_str().expect("token");
    assert_eq!(gmail(&fake, fresh, "messages", &[]).await.0, 200);
    assert_eq!(gmail(&fake, "ya29.forged", "messages", &[]).await.0, 401);
    let no_header = client()
        .get(format!("{}/users/me/messages", fake.gmail_url()))
        .send()
        .await
        .expect("list");
    assert_eq!(no_header.status(), 401);
}

#[tokio::test]
async fn a_short_token_lifetime_expires_by_itself() {
    let config = FakeGoogleConfig {
        access_token_lifetime: std::time::Duration::from_millis(200),
        ..FakeGoogleConfig::default()
    };
    let fake = FakeGoogle::new(config).with_mailbox(OWNER, Mailbox::new());
    let fake = pai_fake_google::spawn(fake).await.1;
    let token = connect(&fake).await.access_token;
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(gmail(&fake, &token, "profile", &[]).await.0, 401);
}

#[tokio::test]
async fn login_hint_picks_the_mailbox_and_ids_differ_between_mailboxes() {
    let corpus = Mailbox::from_eml_dir(corpus_dir()).expect("corpus");
    let fake = FakeGoogle::new(FakeGoogleConfig::default())
        .with_mailbox(OWNER, corpus.clone())
        .with_mailbox("second@example.com", corpus);
    let fake = pai_fake_google::spawn(fake).await.1;
    let location = crate::helpers::authorize(&fake, &[("login_hint", "second@example.com")]).await;
    let code = crate::helpers::query_value(&location, "code").expect("code");
    let body: Value = crate::helpers::exchange(&fake, &code, &crate::helpers::pkce().0)
        .await
        .json()
        .await
        .expect("json");
    let token = body["access_token"].as_str().expect("token");
    let (_, profile) = gmail(&fake, token, "profile", &[]).await;
    assert_eq!(profile["emailAddress"], "second@example.com");
    let first: BTreeSet<String> = fake.message_ids(OWNER).into_iter().collect();
    let second: BTreeSet<String> = fake.message_ids("second@example.com").into_iter().collect();
    assert_eq!(first.len(), 98);
    assert!(first.is_disjoint(&second));
    let (status, _) = gmail(
        &fake,
        token,
        &format!("messages/{}", first.iter().next().expect("one")),
        &[("format", "raw")],
    )
    .await;
    assert_eq!(status, 404, "another mailbox's id is not found");
}

/// Returns the first part (depth first) whose filename matches.
fn find_part<'a>(part: &'a Value, filename: &str) -> Option<&'a Value> {
    if part["filename"] == filename {
        return Some(part);
    }
    part["parts"]
        .as_array()?
        .iter()
        .find_map(|child| find_part(child, filename))
}

#[tokio::test]
async fn full_format_and_attachments_get() {
    let fake = start().await;
    let token = connect(&fake).await.access_token;
    let eml = std::fs::read(corpus_dir().join("spam_sa_gtube_pdf_attachment.eml")).expect("eml");
    let id = fake.add_message(OWNER, eml, &[]).expect("added");
    let (status, message) = gmail(&fake, &token, &format!("messages/{id}"), &[]).await;
    assert_eq!(status, 200, "format=full is the default");
    assert!(message.get("raw").is_none());
    let payload = &message["payload"];
    assert_eq!(payload["partId"], "");
    assert!(
        payload["mimeType"]
            .as_str()
            .expect("mimeType")
            .starts_with("multipart/")
    );
    assert_eq!(payload["body"], serde_json::json!({"size": 0}));
    let pdf = find_part(payload, "gtube.pdf").expect("the PDF part");
    assert!(pdf["body"].get("data").is_none());
    let attachment_id = pdf["body"]["attachmentId"].as_str().expect("attachmentId");
    let (status, attachment) = gmail(
        &fake,
        &token,
        &format!("messages/{id}/attachments/{attachment_id}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let bytes = URL_SAFE
        .decode(attachment["data"].as_str().expect("data"))
        .expect("base64url");
    assert!(bytes.starts_with(b"%PDF"));
    assert_eq!(attachment["size"], bytes.len());
    assert_eq!(pdf["body"]["size"], bytes.len());
    let text = payload["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|part| part["filename"] == "")
        .expect("a text part");
    assert!(text["partId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        gmail(
            &fake,
            &token,
            &format!("messages/{id}/attachments/ANGjdJbogus"),
            &[]
        )
        .await
        .0,
        400
    );
}

#[test]
fn every_corpus_message_has_a_full_payload() {
    let mailbox = Mailbox::from_eml_dir(corpus_dir()).expect("corpus");
    let mut pdf_attachments = 0;
    for message in mailbox.newest_first() {
        let tree = pai_fake_google::mime::Part::parse(&message.raw);
        let json = tree.to_json(&message.id);
        assert!(json["mimeType"].is_string());
        let mut stack = vec![&tree];
        while let Some(part) = stack.pop() {
            if part.is_attachment() && part.filename.to_ascii_lowercase().ends_with(".pdf") {
                pdf_attachments += 1;
            }
            stack.extend(part.parts.iter());
        }
    }
    assert!(pdf_attachments >= 3, "{pdf_attachments} PDF attachments");
}
