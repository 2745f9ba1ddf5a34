//! Figures beside their references: markdown tables and the CSV row.

use std::path::Path;

use anyhow::Context as _;
use pai_inference::AskSettings;

/// A figure beside its reference: one markdown row, and CSV columns
/// `{key}`, `{key}_ref`, `{key}_ratio`.
pub struct Figure {
    key: &'static str,
    label: String,
    pai: f64,
    reference: Option<f64>,
    target: &'static str,
}

pub fn figure(
    key: &'static str,
    label: impl Into<String>,
    pai: f64,
    reference: Option<f64>,
    target: &'static str,
) -> Figure {
    Figure {
        key,
        label: label.into(),
        pai,
        reference,
        target,
    }
}

pub fn ratio(value: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        value / reference
    } else {
        0.0
    }
}

/// Whole numbers as such, others with one decimal.
fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Prints `title` and the figures as a markdown table.
pub fn print_table(title: &str, figures: &[Figure]) {
    println!("\n{title}\n\n| figure | pai | reference | ratio | target |\n|---|---|---|---|---|");
    for f in figures {
        let (reference, ratio) = match f.reference {
            Some(r) => (number(r), format!("{:.2}", ratio(f.pai, r))),
            None => ("—".into(), "—".into()),
        };
        let pai = number(f.pai);
        println!(
            "| {} | {pai} | {reference} | {ratio} | {} |",
            f.label, f.target
        );
    }
}

/// Appends a row to `docs/benchmarks/ask.csv`, the header first when new.
pub fn append_csv(settings: &AskSettings, figures: &[Figure]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut columns = vec![
        ("date".to_owned(), date),
        ("recorded_in".to_owned(), recorded_in()),
        ("cpu".to_owned(), cpu()),
        ("threads".to_owned(), settings.llm.threads.to_string()),
        ("parallel".to_owned(), settings.llm.parallel.to_string()),
    ];
    for f in figures {
        columns.push((f.key.to_owned(), format!("{:.2}", f.pai)));
        if let Some(r) = f.reference {
            columns.push((format!("{}_ref", f.key), format!("{r:.2}")));
            columns.push((
                format!("{}_ratio", f.key),
                format!("{:.2}", ratio(f.pai, r)),
            ));
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks/ask.csv");
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    if new {
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        writeln!(file, "{}", names.join(","))?;
    }
    let values: Vec<String> = columns.iter().map(|(_, v)| v.replace(',', ";")).collect();
    writeln!(file, "{}", values.join(","))?;
    println!("\nappended a row to {}", path.display());
    Ok(())
}

/// The CPU's model name and this process's cores.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or("unknown CPU", |v| v.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{name} {cores} cores")
}

fn recorded_in() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}
