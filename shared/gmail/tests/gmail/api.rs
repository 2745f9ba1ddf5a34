//! The Gmail calls against the fake's mailbox: paging, raw bytes, history,
//! labels and how failures are sorted.

use std::collections::BTreeSet;

use anyhow::Result;
use pai_gmail::{GmailError, LabelKind};

use crate::{OWNER, connect, spawn_google};

#[tokio::test]
async fn listing_pages_covers_the_mailbox_exactly_once() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;
    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = google
            .gmail
            .list_messages(&token, page_token.as_deref(), 7)
            .await?;
        assert!(page.messages.len() <= 7);
        pages += 1;
        seen.extend(page.messages.into_iter().map(|message| message.id));
        match page.next_page_token {
            Some(next) => page_token = Some(next),
            None => break,
        }
    }
    let expected = google.fake.message_ids(OWNER);
    assert_eq!(seen, expected, "every message once, newest first");
    assert_eq!(pages, expected.len().div_ceil(7));
    let profile = google.gmail.profile(&token).await?;
    assert_eq!(profile.messages_total, expected.len() as u64);
    assert_eq!(Some(profile.history_id), google.fake.history_id(OWNER));
    Ok(())
}

#[tokio::test]
async fn raw_messages_are_the_exact_bytes() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;
    let mut fetched = Vec::new();
    for id in google.fake.message_ids(OWNER) {
        let message = google.gmail.get_raw(&token, &id).await?;
        assert_eq!(message.id, id);
        assert!(!message.thread_id.is_empty());
        assert!(message.label_ids.iter().any(|label| label == "INBOX"));
        assert!(message.history_id > 0);
        fetched.push(message.raw);
    }
    let mut expected: Vec<Vec<u8>> = google
        .corpus
        .newest_first()
        .into_iter()
        .map(|message| message.raw.clone())
        .collect();
    fetched.sort();
    expected.sort();
    assert_eq!(fetched.len(), expected.len());
    assert!(fetched == expected, "the raw bytes differ from the corpus");

    // Bytes that are not text, with every base64url edge character.
    let raw: Vec<u8> = b"Subject: bytes\r\nMessage-ID: <bytes@example.com>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n"
        .iter()
        .copied()
        .chain((0..=255).rev())
        .collect();
    let id = google
        .fake
        .add_message(OWNER, raw.clone(), &[])
        .expect("mailbox");
    let message = google.gmail.get_raw(&token, &id).await?;
    assert_eq!(message.raw, raw);
    assert_eq!(
        message.internal_date.to_rfc3339(),
        "2026-12-07T10:00:00+00:00"
    );
    assert!(message.label_ids.contains(&"UNREAD".to_owned()));
    Ok(())
}

#[tokio::test]
async fn history_reports_added_and_deleted_messages() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;
    let start = google.gmail.profile(&token).await?.history_id;

    let empty = google.gmail.history(&token, start, None).await?;
    assert!(empty.added.is_empty() && empty.deleted.is_empty());
    assert_eq!(empty.history_id, start);

    let message = |n: u32| {
        format!("Subject: new {n}\r\nMessage-ID: <new{n}@example.com>\r\n\r\nbody {n}\r\n")
            .into_bytes()
    };
    let first = google
        .fake
        .add_message(OWNER, message(1), &[])
        .expect("mailbox");
    let second = google
        .fake
        .add_message(OWNER, message(2), &["INBOX"])
        .expect("mailbox");
    let old = google
        .fake
        .message_ids(OWNER)
        .last()
        .cloned()
        .expect("a corpus message");
    assert!(google.fake.delete_message(OWNER, &old));

    let page = google.gmail.history(&token, start, None).await?;
    let added: BTreeSet<String> = page.added.iter().map(|m| m.id.clone()).collect();
    assert_eq!(added, BTreeSet::from([first.clone(), second.clone()]));
    assert_eq!(page.deleted, vec![old]);
    assert_eq!(Some(page.history_id), google.fake.history_id(OWNER));
    assert!(page.next_page_token.is_none());

    let later = google.gmail.history(&token, page.history_id, None).await?;
    assert!(later.added.is_empty() && later.deleted.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_expired_history_id_is_not_found() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;
    let start = google.gmail.profile(&token).await?.history_id;
    google
        .fake
        .add_message(OWNER, b"Subject: x\r\n\r\nx\r\n".to_vec(), &[])
        .expect("mailbox");
    google.fake.expire_history(OWNER);
    let result = google.gmail.history(&token, start, None).await;
    assert!(matches!(result, Err(GmailError::NotFound)), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn labels_name_system_and_user_labels() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;
    let labels = google.gmail.labels(&token).await?;
    let inbox = labels
        .iter()
        .find(|label| label.id == "INBOX")
        .expect("INBOX");
    assert_eq!(inbox.kind, LabelKind::System);
    let lists = labels
        .iter()
        .find(|label| label.name == "Lists")
        .expect("Lists");
    assert_eq!(lists.kind, LabelKind::User);
    assert!(lists.id.starts_with("Label_"));
    Ok(())
}

#[tokio::test]
async fn failures_are_sorted_by_what_to_do_next() -> Result<()> {
    let google = spawn_google().await?;
    let token = connect(&google).await?.access_token;

    let result = google.gmail.profile("ya29.not-a-token").await;
    assert!(
        matches!(result, Err(GmailError::Unauthorized)),
        "{result:?}"
    );

    let result = google.gmail.get_raw(&token, "1000000000000000").await;
    assert!(matches!(result, Err(GmailError::NotFound)), "{result:?}");

    google.fake.fail_next(1, 429);
    let result = google.gmail.profile(&token).await;
    assert!(
        matches!(result, Err(GmailError::RateLimited { .. })),
        "{result:?}"
    );

    google.fake.fail_next(1, 503);
    let result = google.gmail.profile(&token).await;
    assert!(matches!(result, Err(GmailError::Server(503))), "{result:?}");

    let unreachable = pai_gmail::GmailClient::new(reqwest::Client::new(), "http://127.0.0.1:1")?;
    let result = unreachable.profile(&token).await;
    assert!(
        matches!(result, Err(GmailError::Transport(_))),
        "{result:?}"
    );
    assert!(pai_gmail::GmailClient::new(reqwest::Client::new(), "not a url").is_err());
    Ok(())
}
