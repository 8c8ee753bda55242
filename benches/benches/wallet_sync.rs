//! `wallet_sync`: a wallet catching up 1,000 regtest blocks through `Chain`, as
//! `bitcoin-wallet` does when it loads a wallet that is behind the node
//! (`Wallet::sync_with_chain`: a locator, then `get_block_hash` and `find_block` for each
//! block, applied to bdk and written to SQLite every 500 blocks).
//!
//! Set up once: a wallet is created, then 1,000 blocks paying it are mined into a temporary
//! datadir through the node's own mining path. Ids: `in_process` (the node's `NodeContext`
//! in this process), `shm` and `socket` (a `ChainProxy` to a peer process serving the same
//! chain state). Each iteration starts from a fresh copy of the wallet as it was before
//! mining (untimed) and times its catch-up to the tip, which finds 1,000 coinbases. After
//! each case, ten more catch-ups are timed one by one for the report, with the context
//! switches of both processes.

use std::time::{Duration, Instant};

use benches::FirstError;
use benches::conn::{Mode, Setup};
use benches::cpu::{Switches, total_context_switches};
use benches::peer::{self, CallWatchdog};
use benches::regtest::{MinedChain, sync};
use benches::stats::{print_and_record, record, sample, smoke};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use interfaces::Chain;
use ipc_shm::Transport;

const GROUP: &str = "wallet_sync";
const BLOCKS: u32 = 1_000;

fn wallet_sync(c: &mut Criterion) -> anyhow::Result<()> {
    let mined = MinedChain::mine(BLOCKS)?;
    let mining = mined.mining_time().as_secs_f64();
    println!("{GROUP}: mined {BLOCKS} blocks in {mining:.2} s");
    record(
        GROUP,
        "chain",
        0,
        &[("blocks", f64::from(BLOCKS)), ("mining_s", mining)],
    )?;
    let mut group = c.benchmark_group(GROUP);
    // A catch-up takes tens of milliseconds, and its wallet copy more time untimed: ten
    // samples of equally many catch-ups.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(u64::from(BLOCKS)));

    // The chain state is locked by whoever has it open: this process first, then each peer.
    let me = std::process::id();
    let node = mined.node()?;
    case(&mut group, &mined, "in_process", node.as_ref(), &[me], None)?;
    drop(node);
    for (id, transport) in [("shm", Transport::Shm), ("socket", Transport::Socket)] {
        let remote = mined.spawn_node(Setup::new(transport, Mode::Echo))?;
        let pids = [me, remote.peer_pid()];
        let watchdog = Some(remote.watchdog());
        case(&mut group, &mined, id, remote.proxy(), &pids, watchdog)?;
    }
    group.finish();
    Ok(())
}

/// Benchmarks catch-ups through `chain` as case `id`, then times a few on their own and
/// records them with the context switches of `pids` (this process and the peer, if any)
/// per block. Every catch-up through a peer is watched by its `watchdog`.
fn case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    mined: &MinedChain,
    id: &str,
    chain: &dyn Chain,
    pids: &[u32],
    watchdog: Option<&CallWatchdog>,
) -> anyhow::Result<()> {
    // Once, untimed: a catch-up reaches the tip and finds every block's coinbase.
    let (wallet, _datadir) = mined.fresh_wallet()?;
    let watch = watchdog.map(CallWatchdog::watch);
    sync(&wallet, chain, mined.blocks())?;
    drop(watch);
    let found = wallet.list_transactions()?.len();
    anyhow::ensure!(
        found == mined.blocks() as usize,
        "the wallet found {found} transactions in {} blocks paying it",
        mined.blocks()
    );

    let mut errors = FirstError::default();
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let timed = errors.note(timed_sync(mined, chain, &[], watchdog));
                total += timed.map(|(took, _)| took).unwrap_or_default();
            }
            total
        })
    });
    errors.check(&format!("wallet_sync {id}"))?;

    let mut left = if smoke() { 1 } else { 10 };
    let mut switches = Switches::default();
    let p = sample(|| {
        if left == 0 {
            return Ok(None);
        }
        left -= 1;
        let (took, s) = timed_sync(mined, chain, pids, watchdog)?;
        switches += s;
        Ok(Some(took))
    })?;
    print_and_record(GROUP, id, 0, &p)?;
    let blocks = p.samples as f64 * f64::from(mined.blocks());
    let (vol, invol) = switches.per(blocks);
    println!(
        "{GROUP}/{id}: context switches per block: {vol:.3} voluntary, {invol:.3} involuntary"
    );
    record(
        GROUP,
        &format!("{id}_switches"),
        0,
        &[("per_block", vol), ("involuntary", invol)],
    )
}

/// One catch-up of a fresh wallet, timed, and the context switches of `pids` during it;
/// making the wallet and removing it are not counted.
fn timed_sync(
    mined: &MinedChain,
    chain: &dyn Chain,
    pids: &[u32],
    watchdog: Option<&CallWatchdog>,
) -> anyhow::Result<(Duration, Switches)> {
    let (wallet, datadir) = mined.fresh_wallet()?;
    let before = total_context_switches(pids)?;
    let watch = watchdog.map(CallWatchdog::watch);
    let start = Instant::now();
    sync(&wallet, chain, mined.blocks())?;
    let took = start.elapsed();
    drop(watch);
    let switches = total_context_switches(pids)?.since(before);
    drop((wallet, datadir));
    Ok((took, switches))
}

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = wallet_sync(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
