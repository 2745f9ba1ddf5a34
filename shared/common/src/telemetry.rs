//! Logging: a `RUST_LOG` filter, plain or JSON lines by `LOG_FORMAT`.

use tracing_subscriber::EnvFilter;

use crate::config::Env;

const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,h2=warn,tower=warn,hyper=warn";

/// Installs the global subscriber once; later calls do nothing.
pub fn init(env: &Env) {
    let filter = EnvFilter::try_new(env.string("RUST_LOG", DEFAULT_FILTER))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if env.string("LOG_FORMAT", "plain") == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests start many stacks in one process): keep it.
    drop(result);
}
