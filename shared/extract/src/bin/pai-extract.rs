//! Runs one extraction as `pai-extract FILE`, the way `pai extract FILE`
//! does; the crate's tests use it as the child of `extract_isolated`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(file), None) => pai_extract::child_main(&PathBuf::from(file)),
        _ => {
            eprintln!("usage: pai-extract FILE");
            ExitCode::from(64)
        }
    }
}
