//! `echo_roundtrip`: `Echo::echo` through the call layer, ids `in_process` (the trait
//! object called directly), `shm` and `socket` (an `EchoProxy` to a peer process), and
//! `two_memcpy`, the payload copied there and back inside this process: what moving it costs
//! without any transport. Parameter: payload bytes. After each call case, a separate loop
//! times single calls for percentiles. Then `shm_vs_raw` times the 64 B echo and the raw shm
//! round trip of `transport_roundtrip` in alternating blocks, for their ratio; last,
//! `decompose` times the 64 B echo against the raw round trip, `Echo::echo`'s records
//! written and read by hand, and each side of the echo by the call layer against the other
//! by hand (see `benches::by_hand`), for where the echo's time goes.

use std::hint::black_box;
use std::sync::Arc;

use benches::by_hand;
use benches::conn::{Client, Mode, Setup};
use benches::echo::{Mirror, RemoteEcho};
use benches::stats::{BlockTiming, fmt_ns, record, report_paired, report_percentiles};
use benches::{PAYLOAD_SIZES, PageMatched, payload, peer};
use criterion::{BenchmarkId, Criterion, Throughput};
use interfaces::Echo;
use ipc_shm::Transport;

const GROUP: &str = "echo_roundtrip";

fn echo_roundtrip(c: &mut Criterion) -> anyhow::Result<()> {
    let mut group = c.benchmark_group(GROUP);
    let local: Arc<dyn Echo> = Arc::new(Mirror);
    for size in PAYLOAD_SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("in_process", size), &data, |b, data| {
            b.iter(|| local.echo(black_box(data)).expect("in-process echo"))
        });
        report_percentiles(GROUP, "in_process", size, || {
            Ok(local.echo(&data).map(drop)?)
        })?;
        let (mut there, mut back) = (PageMatched::new(&data, size), PageMatched::new(&data, size));
        let (there, back) = (there.as_mut_slice(), back.as_mut_slice());
        group.bench_with_input(BenchmarkId::new("two_memcpy", size), &data, |b, data| {
            b.iter(|| {
                there.copy_from_slice(black_box(data));
                back.copy_from_slice(black_box(&*there));
                black_box(&*back);
            })
        });
        for (id, transport) in [("shm", Transport::Shm), ("socket", Transport::Socket)] {
            let remote = RemoteEcho::spawn(Setup::new(transport, Mode::Echo))?;
            group.bench_with_input(BenchmarkId::new(id, size), &data, |b, data| {
                b.iter(|| remote.echo(black_box(data)).expect("remote echo"))
            });
            report_percentiles(GROUP, id, size, || remote.echo(&data).map(drop))?;
        }
    }
    group.finish();
    // The 2× target compares the 64 B echo with the raw round trip of another group, run
    // minutes apart: time both here, alternately, for a ratio the host's swings leave be.
    let data = payload(64);
    let remote = RemoteEcho::spawn(Setup::new(Transport::Shm, Mode::Echo))?;
    let mut raw = Client::spawn(Setup::new(Transport::Shm, Mode::Echo))?;
    report_paired(
        GROUP,
        "shm_vs_raw",
        64,
        PAIRED_BLOCKS,
        &mut || remote.echo(&data).map(drop),
        &mut || raw.round_trip(&data),
    )?;
    drop((remote, raw));
    // One call at a time only: back to back, this loop of seven peers put the raw round trip
    // at 330-570 ns where the two-peer loop above puts it near 200 (the six peers left idle
    // during a block still yield through their spin window as the next one starts, we
    // think), and every ratio moved with it.
    let parts = by_hand::decompose(64, DECOMPOSE_ROUNDS, BlockTiming::Single)?;
    let mut values = Vec::new();
    for ((key, label), part) in by_hand::ROWS.iter().zip(&parts) {
        println!(
            "{GROUP}/decompose/64: {label}: {}, {:.2}× raw",
            fmt_ns(part.ns),
            part.ratio[1]
        );
        values.push((format!("{key}_ns"), part.ns));
        values.push((format!("{key}_ratio"), part.ratio[1]));
    }
    let values: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    record(GROUP, "decompose", 64, &values)?;
    Ok(())
}

/// Rounds of the decomposition's alternating blocks (7 cases of 2,000 round trips each), a
/// fraction of a second in all.
const DECOMPOSE_ROUNDS: usize = 25;

/// Block pairs of the paired echo/raw loop: 2,000 round trips a block, about half a second
/// in all.
const PAIRED_BLOCKS: usize = 100;

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = echo_roundtrip(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
