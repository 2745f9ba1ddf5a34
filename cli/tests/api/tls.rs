//! Encrypted database connections: `sslmode` in `DATABASE_URL` is honoured
//! and `pai doctor` says whether the connection is encrypted. Each test runs
//! a PostgreSQL of its own (initdb in a temporary folder, as the `postgres`
//! user when the tests run as root) with a certificate it makes: a CA of
//! its own and a server certificate for 127.0.0.1 signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

use pai::doctor::{self, Finding};
use pai_common::Env;
use uuid::Uuid;

/// The newest PostgreSQL server programs on this machine.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's programs under /usr/lib/postgresql (make services installs them)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program` run as the `postgres` user when this runs as root (PostgreSQL
/// refuses root), else as this user.
fn as_postgres(program: impl AsRef<Path>) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program.as_ref());
        command
    } else {
        Command::new(program.as_ref())
    }
}

fn run(mut command: Command) {
    let out = command.output().expect("start a program");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL of this test's own on a free port, stopped when dropped.
struct TempPostgres {
    dir: PathBuf,
    port: u16,
}

impl TempPostgres {
    fn start(tls: bool) -> Self {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("pai-pg-{}", Uuid::new_v4().simple()));
        let mut initdb = as_postgres(bin.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&dir);
        run(initdb);
        // The CA, and the server's certificate it signs (127.0.0.1).
        let sh = |script: &str| {
            let mut command = as_postgres("sh");
            command.arg("-c").arg(script).current_dir(&dir);
            run(command);
        };
        sh(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.crt -days 2 -subj /CN=pai-test-ca 2>/dev/null \
            && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null \
            && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext \
            && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out server.crt -days 2 -extfile server.ext 2>/dev/null \
            && chmod 600 server.key",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl={} \
             -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off",
            dir.display(),
            if tls { "on" } else { "off" }
        );
        let mut start = as_postgres(bin.join("pg_ctl"));
        start
            .args(["-w", "-D"])
            .arg(&dir)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-o", &options, "start"]);
        run(start);
        Self { dir, port }
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    fn ca(&self) -> String {
        self.dir.join("ca.crt").display().to_string()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let mut stop = as_postgres(bin_dir().join("pg_ctl"));
        stop.args(["-m", "immediate", "-D"])
            .arg(&self.dir)
            .arg("stop");
        let _ = stop.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn postgres_findings(url: &str) -> Vec<Finding> {
    doctor::postgres(&Env::from_pairs([("DATABASE_URL", url)])).await
}

fn connection(findings: &[Finding]) -> &str {
    findings
        .iter()
        .find(|f| f.check.starts_with("postgresql connection"))
        .map(|f| f.check.as_str())
        .unwrap_or_else(|| panic!("no connection finding: {findings:?}"))
}

#[tokio::test]
async fn sslmode_require_and_verify_full_connect_encrypted_and_doctor_says_so() {
    let server = TempPostgres::start(true);
    for query in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", server.ca()),
        format!("sslmode=verify-ca&sslrootcert={}", server.ca()),
    ] {
        let findings = postgres_findings(&server.url(&query)).await;
        assert!(findings[0].problem.is_none(), "{query}: {findings:?}");
        let said = connection(&findings);
        assert!(
            said.starts_with("postgresql connection encrypted (TLS"),
            "{query}: {said}"
        );
    }
    // The same server without TLS asked for: not encrypted, and said so.
    let findings = postgres_findings(&server.url("sslmode=disable")).await;
    assert!(
        connection(&findings).starts_with("postgresql connection not encrypted"),
        "{findings:?}"
    );
    // A CA that did not sign the server's certificate is refused.
    let other = TempPostgres::start(true);
    let findings =
        postgres_findings(&server.url(&format!("sslmode=verify-full&sslrootcert={}", other.ca())))
            .await;
    assert!(findings[0].problem.is_some(), "{findings:?}");
}

#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_is_refused_clearly() {
    let server = TempPostgres::start(false);
    let findings = postgres_findings(&server.url("sslmode=require")).await;
    let (what, fix) = findings[0].problem.clone().expect("refused");
    assert!(
        what.contains("asks for TLS") && fix.contains("ssl = on"),
        "{what} / {fix}"
    );
    // Without sslmode (prefer), the same server connects in the clear.
    let findings = postgres_findings(&server.url("sslmode=prefer")).await;
    assert!(
        connection(&findings).starts_with("postgresql connection not encrypted"),
        "{findings:?}"
    );
}
