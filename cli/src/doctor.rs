//! `pai doctor`: checks what pai needs and prints each problem with its fix.

use std::path::Path;
use std::time::Duration;

use pai_common::Env;
use pai_common::config::{AmqpSettings, DatabaseSettings};

/// One check's outcome.
#[derive(Debug)]
pub struct Finding {
    pub check: String,
    /// `None` when the check passed, else what to do about it.
    pub problem: Option<(String, String)>,
}

impl Finding {
    fn ok(check: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            problem: None,
        }
    }

    fn problem(check: impl Into<String>, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            problem: Some((what.into(), fix.into())),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs every check; the only change it makes is creating a missing data folder.
pub async fn run(env: &Env) -> Vec<Finding> {
    let mut findings = vec![config(env), language_model(env)];
    findings.extend(postgres(env).await);
    findings.push(rabbitmq(env).await);
    for (name, default) in [
        ("UPLOAD_PATH", "data/uploads"),
        ("VECTOR_DB_PATH", "data/vector_db"),
    ] {
        findings.push(folder(name, &env.string(name, default)));
    }
    findings
}

fn config(env: &Env) -> Finding {
    // The inference settings also check that the embedding model is installed.
    let result = pai_auth::AuthSettings::from_env(env)
        .map(drop)
        .and_then(|()| pai_gateway::GatewaySettings::from_env(env).map(drop))
        .and_then(|()| pai_inference::InferenceSettings::from_env(env).map(drop))
        .and_then(|()| pai_inference::AskSettings::from_env(env).map(drop))
        .and_then(|()| pai_search::SearchSettings::from_env(env).map(drop))
        .and_then(|()| pai_documents::DocumentsSettings::from_env(env).map(drop));
    match result {
        Ok(()) => Finding::ok("configuration"),
        Err(err) => Finding::problem(
            "configuration",
            format!("{}: {}", err.name, err.reason),
            format!(
                "set {} in the environment or .env (see .env.example)",
                err.name
            ),
        ),
    }
}

/// PostgreSQL: reachable, the connection's encryption, each schema's migrations.
pub async fn postgres(env: &Env) -> Vec<Finding> {
    let settings = match DatabaseSettings::from_env(env) {
        Ok(settings) => settings,
        Err(err) => {
            return vec![Finding::problem(
                "postgresql",
                err.to_string(),
                "fix DB_POOL_SIZE",
            )];
        }
    };
    let pool = match pai_common::db::pool(&settings) {
        Ok(pool) => pool,
        Err(err) => {
            return vec![Finding::problem(
                "postgresql",
                err.to_string(),
                "set DATABASE_URL to postgres://USER:PASSWORD@HOST:5432/pai",
            )];
        }
    };
    let reachable = tokio::time::timeout(TIMEOUT, sqlx::query("SELECT 1").execute(&pool)).await;
    match reachable {
        Ok(Ok(_)) => {}
        Ok(Err(err)) if is_tls_refused(&err) => {
            return vec![Finding::problem(
                "postgresql",
                format!(
                    "cannot connect: DATABASE_URL asks for TLS (sslmode), and the server refused it: {err}"
                ),
                "turn TLS on in PostgreSQL (ssl = on, with a certificate), or lower sslmode in DATABASE_URL",
            )];
        }
        Ok(Err(err)) => {
            return vec![Finding::problem(
                "postgresql",
                format!("cannot connect: {err}"),
                "start PostgreSQL (`make services`) or fix DATABASE_URL; `pai migrate` creates the database",
            )];
        }
        Err(_) => {
            return vec![Finding::problem(
                "postgresql",
                "no answer within 3 s",
                "start PostgreSQL (`make services`) or fix DATABASE_URL",
            )];
        }
    }
    let mut findings = vec![Finding::ok("postgresql"), encryption(&pool).await];
    let schemas = [
        (pai_auth::SCHEMA, &pai_auth::MIGRATOR),
        (pai_documents::SCHEMA, &pai_documents::MIGRATOR),
        (pai_search::SCHEMA, &pai_search::MIGRATOR),
        (pai_inference::SCHEMA, &pai_inference::MIGRATOR),
        (pai_mail_sync::SCHEMA, &pai_mail_sync::MIGRATOR),
    ];
    for (schema, migrator) in schemas {
        let latest = migrator.iter().map(|m| m.version).max();
        let check = format!("schema {schema}");
        match pai_common::db::schema_version(&pool, schema).await {
            Ok(applied) if applied == latest => findings.push(Finding::ok(check)),
            Ok(applied) => findings.push(Finding::problem(
                check,
                format!("at version {applied:?}, the code expects {latest:?}"),
                "run `pai migrate`",
            )),
            Err(err) => findings.push(Finding::problem(
                check,
                err.to_string(),
                "run `pai migrate`",
            )),
        }
    }
    pool.close().await;
    findings
}

/// Whether connecting failed because the server would not speak TLS
/// while `sslmode` required it.
fn is_tls_refused(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Tls(_)) || err.to_string().contains("server does not support TLS")
}

/// Whether the connection to PostgreSQL is encrypted, as the server sees it
/// (`pg_stat_ssl`). Not a problem either way: a server on this machine
/// needs no TLS; one across a network should get `sslmode=verify-full`.
async fn encryption(pool: &sqlx::PgPool) -> Finding {
    let row: Result<Option<(bool, Option<String>)>, _> =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(pool)
            .await;
    match row {
        Ok(Some((true, version))) => Finding::ok(format!(
            "postgresql connection encrypted ({})",
            version.unwrap_or_else(|| "TLS".to_owned())
        )),
        Ok(_) => Finding::ok(
            "postgresql connection not encrypted (for a server across a network, add sslmode=verify-full&sslrootcert=CA.pem to DATABASE_URL)",
        ),
        Err(err) => Finding::problem(
            "postgresql connection",
            format!("cannot read pg_stat_ssl: {err}"),
            "check the role's rights on pg_stat_ssl",
        ),
    }
}

async fn rabbitmq(env: &Env) -> Finding {
    let settings = match AmqpSettings::from_env(env) {
        Ok(settings) => settings,
        Err(err) => return Finding::problem("rabbitmq", err.to_string(), "fix AMQP_URL"),
    };
    match tokio::time::timeout(TIMEOUT, pai_common::amqp::connect(&settings.url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "pai doctor").await;
            Finding::ok("rabbitmq")
        }
        Ok(Err(err)) => Finding::problem(
            "rabbitmq",
            format!("cannot connect: {err}"),
            "start RabbitMQ (`make services`) or fix AMQP_URL",
        ),
        Err(_) => Finding::problem(
            "rabbitmq",
            "no answer within 3 s",
            "start RabbitMQ (`make services`) or fix AMQP_URL",
        ),
    }
}

/// The GGUF the answers come from: present, readable and GGUF.
fn language_model(env: &Env) -> Finding {
    let path = env.string("LLM_MODEL_PATH", pai_inference::DEFAULT_LLM_MODEL_PATH);
    let check = format!("LLM_MODEL_PATH ({path})");
    match pai_inference::llm::check_model_file(Path::new(&path)) {
        Ok(()) => Finding::ok(check),
        Err(reason) => Finding::problem(
            check,
            reason,
            "install the default model with `make models`, or point LLM_MODEL_PATH at a GGUF file",
        ),
    }
}

fn folder(name: &str, path: &str) -> Finding {
    let check = format!("{name} ({path})");
    let dir = Path::new(path);
    if !dir.exists() {
        return match std::fs::create_dir_all(dir) {
            Ok(()) => Finding::ok(check),
            Err(err) => Finding::problem(
                check,
                format!("missing and cannot be created: {err}"),
                format!("create it or point {name} at a writable folder"),
            ),
        };
    }
    let probe = dir.join(".pai-doctor");
    match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        Ok(()) => Finding::ok(check),
        Err(err) => Finding::problem(
            check,
            format!("not writable: {err}"),
            format!("fix its permissions or point {name} at a writable folder"),
        ),
    }
}
