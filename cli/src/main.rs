//! `pai`: runs pai's services, migrates, administers and diagnoses.

use anyhow::Context;
use clap::{Parser, Subcommand};
use pai::stack::{self, Service, Stack};
use pai_common::Env;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pai",
    version,
    about = "Self-hosted, multi-user personal AI agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run services (all of them, with the gateway, by default).
    Run {
        /// A service to run; repeat for several (auth, gateway).
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<Service>,
        /// Skip applying migrations before starting.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Create the database if needed and apply every schema's migrations.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check PostgreSQL, RabbitMQ, schema versions and data folders.
    Doctor,
    /// Back up every pai schema (pg_dump) and the uploads into a new folder.
    Backup {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Restore a backup into an empty database and UPLOAD_PATH; search
    /// rebuilds its indexes from the restored rows when it starts.
    Restore {
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Import an older single-user install (its SQLite database and data
    /// folder) through the services; a repeated or cut-off run finishes
    /// what is missing and imports nothing twice.
    ImportSqlite {
        /// The old install's SQLite database (read only).
        #[arg(long)]
        db: std::path::PathBuf,
        /// The old install's data folder (holding uploads/).
        #[arg(long)]
        data: std::path::PathBuf,
        /// Say what would be imported and skipped; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for the imported documents to be indexed.
        #[arg(long)]
        no_wait: bool,
        /// Pause this many milliseconds after each call to a service, to
        /// spare a server that is in use.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        pace_ms: u64,
    },
    /// Write pai's data as an older install's SQLite database (the way back
    /// to the old app), with the files beside it under data/.
    ExportSqlite {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Print the REST API's OpenAPI document (what `/api/openapi.json`
    /// serves); the web app's API types are generated from it.
    Openapi,
    /// Search index maintenance.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Extract a PDF's text as JSON (run by the ingest worker in a child
    /// process with time and memory limits).
    #[command(hide = true)]
    Extract { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Rebuild the BM25 and vector indexes from search.chunks (asks the
    /// running search service at SEARCH_URL).
    Rebuild,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user; the password is read from a prompt or stdin, never a flag.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The extractor limits its own address space: it must start no runtime
    // or threads first.
    if let Command::Extract { file } = &cli.command {
        return pai_extract::child_main(file);
    }
    let env = Env::from_process();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pai: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    {
        // The trace exporter's connection starts on the runtime.
        let _entered = runtime.enter();
        pai_common::telemetry::init(&env);
    }
    let code = match runtime.block_on(run(cli, env)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pai: {err:#}");
            std::process::ExitCode::FAILURE
        }
    };
    pai_common::telemetry::shutdown();
    code
}

async fn run(cli: Cli, env: Env) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Run {
            mut services,
            no_migrate,
        } => {
            if services.is_empty() {
                services = Service::ALL.to_vec();
            }
            services.sort();
            services.dedup();
            if !no_migrate {
                stack::migrate(&env, &services).await.context("migrating")?;
            }
            let stack = Stack::start(&env, &services).await?;
            let shutdown = stack.shutdown_token();
            if let Some(addr) = stack.gateway_addr {
                tracing::info!("pai is serving on http://{addr}");
            }
            let services_done = stack.wait();
            tokio::pin!(services_done);
            tokio::select! {
                result = &mut services_done => result?,
                () = wait_for_signal() => {
                    tracing::info!("shutting down");
                    shutdown.cancel();
                    tokio::time::timeout(stack::GRACE_PERIOD, services_done)
                        .await
                        .context("services did not stop within the grace period")??;
                }
            }
        }
        Command::Openapi => {
            use std::io::Write;
            use utoipa::OpenApi;
            let document = pai_gateway::ApiDoc::openapi().to_pretty_json()?;
            writeln!(std::io::stdout().lock(), "{document}").context("writing to stdout")?;
        }
        Command::Migrate => {
            stack::migrate(&env, &Service::ALL).await?;
            println!("migrations applied");
        }
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    email,
                    username,
                    admin,
                },
        } => {
            let password = pai::admin::read_password()?;
            let id = pai::admin::create_user(&env, &email, &username, &password, admin).await?;
            println!("created user {id}{}", if admin { " (admin)" } else { "" });
        }
        Command::Extract { .. } => unreachable!("handled before the runtime starts"),
        Command::Search {
            command: SearchCommand::Rebuild,
        } => {
            let chunks = rebuild_search(&env).await?;
            println!("search indexes rebuilt from {chunks} chunks");
        }
        Command::Backup { out } => {
            let report = pai::backup::backup(&env, &out).await?;
            println!(
                "backed up into {}: the database ({} bytes) and {} files ({} bytes)",
                out.display(),
                report.dump_bytes,
                report.files,
                report.file_bytes
            );
        }
        Command::Restore { from } => {
            let report = pai::backup::restore(&env, &from).await?;
            println!(
                "restored from {}: the database ({} bytes of dump) and {} files ({} bytes); search rebuilds its indexes when it starts",
                from.display(),
                report.dump_bytes,
                report.files,
                report.file_bytes
            );
        }
        Command::ImportSqlite {
            db,
            data,
            dry_run,
            no_wait,
            pace_ms,
        } => {
            let options = pai::import::Options {
                db,
                data,
                dry_run,
                wait: !no_wait,
                pace: std::time::Duration::from_millis(pace_ms),
            };
            let report = pai::import::run(&env, &options).await?;
            print!("{}", report.render());
            if !report.verified() {
                eprintln!("pai: the counts in PostgreSQL do not match what was imported");
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::ExportSqlite { out } => {
            let report = pai::export::run(&env, &out).await?;
            print!("{}", report.render());
        }
        Command::Doctor => {
            let findings = pai::doctor::run(&env).await;
            let mut failed = false;
            for finding in &findings {
                match &finding.problem {
                    None => println!("ok       {}", finding.check),
                    Some((what, fix)) => {
                        failed = true;
                        println!("PROBLEM  {}: {what}\n         fix: {fix}", finding.check);
                    }
                }
            }
            if failed {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return drop(ctrl_c.await),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn rebuild_search(env: &Env) -> anyhow::Result<u64> {
    let jwt = pai_common::config::JwtSettings::from_env(env)?;
    let addrs = pai_common::config::ServiceAddrs::from_env(env)?;
    let keys = std::sync::Arc::new(pai_common::JwtKeys::new(&jwt));
    // Each shard rebuilds its users' indexes.
    let mut chunks = 0;
    for url in addrs.search_url.urls() {
        let channel = pai_common::grpc::channel(url)?;
        let mut client =
            pai_proto::v1::search_internal_client::SearchInternalClient::with_interceptor(
                channel,
                pai_common::identity::ServiceCredential::new(std::sync::Arc::clone(&keys), "cli"),
            );
        let response = client
            .rebuild(pai_proto::v1::RebuildRequest {})
            .await
            .with_context(|| format!("asking the search service at {url} to rebuild"))?;
        chunks += response.into_inner().chunks;
    }
    Ok(chunks)
}
