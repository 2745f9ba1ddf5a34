//! A property test of isolation: random users own random (and often the same)
//! documents and connect random (and often the same) Gmail mailboxes; random
//! queries, modes, filters, questions and id probes by any of them never
//! reach another user's document, file, chunk, query, mail account, email,
//! thread or attachment.
//!
//! The mail comes from the fake Google: three mailboxes (the small e-mail
//! corpus split in two, and generated mail with a PDF attached now and
//! then). User i connects the (i mod 3)-th, and maybe one more drawn, so
//! users' mailboxes differ and some address is always connected by two
//! users: two accounts whose emails have the same text and the same Gmail
//! thread ids, which must stay apart. Every owner finds their mail by
//! search, and two owners of the same address ask about it (Ask is slow):
//! each answer draws on the asker's own copy only. Each probe also fetches
//! some user's email and its thread by id, lists mail filtered by that
//! email's account, thread, class and date (page by page), pins a search to
//! some user's email or document (a question to a document), and pokes at
//! mail accounts that are not the caller's: everything seen is exactly the
//! caller's own, and what is not theirs is a 404 problem, as if it did not
//! exist.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use pai_email::Classification;
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, GenerateOptions, Mailbox};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Response, TestApp, corpus};
use crate::mail::{Mail, all_indexed, connect, serve, synced};

/// Small corpus documents that index quickly; users draw from these.
const DOCUMENTS: [&str; 6] = [
    "fin_aws_invoice_2014.pdf",
    "fin_bol_factuur_2015.pdf",
    "fin_flipkart_invoice_2015.pdf",
    "gen_crazy_ones_pdfa.pdf",
    "gen_scotus_transcript_p1.pdf",
    "gen_cupertino_school_board_agenda_2016.pdf",
];
/// Gmail addresses users connect: the even and the odd small corpus emails,
/// and generated mail (see [`mail_stack`]).
const ADDRESSES: [&str; 3] = ["ana@mail.example", "ben@mail.example", "cyd@mail.example"];
/// Corpus emails up to this size (bytes) fill the first two mailboxes...
const SMALL_EMAIL: u64 = 3000;
/// ...but of the many from one mailing list, only those up to this size:
/// 13 and 12 emails.
const SMALL_LIST_EMAIL: u64 = 1000;
const USERS: usize = 4;
const MODES: [&str; 3] = ["bm25", "vector", "hybrid"];
const KINDS: [&str; 3] = ["", "document", "email"];

struct User {
    token: String,
    /// Document ids this user owns.
    documents: HashSet<String>,
    /// Mail account ids this user connected.
    accounts: HashSet<String>,
    /// Every source search may return them: documents, emails, attachments.
    sources: HashSet<String>,
}

/// A stored email, as its owner lists it.
struct Email {
    owner: usize,
    id: String,
    account: String,
    thread: String,
    class: String,
    date: DateTime<Utc>,
}

struct World {
    users: Vec<User>,
    /// Every uploaded copy: (owner index, document id).
    copies: Vec<(usize, String)>,
    /// Every email of every account.
    emails: Vec<Email>,
    /// The words of each indexed corpus file and of each connected
    /// mailbox, taken from `search.chunks`.
    words: Vec<Vec<String>>,
    /// Questions asked so far: (asker index, query id).
    asked: std::sync::Mutex<Vec<(usize, String)>>,
}

/// One random probe: a user searches words of some document or mailbox,
/// asks for a copy and an email that may be someone else's, and lists mail
/// filtered by that email.
#[derive(Debug, Clone)]
struct Probe {
    user: usize,
    source: usize,
    start: usize,
    len: usize,
    mode: &'static str,
    category: &'static str,
    k: u32,
    copy: usize,
    email: usize,
    /// The search's `source` filter.
    kind: &'static str,
    /// 1: the search is pinned to the email; 2: the search and the question
    /// to the copy.
    pin: u8,
    /// Bits of the mail list's filters: 1 the email's account, 2 its
    /// thread, 4 from its date, 8 until an hour after it.
    filters: u8,
    /// The mail list's page size.
    limit: u32,
}

/// Whether `name` is a class of mail (what `GET /api/emails` filters on).
fn mail_class(name: &str) -> bool {
    Classification::ALL
        .iter()
        .any(|class| class.as_str() == name)
}

fn probes(sources: usize, copies: usize, emails: usize) -> impl Strategy<Value = Probe> {
    // Search filters on categories of documents and classes of mail alike
    // (`financial` is both).
    let mut categories = vec!["", "generic", "long_form"];
    categories.extend(Classification::ALL.map(Classification::as_str));
    (
        (
            0..USERS,
            0..sources,
            any::<usize>(),
            1usize..=5,
            select(&MODES[..]),
            select(categories),
            1u32..=20,
            0..copies,
        ),
        (0..emails, select(&KINDS[..]), 0u8..6, 0u8..16, 1u32..=60),
    )
        .prop_map(
            |(
                (user, source, start, len, mode, category, k, copy),
                (email, kind, pin, filters, limit),
            )| Probe {
                user,
                source,
                start,
                len,
                mode,
                category,
                k,
                copy,
                email,
                kind,
                pin,
                filters,
                limit,
            },
        )
}

#[test]
fn random_users_documents_mail_and_queries_never_leak() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    // Who owns what is drawn by the same runner, so one seed is the whole case.
    let (documents, extra_mailboxes) = (
        proptest::collection::vec(subsequence(DOCUMENTS.to_vec(), 1..=3), USERS),
        proptest::collection::vec(select(&ADDRESSES[..]), USERS),
    )
        .new_tree(&mut runner)
        .unwrap()
        .current();
    // User i connects address i mod 3, and maybe one more drawn: users'
    // mailboxes differ, and users 0 and 3 both connect the first address.
    let mailboxes: Vec<Vec<&str>> = extra_mailboxes
        .iter()
        .enumerate()
        .map(|(index, extra)| {
            let own = ADDRESSES[index % ADDRESSES.len()];
            if *extra == own {
                vec![own]
            } else {
                vec![own, *extra]
            }
        })
        .collect();
    eprintln!("owners: {documents:?}\nmailboxes: {mailboxes:?}");

    let mail = runtime.block_on(mail_stack());
    let world = runtime.block_on(build_world(&mail, &documents, &mailboxes));
    let result = runner.run(
        &probes(world.words.len(), world.copies.len(), world.emails.len()),
        |probe| runtime.block_on(check(&mail.app, &world, &probe)),
    );
    runtime.block_on(mail.app.finish());
    if let Err(failure) = result {
        panic!("{failure}\nowners: {documents:?}\nmailboxes: {mailboxes:?}");
    }
}

/// The stack against a fake Google holding the mailboxes of [`ADDRESSES`]:
/// the small corpus emails split in two (real text, of most classes), and
/// a dozen generated messages in threads of three, every sixth with a
/// PDF attached (whose text one of [`DOCUMENTS`] also has).
async fn mail_stack() -> Mail {
    let mut small: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus("email/dev"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let size = path.metadata().unwrap().len();
            let limit = if name.starts_with("work_notmuch_list") {
                SMALL_LIST_EMAIL
            } else {
                SMALL_EMAIL
            };
            (name.ends_with(".eml") && size <= limit).then(|| (name, std::fs::read(&path).unwrap()))
        })
        .collect();
    small.sort();
    let odd = small.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>();
    let even = small.into_iter().step_by(2).collect::<Vec<_>>();
    let generated = pai_fake_google::generate_messages(&GenerateOptions {
        count: 12,
        seed: 31,
        reply_every: 3,
        attachment: Some((
            "crazy_ones.pdf".to_owned(),
            std::fs::read(corpus("pdf/dev/gen_crazy_ones_pdfa.pdf")).unwrap(),
        )),
        attachment_every: 6,
    });
    let fake = FakeGoogle::new(FakeGoogleConfig::default())
        .with_mailbox(ADDRESSES[0], Mailbox::from_messages(even))
        .with_mailbox(ADDRESSES[1], Mailbox::from_messages(odd))
        .with_mailbox(ADDRESSES[2], Mailbox::from_messages(generated));
    serve(fake, &[]).await
}

async fn build_world(mail: &Mail, documents: &[Vec<&str>], mailboxes: &[Vec<&str>]) -> World {
    let app = &mail.app;
    let mut users = Vec::new();
    let mut copies = Vec::new();
    for (index, files) in documents.iter().enumerate() {
        let user = app.register(&format!("prop{index}")).await;
        let token = user["access_token"].as_str().unwrap().to_owned();
        let mut owns = HashSet::new();
        for file in files {
            let doc = app.upload(&token, file).await;
            let id = doc["id"].as_str().unwrap().to_owned();
            owns.insert(id.clone());
            copies.push((index, id));
        }
        users.push(User {
            token,
            sources: owns.clone(),
            documents: owns,
            accounts: HashSet::new(),
        });
    }
    // The mail syncs while the documents index: (owner, address, account).
    let mut accounts = Vec::new();
    for (index, addresses) in mailboxes.iter().enumerate() {
        for address in addresses {
            let id = connect(mail, &users[index].token, address).await;
            users[index].accounts.insert(id.clone());
            accounts.push((index, *address, id));
        }
    }
    let mut by_file: BTreeMap<&str, String> = BTreeMap::new();
    for (index, files) in documents.iter().enumerate() {
        for (file, id) in files.iter().zip(
            copies
                .iter()
                .filter(|(owner, _)| *owner == index)
                .map(|(_, id)| id),
        ) {
            let doc = app.wait_document(&users[index].token, id).await;
            assert_eq!(doc["status"], "indexed", "{file}: {doc}");
            by_file.entry(file).or_insert_with(|| id.clone());
        }
    }
    for (owner, address, id) in &accounts {
        let account = synced(mail, &users[*owner].token, id).await;
        assert_eq!(account["state"], "active", "{account}");
        assert_eq!(
            account["messages"],
            mail.google.message_ids(address).len(),
            "{account}"
        );
    }
    all_indexed(app).await;
    let emails = own_mail(app, &mut users).await;
    owners_find_their_own(app, &users, &copies, "&source=document").await;
    // Each account's wordiest email, found by its owner; the two owners of
    // the first address (users 0 and 3) ask about theirs.
    let mut wordiest = Vec::new();
    let mut questions = Vec::new();
    for (owner, address, account) in &accounts {
        let ids = email_ids(&emails, account);
        let id: Uuid = sqlx::query_scalar(
            "SELECT source_id FROM search.chunks WHERE source_id = ANY($1) \
             GROUP BY source_id ORDER BY sum(length(text)) DESC, source_id LIMIT 1",
        )
        .bind(&ids)
        .fetch_one(&app.db)
        .await
        .unwrap();
        wordiest.push((*owner, id.to_string()));
        if *address == ADDRESSES[0] && owner % ADDRESSES.len() == 0 {
            questions.push((*owner, id.to_string()));
        }
    }
    owners_find_their_own(app, &users, &wordiest, "&source=email").await;
    let asked = owners_ask_their_mail(app, &users, &questions).await;

    let mut words = Vec::new();
    for id in by_file.values() {
        words.push(words_of(app, &[Uuid::parse_str(id).unwrap()]).await);
    }
    // One account of each connected address: the others hold the same text.
    let mut seen = HashSet::new();
    for (_, address, account) in &accounts {
        if seen.insert(*address) {
            words.push(words_of(app, &email_ids(&emails, account)).await);
        }
    }
    World {
        users,
        copies,
        emails,
        words,
        asked: std::sync::Mutex::new(asked),
    }
}

/// Lists each user's mail (their whole mail is one page); adds the emails
/// and their attachments to what the user owns.
async fn own_mail(app: &TestApp, users: &mut [User]) -> Vec<Email> {
    let mut emails = Vec::new();
    for (index, user) in users.iter_mut().enumerate() {
        let r = app.get("/api/emails?limit=200", &user.token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["next_cursor"].is_null(), "{}", r.body);
        let listed = r.body["emails"].as_array().unwrap();
        let accounts = app.get("/api/mail/accounts", &user.token).await.body;
        let stored: u64 = accounts["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["messages"].as_u64().unwrap())
            .sum();
        assert_eq!(listed.len() as u64, stored, "user {index}: {accounts}");
        for e in listed {
            let email = Email {
                owner: index,
                id: e["id"].as_str().unwrap().to_owned(),
                account: e["account_id"].as_str().unwrap().to_owned(),
                thread: e["thread_id"].as_str().unwrap().to_owned(),
                class: e["classification"].as_str().unwrap().to_owned(),
                date: e["date"].as_str().unwrap().parse().unwrap(),
            };
            assert!(user.accounts.contains(&email.account), "{e}");
            user.sources.insert(email.id.clone());
            for attachment in e["attachments"].as_array().into_iter().flatten() {
                user.sources
                    .insert(attachment["id"].as_str().unwrap().to_owned());
            }
            emails.push(email);
        }
    }
    emails
}

/// The ids of an account's emails.
fn email_ids(emails: &[Email], account: &str) -> Vec<Uuid> {
    emails
        .iter()
        .filter(|e| e.account == account)
        .map(|e| Uuid::parse_str(&e.id).unwrap())
        .collect()
}

/// Every word of the chunks of these sources (an email's attachments are
/// sources of their own, so a mailbox's words are its emails' only).
async fn words_of(app: &TestApp, ids: &[Uuid]) -> Vec<String> {
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT text FROM search.chunks WHERE source_id = ANY($1) ORDER BY source_id, ordinal",
    )
    .bind(ids)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let list: Vec<String> = texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(str::to_owned)
        .collect();
    assert!(!list.is_empty(), "sources {ids:?} have no chunk text");
    list
}

/// A passage of the source's first chunk, well under the query length limit.
async fn passage(app: &TestApp, id: &str) -> String {
    let first: String = sqlx::query_scalar(
        "SELECT text FROM search.chunks WHERE source_id = $1 ORDER BY ordinal LIMIT 1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut passage = String::new();
    for word in first.split_whitespace() {
        if passage.len() + word.len() >= 400 {
            break;
        }
        passage.push_str(word);
        passage.push(' ');
    }
    passage
}

/// Every owner finds each of these sources of theirs by a passage of it, in
/// every mode (with `extra` filters): an isolation that held because search
/// found nothing would fail here.
async fn owners_find_their_own(
    app: &TestApp,
    users: &[User],
    sources: &[(usize, String)],
    extra: &str,
) {
    for (owner, id) in sources {
        let passage = passage(app, id).await;
        for mode in MODES {
            let r = app
                .search(
                    &users[*owner].token,
                    &passage,
                    &format!("&mode={mode}&k=20{extra}"),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let found: Vec<&str> = r.body["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|hit| hit["source"]["id"].as_str())
                .collect();
            assert!(
                found.contains(&id.as_str()),
                "user {owner} searching a passage of their source {id} ({mode}{extra}) got {found:?}"
            );
        }
    }
}

/// The owner of each of these emails asks about it in its first words,
/// from mail only, all at the same time: the answer draws on it, and on
/// nothing of anyone else. Returns the questions asked: (asker, query id).
async fn owners_ask_their_mail(
    app: &TestApp,
    users: &[User],
    emails: &[(usize, String)],
) -> Vec<(usize, String)> {
    let asks = emails.iter().map(|(index, id)| {
        let (index, user) = (*index, &users[*index]);
        async move {
            let passage = passage(app, id).await;
            let question: Vec<&str> = passage.split_whitespace().take(20).collect();
            let r = app
                .post(
                    "/api/queries",
                    Some(&user.token),
                    json!({
                        "query": question.join(" "),
                        "k": 2,
                        "max_tokens": 1,
                        "source": "email"
                    }),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let sources = r.body["sources"].as_array().unwrap();
            assert!(
                sources.iter().any(|s| s["source_id"] == id.as_str()),
                "user {index} asking about their email {id}: {}",
                r.body
            );
            for source in sources {
                assert_eq!(source["source_kind"], "email", "{source}");
                assert!(
                    user.sources
                        .contains(source["source_id"].as_str().unwrap_or_default()),
                    "user {index} asking about their mail got another's source: {source}"
                );
            }
            (index, r.body["id"].as_str().unwrap().to_owned())
        }
    });
    futures::future::join_all(asks).await
}

/// The `id`s of a JSON array's items.
fn ids(items: &Value) -> HashSet<String> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str().map(str::to_owned))
        .collect()
}

/// Whether `r` is the API's 404 problem: what a caller gets for what is not
/// theirs, exactly as for what does not exist.
fn not_found(r: &Response) -> bool {
    r.status == StatusCode::NOT_FOUND
        && r.header("content-type") == Some("application/problem+json")
}

async fn check(app: &TestApp, world: &World, probe: &Probe) -> Result<(), TestCaseError> {
    let user = &world.users[probe.user];
    let words = &world.words[probe.source];
    let start = probe.start % words.len();
    let query: Vec<&str> = words[start..(start + probe.len).min(words.len())]
        .iter()
        .map(String::as_str)
        .collect();
    let query = query.join(" ");
    let mut extra = format!("&mode={}&k={}", probe.mode, probe.k);
    if !probe.category.is_empty() {
        extra.push_str(&format!("&category={}", probe.category));
    }
    if !probe.kind.is_empty() {
        extra.push_str(&format!("&source={}", probe.kind));
    }
    let pinned = match probe.pin {
        1 => Some(world.emails[probe.email].id.as_str()),
        2 => Some(world.copies[probe.copy].1.as_str()),
        _ => None,
    };
    if let Some(id) = pinned {
        extra.push_str(&format!("&document_id={id}"));
    }
    let r = app.search(&user.token, &query, &extra).await;
    prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for hit in r.body["hits"].as_array().into_iter().flatten() {
        let id = hit["source"]["id"].as_str().unwrap_or_default();
        prop_assert!(
            user.sources.contains(id) && pinned.is_none_or(|p| p == id),
            "user {} searching {query:?} ({extra}) got another's chunk: {hit}",
            probe.user
        );
    }

    // Some probes ask the words as a question (a short answer: what is
    // checked is where its sources come from), then probe someone's query.
    if probe.k <= 3 {
        let mut body = json!({"query": query, "max_tokens": 2, "k": probe.k});
        if !probe.kind.is_empty() {
            body["source"] = json!(probe.kind);
        }
        // A question can be pinned to documents only.
        let pinned = pinned.filter(|_| probe.pin == 2 && probe.kind != "email");
        if let Some(id) = pinned {
            body["document_ids"] = json!([id]);
        }
        let r = app.post("/api/queries", Some(&user.token), body).await;
        prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for source in r.body["sources"].as_array().into_iter().flatten() {
            let id = source["source_id"].as_str().unwrap_or_default();
            prop_assert!(
                user.sources.contains(id) && pinned.is_none_or(|p| p == id),
                "user {} asking {query:?} got another's source: {source}",
                probe.user
            );
        }
        let id = r.body["id"].as_str().unwrap_or_default().to_owned();
        let (asker, id) = {
            let mut asked = world.asked.lock().unwrap();
            asked.push((probe.user, id));
            asked[probe.copy % asked.len()].clone()
        };
        let query = app.get(&format!("/api/queries/{id}"), &user.token).await;
        if asker == probe.user {
            prop_assert_eq!(query.status, StatusCode::OK);
        } else {
            prop_assert_eq!(query.status, StatusCode::NOT_FOUND, "{}", query.body);
        }
        let listed = app.get("/api/queries?limit=100", &user.token).await;
        let mine: HashSet<String> = world
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(asker, _)| *asker == probe.user)
            .map(|(_, id)| id.clone())
            .collect();
        prop_assert_eq!(ids(&listed.body["queries"]), mine);
    }

    let (owner, id) = &world.copies[probe.copy];
    let document = app.get(&format!("/api/documents/{id}"), &user.token).await;
    let file = app
        .get(&format!("/api/documents/{id}/file"), &user.token)
        .await;
    if *owner == probe.user {
        prop_assert_eq!(document.status, StatusCode::OK);
        prop_assert_eq!(&document.body["id"], &Value::from(id.as_str()));
        prop_assert_eq!(file.status, StatusCode::OK);
    } else {
        prop_assert_eq!(document.status, StatusCode::NOT_FOUND, "{}", document.body);
        prop_assert_eq!(file.status, StatusCode::NOT_FOUND);
    }

    let listed = app.get("/api/documents?limit=100", &user.token).await;
    prop_assert_eq!(&ids(&listed.body["documents"]), &user.documents);
    check_mail(app, world, probe).await
}

/// The probe's email by id and by thread, the user's mail listed by that
/// email's filters, and the user's mail accounts.
async fn check_mail(app: &TestApp, world: &World, probe: &Probe) -> Result<(), TestCaseError> {
    let user = &world.users[probe.user];
    let email = &world.emails[probe.email];
    let r = app
        .get(&format!("/api/emails/{}", email.id), &user.token)
        .await;
    if email.owner == probe.user {
        prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        prop_assert_eq!(&r.body["id"], &Value::from(email.id.as_str()));
        prop_assert_eq!(&r.body["account_id"], &Value::from(email.account.as_str()));
    } else {
        prop_assert!(
            not_found(&r),
            "user {} got email {}: {}",
            probe.user,
            email.id,
            r.body
        );
    }

    // A thread is the user's own emails with its id: someone who connected
    // the same address has a thread of the same id, and sees only theirs.
    let theirs: HashSet<String> = world
        .emails
        .iter()
        .filter(|e| e.owner == probe.user && e.thread == email.thread)
        .map(|e| e.id.clone())
        .collect();
    let r = app
        .get(
            &format!("/api/emails/threads/{}", email.thread),
            &user.token,
        )
        .await;
    if theirs.is_empty() {
        prop_assert!(
            not_found(&r),
            "user {} got thread {}: {}",
            probe.user,
            email.thread,
            r.body
        );
    } else {
        prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        prop_assert_eq!(ids(&r.body["emails"]), theirs, "thread {}", email.thread);
    }

    // The list, filtered by the email's account, thread, class and date as
    // the probe says, page by page: exactly the user's emails that match.
    let class = mail_class(probe.category).then_some(probe.category);
    let after = (probe.filters & 4 != 0).then_some(email.date);
    let before = (probe.filters & 8 != 0).then(|| email.date + chrono::Duration::hours(1));
    let mut filter = String::new();
    if probe.filters & 1 != 0 {
        filter.push_str(&format!("&account_id={}", email.account));
    }
    if probe.filters & 2 != 0 {
        filter.push_str(&format!("&thread_id={}", email.thread));
    }
    if let Some(class) = class {
        filter.push_str(&format!("&classification={class}"));
    }
    for (name, time) in [("after", after), ("before", before)] {
        if let Some(time) = time {
            let time = time.to_rfc3339_opts(SecondsFormat::Micros, true);
            filter.push_str(&format!("&{name}={time}"));
        }
    }
    let expected: HashSet<&str> = world
        .emails
        .iter()
        .filter(|e| {
            e.owner == probe.user
                && (probe.filters & 1 == 0 || e.account == email.account)
                && (probe.filters & 2 == 0 || e.thread == email.thread)
                && class.is_none_or(|c| e.class == c)
                && after.is_none_or(|t| e.date >= t)
                && before.is_none_or(|t| e.date < t)
        })
        .map(|e| e.id.as_str())
        .collect();
    let listed = list_emails(app, &user.token, &filter, probe.limit).await?;
    let unique: HashSet<&str> = listed.iter().map(String::as_str).collect();
    prop_assert_eq!(
        unique.len(),
        listed.len(),
        "an email listed twice ({})",
        filter
    );
    prop_assert_eq!(unique, expected, "user {} listing {}", probe.user, filter);

    // The user's accounts, and no one else's: another's cannot be synced
    // or removed, and says so as if it did not exist.
    let r = app.get("/api/mail/accounts", &user.token).await;
    prop_assert_eq!(&ids(&r.body["accounts"]), &user.accounts);
    if !user.accounts.contains(&email.account) {
        let path = format!("/api/mail/accounts/{}", email.account);
        let sync = app
            .post(&format!("{path}/sync"), Some(&user.token), Value::Null)
            .await;
        prop_assert!(not_found(&sync), "{}", sync.body);
        let removed = app.delete(&path, &user.token, None).await;
        prop_assert!(not_found(&removed), "{}", removed.body);
    }
    Ok(())
}

/// The ids of every page of `GET /api/emails` with `filter`, `limit` a page.
async fn list_emails(
    app: &TestApp,
    token: &str,
    filter: &str,
    limit: u32,
) -> Result<Vec<String>, TestCaseError> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    // More pages than emails would be a loop.
    for _ in 0..=200 {
        let r = app
            .get(&format!("/api/emails?limit={limit}{filter}{cursor}"), token)
            .await;
        prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let page = r.body["emails"].as_array().cloned().unwrap_or_default();
        prop_assert!(page.len() <= limit as usize, "{}", r.body);
        ids.extend(
            page.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned)),
        );
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(ids),
        }
    }
    Err(TestCaseError::fail(format!("{filter}: paging never ends")))
}
