//! `bench-report`: turns one quick pass of the suite into `docs/benchmarks.md` and a PNG.
//!
//! Inputs are criterion's estimates (`<criterion dir>/<group>/<id>/<param>/new/estimates.json`)
//! and the result lines the benches append to `BENCH_RESULTS` (see [`crate::stats`]). Every
//! ratio in the report compares figures taken in the same run.

mod chart;
mod font;
mod png;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

pub use chart::{Series, render};

use crate::PAYLOAD_SIZES;
use crate::stats::fmt_ns;

/// One result line: `group id parameter key=value...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Criterion group.
    pub group: String,
    /// Case id.
    pub id: String,
    /// Parameter (payload bytes), 0 where none.
    pub param: usize,
    /// The figures.
    pub values: BTreeMap<String, f64>,
}

/// Parses the results file. Malformed lines are skipped with a warning: a partial run
/// still makes a partial report.
pub fn parse_results(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for raw in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = raw.splitn(4, '\t');
        let (Some(group), Some(id), Some(param), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            eprintln!("bench-report: skipping malformed line {raw:?}");
            continue;
        };
        let Ok(param) = param.parse() else {
            eprintln!("bench-report: skipping line with parameter {param:?}");
            continue;
        };
        let values = rest
            .split_whitespace()
            .filter_map(|kv| {
                kv.split_once('=')
                    .and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            })
            .collect();
        lines.push(Line {
            group: group.to_owned(),
            id: id.to_owned(),
            param,
            values,
        });
    }
    lines
}

/// Criterion's point estimate of the time per iteration in nanoseconds: the slope of the
/// linear regression where criterion computed one, else the mean. Parameter 0 stands for a
/// case without one (`group/id/new/`).
pub fn criterion_estimate(
    criterion_dir: &Path,
    group: &str,
    id: &str,
    param: usize,
) -> Option<f64> {
    let mut path = criterion_dir.join(group).join(id);
    if param != 0 {
        path.push(param.to_string());
    }
    let path = path.join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    point_estimate(&json, "slope").or_else(|| point_estimate(&json, "mean"))
}

/// The `point_estimate` inside the object `"key": {...}` of criterion's estimates file.
fn point_estimate(json: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start();
    if rest.starts_with("null") {
        return None;
    }
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let number: String = rest[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        .collect();
    number.parse().ok()
}

/// Everything the report needs, gathered.
#[derive(Debug)]
pub struct Inputs {
    /// Result lines of this run.
    pub lines: Vec<Line>,
    /// Criterion estimates by `(group, id, param)`, in nanoseconds.
    pub estimates: BTreeMap<(String, String, usize), f64>,
    /// Free-form machine description lines.
    pub machine: Vec<String>,
}

impl Inputs {
    fn value(&self, group: &str, id: &str, param: usize, key: &str) -> Option<f64> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.group == group && l.id == id && l.param == param)
            .and_then(|l| l.values.get(key).copied())
    }

    fn estimate(&self, group: &str, id: &str, param: usize) -> Option<f64> {
        self.estimates
            .get(&(group.to_owned(), id.to_owned(), param))
            .copied()
    }
}

/// The round-trip groups and their ids, as the report lays them out.
pub const ROUND_TRIP_CASES: [(&str, &[&str]); 2] = [
    (
        "transport_roundtrip",
        &["floor", "shm", "socket", "unix_socketpair", "iceoryx2"],
    ),
    (
        "echo_roundtrip",
        &["two_memcpy", "in_process", "shm", "socket"],
    ),
];

/// The interface groups and their ids: cases without a parameter.
pub const INTERFACE_CASES: [(&str, &[&str]); 3] = [
    (
        "find_block",
        &["memcpy", "frame", "decode", "in_process", "shm", "socket"],
    ),
    ("notifications", &["in_process", "shm", "socket"]),
    ("wallet_sync", &["in_process", "shm", "socket"]),
];

/// Reads criterion's estimates for every case the report knows.
pub fn gather_estimates(criterion_dir: &Path) -> BTreeMap<(String, String, usize), f64> {
    let mut out = BTreeMap::new();
    let mut cases: Vec<(&str, &str, usize)> = Vec::new();
    for (group, ids) in ROUND_TRIP_CASES {
        for id in ids {
            cases.extend(PAYLOAD_SIZES.iter().map(|&s| (group, *id, s)));
        }
    }
    for (group, ids) in INTERFACE_CASES {
        cases.extend(ids.iter().map(|id| (group, *id, 0)));
    }
    for id in ["shm", "shm_batch64", "socket"] {
        cases.extend([64, 1024].map(|s| ("stream", id, s)));
    }
    for id in ["shm", "socket"] {
        cases.push(("wake_from_idle", id, 64));
    }
    for (group, id, param) in cases {
        if let Some(ns) = criterion_estimate(criterion_dir, group, id, param) {
            out.insert((group.to_owned(), id.to_owned(), param), ns);
        }
    }
    out
}

fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn cell(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".to_owned())
}

/// One row of the targets table: the figure from criterion's estimates and, where there is
/// one, from the medians of the percentile loops, each with its verdict.
fn target(
    out: &mut String,
    what: &str,
    measured: Option<f64>,
    median: Option<f64>,
    unit: &str,
    met: impl Fn(f64) -> bool,
) {
    let show = |v: Option<f64>| match v {
        Some(v) => format!(
            "{v:.2}{unit} ({})",
            if met(v) { "**met**" } else { "**missed**" }
        ),
        None => "–".to_owned(),
    };
    let _ = writeln!(out, "| {what} | {} | {} |", show(measured), show(median));
}

/// Writes the Markdown report. `plot_name` is the PNG's file name, beside the report.
pub fn markdown(inputs: &Inputs, plot_name: &str, command: &str) -> String {
    let tr = "transport_roundtrip";
    let est = |id: &str, p: usize| inputs.estimate(tr, id, p);
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `{command}` from one quick pass of the suite (criterion with \
         `--warm-up-time 1 --measurement-time 2`, then a separate loop of up to 20,000 timed \
         round trips per case for the percentiles). Do not edit by hand: run the command again. \
         Every ratio below compares figures taken in this one run.\n"
    );
    let _ = writeln!(out, "## Machine\n");
    for line in &inputs.machine {
        let _ = writeln!(out, "- {line}");
    }
    if let (Some(a), Some(b)) = (
        inputs.value(tr, "floor_cpus", 64, "client_cpu"),
        inputs.value(tr, "floor_cpus", 64, "peer_cpu"),
    ) {
        let shared = if a == b {
            "the same CPU: they were sharing one"
        } else {
            "different CPUs"
        };
        let _ = writeln!(
            out,
            "- Processes are not pinned. At the end of the floor measurement the client last ran \
             on CPU {a} and the peer on CPU {b} ({shared})."
        );
    }

    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(
        out,
        "Each target as a ratio, from criterion's estimates (means, which the preemptions of a \
         busy machine inflate) and from the medians (p50) of the percentile loops.\n"
    );
    let _ = writeln!(
        out,
        "| target | from criterion | from p50 |\n| --- | --- | --- |"
    );
    let p50 = |group: &str, id: &str, p: usize| inputs.value(group, id, p, "p50_ns");
    let both = |num: &str, den: &str, p: usize| {
        (
            ratio(est(num, p), est(den, p)),
            ratio(p50(tr, num, p), p50(tr, den, p)),
        )
    };
    let (a, b) = both("shm", "floor", 64);
    target(
        &mut out,
        "shm round trip ≤ 2× floor at 64 B (shm/floor)",
        a,
        b,
        "×",
        |v| v <= 2.0,
    );
    let (a, b) = both("socket", "shm", 64);
    target(&mut out, "socket/shm ≥ 10× at 64 B", a, b, "×", |v| {
        v >= 10.0
    });
    let (a, b) = both("socket", "shm", 65536);
    target(&mut out, "socket/shm ≥ 5× at 64 KiB", a, b, "×", |v| {
        v >= 5.0
    });
    let (a, b) = both("iceoryx2", "shm", 64);
    target(
        &mut out,
        "shm ≤ iceoryx2 at 64 B (iceoryx2/shm ≥ 1)",
        a,
        b,
        "×",
        |v| v >= 1.0,
    );
    let stream = inputs
        .value("stream", "shm", 64, "records_per_s")
        .map(|r| r / 1e6);
    let stream_criterion = inputs.estimate("stream", "shm", 64).map(|ns| 1e6 / ns);
    target(
        &mut out,
        "stream ≥ 10 M records/s at 64 B over shm (p50 column: the 1-second run)",
        stream_criterion,
        stream,
        " M/s",
        |v| v >= 10.0,
    );
    let batched = inputs
        .value("stream", "shm_batch64", 64, "records_per_s")
        .map(|r| r / 1e6);
    let batched_criterion = inputs
        .estimate("stream", "shm_batch64", 64)
        .map(|ns| 1e6 / ns);
    target(
        &mut out,
        "the same with `send_batch` of 64 records",
        batched_criterion,
        batched,
        " M/s",
        |v| v >= 10.0,
    );
    let idle = ["shm", "socket"]
        .iter()
        .filter_map(|id| {
            let key = format!("idle_cpu_{id}");
            Some(
                inputs.value("wake_from_idle", &key, 0, "client_pct")?
                    + inputs.value("wake_from_idle", &key, 0, "peer_pct")?,
            )
        })
        .reduce(f64::max);
    target(
        &mut out,
        "idle connected pair < 1% of a core (worst transport, both processes, /proc)",
        None,
        idle,
        "%",
        |v| v < 1.0,
    );
    let echo = ratio(inputs.estimate("echo_roundtrip", "shm", 64), est("shm", 64));
    let echo_p50 = ratio(p50("echo_roundtrip", "shm", 64), p50(tr, "shm", 64));
    target(
        &mut out,
        "Echo::echo over shm ≤ 2× raw shm round trip at 64 B",
        echo,
        echo_p50,
        "×",
        |v| v <= 2.0,
    );
    let paired = |key: &str| inputs.value("echo_roundtrip", "shm_vs_raw", 64, key);
    target(
        &mut out,
        "the same, both timed in alternating blocks of one loop (left: back to back, as \
         criterion times; right: p50 of single calls)",
        paired("b2b_ratio_p50"),
        paired("single_ratio_p50"),
        "×",
        |v| v <= 2.0,
    );
    let echo_socket = ratio(
        inputs.estimate("echo_roundtrip", "socket", 64),
        inputs.estimate("echo_roundtrip", "shm", 64),
    );
    let echo_socket_p50 = ratio(
        p50("echo_roundtrip", "socket", 64),
        p50("echo_roundtrip", "shm", 64),
    );
    target(
        &mut out,
        "Echo::echo socket/shm ≥ 10× at 64 B",
        echo_socket,
        echo_socket_p50,
        "×",
        |v| v >= 10.0,
    );
    let echo_big = ratio(
        inputs.estimate("echo_roundtrip", "shm", 1 << 20),
        inputs.estimate("echo_roundtrip", "two_memcpy", 1 << 20),
    );
    target(
        &mut out,
        "Echo::echo of 1 MiB over shm ≤ 3× two memcpys of 1 MiB",
        echo_big,
        None,
        "×",
        |v| v <= 3.0,
    );
    let fb = |id: &str| inputs.estimate("find_block", id, 0);
    let fb_p50 = |id: &str| p50("find_block", id, 0);
    let (a, b) = (
        ratio(fb("shm"), fb("memcpy")),
        ratio(fb_p50("shm"), fb_p50("memcpy")),
    );
    target(
        &mut out,
        "Chain::find_block of the 1.38 MB block over shm ≤ 2× its memcpy",
        a,
        b,
        "×",
        |v| v <= 2.0,
    );

    let _ = writeln!(
        out,
        "\n## Round trips (criterion estimate per round trip)\n"
    );
    let ids = ["floor", "shm", "socket", "unix_socketpair", "iceoryx2"];
    let _ = writeln!(
        out,
        "| payload | {} | socket/shm | unix_socketpair/shm | iceoryx2/shm | shm/floor |",
        ids.join(" | ")
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(ids.len() + 5));
    for size in PAYLOAD_SIZES {
        let times: Vec<String> = ids
            .iter()
            .map(|id| cell(est(id, size).map(fmt_ns)))
            .collect();
        let r = |id: &str| cell(ratio(est(id, size), est("shm", size)).map(|v| format!("{v:.2}×")));
        let floor = cell(ratio(est("shm", size), est("floor", size)).map(|v| format!("{v:.2}×")));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {floor} |",
            size_label(size),
            times.join(" | "),
            r("socket"),
            r("unix_socketpair"),
            r("iceoryx2")
        );
    }
    if inputs.estimates.keys().any(|k| k.0 == "echo_roundtrip") {
        let _ = writeln!(
            out,
            "\n`echo_roundtrip` (`Echo::echo` through the call layer):\n"
        );
        let _ = writeln!(
            out,
            "| payload | two_memcpy | in_process | shm | socket | socket/shm | in_process/shm | shm/two_memcpy |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for size in PAYLOAD_SIZES {
            let e = |id: &str| inputs.estimate("echo_roundtrip", id, size);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                size_label(size),
                cell(e("two_memcpy").map(fmt_ns)),
                cell(e("in_process").map(fmt_ns)),
                cell(e("shm").map(fmt_ns)),
                cell(e("socket").map(fmt_ns)),
                cell(ratio(e("socket"), e("shm")).map(|v| format!("{v:.2}×"))),
                cell(ratio(e("in_process"), e("shm")).map(|v| format!("{v:.3}×"))),
                cell(ratio(e("shm"), e("two_memcpy")).map(|v| format!("{v:.2}×"))),
            );
        }
    }
    decomposition(&mut out, inputs);
    let _ = writeln!(
        out,
        "\n![round-trip latency vs payload size]({plot_name})\n"
    );

    let _ = writeln!(out, "## Percentiles (single round trips, hdrhistogram)\n");
    let _ = writeln!(
        out,
        "\"switches\" are the context switches of both processes per round trip, voluntary / \
         involuntary: voluntary ones are waiters parking (near 0 means waits ended while \
         spinning); involuntary ones are preemptions and yields that handed the CPU to another \
         task.\n"
    );
    let _ = writeln!(
        out,
        "| case | p50 | p99 | p99.9 | max | samples | switches |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for (group, ids) in ROUND_TRIP_CASES
        .iter()
        .chain([("wake_from_idle", &["shm", "socket"][..])].iter())
    {
        for id in *ids {
            for size in PAYLOAD_SIZES {
                let v = |k: &str| inputs.value(group, id, size, k);
                let Some(p50) = v("p50_ns") else { continue };
                let key = format!("{id}_switches");
                let switches = inputs.value(group, &key, size, "per_round_trip").map(|v| {
                    let invol = inputs
                        .value(group, &key, size, "involuntary")
                        .unwrap_or(f64::NAN);
                    format!("{v:.3} / {invol:.3}")
                });
                let _ = writeln!(
                    out,
                    "| {group}/{id}/{} | {} | {} | {} | {} | {} | {} |",
                    size_label(size),
                    fmt_ns(p50),
                    cell(v("p99_ns").map(fmt_ns)),
                    cell(v("p999_ns").map(fmt_ns)),
                    cell(v("max_ns").map(fmt_ns)),
                    cell(v("samples").map(|s| format!("{s:.0}"))),
                    cell(switches),
                );
            }
        }
    }

    let _ = writeln!(out, "\n## Stream (one way, batch drain)\n");
    let _ = writeln!(
        out,
        "records/s and bytes/s from streaming for about a second in chunks of 100,000 records; \
         the last column is criterion's estimate (an iteration streams 1,000 records, a sample ends with a round trip) divided down to one record.\n"
    );
    let _ = writeln!(
        out,
        "| transport | record | records/s | bytes/s | sender write syscalls per record | criterion per record |\n| --- | --- | --- | --- | --- | --- |"
    );
    for id in ["shm", "shm_batch64", "socket"] {
        for size in [64, 1024] {
            let Some(rps) = inputs.value("stream", id, size, "records_per_s") else {
                continue;
            };
            let bps = inputs
                .value("stream", id, size, "bytes_per_s")
                .unwrap_or(0.0);
            let writes = inputs.value("stream", id, size, "writes_per_record");
            let _ = writeln!(
                out,
                "| {id} | {} | {:.2} M | {:.1} MiB/s | {} | {} |",
                size_label(size),
                rps / 1e6,
                bps / f64::from(1 << 20),
                cell(writes.map(|w| format!("{w:.3}"))),
                cell(
                    inputs
                        .estimate("stream", id, size)
                        .map(|ns| fmt_ns(ns / 1000.0))
                )
            );
        }
    }

    let _ = writeln!(out, "\n## Wake from idle and idle CPU\n");
    let _ = writeln!(
        out,
        "First round trip (64 B) after 50 ms of idling, and the CPU time of the connected, idle \
         pair over 2 s (percent of one core).\n"
    );
    let _ = writeln!(
        out,
        "| transport | criterion | p50 | max | idle CPU client | idle CPU peer |\n| --- | --- | --- | --- | --- | --- |"
    );
    for id in ["shm", "socket"] {
        let key = format!("idle_cpu_{id}");
        let pct = |k: &str| {
            inputs
                .value("wake_from_idle", &key, 0, k)
                .map(|v| format!("{v:.3}%"))
        };
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} | {} | {} |",
            cell(inputs.estimate("wake_from_idle", id, 64).map(fmt_ns)),
            cell(inputs.value("wake_from_idle", id, 64, "p50_ns").map(fmt_ns)),
            cell(inputs.value("wake_from_idle", id, 64, "max_ns").map(fmt_ns)),
            cell(pct("client_pct")),
            cell(pct("peer_pct")),
        );
    }
    interfaces(&mut out, inputs);
    let _ = writeln!(
        out,
        "\n## Reading the figures\n\n\
         - A busy machine shows up as involuntary context switches in the percentile table: \
         every waiter that loses its CPU to other work pays a scheduler round (about 10 µs \
         here), on shm as on the socket, and the floor degrades the same way. Compare runs \
         by the load average above.\n\
         - shm parks (voluntary switches) once a wait outlasts the 50 µs spin window, except \
         while the producer says it is writing a long record (or answering a long request): \
         then the waiter spins on for up to 1 ms, since the record is a copy away. At 1 MiB \
         the wait that remains a park is the peer's for the next request, while this side \
         copies the reply out. iceoryx2's peers spin without limit, which wins at large \
         payloads and costs a full CPU per waiting process when idle.\n\
         - The echo peer answers with `Sender::forward`: over shm it copies each record \
         straight from its receiving ring into its sending ring, so with the client's copy in \
         and copy out a round trip copies the payload three times, as iceoryx2's does (its \
         server answers from the loaned request). Over the socket the peer writes the frame \
         from its receive buffer, and the kernel copies every frame in and out.\n\
         - Two fixes came out of these diagnostics (see `git log ipc-shm/src/ring.rs \
         ipc-shm/src/wait.rs`): a parked peer is woken once per park, not at every commit \
         (doorbell writes per 64 B record went from 0.17 to 0.002, and the stream from about \
         1 M to 7 M records/s under the same heavy load), and a waiter keeps its CPU for 5 µs \
         before yielding (the old back-off yielded within a fraction of a round trip, and on \
         a busy machine lost the CPU twice per round trip).\n\
         - Three later changes cut the 64 B round trip on an Intel host from about 1.5 µs to \
         0.8–0.9 µs (A/B figures in their commit messages): a waiter looks once per \
         `spin_loop` instead of after doubling pauses (it noticed records up to half a wait \
         late); the consumer waits on the record's header slot and the line after it instead \
         of a published position (ring layout version 2: one cross-core transfer fewer each \
         way); and a write grant writes the header's line once, at commit (the stream gained \
         about 13%). The stream then went from 6–7 to 11–12 M records/s of 64 B when \
         `recv_batch` began to let a streaming producer get ahead for 4 µs after draining a \
         backlog, instead of polling the very line it was writing. A waiter whose record \
         arrived no longer reads the clock before it returns (40 ns on each side of a round \
         trip in this VM). The earlier AMD EPYC host had about the same floor (378 ns) and a \
         705 ns shm round trip with the old code, so how much of the remaining gap is the \
         host is open: compare ratios, not times, across reports.\n\
         - Keeping the record hot path inline (reserve, write, commit; peek, read, release: \
         see the comment above `mod ends` in `ipc-shm/src/ring.rs`) cut the software part of \
         a round trip, which the floor does not pay. On the AMD host, A/B: a 64 B round trip \
         with both ends on one thread 200 → 63 ns; across processes 341 → 215–248 ns (floor \
         78–86 ns); the 64 B stream 13–15 → 42–45 M records/s; `Echo::echo` of 64 B 790 → \
         665 ns.\n\
         - The AMD host's floor itself moves between runs, between about 80 and about 380 ns \
         (where the hypervisor happens to place the two vCPUs), and the shm round trip with \
         it: with the code before the change above, 341 ns against a floor of 79, and 830 ns \
         against 383, in the same session. What shm adds to the floor is roughly fixed (both \
         ends' software, and a 64 B record's second cache line), so shm/floor is worst on the \
         fast placement: read it together with the floor's own figure.\n\
         - The call layer adds 0.4–0.7 µs to the 64 B round trip on the AMD host (0.9 µs on \
         the Intel host before the change above; `Echo::echo` over shm against the raw shm \
         round trip). Both got faster with the change above, the raw round trip by the larger \
         share (a third against a sixth), so the ratio grew. Its records are 112 bytes (ring header, 32-byte \
         call header, length, payload) and mostly span three cache lines where the raw \
         record spans two; the rest is work on each side: a call slot, the send lock, \
         leadership of the receiving ring, the argument and the result allocated as `Vec`s. \
         Counted by callgrind (20,000 calls between two processes, outside waiting), that \
         work is most of it: about 2,000 instructions in the caller and 2,400 in the server \
         per 64 B call, against about 350 per side for the raw round trip, spread over \
         dozens of steps of 20 to 300 instructions (codec layers, locks, leadership, \
         allocation); no one step dominates. Letting the encoder, the staging buffer and \
         the decoder take or fill a whole buffer at once, and skipping checks that nearly \
         always find nothing, cut 18% of them (from 2,470 and 2,910); alternated runs of the \
         bench then put the 64 B echo 5–30% faster. Encoding small messages on the stack \
         and copying them into and out of the ring in one piece took the 64 B echo from \
         about 2.0 to 1.6–1.8 µs (A/B in the commit message); moving the \
         producer's clearing of the next slot to its reservation, and the consumer also \
         polling a third line, were measured and not kept then (the third line was kept \
         later, see below). Later, writing the staging buffer \
         with inlined copies, a serving worker keeping the object it served last (no lock or \
         reference count on the export table per request), a caller that reads its own \
         reply taking no handle on its slot, and this suite's call watchdog counting \
         without atomic read-modify-writes took callgrind's counts from 2,071 and 2,337 to \
         2,031 and 2,165, and the 64 B echo's p50 from 451–501 to 441–470 ns (ten alternated \
         runs, against 171–230 ns for the raw round trip). What is left is not the locked \
         instructions: a caller that takes lent leadership over and reads its own reply \
         without a call slot, so that it takes the session's control lock neither to start a \
         call nor to end it (two lock and unlock pairs fewer per call), measured slower \
         (the decomposition's \"session → by hand\" row 1.61–1.67× → 1.72×, alternated \
         runs of two builds) and was not kept; nor were releasing the reply's record lazily \
         (`ReadGrant::release_lazily`: 15 ns slower), records aligned to cache lines (no \
         change), or loading a record's later lines as soon as its header is seen (2–3% at \
         most, within the noise).\n\
         - What the instruction counts missed were stalls. `perf annotate` (cpu-clock samples \
         of both processes) put much of the call layer's time on single loads right after a \
         value was returned through memory or built field by field: the first 16-byte load \
         of a copy of bytes that 8-byte (or narrower) stores had just written cannot be \
         forwarded from them, and waits until they and every store before them reach the \
         cache, which after a reply means until its ring lines have been taken from the other \
         core. The ring's read grant had a flag byte whose padding rustc copied with \
         overlapping 4-byte moves on every record received (the raw round trip too: 291–300 \
         → 280 ns); the server moved `dispatch`'s outcome out of its unwinding closure, the \
         ring grant out of the call before decoding from it, and the echo's result into a \
         `Result` and then into the reply; the proxy copied its outcome into a tuple to match \
         it. Without those copies (see `docs/ARCHITECTURE.md`, the ring and the call layer's \
         decisions) the 64 B echo went from 501–511 to 441–471 ns in `round_trips decompose` \
         on this host, and from 1.67–1.75× to 1.55–1.67× the raw round trip; callgrind's \
         counts moved less (2,275 and 2,029 instructions per call outside waiting, to 2,200 \
         and 1,882).\n\
         - Where the echo's time goes, in ratios measured in one loop \
         (`echo_roundtrip/decompose`, the table above): `Echo::echo`'s records written and \
         read by hand on both sides, with the same copies and allocations, take 1.2–1.3× \
         the raw round trip; since the changes above the session adds 0.15–0.3× as the \
         caller and 0.1–0.2× as the server, the interface layer up to 0.05× on either side \
         (this pass and three runs of `round_trips decompose`; before them 0.35–0.5×, \
         0.3–0.4× and up to 0.1×). The rest of the session's cost is spread over two dozen \
         steps of 20 to 200 instructions (reading the reply's header and routing it, copying \
         the small body out and decoding it, handing leadership on, encoding into the \
         staging buffer under the send lock), none of them worth much on its own.\n\
         - The echo target depends on where the hypervisor puts the two vCPUs. On this host \
         the raw round trip mostly takes 270–290 ns, but in about one run in eight 160–170 \
         ns, while the echo stays at 440–530 ns in both placements: its time is the two \
         sides' work, not the crossings. In that placement the echo is 2.6–3.2× the raw \
         round trip (`round_trips paired`: six of about fifty measurements on 5 December 2026); the \
         alternating rows above say which placement a pass had.\n\
         - Earlier estimates, from timestamps (`rdtsc`) at each step of \
         200,000 calls on both sides: each one-way crossing takes about 55 ns, as the raw \
         record's does; the rest is work on the two critical paths, about 45 ns in the \
         caller before its request is out, 110 ns in the server from seeing the request to \
         committing the reply, and 60 ns in the caller from the reply to its return. The \
         server's decoding of its argument and the caller's decoding of the result (about \
         35 ns each) are the largest steps; no other step takes more than about 15 ns. \
         callgrind counts about 1,780 instructions per call in the caller and 1,950 in the \
         server outside waiting (the raw round trip: about 350 per side). A waiting \
         consumer now loads the two lines after the header's, not one: a 64 B echo's record \
         (112 bytes) spans three lines from five of the eight places it can start in a \
         line, and its third line no longer crosses after the other two (p50 400 → 380 ns, \
         and 960 → 830 ns in the host's slow state; the raw round trip did not move). \
         `echo_roundtrip/shm_vs_raw` times the echo and the raw round trip in alternating \
         blocks of one loop, because this host switches for minutes at a time between a \
         state where the raw round trip takes 170 ns and one where it takes 650 ns, and \
         the two groups the first row of that target compares run minutes apart: in the \
         pass that first had both rows, the separate groups' medians gave 1.84× and the \
         alternating loop 2.11×. Back to back the ratio is higher (2.3–2.6×): the raw round \
         trip gains from dropping the clock reads between calls, the echo does not, its \
         critical path being the call layer's work on each side.\n\
         - Where the kernel has `membarrier(GLOBAL_EXPEDITED)`, a consumer about to sleep \
         runs that process-wide barrier, and the producer publishes each record without the \
         `SeqCst` fence that waited for the record's stores to leave the core: the 64 B \
         stream gained about 18% (A/B), the round trip nothing (that fence overlapped the \
         wait for the reply).\n\
         - Three targets are bound by copying the payload, not by how the transports signal. \
         At 64 KiB shm copies it three times per round trip (into the ring, ring to ring in \
         the peer, out of the ring) and the socket at least four (into and out of the kernel \
         each way), so socket/shm reaches 5× only where the socket's system calls and \
         wake-ups cost several times those copies (met on the AMD host, missed on the Intel \
         one): compare shm with `two_memcpy` at 64 KiB. \
         `two_memcpy` copies between buffers at the same offset within a page: glibc's \
         `rep movsb` is 15 to 30 times slower on our AMD EPYC host when the destination is 1 to 63 \
         bytes past the source modulo 4096, which two buffers allocated one after the other \
         often are (the ring's own copies go in 2 KiB pieces, fast at any distance; see \
         `docs/ARCHITECTURE.md`). \
         `Echo::echo` of 1 MiB crosses in 64 KiB parts each way, so that the sender's copy \
         into the ring and the receiver's copy out of it overlap; the argument and the result \
         are each decoded as their parts arrive, straight into their own buffer, and `echo` \
         copies once more: five copies, where the target allows six of data that stays in one \
         core's cache; the transport's copies cross cores. That target moves with the host \
         more than any other: `two_memcpy` of 1 MiB took 71 µs on the AMD host of earlier \
         reports (the echo 1.88× of it) and 38 µs on the host of the report of \
         4 December 2026, where the echo's criterion mean (167 µs) also sat far above its \
         p50 (78 µs). \
         `find_block` over shm copies the block \
         twice (into the ring in the peer, out of it here, into the block's own buffer as the \
         parts arrive), in 64 KiB parts so that the two copies overlap. With `rep movsb` \
         guarded only at its slow distances it was bimodal here (57 µs in some runs, 90 to \
         160 µs in others); in pieces it runs at 55 to 67 µs, apart from runs the host \
         slows whatever the copy."
    );
    let _ = writeln!(
        out,
        "\n## How to run\n\n- This report: `{command}` (a few minutes; rewrites this file and the plot). \
         Re-render without measuring again: `cargo run --release -p benches --bin \
         bench-report -- target/bench-results.tsv target/criterion docs`.\n\
         - The full suite, for people: `cargo bench -p benches` (each group alone: `cargo bench -p benches --bench NAME`).\n\
         - A/B of two builds, and profiling: `cargo run --release -p benches --example \
         round_trips -- echo|raw|paired|decompose [CALLS] [SIZE] [batched]` times single round trips to \
         a peer process and prints the mean, the median and the mean of the faster half \
         (the figure the commit messages quote) with p90, p99 and p99.9; run two builds' \
         binaries alternately, several times each. `paired` alternates echo and raw blocks \
         and prints their ratio, which holds still while the host's speed does not; \
         `decompose` prints the table of where the echo's time goes, for a build under test. \
         Under `valgrind --tool=callgrind --trace-children=yes` it counts both processes' \
         instructions (this host has no hardware counters for `perf`).\n\
         - Smoke mode, as in CI (each benchmark once): `cargo bench -p benches -- --test`.\n\
         - The interface groups: `find_block` reads the mainnet block from `../shared/data` \
         beside the checkout (or the file `$BITCOIN_SHM_BLOCK` names) and falls back to a \
         generated 1.4 MB regtest block without it; `wallet_sync` first mines its 1,000 blocks \
         into a temporary directory (untimed, about a second). Each alone: `cargo bench -p \
         benches --bench find_block` (or `notifications`, `wallet_sync`) `-- --warm-up-time 1 \
         --measurement-time 2 --noplot`."
    );
    out
}

/// A ratio as a cell, with `digits` decimals.
fn times(v: Option<f64>, digits: usize) -> String {
    cell(v.map(|v| format!("{v:.digits$}×")))
}

/// The sections of the interface groups: `find_block`, `notifications`, `wallet_sync`.
fn interfaces(out: &mut String, inputs: &Inputs) {
    let fb = "find_block";
    let est = |group: &str, id: &str| inputs.estimate(group, id, 0);
    let val = |group: &str, id: &str, key: &str| inputs.value(group, id, 0, key);

    let _ = writeln!(out, "\n## Chain::find_block\n");
    match (
        val(fb, "block", "bytes"),
        val(fb, "block", "transactions"),
        val(fb, "block", "mainnet"),
    ) {
        (Some(bytes), Some(txs), Some(mainnet)) => {
            let which = if mainnet > 0.0 {
                "the mainnet block of `shared/data`"
            } else {
                "a generated regtest block (the mainnet block's file was not found)"
            };
            let _ = writeln!(
                out,
                "The whole block (`BlockWhat::Full`), {which}: {bytes:.0} bytes, {txs:.0} \
                 transactions. A `FoundBlock` carries the block as an `EncodedBlock`: its \
                 consensus encoding, of which the receiver decodes only the header; it walks \
                 the framing (where each transaction starts) when first asked. `in_process` \
                 calls the serving `Chain` directly (the block's bytes are shared, so a call \
                 costs a reference count, as a `shared_ptr<const CBlock>` does in Bitcoin \
                 Core); `shm` and `socket` call it in a peer process, which copies the block's \
                 stored encoding into the connection, as `bitcoin-node` does, and this process \
                 copies it out; `memcpy` copies the block's bytes into a buffer, the floor; \
                 `frame` is that copy and the framing walk (`EncodedBlock::check`), which a \
                 receiver that wants the transactions' places pays on top; `decode` decodes \
                 the bytes into a rust-bitcoin `Block`, which a receiver that wants one pays \
                 instead (`EncodedBlock::to_block`). Criterion's estimate per call, the p50 of \
                 single calls, and each against memcpy.\n"
            );
        }
        _ => {
            let _ = writeln!(out, "No `find_block` results in this run.\n");
        }
    }
    let _ = writeln!(
        out,
        "| id | criterion | GB/s | p50 | p99 | /memcpy | p50/memcpy p50 |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    let bytes = val(fb, "block", "bytes");
    for id in ["memcpy", "frame", "decode", "in_process", "shm", "socket"] {
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} | {} | {} | {} |",
            cell(est(fb, id).map(fmt_ns)),
            cell(ratio(bytes, est(fb, id)).map(|b| format!("{b:.2}"))),
            cell(val(fb, id, "p50_ns").map(fmt_ns)),
            cell(val(fb, id, "p99_ns").map(fmt_ns)),
            times(ratio(est(fb, id), est(fb, "memcpy")), 2),
            times(ratio(val(fb, id, "p50_ns"), val(fb, "memcpy", "p50_ns")), 2),
        );
    }
    if let Some(r) = ratio(est(fb, "shm"), est(fb, "memcpy")) {
        let verdict = if r <= 2.0 { "**met**" } else { "**missed**" };
        let _ = writeln!(
            out,
            "\nshm/memcpy {r:.2}× (target ≤ 2×: {verdict}); socket/shm {}.",
            times(ratio(est(fb, "socket"), est(fb, "shm")), 2)
        );
    }

    let nt = "notifications";
    let _ = writeln!(out, "\n## Chain notifications (node → wallet)\n");
    let per_round = val(nt, "events", "per_round");
    if let (Some(tx), Some(block), Some(per_round)) = (
        val(nt, "events", "tx_bytes"),
        val(nt, "events", "block_bytes"),
        per_round,
    ) {
        let _ = writeln!(
            out,
            "Rounds of {} `transaction_added_to_mempool` ({tx:.0} bytes each), then the \
             `block_connected` of the block holding them ({block:.0} bytes). This process is the \
             node: its notifier queues the events and its delivery thread calls the subscriber \
             one at a time, as `bitcoin-node` calls a wallet; the subscriber (in this process, \
             or behind a proxy in a peer process) returns at once. Notifications per second \
             from criterion's estimate (per round, divided by {per_round:.0}) and from a run \
             of about a second.\n",
            per_round - 1.0
        );
    }
    let _ = writeln!(
        out,
        "| transport | notifications/s (criterion) | notifications/s (1 s run) | per notification | /shm (time) | switches per notification |\n| --- | --- | --- | --- | --- | --- |"
    );
    let per_notification = |id: &str| Some(est(nt, id)? / per_round?);
    for id in ["in_process", "shm", "socket"] {
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} | {} | {} |",
            cell(per_notification(id).map(|ns| format!("{:.0} k", 1e6 / ns))),
            cell(val(nt, id, "notifications_per_s").map(|r| format!("{:.0} k", r / 1e3))),
            cell(per_notification(id).map(fmt_ns)),
            times(ratio(per_notification(id), per_notification("shm")), 2),
            switches(
                val(nt, id, "voluntary_switches"),
                val(nt, id, "involuntary_switches")
            ),
        );
    }

    let ws = "wallet_sync";
    let _ = writeln!(out, "\n## Wallet catch-up\n");
    if let (Some(blocks), Some(mining)) = (val(ws, "chain", "blocks"), val(ws, "chain", "mining_s"))
    {
        let _ = writeln!(
            out,
            "`Wallet::sync_with_chain` of a wallet {blocks:.0} regtest blocks behind, each \
             paying it a coinbase (mined once through the node's own mining path, \
             {mining:.1} s, untimed), through the node's `Chain`: in this process, or served by \
             a peer process. Each catch-up starts from a fresh copy of the wallet (untimed). \
             Criterion's estimate per catch-up (ten samples), then separately timed \
             catch-ups.\n"
        );
    }
    let _ = writeln!(
        out,
        "| transport | criterion | per block | p50 | max | catch-ups | /shm | switches per block |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let blocks = val(ws, "chain", "blocks");
    for id in ["in_process", "shm", "socket"] {
        let key = format!("{id}_switches");
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} | {} | {} | {} | {} |",
            cell(est(ws, id).map(fmt_ns)),
            cell(ratio(est(ws, id), blocks).map(fmt_ns)),
            cell(val(ws, id, "p50_ns").map(fmt_ns)),
            cell(val(ws, id, "max_ns").map(fmt_ns)),
            cell(val(ws, id, "samples").map(|s| format!("{s:.0}"))),
            times(ratio(est(ws, id), est(ws, "shm")), 2),
            switches(val(ws, &key, "per_block"), val(ws, &key, "involuntary")),
        );
    }
    let _ = writeln!(
        out,
        "\n\"switches\" are context switches of the processes involved, voluntary / involuntary, \
         as in the percentile table: involuntary ones mean more threads wanted to run than \
         there were CPUs, and a preempted waiter on shm costs a scheduler round."
    );
}

/// Voluntary / involuntary context switches as a cell.
fn switches(voluntary: Option<f64>, involuntary: Option<f64>) -> String {
    match (voluntary, involuntary) {
        (Some(v), Some(i)) => format!("{v:.3} / {i:.3}"),
        _ => "–".to_owned(),
    }
}

/// The chart's series: one line per round-trip case with criterion estimates.
pub fn series(inputs: &Inputs) -> Vec<Series> {
    let mut out = Vec::new();
    for (group, ids) in ROUND_TRIP_CASES {
        for id in ids {
            let points: Vec<(f64, f64)> = PAYLOAD_SIZES
                .iter()
                .filter_map(|&s| Some((s as f64, inputs.estimate(group, id, s)?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let name = if group == "echo_roundtrip" {
                format!("echo {id}")
            } else {
                (*id).to_owned()
            };
            out.push(Series { name, points });
        }
    }
    out
}

/// Describes this machine from `/proc` and `/sys`.
pub fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let siblings =
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    vec![
        format!(
            "CPU: {model}, {cpus} logical CPUs ({})",
            if siblings == "0" {
                "CPU 0 has no SMT sibling: as far as this guest can tell, each CPU is a core of its own".to_owned()
            } else {
                format!("CPU 0 shares its physical core with CPUs {siblings}")
            }
        ),
        format!("Kernel: Linux {kernel}"),
        format!(
            "Load average (1, 5, 15 min) when the report was written: {}. The machine is shared: \
             other work running at the same time inflates every figure, most of all the \
             spinning transports (floor, shm, iceoryx2), which need both CPUs at once.",
            load.join(", ")
        ),
    ]
}

/// Reads the inputs, writes the report and the plot into `docs_dir`.
pub fn write(
    results: &Path,
    criterion_dir: &Path,
    docs_dir: &Path,
    command: &str,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(results).with_context(|| format!("read {}", results.display()))?;
    let inputs = Inputs {
        lines: parse_results(&text),
        estimates: gather_estimates(criterion_dir),
        machine: machine(),
    };
    anyhow::ensure!(
        !inputs.estimates.is_empty(),
        "no criterion estimates under {}",
        criterion_dir.display()
    );
    let plot_name = "benchmarks-roundtrip.png";
    let ticks: Vec<(f64, String)> = PAYLOAD_SIZES
        .iter()
        .map(|&s| (s as f64, size_label(s).replace(' ', "")))
        .collect();
    let png = render(
        "round trip vs payload (log-log)",
        "payload bytes",
        &ticks,
        &series(&inputs),
    );
    std::fs::write(docs_dir.join(plot_name), png).context("write the plot")?;
    std::fs::write(
        docs_dir.join("benchmarks.md"),
        markdown(&inputs, plot_name, command),
    )
    .context("write the report")?;
    Ok(())
}

/// Where the 64 B echo's time goes (`echo_roundtrip/decompose`, see `benches::by_hand`).
fn decomposition(out: &mut String, inputs: &Inputs) {
    let value = |key: &str| inputs.value("echo_roundtrip", "decompose", 64, key);
    if value("echo_ns").is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "\nWhere the 64 B echo's time goes (`echo_roundtrip/decompose`): each way of making the \
         round trip timed one call at a time in alternating blocks of one loop, as the median \
         and as the median of its per-round ratios to the raw round trip. \"By hand\" writes \
         and reads `Echo::echo`'s records (32-byte call header, length, bytes) with \
         straight-line code, with the call layer's copies; \"session\" is the call layer \
         without the interface layer (the bytes encoded and decoded with the session's own \
         codec calls); `EchoProxy` and `EchoServer` are the interface layer over it.\n"
    );
    let _ = writeln!(
        out,
        "| caller → server | median | ratio to raw |\n| --- | --- | --- |"
    );
    for (key, label) in crate::by_hand::ROWS {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            label.replace("->", "→"),
            cell(value(&format!("{key}_ns")).map(fmt_ns)),
            cell(value(&format!("{key}_ratio")).map(|v| format!("{v:.2}×"))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines_and_skips_garbage() {
        let lines =
            parse_results("g\tshm\t64\tp50_ns=700 p99_ns=1200.5\nnot a line\ng\tx\tNaN?\ta=1\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].values["p99_ns"], 1200.5);
    }

    #[test]
    fn reads_criterion_point_estimates() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.5,"standard_error":0.1},"slope":null}"#;
        assert_eq!(point_estimate(json, "slope"), None);
        assert_eq!(point_estimate(json, "mean"), Some(2.5));
        let json =
            r#"{"slope":{"confidence_interval":{"lower_bound":1e2},"point_estimate":1.5e2}}"#;
        assert_eq!(point_estimate(json, "slope"), Some(150.0));
    }

    #[test]
    fn the_echo_decomposition_renders_as_a_table() {
        let lines = parse_results(
            "echo_roundtrip\tdecompose\t64\traw_ns=200 raw_ratio=1 hand_hand_ns=260 \
             hand_hand_ratio=1.3 echo_ns=440 echo_ratio=2.2\n",
        );
        let md = markdown(
            &Inputs {
                lines,
                estimates: BTreeMap::new(),
                machine: Vec::new(),
            },
            "p.png",
            "report.sh",
        );
        assert!(
            md.contains("| by hand → by hand | 260 ns | 1.30× |"),
            "{md}"
        );
        assert!(md.contains("| EchoProxy → EchoServer (the echo) | 440 ns | 2.20× |"));
        // A case the run did not record is a gap, not a zero.
        assert!(md.contains("| session → by hand | – | – |"), "{md}");
    }

    #[test]
    fn interface_groups_render_with_their_targets() {
        let lines = parse_results(
            "find_block\tblock\t0\tbytes=1381000 transactions=2500 mainnet=1\n\
             find_block\tshm\t0\tp50_ns=900000\n\
             find_block\tmemcpy\t0\tp50_ns=100000\n\
             notifications\tevents\t0\ttx_bytes=370 block_bytes=3900 per_round=11\n\
             notifications\tshm\t0\tnotifications_per_s=250000 voluntary_switches=0.1 involuntary_switches=2\n\
             wallet_sync\tchain\t0\tblocks=1000 mining_s=4.5\n\
             wallet_sync\tshm\t0\tp50_ns=300000000 max_ns=310000000 samples=5\n",
        );
        let mut estimates = BTreeMap::new();
        for (group, id, ns) in [
            ("find_block", "memcpy", 100_000.0),
            ("find_block", "shm", 150_000.0),
            ("find_block", "socket", 600_000.0),
            ("notifications", "shm", 44_000.0),
            ("wallet_sync", "shm", 300e6),
            ("wallet_sync", "socket", 450e6),
        ] {
            estimates.insert((group.to_owned(), id.to_owned(), 0), ns);
        }
        let md = markdown(
            &Inputs {
                lines,
                estimates,
                machine: Vec::new(),
            },
            "p.png",
            "report.sh",
        );
        assert!(md.contains("| Chain::find_block of the 1.38 MB block over shm ≤ 2× its memcpy | 1.50× (**met**) | 9.00× (**missed**) |"));
        assert!(md.contains("shm/memcpy 1.50× (target ≤ 2×: **met**); socket/shm 4.00×."));
        assert!(
            md.contains("the mainnet block of `shared/data`: 1381000 bytes, 2500 transactions")
        );
        // 44 µs a round of 11: 4 µs a notification, 250 k/s.
        assert!(
            md.contains("| shm | 250 k | 250 k | 4.00 µs | 1.00× | 0.100 / 2.000 |"),
            "{md}"
        );
        assert!(
            md.contains("| socket | 450.00 ms | 450.00 µs | – | – | – | 1.50× | – |"),
            "{md}"
        );
    }

    #[test]
    fn chart_is_a_png() {
        let s = vec![Series {
            name: "shm".into(),
            points: vec![(64.0, 700.0), (1024.0, 900.0)],
        }];
        let png = render("t", "x", &[(64.0, "64B".into())], &s);
        assert!(png.starts_with(b"\x89PNG"));
    }
}
