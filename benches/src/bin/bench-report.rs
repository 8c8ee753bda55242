//! Writes `docs/benchmarks.md` and its plot from one run of the suite (see `benches/report.sh`).
//!
//! Usage: `bench-report RESULTS_FILE CRITERION_DIR DOCS_DIR`.

use std::path::PathBuf;

use anyhow::Context;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-report: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [results, criterion, docs] = args.as_slice() else {
        anyhow::bail!("usage: bench-report RESULTS_FILE CRITERION_DIR DOCS_DIR");
    };
    benches::report::write(results, criterion, docs, "benches/report.sh")
        .context("write the report")
}
