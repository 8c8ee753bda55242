//! `notifications`: `transaction_added_to_mempool` and `block_connected` from the node to a
//! wallet, in notifications per second (`Throughput::Elements`).
//!
//! This process is the node: its notifier queues the events and its delivery thread calls
//! the subscriber, exactly as `bitcoin-node` does for a wallet. Ids: `in_process` (the
//! subscriber is in this process), `shm` and `socket` (a `ChainNotificationsProxy` to a
//! subscriber in a peer process). One criterion iteration is one round: ten transactions,
//! then the block holding them; a sample ends when the last of its notifications has been
//! delivered. A separate run of about a second then records notifications/s for the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::conn::{Mode, Setup};
use benches::cpu::total_context_switches;
use benches::notifications::{self, PER_ROUND, Publisher, Sink, TXS_PER_BLOCK};
use benches::stats::{record, smoke};
use benches::{FirstError, peer};
use criterion::{Criterion, Throughput};
use interfaces::ChainNotifications;
use ipc_shm::Transport;

const GROUP: &str = "notifications";

fn notifications(c: &mut Criterion) -> anyhow::Result<()> {
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Elements(PER_ROUND));
    let transports = [
        ("in_process", None),
        ("shm", Some(Transport::Shm)),
        ("socket", Some(Transport::Socket)),
    ];
    for (id, transport) in transports {
        let remote = transport
            .map(|t| notifications::spawn(Setup::new(t, Mode::Echo)))
            .transpose()?;
        let subscriber: Arc<dyn ChainNotifications> = match &remote {
            Some(remote) => Arc::new(remote.proxy().clone()),
            None => Arc::new(Sink::default()),
        };
        // Declared after `remote`, so dropped before it: no notification is in flight when
        // the connection closes.
        let mut publisher = Publisher::new(subscriber)?;
        if remote.is_none() {
            let (tx, block) = publisher.sizes();
            println!(
                "{GROUP}: rounds of {TXS_PER_BLOCK} transactions of {tx} bytes, then their block of {block} bytes"
            );
            record(
                GROUP,
                "events",
                0,
                &[
                    ("tx_bytes", tx as f64),
                    ("block_bytes", block as f64),
                    ("per_round", PER_ROUND as f64),
                ],
            )?;
        }
        let mut errors = FirstError::default();
        group.bench_function(id, |b| {
            b.iter_custom(|rounds| {
                let start = Instant::now();
                errors.note(publisher.deliver(rounds));
                start.elapsed()
            })
        });
        errors.check(&format!("notifications {id}"))?;
        let mut pids = vec![std::process::id()];
        pids.extend(remote.as_ref().map(|r| r.peer_pid()));
        rate(&mut publisher, id, &pids)?;
    }
    group.finish();
    Ok(())
}

/// Delivers for about a second (in chunks of 1,000 rounds) and records the rate, with the
/// context switches of the processes `pids` per notification.
fn rate(publisher: &mut Publisher, id: &str, pids: &[u32]) -> anyhow::Result<()> {
    let (chunk, budget) = if smoke() {
        (10, Duration::ZERO)
    } else {
        (1_000, Duration::from_secs(1))
    };
    let (published, before) = (publisher.published(), total_context_switches(pids)?);
    let per_s = publisher.rate(chunk, budget)?;
    let count = (publisher.published() - published) as f64;
    let (vol, invol) = total_context_switches(pids)?.since(before).per(count);
    println!(
        "{GROUP}/{id}: {:.0} k notifications/s; context switches per notification: {vol:.3} voluntary, {invol:.3} involuntary",
        per_s / 1e3
    );
    record(
        GROUP,
        id,
        0,
        &[
            ("notifications_per_s", per_s),
            ("voluntary_switches", vol),
            ("involuntary_switches", invol),
        ],
    )
}

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = notifications(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
