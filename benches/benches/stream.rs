//! `stream`: one-way records per second, `shm` vs `socket`, 64 B and 1 KiB records, the
//! peer draining in batches (`recv_batch`, one position update per batch). The sender sends
//! one record per call, except for `shm_batch64`: `send_batch` of 64 records, which checks
//! once per batch, not per record, whether the peer sleeps.
//!
//! One criterion iteration is [`RECORDS_PER_ITER`] records (`Throughput::Elements`, so
//! criterion reports records/s); a sample streams its records and ends when the peer
//! confirms it has drained them all, a round trip that the batch size amortises. A separate
//! run of about a second then records records/s and bytes/s for the report.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::conn::{Client, Mode, Setup};
use benches::cpu::write_syscalls;
use benches::stats::{record, smoke};
use benches::{payload, peer};
use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_shm::Transport;

const GROUP: &str = "stream";
const RECORD_SIZES: [usize; 2] = [64, 1024];
const RECORDS_PER_ITER: u64 = 1000;

fn stream(c: &mut Criterion) -> anyhow::Result<()> {
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Elements(RECORDS_PER_ITER));
    for size in RECORD_SIZES {
        let data = payload(size);
        for (id, transport, batch) in [
            ("shm", Transport::Shm, 1),
            ("shm_batch64", Transport::Shm, 64),
            ("socket", Transport::Socket, 1),
        ] {
            let mut client = Client::spawn(Setup::new(transport, Mode::Sink))?;
            group.bench_with_input(BenchmarkId::new(id, size), &data, |b, data| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    client
                        .stream(black_box(data), iters * RECORDS_PER_ITER, batch)
                        .expect("stream");
                    start.elapsed()
                })
            });
            rate(&mut client, id, &data, batch)?;
        }
    }
    group.finish();
    Ok(())
}

/// Streams for about a second (in chunks of 100,000 records) and records the rate.
fn rate(client: &mut Client, id: &str, data: &[u8], batch: u64) -> anyhow::Result<()> {
    let (chunk, budget) = if smoke() {
        (1_000, Duration::ZERO)
    } else {
        (100_000, Duration::from_secs(1))
    };
    client.stream(data, chunk, batch)?;
    let writes_before = write_syscalls(std::process::id())?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent == 0 || start.elapsed() < budget {
        client.stream(data, chunk, batch)?;
        sent += chunk;
    }
    let secs = start.elapsed().as_secs_f64();
    let writes = (write_syscalls(std::process::id())? - writes_before) as f64 / sent as f64;
    let records = sent as f64 / secs;
    let bytes = records * data.len() as f64;
    println!(
        "{GROUP}/{id}/{}: {:.2} M records/s, {:.1} MiB/s ({sent} records), {writes:.3} write syscalls per record by the sender",
        data.len(),
        records / 1e6,
        bytes / (1 << 20) as f64
    );
    record(
        GROUP,
        id,
        data.len(),
        &[
            ("records_per_s", records),
            ("bytes_per_s", bytes),
            ("writes_per_record", writes),
        ],
    )
}

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = stream(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
