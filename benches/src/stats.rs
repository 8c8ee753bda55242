//! Figures beside criterion's estimates: latency percentiles from an `hdrhistogram`, and
//! one-line results that the report reads back.
//!
//! Every figure is printed. When `BENCH_RESULTS` names a file, it is also appended there as
//! one tab-separated line, `group<TAB>id<TAB>parameter<TAB>key=value ...`, which is what
//! `bench-report` turns into `docs/benchmarks.md`.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

/// The environment variable naming the results file.
pub const RESULTS_ENV: &str = "BENCH_RESULTS";

/// The most round trips one percentile loop times.
pub const MAX_SAMPLES: u64 = 20_000;

/// Latency percentiles of one case, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Round trips timed.
    pub samples: u64,
    /// Round trips made, warm-up included.
    pub calls: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Whether criterion was asked for a smoke run (`--test`): then every loop here runs only a
/// handful of times.
pub fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// The time budget of one percentile loop: `BENCH_PERCENTILE_MS` milliseconds (default 1000).
fn budget() -> Duration {
    let ms = std::env::var("BENCH_PERCENTILE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

/// Times `round_trip` one call at a time, [`MAX_SAMPLES`] times or until the budget is
/// spent (a tenth of the calls first, untimed, to warm up).
pub fn percentiles(
    mut round_trip: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Percentiles> {
    let (max_samples, budget) = if smoke() {
        (20, Duration::from_millis(50))
    } else {
        (MAX_SAMPLES, budget())
    };
    let warm_until = Instant::now() + budget / 10;
    let mut warm = 0;
    for _ in 0..max_samples / 10 {
        round_trip()?;
        warm += 1;
        if Instant::now() > warm_until {
            break;
        }
    }
    let deadline = Instant::now() + budget;
    let mut timed = 0;
    let mut p = sample(|| {
        if timed == max_samples || (timed > 0 && Instant::now() > deadline) {
            return Ok(None);
        }
        timed += 1;
        let start = Instant::now();
        round_trip()?;
        Ok(Some(start.elapsed()))
    })?;
    p.calls += warm;
    Ok(p)
}

/// Summarises the durations `next` yields until it yields `None`.
pub fn sample(
    mut next: impl FnMut() -> anyhow::Result<Option<Duration>>,
) -> anyhow::Result<Percentiles> {
    let mut hist = Histogram::<u64>::new(3).context("make a histogram")?;
    while let Some(took) = next()? {
        hist.record((took.as_nanos() as u64).max(1))
            .context("record a sample")?;
    }
    anyhow::ensure!(!hist.is_empty(), "no samples");
    Ok(Percentiles {
        samples: hist.len(),
        calls: hist.len(),
        p50: hist.value_at_quantile(0.50),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        max: hist.max(),
        mean: hist.mean(),
    })
}

/// Runs [`percentiles`] for one case, prints the result and records it.
pub fn report_percentiles(
    group: &str,
    id: &str,
    parameter: usize,
    round_trip: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Percentiles> {
    let p = percentiles(round_trip)?;
    print_and_record(group, id, parameter, &p)?;
    Ok(p)
}

/// Prints percentiles and records them.
pub fn print_and_record(
    group: &str,
    id: &str,
    parameter: usize,
    p: &Percentiles,
) -> anyhow::Result<()> {
    println!(
        "{group}/{id}/{parameter}: p50 {} p99 {} p99.9 {} max {} mean {} ({} round trips)",
        fmt_ns(p.p50 as f64),
        fmt_ns(p.p99 as f64),
        fmt_ns(p.p999 as f64),
        fmt_ns(p.max as f64),
        fmt_ns(p.mean),
        p.samples
    );
    record(
        group,
        id,
        parameter,
        &[
            ("p50_ns", p.p50 as f64),
            ("p99_ns", p.p99 as f64),
            ("p999_ns", p.p999 as f64),
            ("max_ns", p.max as f64),
            ("mean_ns", p.mean),
            ("samples", p.samples as f64),
        ],
    )
}

/// Appends one result line to the `BENCH_RESULTS` file, if one is named.
pub fn record(
    group: &str,
    id: &str,
    parameter: usize,
    values: &[(&str, f64)],
) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(RESULTS_ENV) else {
        return Ok(());
    };
    let mut line = format!("{group}\t{id}\t{parameter}\t");
    let fields: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line.push_str(&fields.join(" "));
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.to_string_lossy()))?;
    file.write_all(line.as_bytes()).context("append a result")?;
    Ok(())
}

/// Nanoseconds in the unit that reads best.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}
