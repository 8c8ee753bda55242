//! Times single 64 B (or SIZE) round trips to a peer process, for A/B comparisons of two
//! builds and for profilers (callgrind counts a fixed number of calls):
//!
//! ```text
//! cargo run --release -p benches --example round_trips -- echo|raw|paired|decompose [CALLS] [SIZE] [batched]
//! ```
//!
//! `echo` calls `Echo::echo` through the call layer, `raw` sends a record over the shm
//! transport and waits for the peer's copy; `paired` times both in alternating blocks and
//! prints their ratio, which holds still while the host's speed does not. Prints the mean, the median, and the mean of
//! the faster half of the round trips: on a shared machine the slower half holds the
//! preemptions, and the median moves in steps of the clock's resolution.
//!
//! `decompose` says where the echo's time goes: it alternates blocks of the raw round trip,
//! of `Echo::echo`'s records written and read by hand on both sides, of each side of the
//! echo taken by the call layer (with and without the interface layer) against the other
//! by hand, and of the echo itself (see [`benches::by_hand`]), and prints each one's median
//! and its ratio to the raw round trip.
//!
//! `batched` times 50 batches of CALLS/50 back-to-back round trips instead of each one, as
//! criterion does: without the clock reads between them, the caller asks again sooner, and
//! whatever the serving side still does after its answer shows in the figure.

use anyhow::{Context, bail};
use benches::by_hand;
use benches::conn::{Client, Mode, Setup};
use benches::echo::RemoteEcho;
use benches::stats::{self, BlockTiming};
use benches::{payload, peer};
use ipc_shm::Transport;

fn main() {
    peer::serve_if_peer(benches::serve);
    if let Err(e) = run() {
        eprintln!("round_trips: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("echo");
    let calls: usize = args
        .get(1)
        .map_or(Ok(100_000), |a| a.parse())
        .context("CALLS")?;
    let size: usize = args.get(2).map_or(Ok(64), |a| a.parse()).context("SIZE")?;
    let batched = match args.get(3).map(String::as_str) {
        None | Some("single") => false,
        Some("batched") => true,
        Some(other) => bail!("unknown timing {other:?}: single or batched"),
    };
    anyhow::ensure!(calls >= 100, "CALLS must be at least 100");
    let data = payload(size);
    let setup = Setup::new(Transport::Shm, Mode::Echo);
    let timing = if batched {
        BlockTiming::BackToBack
    } else {
        BlockTiming::Single
    };
    match what {
        "paired" => return paired(calls, size, setup, timing),
        "decompose" => return decompose(calls, size, timing),
        _ => {}
    }
    let mut round_trip: Box<dyn FnMut() -> anyhow::Result<()>> = match what {
        "echo" => {
            let remote = RemoteEcho::spawn(setup)?;
            Box::new(move || remote.echo(&data).map(drop))
        }
        "raw" => {
            let mut client = Client::spawn(setup)?;
            Box::new(move || client.round_trip(&data))
        }
        other => bail!("unknown round trip {other:?}: echo, raw or paired"),
    };
    for _ in 0..1000 {
        round_trip()?;
    }
    if batched {
        const BATCHES: usize = 50;
        let per_batch = calls / BATCHES;
        let mut means = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let start = std::time::Instant::now();
            for _ in 0..per_batch {
                round_trip()?;
            }
            means.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
        }
        means.sort_by(f64::total_cmp);
        let half = &means[..BATCHES / 2];
        println!(
            "{what} {size} B batched: p50 {:.0} ns, faster half {:.1} ns (means of {BATCHES} batches)",
            means[BATCHES / 2],
            half.iter().sum::<f64>() / half.len() as f64
        );
        return Ok(());
    }
    let mut times = Vec::with_capacity(calls);
    let start = std::time::Instant::now();
    for _ in 0..calls {
        let t = std::time::Instant::now();
        round_trip()?;
        times.push(t.elapsed().as_nanos() as u64);
    }
    let mean = start.elapsed().as_nanos() as f64 / calls as f64;
    times.sort_unstable();
    let half = &times[..calls / 2];
    let faster_half = half.iter().sum::<u64>() as f64 / half.len() as f64;
    let at = |q: f64| times[((calls as f64 * q) as usize).min(calls - 1)];
    println!(
        "{what} {size} B: mean {mean:.0} ns, p50 {} ns, faster half {faster_half:.1} ns \
         (p90 {} ns, p99 {} ns, p99.9 {} ns)",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999)
    );
    Ok(())
}

/// Echo and raw round trips in alternating blocks (see [`stats::paired`]).
fn paired(calls: usize, size: usize, setup: Setup, timing: BlockTiming) -> anyhow::Result<()> {
    let data = payload(size);
    let remote = RemoteEcho::spawn(setup)?;
    let mut client = Client::spawn(setup)?;
    let p = stats::paired(
        (calls / 4_000).max(1),
        timing,
        &mut || remote.echo(&data).map(drop),
        &mut || client.round_trip(&data),
    )?;
    let [q1, q2, q3] = p.ratio;
    println!(
        "paired {size} B, {} block pairs: echo {:.0} ns, raw {:.0} ns, ratio {q2:.2}x \
         (quartiles {q1:.2}x, {q3:.2}x)",
        p.blocks, p.first_ns, p.second_ns
    );
    Ok(())
}

/// The echo taken apart (see [`by_hand::decompose`]).
fn decompose(calls: usize, size: usize, timing: BlockTiming) -> anyhow::Result<()> {
    anyhow::ensure!(
        timing == BlockTiming::Single,
        "decompose times one call at a time: back to back, its seven peers disturb each \
         other's blocks (see benches/benches/echo_roundtrip.rs)"
    );
    let rounds = (calls / (2_000 * by_hand::ROWS.len())).max(3);
    let parts = by_hand::decompose(size, rounds, timing)?;
    println!(
        "{size} B round trips, {timing:?}, {rounds} rounds of alternating blocks (caller -> server):"
    );
    for ((_, label), part) in by_hand::ROWS.iter().zip(&parts) {
        let [q1, q2, q3] = part.ratio;
        println!(
            "  {label:36} {:6.0} ns  {q2:.2}x raw ({q1:.2}x-{q3:.2}x)",
            part.ns
        );
    }
    Ok(())
}
