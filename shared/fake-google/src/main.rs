//! `fake-google`: runs the fake as its own process for browser tests and
//! scripts; prints its base URL on the first line of stdout.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, Mailbox};

#[derive(Debug, Parser)]
#[command(about = "A fake Google OAuth + Gmail v1 server for tests")]
struct Arguments {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A mailbox: EMAIL=DIR of .eml/.mbox files (repeatable; the first is the
    /// default account).
    #[arg(long = "mailbox", value_name = "EMAIL=DIR")]
    mailboxes: Vec<String>,
    #[arg(long, default_value = "pai-test-client.apps.googleusercontent.com")]
    client_id: String,
    #[arg(long, default_value = "GOCSPX-pai-test-secret")]
    client_secret: String,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3599)]
    token_lifetime: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let arguments = Arguments::parse();
    let mut fake = FakeGoogle::new(FakeGoogleConfig {
        client_id: arguments.client_id,
        client_secret: arguments.client_secret,
        access_token_lifetime: Duration::from_secs(arguments.token_lifetime),
    });
    for spec in &arguments.mailboxes {
        let (email, dir) = spec
            .split_once('=')
            .with_context(|| format!("--mailbox {spec}: expected EMAIL=DIR"))?;
        let mailbox =
            Mailbox::from_eml_dir(dir).with_context(|| format!("reading mailbox {dir}"))?;
        fake = fake.with_mailbox(email, mailbox);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", arguments.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", arguments.port))?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let (addr, _handle) = pai_fake_google::serve_on(listener, fake, std::future::pending())
        .context("reading the bound address")?;
    println!("http://{addr}");
    shutdown.await;
    Ok(())
}
