//! Issue 31: "Killing the mail-sync process mid-sync and starting it again
//! ends with every message stored once", with a real process and a real
//! kill. The stack runs in this process except mail-sync, which runs as
//! `pai run --service mail-sync` on its own. While it is halfway through a
//! full sync (the fake Google is slowed down), the test SIGKILLs it, so
//! nothing in flight is finished, acknowledged or cleaned up; then it starts
//! a new one on the same settings and asks for nothing. The sync must
//! resume by itself (RabbitMQ delivers the unacknowledged job again and
//! PostgreSQL frees the dead session's advisory lock), fetch only the
//! messages not stored yet, leave the account `active`, and store and index
//! every message of the mailbox exactly once.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pai::stack::Service;
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, GenerateOptions, Mailbox};
use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, spawn_app_with};
use crate::mail::{Mail, connect, google_options, synced};

const ADDRESS: &str = "owner@example.com";
/// Messages in the mailbox.
const MESSAGES: usize = 300;
/// How long each Gmail call takes: with 8 fetches at a time the full sync
/// takes about 4 s, long enough to be caught halfway.
const GMAIL_LATENCY: Duration = Duration::from_millis(100);
/// The sync is killed once this many messages are stored.
const KILL_AFTER: usize = MESSAGES / 5;

/// The settings of the in-process stack the mail-sync process shares.
const SHARED_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_POOL_SIZE",
    "AMQP_URL",
    "AMQP_EVENTS_EXCHANGE",
    "JWT_SECRET_KEY",
    "PAI_EXTRACT_PROGRAM",
    "UPLOAD_PATH",
    "GMAIL_CLIENT_ID",
    "GMAIL_CLIENT_SECRET",
    "GMAIL_REDIRECT_URI",
    "GOOGLE_AUTH_URL",
    "GOOGLE_TOKEN_URL",
    "GOOGLE_REVOKE_URL",
    "GMAIL_API_BASE_URL",
    "MAIL_TOKEN_ENCRYPTION_KEY",
    "MAIL_BACKOFF_BASE_MS",
    "MAIL_SYNC_INTERVAL_SECS",
];

/// `pai run --service mail-sync` as a child process, its output in a log
/// file under the app's data folder. Dropped, it is killed, so a failing
/// test leaves no process behind.
struct MailSyncProcess {
    child: Child,
    log: PathBuf,
}

impl MailSyncProcess {
    /// Starts it listening on `grpc_addr`, reaching the stack's auth and
    /// search services, and waits until it listens.
    async fn start(app: &TestApp, grpc_addr: &str, run: u32) -> Self {
        std::fs::create_dir_all(&app.data_dir).unwrap();
        let log = app.data_dir.join(format!("mail-sync-{run}.log"));
        let stdout = std::fs::File::create(&log).unwrap();
        let stderr = stdout.try_clone().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pai"));
        command
            .args(["run", "--service", "mail-sync"])
            // Only these settings: none from this process or a `.env`.
            .env_clear()
            .current_dir(&app.data_dir)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("AUTH_URL", format!("http://{}", app.auth_addr))
            .env("SEARCH_URL", format!("http://{}", app.search_addr))
            .env("MAIL_SYNC_GRPC_ADDR", grpc_addr)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        for name in SHARED_VARS {
            if let Some(value) = app.env.get(name) {
                command.env(name, value);
            }
        }
        let child = command
            .spawn()
            .expect("starting pai run --service mail-sync");
        let mut process = Self { child, log };
        let started = Instant::now();
        loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!(
                    "mail-sync exited ({status}) before listening:\n{}",
                    process.output()
                );
            }
            if tokio::net::TcpStream::connect(grpc_addr).await.is_ok() {
                return process;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mail-sync not listening on {grpc_addr} after 60 s:\n{}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and waits until it is gone.
    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL mail-sync");
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "{status}");
    }
}

impl Drop for MailSyncProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("mail-sync's log: {}", self.log.display());
        }
    }
}

/// A port free now, for the mail-sync process to listen on (both runs:
/// the gateway dials one address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn stored(mail: &Mail) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM mail.emails")
        .fetch_one(&mail.app.db)
        .await
        .unwrap();
    usize::try_from(count).unwrap()
}

#[tokio::test]
async fn killing_mail_sync_mid_sync_and_starting_it_again_stores_every_message_once() {
    let messages = pai_fake_google::generate_messages(&GenerateOptions {
        count: MESSAGES,
        ..GenerateOptions::default()
    });
    let fake = FakeGoogle::new(FakeGoogleConfig::default())
        .with_mailbox(ADDRESS, Mailbox::from_messages(messages));
    let (_, google) = pai_fake_google::spawn(fake).await;
    google.set_latency(GMAIL_LATENCY);
    let grpc_addr = format!("127.0.0.1:{}", free_port());
    let options = google_options(&google)
        .var("MAIL_SYNC_URL", format!("http://{grpc_addr}"))
        .without(Service::MailSync);
    let mail = Mail {
        app: spawn_app_with(options).await,
        google,
    };
    let first = MailSyncProcess::start(&mail.app, &grpc_addr, 1).await;
    let token = mail.app.register("restarted").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = connect(&mail, &token, ADDRESS).await;

    // Kill the process once the full sync is well under way.
    let started = Instant::now();
    while stored(&mail).await < KILL_AFTER {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync stored {} messages in 60 s:\n{}",
            stored(&mail).await,
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().await;
    // A commit sent just before the kill may still land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = stored(&mail).await;
    assert!(
        (KILL_AFTER..MESSAGES).contains(&before),
        "{before} stored when killed"
    );
    let state: String =
        sqlx::query_scalar("SELECT state FROM mail.email_accounts WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&mail.app.db)
            .await
            .unwrap();
    assert_eq!(state, "syncing", "killed mid-sync");
    mail.google.reset_counters();

    // A new process, and nothing asked of it: the killed sync resumes.
    let second = MailSyncProcess::start(&mail.app, &grpc_addr, 2).await;
    let started = Instant::now();
    while mail.app.get("/api/mail/accounts", &token).await.status != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway does not reach the new mail-sync"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = synced(&mail, &token, &id).await;
    assert_eq!(done["state"], "active", "{done}\n{}", second.output());
    assert_eq!(done["messages"], MESSAGES, "{done}");
    assert!(done["last_error"].is_null(), "{done}");
    // It listed the mailbox again and fetched only what was missing.
    assert!(mail.google.count("users.messages.list") >= 1);
    assert_eq!(
        mail.google.count("users.messages.get"),
        (MESSAGES - before) as u64,
        "{:?}",
        mail.google.counters()
    );

    // Every message of the mailbox stored, each once.
    let provider_ids: Vec<String> =
        sqlx::query_scalar("SELECT provider_id FROM mail.emails WHERE account_id = $1::uuid")
            .bind(&id)
            .fetch_all(&mail.app.db)
            .await
            .unwrap();
    assert_eq!(provider_ids.len(), MESSAGES);
    let stored_ids: BTreeSet<String> = provider_ids.into_iter().collect();
    let mailbox_ids: BTreeSet<String> = mail.google.message_ids(ADDRESS).into_iter().collect();
    assert_eq!(stored_ids.len(), MESSAGES, "a message stored twice");
    assert_eq!(stored_ids, mailbox_ids);
    let skipped: i64 = sqlx::query_scalar("SELECT count(*) FROM mail.skipped_messages")
        .fetch_one(&mail.app.db)
        .await
        .unwrap();
    assert_eq!(skipped, 0);

    // Every email indexed, each under its one stored id, and nothing else.
    let started = Instant::now();
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM mail.emails WHERE index_status <> 'indexed'")
                .fetch_one(&mail.app.db)
                .await
                .unwrap();
        if waiting == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{waiting} emails still not indexed after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (sources, orphans): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT c.source_id), \
                count(*) FILTER (WHERE NOT EXISTS \
                    (SELECT 1 FROM mail.emails e WHERE e.id = c.source_id)) \
         FROM search.chunks c WHERE c.source_kind = 'email'",
    )
    .fetch_one(&mail.app.db)
    .await
    .unwrap();
    assert_eq!((sources, orphans), (MESSAGES as i64, 0));

    second.kill().await;
    mail.app.finish().await;
}
