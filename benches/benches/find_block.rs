//! `find_block`: `Chain::find_block` of a whole 1.38 MB block (the mainnet block of
//! `../shared/data`, else a generated regtest block of about 1.4 MB), ids `in_process` (a
//! `OneBlock` chain called directly: a clone of its `EncodedBlock`), `shm` and `socket` (a
//! `ChainProxy` to a peer serving it: its stored encoding is copied into the connection
//! there, as `bitcoin-node` does, and copied out here, its header decoded), `memcpy`, a
//! plain copy of the block's bytes into a buffer: the floor that the transports are held
//! against, `frame`, that copy and the framing walk (`EncodedBlock::check`), which a
//! receiver that wants the transactions' places pays on top, and `decode`, the consensus
//! decoding of the bytes into a `Block`, which a receiver that wants one pays instead
//! (`EncodedBlock::to_block`). After each case, a separate loop times single calls for
//! percentiles.

use std::hint::black_box;
use std::sync::Arc;

use benches::big_block::{self, BigBlock, OneBlock, fetch};
use benches::conn::{Mode, Setup};
use benches::stats::{record, report_percentiles};
use benches::{FirstError, peer};
use bitcoin::{Block, BlockHash};
use criterion::{Criterion, Throughput};
use interfaces::{Chain, EncodedBlock};
use ipc_shm::Transport;

const GROUP: &str = "find_block";

fn find_block(c: &mut Criterion) -> anyhow::Result<()> {
    let big = BigBlock::load()?;
    let hash = big.hash();
    let (size, txs) = (big.raw.len(), big.block.txdata.len());
    let source = if big.mainnet { "mainnet" } else { "regtest" };
    println!("{GROUP}: the {source} block {hash}, {size} bytes, {txs} transactions");
    record(
        GROUP,
        "block",
        0,
        &[
            ("bytes", size as f64),
            ("transactions", txs as f64),
            ("mainnet", f64::from(u8::from(big.mainnet))),
        ],
    )?;
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Bytes(size as u64));

    let mut copy = vec![0u8; size];
    group.bench_function("memcpy", |b| b.iter(|| memcpy(&mut copy, &big.raw)));
    report_percentiles(GROUP, "memcpy", 0, || {
        memcpy(&mut copy, &big.raw);
        Ok(())
    })?;
    drop(copy);

    let mut errors = FirstError::default();
    group.bench_function("frame", |b| {
        b.iter(|| errors.note(frame(black_box(&big.raw))))
    });
    errors.check("frame the block")?;
    report_percentiles(GROUP, "frame", 0, || frame(&big.raw).map(drop))?;

    let mut errors = FirstError::default();
    group.bench_function("decode", |b| {
        b.iter(|| errors.note(decode(black_box(&big.raw))))
    });
    errors.check("decode the block")?;
    report_percentiles(GROUP, "decode", 0, || decode(&big.raw).map(drop))?;

    let local: Arc<dyn Chain> = Arc::new(OneBlock::new(big.block.clone()));
    let mut errors = FirstError::default();
    group.bench_function("in_process", |b| {
        b.iter(|| errors.note(fetch(local.as_ref(), black_box(&hash))))
    });
    errors.check("in-process find_block")?;
    report_percentiles(GROUP, "in_process", 0, || {
        fetch(local.as_ref(), &hash).map(drop)
    })?;
    drop(local);

    for (id, transport) in [("shm", Transport::Shm), ("socket", Transport::Socket)] {
        let remote = big_block::spawn(Setup::new(transport, Mode::Echo))?;
        let find = |hash: &BlockHash| remote.call(|chain| fetch(chain, hash));
        // Once, untimed: the peer serves the very block we hold.
        anyhow::ensure!(
            find(&hash)?.as_bytes() == big.raw,
            "the {id} peer served another block"
        );
        let mut errors = FirstError::default();
        group.bench_function(id, |b| b.iter(|| errors.note(find(black_box(&hash)))));
        errors.check(&format!("find_block over {id}"))?;
        report_percentiles(GROUP, id, 0, || find(&hash).map(drop))?;
    }
    group.finish();
    Ok(())
}

/// Copies `src` into `dst`, which the compiler must assume is read afterwards.
#[inline]
fn memcpy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(black_box(src));
    black_box(dst);
}

/// Copying the block out and walking its framing (what a receiver that wants to know where
/// each transaction starts does).
#[inline]
fn frame(raw: &[u8]) -> anyhow::Result<EncodedBlock> {
    let block = EncodedBlock::from_bytes(raw.to_vec())?;
    block.check()?;
    Ok(block)
}

/// What a receiver that wants a `Block` pays: its consensus decoding.
#[inline]
fn decode(raw: &[u8]) -> anyhow::Result<Block> {
    Ok(bitcoin::consensus::deserialize(raw)?)
}

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = find_block(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
