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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let env = Env::from_process();
    pai_common::telemetry::init(&env);
    match run(Cli::parse(), env).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pai: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
