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

/// Two cases timed in alternating blocks within one run, and their ratio: what a target
/// that compares two figures needs on a shared host, whose speed changes for minutes at a
/// time (the raw 64 B round trip takes 170 ns in one state and 650 ns in another). Figures
/// taken minutes apart by separate benchmarks can straddle such a change; two blocks a
/// millisecond apart rarely do.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Block pairs timed.
    pub blocks: usize,
    /// The median of the first case's block figures, in nanoseconds.
    pub first_ns: f64,
    /// The same for the second case.
    pub second_ns: f64,
    /// Quartiles (25th, 50th, 75th percentile) of the per-pair ratios, first / second.
    pub ratio: [f64; 3],
}

/// How [`paired`] and [`alternating`] time a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTiming {
    /// Each round trip on its own clock; a block's figure is its median.
    Single,
    /// Back to back, as criterion times them; a block's figure is its mean. Whatever the
    /// serving side still does after answering then delays the next round trip.
    BackToBack,
}

/// Round trips per block in [`alternating`]; each block's first quarter is not timed, since the
/// peer left idle during the other cases' blocks may have parked.
const PAIR_BLOCK: usize = 2_000;

/// Times `first` and `second` in `blocks` alternating block pairs (2 in a smoke run).
pub fn paired(
    blocks: usize,
    timing: BlockTiming,
    first: &mut dyn FnMut() -> anyhow::Result<()>,
    second: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Paired> {
    let [a, b] = <[Vec<f64>; 2]>::try_from(alternating(blocks, timing, &mut [first, second])?)
        .expect("one list of block figures per case");
    Ok(Paired {
        blocks: a.len(),
        first_ns: median(&a),
        second_ns: median(&b),
        ratio: ratio_quartiles(&a, &b),
    })
}

/// Times each of `cases` for a block in turn, for `blocks` rounds (2 in a smoke run), as
/// [`paired`] does two. Returns each case's block figures, in nanoseconds, round by round.
pub fn alternating(
    blocks: usize,
    timing: BlockTiming,
    cases: &mut [&mut dyn FnMut() -> anyhow::Result<()>],
) -> anyhow::Result<Vec<Vec<f64>>> {
    let blocks = if smoke() { 2 } else { blocks.max(1) };
    let mut figures: Vec<Vec<f64>> = (0..cases.len())
        .map(|_| Vec::with_capacity(blocks))
        .collect();
    for _ in 0..blocks {
        for (case, figures) in cases.iter_mut().zip(&mut figures) {
            figures.push(block(timing, *case)?);
        }
    }
    Ok(figures)
}

/// Quartiles of the round-by-round ratios `first[i] / second[i]` of two cases'
/// [`alternating`] figures.
pub fn ratio_quartiles(first: &[f64], second: &[f64]) -> [f64; 3] {
    quartiles(first.iter().zip(second).map(|(x, y)| x / y).collect())
}

/// The median of `values` (not empty): the upper one of an even count.
pub fn median(values: &[f64]) -> f64 {
    quartiles(values.to_vec())[1]
}

/// The 25th, 50th and 75th percentiles of `values` (not empty).
pub fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    [values[n / 4], values[n / 2], values[3 * n / 4]]
}

/// One block of [`alternating`]: its figure in nanoseconds.
fn block(
    timing: BlockTiming,
    round_trip: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let (warm, timed) = if smoke() {
        (2, 8)
    } else {
        (PAIR_BLOCK / 4, PAIR_BLOCK - PAIR_BLOCK / 4)
    };
    for _ in 0..warm {
        round_trip()?;
    }
    if timing == BlockTiming::BackToBack {
        let start = Instant::now();
        for _ in 0..timed {
            round_trip()?;
        }
        return Ok(start.elapsed().as_nanos() as f64 / timed as f64);
    }
    let mut times = Vec::with_capacity(timed);
    for _ in 0..timed {
        let start = Instant::now();
        round_trip()?;
        times.push(start.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    Ok(times[timed / 2] as f64)
}

/// Runs [`paired`] both ways and prints and records the result under `group/id/parameter`,
/// as `single_*` and `b2b_*` values (`first_ns`, `second_ns`, `ratio_p25`, `ratio_p50`,
/// `ratio_p75`).
pub fn report_paired(
    group: &str,
    id: &str,
    parameter: usize,
    blocks: usize,
    first: &mut dyn FnMut() -> anyhow::Result<()>,
    second: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<[Paired; 2]> {
    let single = paired(blocks, BlockTiming::Single, first, second)?;
    let b2b = paired(blocks, BlockTiming::BackToBack, first, second)?;
    let mut values: Vec<(String, f64)> = Vec::new();
    for (prefix, label, p) in [
        ("single", "one at a time", single),
        ("b2b", "back to back", b2b),
    ] {
        let [q1, q2, q3] = p.ratio;
        println!(
            "{group}/{id}/{parameter} ({label}): {} against {}, ratio {q2:.2}× (quartiles \
             {q1:.2}×, {q3:.2}×) over {} block pairs",
            fmt_ns(p.first_ns),
            fmt_ns(p.second_ns),
            p.blocks
        );
        for (key, v) in [
            ("first_ns", p.first_ns),
            ("second_ns", p.second_ns),
            ("ratio_p25", q1),
            ("ratio_p50", q2),
            ("ratio_p75", q3),
        ] {
            values.push((format!("{prefix}_{key}"), v));
        }
    }
    values.push(("blocks".into(), single.blocks as f64));
    let values: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    record(group, id, parameter, &values)?;
    Ok([single, b2b])
}
