//! `pai import-sqlite` and `pai export-sqlite` on an older install built by
//! `scripts/make-old-install.py` (3 users, the dev corpus's PDFs, 200
//! emails, 50 queries, and the mess real installs have): everything comes
//! in once, each user sees exactly their own, a killed run finishes on the
//! next, and the export gives every row back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pai::import::{self, Report};
use pai::old_install::OldInstall;
use reqwest::StatusCode;
use serde_json::{Value, json};

use pai_fake_google::{FakeGoogle, FakeGoogleConfig, Mailbox};

use crate::helpers::{Options, TestApp, corpus, spawn_app_with};

const MAIL_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn app() -> TestApp {
    spawn_app_with(Options::default().var("MAIL_TOKEN_ENCRYPTION_KEY", MAIL_KEY)).await
}

/// Builds the old install under the app's folder; returns it and what the
/// script says a complete import brings in.
fn old_install(app: &TestApp) -> (PathBuf, Value) {
    old_install_with(app, &[])
}

/// [`old_install`] with the script's `args` (`--users N`, `--emails N`...).
fn old_install_with(app: &TestApp, args: &[&str]) -> (PathBuf, Value) {
    let folder = app.data_dir.join("old");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-old-install.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg("--out")
        .arg(&folder)
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "make-old-install.py failed");
    let expected = std::fs::read_to_string(folder.join("expected.json")).expect("expected.json");
    (
        folder,
        serde_json::from_str(&expected).expect("expected.json is JSON"),
    )
}

fn options(folder: &Path, dry_run: bool) -> import::Options {
    import::Options {
        db: folder.join("pai.db"),
        data: folder.join("data"),
        dry_run,
        wait: true,
        pace: std::time::Duration::ZERO,
    }
}

fn imported(report: &Report, table: &str) -> u64 {
    report.table(table).expect(table).imported
}

fn skipped(report: &Report, table: &str) -> BTreeSet<i64> {
    report
        .table(table)
        .expect(table)
        .skipped
        .iter()
        .map(|s| s.old_id)
        .collect()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&app.db)
        .await
        .expect(table)
}

/// Rows per pai table: what a complete import leaves.
async fn counts(app: &TestApp) -> Vec<i64> {
    let mut all = Vec::new();
    for table in [
        "auth.users",
        "documents.documents",
        "inference.queries",
        "mail.email_accounts",
        "mail.emails",
        "mail.email_attachments",
    ] {
        all.push(count(app, table).await);
    }
    all
}

/// Every page of a list endpoint.
async fn all_pages(app: &TestApp, path: &str, field: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = app
            .get(&format!("{path}{sep}limit=100&cursor={cursor}"), token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        items.extend(r.body[field].as_array().expect(field).iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return items,
        }
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_old_install_imports_completely_once_and_exports_back() {
    let app = app().await;
    let (folder, expected) = old_install(&app);
    let counts_expected = &expected["counts"];

    // A dry run says what would happen and writes nothing.
    let dry = import::run(&app.cli_env(), &options(&folder, true))
        .await
        .expect("dry run");
    assert_eq!(imported(&dry, "users"), 3);
    assert_eq!(skipped(&dry, "users"), BTreeSet::from([4]));
    assert_eq!(
        count(&app, "auth.users").await,
        0,
        "a dry run writes nothing"
    );
    assert!(dry.render().contains("dry run: nothing was written"));

    let report = import::run(&app.cli_env(), &options(&folder, false))
        .await
        .expect("import");
    let text = report.render();
    assert!(report.verified(), "{text}");
    let documents_expected = counts_expected["documents"].as_u64().unwrap() - 1;
    assert_eq!(imported(&report, "users"), 3, "{text}");
    assert_eq!(imported(&report, "documents"), documents_expected, "{text}");
    assert_eq!(imported(&report, "queries"), 50, "{text}");
    assert_eq!(
        imported(&report, "email_accounts"),
        counts_expected["email_accounts"].as_u64().unwrap(),
        "{text}"
    );
    assert_eq!(imported(&report, "emails"), 200, "{text}");
    // Every skipped row the script planted, with its reason.
    for planted in expected["skipped"].as_array().unwrap() {
        let table = planted["table"].as_str().unwrap();
        let row = report
            .table(table)
            .unwrap()
            .skipped
            .iter()
            .find(|s| s.old_id == planted["old_id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("{planted} not reported: {text}"));
        let words = planted["reason"].as_str().unwrap();
        assert!(
            row.reason.contains(words)
                || words.contains("missing") && row.reason.contains("missing"),
            "{}: {} (planted: {words})",
            table,
            row.reason
        );
        assert!(
            text.contains(&row.reason),
            "the report names the reason: {text}"
        );
    }
    assert_eq!(
        report.documents_indexed + report.documents_failed,
        documents_expected,
        "the import waited for every document: {text}"
    );

    // Each user signs in with their old password; the hash becomes argon2id.
    let users = expected["users"].as_array().unwrap();
    let mut tokens = Vec::new();
    for user in users {
        let r = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": user["email"], "password": user["password"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", user["email"], r.body);
        assert_eq!(r.body["user"]["is_admin"], user["is_admin"]);
        let hash: String = sqlx::query_scalar(
            "SELECT password_hash FROM auth.users WHERE lower(email) = lower($1)",
        )
        .bind(user["email"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        tokens.push(r.body["access_token"].as_str().unwrap().to_owned());
    }

    // Each sees exactly their documents (indexed, searchable), mail and
    // history; nothing of the others'.
    let mut document_ids = Vec::new();
    for (user, token) in users.iter().zip(&tokens) {
        let documents = all_pages(&app, "/api/documents", "documents", token).await;
        let names: BTreeSet<String> = documents
            .iter()
            .map(|d| d["filename"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = user["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, want, "{}", user["email"]);
        // Indexed, but for the corpus's broken PDFs (failed, with why).
        for d in &documents {
            let broken = d["filename"].as_str().unwrap().starts_with("edge_");
            if !broken || d["status"] != "failed" {
                assert_eq!(d["status"], "indexed", "{d}");
            } else {
                assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
            }
        }
        document_ids.push(
            documents
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        let indexed = documents
            .iter()
            .find(|d| d["status"] == "indexed" && d["chunks"].as_u64() > Some(0))
            .expect("an indexed document");
        let title = indexed["title"].as_str().unwrap();
        let r = app.search(token, title, "&k=20").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let hits = r.body["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "nothing found for {title:?}");
        for hit in hits {
            let id = hit["source"]["id"].as_str().unwrap();
            let kind = hit["source"]["kind"].as_str().unwrap_or("document");
            if kind == "document" {
                assert!(
                    document_ids.last().unwrap().iter().any(|d| d == id),
                    "{hit}"
                );
            }
        }
        let emails = all_pages(&app, "/api/emails", "emails", token).await;
        assert_eq!(emails.len() as u64, user["emails"].as_u64().unwrap());
        // Threads as the old app kept them.
        let thread = emails[0]["thread_id"].as_str().unwrap();
        let r = app
            .get(&format!("/api/emails/threads/{thread}"), token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let in_thread = emails.iter().filter(|e| e["thread_id"] == thread).count();
        assert_eq!(r.body["emails"].as_array().unwrap().len(), in_thread);
        let queries = all_pages(&app, "/api/queries", "queries", token).await;
        assert_eq!(queries.len() as u64, user["queries"].as_u64().unwrap());
    }
    for (n, ids) in document_ids.iter().enumerate() {
        let other = &tokens[(n + 1) % tokens.len()];
        let r = app.get(&format!("/api/documents/{}", ids[0]), other).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "another user's document");
    }

    // Again: nothing twice.
    let before = counts(&app).await;
    let again = import::run(&app.cli_env(), &options(&folder, false))
        .await
        .expect("second import");
    for table in ["users", "documents", "queries", "email_accounts", "emails"] {
        assert_eq!(imported(&again, table), 0, "{}", again.render());
    }
    assert_eq!(again.table("emails").unwrap().already, 200);
    assert_eq!(
        counts(&app).await,
        before,
        "the second run imported nothing"
    );

    // Export, and compare with the original row by row (ids aside).
    let out = app.data_dir.join("export").join("pai.db");
    let exported = pai::export::run(&app.cli_env(), &out)
        .await
        .expect("export");
    let text = exported.render();
    for user in users {
        let email = user["email"].as_str().unwrap();
        assert!(
            exported.must_reset.iter().any(|u| u == email),
            "signed in, so argon2id: {text}"
        );
        assert!(text.contains(email));
    }
    compare(&folder, &out, &expected);
    app.finish().await;
}

/// What the old app's rows say, keyed by natural keys instead of ids.
#[derive(Debug, PartialEq)]
struct Rows {
    users: BTreeSet<String>,
    /// (owner, file name) → [title, metadata, namespace, created_at]
    documents: BTreeMap<(String, String), Value>,
    queries: Vec<String>,
    accounts: BTreeSet<String>,
    /// (owner, account, thread, created_at, subject) → [content, classification]
    emails: BTreeMap<String, Value>,
    attachments: Vec<String>,
}

fn rows(db: &Path, skipped_users: &BTreeSet<i64>) -> Rows {
    let old = OldInstall::open(db).expect("open");
    let root = db.parent().unwrap();
    let all_users = old.users().unwrap();
    let users: BTreeMap<i64, String> = all_users
        .iter()
        .filter(|u| !skipped_users.contains(&u.id))
        .map(|u| (u.id, u.email.clone().unwrap()))
        .collect();
    let user_rows = all_users
        .iter()
        .filter(|u| users.contains_key(&u.id))
        .map(|u| json!([u.email, u.username, u.is_admin, u.is_active, u.created_at]).to_string())
        .collect();
    let documents_all = old.documents().unwrap();
    // Documents whose file is there (the others cannot come in).
    let files: BTreeMap<i64, String> = documents_all
        .iter()
        .filter_map(|d| {
            let path = d.file_path.as_deref()?;
            root.join(path).is_file().then(|| (d.id, file_name(path)))
        })
        .collect();
    let documents = documents_all
        .iter()
        .filter(|d| files.contains_key(&d.id))
        .map(|d| {
            let metadata: Value = d
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .filter(Value::is_object)
                .unwrap_or(json!({}));
            (
                (users[&d.user_id.unwrap()].clone(), files[&d.id].clone()),
                json!([d.title, metadata, d.namespace, d.created_at]),
            )
        })
        .collect();
    let mut queries: Vec<String> = old
        .queries()
        .unwrap()
        .into_iter()
        .map(|q| {
            let sources: Vec<Value> = q
                .sources
                .as_deref()
                .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|s| json!([files.get(&s["document_id"].as_i64().unwrap()), s["page"]]))
                .collect();
            json!([
                users[&q.user_id.unwrap()],
                q.query_text,
                q.response,
                sources,
                q.created_at
            ])
            .to_string()
        })
        .collect();
    queries.sort();
    let accounts_all = old.accounts().unwrap();
    let accounts: BTreeMap<i64, String> = accounts_all
        .iter()
        .map(|a| (a.id, a.email_address.clone().unwrap().to_lowercase()))
        .collect();
    let account_rows = accounts_all
        .iter()
        .map(|a| {
            json!([
                users[&a.user_id.unwrap()],
                accounts[&a.id],
                a.access_token,
                a.refresh_token,
                a.created_at
            ])
            .to_string()
        })
        .collect();
    let emails_all = old.emails().unwrap();
    let email_key = |e: &pai::old_install::OldEmail| {
        json!([
            users[&e.user_id.unwrap()],
            accounts[&e.account_id.unwrap()],
            e.thread_id,
            e.created_at,
            e.subject
        ])
        .to_string()
    };
    let emails = emails_all
        .iter()
        .map(|e| (email_key(e), json!([e.content, e.classification])))
        .collect();
    let keys: BTreeMap<i64, String> = emails_all.iter().map(|e| (e.id, email_key(e))).collect();
    let mut attachments: Vec<String> = old
        .attachments()
        .unwrap()
        .into_iter()
        .map(|a| {
            let size = a
                .file_path
                .as_deref()
                .and_then(|p| std::fs::metadata(root.join(p)).ok())
                .map(|m| m.len());
            json!([keys[&a.email_id.unwrap()], a.filename, a.content_type, size]).to_string()
        })
        .collect();
    attachments.sort();
    Rows {
        users: user_rows,
        documents,
        queries,
        accounts: account_rows,
        emails,
        attachments,
    }
}

/// import → export: every row of the original comes back, but what the
/// report names: the skipped rows, a title derived from the file name
/// where the old row had none, a classification by pai's rules where the
/// old row had none (Latin-1 text reads as the same text on both sides).
fn compare(folder: &Path, exported: &Path, expected: &Value) {
    let skipped_users: BTreeSet<i64> = expected["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["table"] == "users")
        .map(|s| s["old_id"].as_i64().unwrap())
        .collect();
    let mut original = rows(&folder.join("pai.db"), &skipped_users);
    let back = rows(exported, &BTreeSet::new());
    for (key, row) in &mut original.documents {
        if row[0].is_null() {
            let derived = &back.documents.get(key).expect("document exported")[0];
            assert!(derived.is_string(), "a title was derived: {derived}");
            row[0] = derived.clone();
        }
    }
    for (key, row) in &mut original.emails {
        if row[1].is_null() {
            let classified = &back.emails.get(key).expect("email exported")[1];
            assert!(classified.is_string(), "classified: {classified}");
            row[1] = classified.clone();
        }
    }
    assert_eq!(original.users, back.users, "users");
    assert_eq!(original.documents, back.documents, "documents");
    assert_eq!(original.queries, back.queries, "queries");
    assert_eq!(original.accounts, back.accounts, "email accounts");
    assert_eq!(original.emails, back.emails, "emails");
    assert_eq!(original.attachments, back.attachments, "attachments");
}

#[tokio::test]
async fn a_killed_import_finishes_on_the_next_run_with_the_same_counts() {
    let app = app().await;
    let (folder, expected) = old_install(&app);
    let db = folder.join("pai.db");
    let data = folder.join("data");
    let args = [
        "import-sqlite",
        "--db",
        db.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--no-wait",
        "--pace-ms",
        "20",
    ];
    let mut child = app
        .pai_command(&args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pai import-sqlite starts");
    // Kill it once part of the documents are in.
    let started = std::time::Instant::now();
    loop {
        let mapped: i64 =
            sqlx::query_scalar("SELECT count(*) FROM import.id_map WHERE kind = 'documents'")
                .fetch_one(&app.db)
                .await
                .unwrap_or(0);
        if mapped >= 5 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the import never got to the documents"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed halfway, not finished");
    let halfway = count(&app, "mail.emails").await;
    assert_eq!(halfway, 0, "killed before the mail");

    let output = app
        .pai_command(&args[..args.len() - 2])
        .output()
        .await
        .expect("second run");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("verification"), "{report}");
    let counts_expected = &expected["counts"];
    assert_eq!(
        counts(&app).await,
        vec![
            3,
            counts_expected["documents"].as_i64().unwrap() - 1,
            50,
            counts_expected["email_accounts"].as_i64().unwrap(),
            200,
            12,
        ],
        "the same counts as one clean run:\n{report}"
    );
    app.finish().await;
}

/// The old app kept no Gmail message id: the imported account's first sync
/// recognises Gmail's copies of its imported emails by subject and text
/// and fills those rows in (Gmail id, sender, Message-ID), so each message
/// is stored once under its imported id. Emails the old app kept without a
/// subject, re-encoded, or without text stay beside Gmail's copies.
#[tokio::test]
async fn the_first_gmail_sync_fills_imported_mail_in_instead_of_storing_it_twice() {
    const ADDRESS: &str = "alice@example.com";
    let fake = FakeGoogle::new(FakeGoogleConfig::default()).with_mailbox(
        ADDRESS,
        Mailbox::from_eml_dir(corpus("email/dev")).expect("the corpus loads"),
    );
    let mail = crate::mail::serve(fake, &[]).await;
    // The old app's consent: its refresh token still works at Google.
    mail.google
        .grant_offline_access(ADDRESS, "1//old-refresh-1");
    let gmail_messages = mail.google.message_ids(ADDRESS).len() as i64;
    let app = &mail.app;
    let (folder, _) = old_install_with(
        app,
        &[
            "--users",
            "1",
            "--documents",
            "1",
            "--emails",
            "30",
            "--queries",
            "1",
        ],
    );
    let report = import::run(&app.cli_env(), &options(&folder, false))
        .await
        .expect("import");
    assert!(report.verified(), "{}", report.render());

    // The account's old emails are the odd ones (two accounts take turns),
    // the corpus messages in order. All but four have a Gmail copy to match:
    // 5 (newsletter_big5_html: HTML only, the old app kept no text), 13
    // (its subject NULL), 17 (its text cut and re-encoded as Latin-1), 19
    // (personal_korean: "test" and three letters, too little to tell apart).
    let old = OldInstall::open(&folder.join("pai.db")).unwrap();
    let account_old_id = 1;
    let emails = old.emails().unwrap();
    let of_account: Vec<_> = emails
        .iter()
        .filter(|e| e.account_id == Some(account_old_id))
        .collect();
    assert_eq!(of_account.len(), 15);
    let want: BTreeSet<i64> = (1..30)
        .step_by(2)
        .filter(|n| ![5, 13, 17, 19].contains(n))
        .collect();

    let account_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT new_id FROM import.id_map WHERE kind = 'email_accounts' AND old_id = $1",
    )
    .bind(account_old_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADDRESS, "password": "lantern-harbour-1987"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["access_token"].as_str().unwrap();
    // Right after the import, its first sync waits a minute for more mail
    // to come in, and "Sync now" says so.
    let sync_path = format!("/api/mail/accounts/{account_id}/sync");
    let early = app.post(&sync_path, Some(token), Value::Null).await;
    early.assert_problem(409);
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("being imported"),
        "{}",
        early.body
    );
    // A minute later.
    sqlx::query("UPDATE mail.email_accounts SET importing_until = now() WHERE id = $1")
        .bind(account_id)
        .execute(&app.db)
        .await
        .unwrap();
    let account = crate::mail::sync_now(&mail, token, &account_id.to_string()).await;
    assert_eq!(account["state"], "active", "{account}");

    // Every Gmail message is stored once (or recorded as skipped)...
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT provider_id) FROM mail.emails \
         WHERE account_id = $1 AND provider_id NOT LIKE 'imported:%'",
    )
    .bind(account_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let skipped = count(app, "mail.skipped_messages").await;
    assert_eq!(rows, distinct);
    assert_eq!(rows + skipped, gmail_messages);
    // ... the matched ones in the imported rows, under their imported ids,
    // with what Gmail has; the others stayed as they came.
    let states: Vec<(i64, String, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT m.old_id, e.provider_id, e.from_email, e.message_id, e.labels \
         FROM import.id_map m JOIN mail.emails e ON e.id = m.new_id \
         WHERE m.kind = 'emails' AND e.account_id = $1",
    )
    .bind(account_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(states.len(), of_account.len(), "no imported email is lost");
    let mut adopted = BTreeSet::new();
    for (old_id, provider_id, from, message_id, labels) in &states {
        if provider_id.starts_with("imported:") {
            assert_eq!(labels, &["IMPORTED"], "{old_id}");
            continue;
        }
        assert!(!from.is_empty(), "{old_id}: Gmail's sender ({message_id})");
        assert!(
            !labels.iter().any(|l| l == "IMPORTED"),
            "{old_id}: {labels:?}"
        );
        adopted.insert(*old_id);
    }
    assert_eq!(
        adopted, want,
        "the imported emails Gmail's copies filled in"
    );
    let total = count(app, "mail.emails").await;
    let other_account = (emails.len() - of_account.len()) as i64;
    assert_eq!(
        total,
        other_account + of_account.len() as i64 + rows - want.len() as i64,
        "nothing stored twice"
    );
    // The filled-in rows are indexed again, from Gmail's text.
    crate::mail::all_indexed(app).await;
    mail.app.finish().await;
}
