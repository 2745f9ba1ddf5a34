//! `pai admin ...`: account administration from the command line.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use pai_auth::AuthSettings;
use pai_common::Env;

/// Reads a password: from a prompt (twice) on a terminal, else one line of stdin.
pub fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Creates a user (an administrator with `admin`) and returns its id.
pub async fn create_user(
    env: &Env,
    email: &str,
    username: &str,
    password: &str,
    admin: bool,
) -> anyhow::Result<String> {
    let settings = AuthSettings::from_env(env)?;
    let pool = pai_common::db::pool(&settings.database)?;
    let service = pai_auth::build(&settings, pool.clone())?;
    let user = service
        .create_user(email, username, "", password, admin)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    pool.close().await;
    Ok(user.id.to_string())
}
