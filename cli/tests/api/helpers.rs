//! `spawn_app()`: a whole pai stack in this process on fresh resources:
//! its own PostgreSQL database and its own RabbitMQ events exchange, ports
//! picked by the OS. `TEST_LOG=1` shows the logs.

use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use pai::stack::{self, Service, Stack};
use pai_common::Env;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// How soon a revoked token must be refused. The gateway polls the
/// revocation feed every 200 ms, so on an idle machine it takes well under a
/// second; CI runs ~40 of these tests at once on two cores, which delays
/// the poll's tick.
pub const REVOKED_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub const PASSWORD: &str = "plum-orchard-lantern-42";

pub fn admin_db_url() -> String {
    std::env::var("PAI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// The embedding model `make models` installs.
pub fn model_path() -> String {
    std::env::var("EMBEDDING_MODEL_PATH").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/pai/models/all-minilm-l6-v2")
    })
}

/// The LLM `make models` installs.
pub fn llm_path() -> String {
    std::env::var("LLM_MODEL_PATH").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/pai/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    })
}

pub fn amqp_url() -> String {
    std::env::var("PAI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem body with `status`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
        assert!(self.body["type"].is_string());
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub auth_addr: SocketAddr,
    pub documents_addr: SocketAddr,
    pub search_addr: SocketAddr,
    pub inference_addr: Option<SocketAddr>,
    pub mail_addr: Option<SocketAddr>,
    pub env: Env,
    pub db: PgPool,
    pub http: reqwest::Client,
    pub exchange: String,
    pub jwt_secret: String,
    /// Uploads and indexes of this app only.
    pub data_dir: std::path::PathBuf,
    db_name: String,
    /// The services this process runs.
    services: Vec<Service>,
    stack: Option<Stack>,
}

#[derive(Default)]
pub struct Options {
    pub vars: Vec<(&'static str, String)>,
    /// Services this process leaves to others (a test runs them apart).
    pub without: Vec<Service>,
}

impl Options {
    pub fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }

    /// Starts the stack without `service` (the test runs it elsewhere).
    pub fn without(mut self, service: Service) -> Self {
        self.without.push(service);
        self
    }
}

/// How long a test stack may take to start.
const STACK_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);
/// How long a test's stack may take to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        pai_common::telemetry::init(&Env::from_pairs([("RUST_LOG", "info")]));
    }
    let id = Uuid::new_v4().simple().to_string();
    let db_name = format!("pai_test_{id}");
    let exchange = format!("pai.test.{id}");
    let jwt_secret = format!("test-secret-{id}");
    let data_dir = std::env::temp_dir().join(format!("pai-test-{id}"));
    let mut env = Env::from_pairs([
        (
            "DATABASE_URL",
            pai_common::db::with_database(&admin_db_url(), &db_name),
        ),
        ("DB_POOL_SIZE", "10".into()),
        ("AMQP_URL", amqp_url()),
        ("AMQP_EVENTS_EXCHANGE", exchange.clone()),
        ("JWT_SECRET_KEY", jwt_secret.clone()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("AUTH_GRPC_ADDR", "127.0.0.1:0".into()),
        ("DOCUMENTS_GRPC_ADDR", "127.0.0.1:0".into()),
        ("SEARCH_GRPC_ADDR", "127.0.0.1:0".into()),
        ("INFERENCE_GRPC_ADDR", "127.0.0.1:0".into()),
        ("MAIL_SYNC_GRPC_ADDR", "127.0.0.1:0".into()),
        ("EMBEDDING_MODEL_PATH", model_path()),
        ("LLM_MODEL_PATH", llm_path()),
        // Two answers at a time: tests run side by side on few cores.
        ("ASK_PARALLEL", "2".into()),
        ("PAI_EXTRACT_PROGRAM", env!("CARGO_BIN_EXE_pai").into()),
        (
            "UPLOAD_PATH",
            data_dir.join("uploads").to_string_lossy().into_owned(),
        ),
        (
            "VECTOR_DB_PATH",
            data_dir.join("vector_db").to_string_lossy().into_owned(),
        ),
        ("INGEST_RETRY_DELAY_MS", "200".into()),
        ("RATE_LIMIT_RPS", "0".into()),
        ("ALLOWED_ORIGINS", "http://allowed.example".into()),
    ]);
    for (name, value) in options.vars {
        env = env.with(name, value);
    }
    stack::migrate(&env, &Service::ALL).await.expect("migrate");
    let services: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|service| !options.without.contains(service))
        .collect();
    // A broker or database that stopped answering fails the test here
    // instead of hanging the whole run.
    let stack = tokio::time::timeout(STACK_START_LIMIT, Stack::start(&env, &services))
        .await
        .expect("the stack did not start within 3 minutes (is RabbitMQ answering? scripts/rabbitmq-tidy.sh)")
        .expect("start stack");
    let addr = stack.gateway_addr.expect("gateway address");
    let auth_addr = stack.auth_addr.expect("auth address");
    let documents_addr = stack.documents_addr.expect("documents address");
    let search_addr = stack.search_addr.expect("search address");
    let (inference_addr, mail_addr) = (stack.inference_addr, stack.mail_addr);
    let db = PgPool::connect(&pai_common::db::with_database(&admin_db_url(), &db_name))
        .await
        .expect("test pool");
    let app = TestApp {
        addr,
        auth_addr,
        documents_addr,
        search_addr,
        inference_addr,
        mail_addr,
        env,
        db,
        http: reqwest::Client::builder()
            .user_agent("pai-tests")
            .build()
            .expect("http client"),
        exchange,
        jwt_secret,
        data_dir,
        db_name,
        services,
        stack: Some(stack),
    };
    app.wait_ready().await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits for `/readyz`: up to five minutes, for a restart that
    /// rebuilds thousands of users' indexes in a debug build on a busy
    /// machine.
    async fn wait_ready(&self) {
        for _ in 0..6000 {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the stack never became ready");
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        self.call(Method::DELETE, path, Some(token), body).await
    }

    /// Registers `name` (email `name@example.com`) and returns the token response.
    pub async fn register(&self, name: &str) -> Value {
        let r = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "register {name}: {}", r.body);
        r.body
    }

    pub async fn login(&self, name: &str, password: &str) -> Response {
        self.post(
            "/api/auth/login",
            None,
            json!({"email": format!("{name}@example.com"), "password": password}),
        )
        .await
    }

    /// Polls `path` with `token` until it answers 401, for at most `limit`
    /// ([`REVOKED_WITHIN`] for a revocation).
    /// Returns how long it took.
    pub async fn until_unauthorized(&self, path: &str, token: &str, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let r = self.get(path, token).await;
            if r.status == StatusCode::UNAUTHORIZED {
                r.assert_problem(401);
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{path} still answered {} after {limit:?}",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes the account of `token`'s user with the right password.
    pub async fn delete_account(&self, token: &str) {
        let r = self
            .delete(
                "/api/users/account",
                token,
                Some(json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "delete account: {}",
            r.body
        );
    }

    /// Makes `user_id` an administrator, as `pai admin` would have.
    pub async fn make_admin(&self, name: &str) -> Value {
        sqlx::query("UPDATE auth.users SET is_admin = true WHERE username = $1")
            .bind(name)
            .execute(&self.db)
            .await
            .expect("promote");
        let r = self.login(name, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// A queue bound to this app's exchange for `routing_key`.
    pub async fn listen(&self, routing_key: &str) -> lapin::Consumer {
        let conn = pai_common::amqp::connect(&amqp_url()).await.expect("amqp");
        let channel = conn.create_channel().await.expect("channel");
        pai_common::amqp::declare_events_exchange(&channel, &self.exchange)
            .await
            .expect("exchange");
        let queue = channel
            .queue_declare(
                "",
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().as_str(),
                &self.exchange,
                routing_key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        channel
            .basic_consume(
                queue.name().as_str(),
                "test",
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume")
    }

    /// Stops the stack (killing it with `crash`) and starts a new one on the
    /// same database, exchange and folders.
    pub async fn restart(&mut self, crash: bool) {
        if let Some(stack) = self.stack.take() {
            if crash {
                stack.abort().await;
            } else {
                stack
                    .stop_within(STOP_GRACE)
                    .await
                    .expect("stack stopped cleanly");
            }
        }
        self.start().await;
    }

    /// The settings a `pai` command run beside this stack reads: this
    /// app's, with the services' addresses.
    pub fn cli_env(&self) -> Env {
        let url = |addr: Option<SocketAddr>| addr.map_or(String::new(), |a| format!("http://{a}"));
        self.env
            .clone()
            .with("AUTH_URL", url(Some(self.auth_addr)))
            .with("DOCUMENTS_URL", url(Some(self.documents_addr)))
            .with("SEARCH_URL", url(Some(self.search_addr)))
            .with("INFERENCE_URL", url(self.inference_addr))
            .with("MAIL_SYNC_URL", url(self.mail_addr))
    }

    /// The `pai` binary with [`Self::cli_env`] and `args`.
    pub fn pai_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pai"));
        command.args(args).env("RUST_LOG", "warn");
        for (name, value) in self.cli_env().vars() {
            command.env(name, value);
        }
        command
    }

    /// Stops the stack cleanly; [`Self::start`] starts it again.
    pub async fn stop(&mut self) {
        if let Some(stack) = self.stack.take() {
            stack
                .stop_within(STOP_GRACE)
                .await
                .expect("stack stopped cleanly");
        }
    }

    /// Starts the stack on this app's settings and waits until it is ready.
    pub async fn start(&mut self) {
        let stack = Stack::start(&self.env, &self.services)
            .await
            .expect("restart stack");
        self.addr = stack.gateway_addr.expect("gateway address");
        self.auth_addr = stack.auth_addr.expect("auth address");
        self.documents_addr = stack.documents_addr.expect("documents address");
        self.search_addr = stack.search_addr.expect("search address");
        self.inference_addr = stack.inference_addr;
        self.mail_addr = stack.mail_addr;
        self.stack = Some(stack);
        self.wait_ready().await;
    }

    /// Stops the stack and removes the database and the exchange.
    pub async fn finish(mut self) {
        if let Some(stack) = self.stack.take() {
            // Longer than a process's grace period: tests share two cores
            // and one broker, and the error names what did not stop.
            stack
                .stop_within(STOP_GRACE)
                .await
                .expect("stack stopped cleanly");
        }
        self.db.close().await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let mut admin = PgConnection::connect(&admin_db_url()).await.expect("admin");
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db_name
        ))
        .execute(&mut admin)
        .await
        .expect("drop test database");
        if let Ok(conn) = pai_common::amqp::connect(&amqp_url()).await
            && let Ok(channel) = conn.create_channel().await
        {
            let _ = channel
                .exchange_delete(&self.exchange, ExchangeDeleteOptions::default())
                .await;
            let _ = channel
                .queue_delete(
                    &pai_common::amqp::conversion_marker_queue(&self.exchange),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
            for subscription in pai_common::amqp::SUBSCRIPTIONS {
                let queue = subscription.queue(&self.exchange);
                let (retry, dead) = pai_common::amqp::side_queues(&queue);
                for name in [queue, retry, dead] {
                    let _ = channel
                        .queue_delete(&name, lapin::options::QueueDeleteOptions::default())
                        .await;
                }
            }
        }
    }
}

/// The repository's test corpus (`testdata/`, with its licences).
pub fn corpus(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(path)
}

impl TestApp {
    /// Uploads `bytes` as the multipart `file` field named `filename`.
    pub async fn upload_bytes(&self, token: &str, filename: &str, bytes: Vec<u8>) -> Response {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str("application/pdf")
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .http
            .post(self.url("/api/documents"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
        }
    }

    /// Uploads a file of the PDF corpus and returns the document (202).
    pub async fn upload(&self, token: &str, name: &str) -> Value {
        let bytes = std::fs::read(corpus(&format!("pdf/dev/{name}"))).expect("corpus file");
        let r = self.upload_bytes(token, name, bytes).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "upload {name}: {}", r.body);
        r.body
    }

    /// Polls the document until it is `indexed` or `failed`.
    pub async fn wait_document(&self, token: &str, id: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let r = self.get(&format!("/api/documents/{id}"), token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if matches!(r.body["status"].as_str(), Some("indexed" | "failed")) {
                return r.body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "document {id} still {} after 10 minutes",
                r.body["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn search(&self, token: &str, query: &str, extra: &str) -> Response {
        let q: String = url_encode(query);
        self.get(&format!("/api/search?q={q}{extra}"), token).await
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Lowercased with runs of whitespace made one space.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
