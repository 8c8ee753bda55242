//! Chain notifications from the node to a wallet: the node's own notifier and subscription
//! (`NodeContext::handle_notifications`) on this side, a subscriber that takes each
//! notification and returns at once on the other, in this process or behind a
//! `ChainNotificationsProxy` in a peer process.
//!
//! The events are what a node publishes while blocks arrive: [`TXS_PER_BLOCK`] transactions
//! added to its mempool, then the block that confirms them. Publishing never blocks, so the
//! publisher keeps at most [`WINDOW`] events undelivered (far below the notifier's limit, past
//! which it drops a subscriber) and a [`Tally`] around the subscriber tells it how far
//! delivery has got.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::{Block, Transaction};
use interfaces::remote::{ChainNotificationsProxy, ChainNotificationsServer};
use interfaces::{Chain, ChainNotifications, Handler, InterfaceError};
use node::chainstate::ChainState;
use node::notify::{ChainEvent, Notifier};
use node::service::NodeContext;
use node::testdata;

use crate::conn::Setup;
use crate::peer::HANG_LIMIT;
use crate::remote::{self, Remote};

/// The peer role that serves a [`Sink`] as a `ChainNotifications` subscriber.
pub const ROLE: &str = "notification_sink";

/// Mempool transactions announced before each block (the block holds them and a coinbase).
pub const TXS_PER_BLOCK: usize = 10;

/// Notifications of one round: the transactions, then their block.
pub const PER_ROUND: u64 = TXS_PER_BLOCK as u64 + 1;

/// The most events published and not yet delivered.
pub const WINDOW: u64 = 1024;

/// The wallet's side: takes every notification and returns at once, after the call layer
/// has decoded its block or transaction (what any subscriber pays before its own work).
#[derive(Debug, Default)]
pub struct Sink {
    transactions: AtomicU64,
    blocks: AtomicU64,
}

impl ChainNotifications for Sink {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        std::hint::black_box(tx);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        std::hint::black_box((block, height));
        self.blocks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Delivery so far, as the node's side sees it.
#[derive(Debug, Default)]
struct Progress {
    delivered: u64,
    /// A waiter sleeps until `delivered` reaches this.
    wake_at: Option<u64>,
    /// The first failed delivery.
    failure: Option<String>,
}

/// Wraps the subscriber the node calls and counts the notifications it has returned from
/// (for a remote subscriber: the peer has handled them), so that the publisher can wait for
/// delivery with a time limit.
pub struct Tally {
    inner: Arc<dyn ChainNotifications>,
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Tally {
    fn new(inner: Arc<dyn ChainNotifications>) -> Tally {
        Tally {
            inner,
            progress: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    fn count(&self, result: Result<(), InterfaceError>) -> Result<(), InterfaceError> {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.delivered += 1;
        if let Err(e) = &result {
            p.failure.get_or_insert_with(|| e.to_string());
        }
        if p.failure.is_some() || p.wake_at.is_some_and(|at| p.delivered >= at) {
            self.changed.notify_all();
        }
        result
    }

    /// Waits until `target` notifications have been delivered; fails when one failed or when
    /// delivery makes no progress for [`HANG_LIMIT`].
    fn wait_for(&self, target: u64) -> anyhow::Result<()> {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let mut last = (p.delivered, Instant::now());
        while p.delivered < target && p.failure.is_none() {
            if p.delivered != last.0 {
                last = (p.delivered, Instant::now());
            }
            let Some(left) = HANG_LIMIT.checked_sub(last.1.elapsed()) else {
                anyhow::bail!(
                    "no notification delivered within {HANG_LIMIT:?} ({} of {target})",
                    p.delivered
                );
            };
            p.wake_at = Some(target);
            p = self
                .changed
                .wait_timeout(p, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        p.wake_at = None;
        match &p.failure {
            Some(e) => anyhow::bail!("a notification failed: {e}"),
            None => Ok(()),
        }
    }
}

impl ChainNotifications for Tally {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        self.count(self.inner.transaction_added_to_mempool(tx))
    }

    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.count(self.inner.block_connected(block, height))
    }
}

/// The node's side: a node on an empty chain state whose notifier announces the rounds, and
/// one subscriber.
pub struct Publisher {
    notifier: Arc<Notifier>,
    tally: Arc<Tally>,
    txs: Vec<Arc<Transaction>>,
    block: Arc<Block>,
    height: u32,
    published: u64,
    // Dropped first: no notification is handed to the subscriber after this.
    _subscription: Box<dyn Handler>,
    _node: Arc<NodeContext>,
    _datadir: tempfile::TempDir,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("published", &self.published)
            .field("tally", &self.tally)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A node in a temporary datadir, with `subscriber` subscribed through
    /// `Chain::handle_notifications`, as a wallet subscribes.
    pub fn new(subscriber: Arc<dyn ChainNotifications>) -> anyhow::Result<Publisher> {
        let datadir = tempfile::tempdir().context("make a datadir")?;
        let chain = ChainState::open(datadir.path()).context("open the chain state")?;
        let notifier = chain.notifier();
        let node = NodeContext::new(chain).context("start the node context")?;
        let tally = Arc::new(Tally::new(subscriber));
        let subscription = node
            .handle_notifications(Arc::clone(&tally) as Arc<dyn ChainNotifications>)
            .context("Chain::handle_notifications")?;
        let block = testdata::large_regtest_block(TXS_PER_BLOCK as u32);
        let txs = block.txdata[1..].iter().cloned().map(Arc::new).collect();
        Ok(Publisher {
            notifier,
            tally,
            txs,
            block: Arc::new(block),
            height: 1,
            published: 0,
            _subscription: subscription,
            _node: node,
            _datadir: datadir,
        })
    }

    /// Sizes of the events, in bytes: a transaction and the block.
    pub fn sizes(&self) -> (usize, usize) {
        let tx = self.txs.first().map_or(0, |tx| tx.total_size());
        (tx, self.block.total_size())
    }

    /// Publishes `rounds` rounds and waits until every notification has been delivered.
    pub fn deliver(&mut self, rounds: u64) -> anyhow::Result<()> {
        for _ in 0..rounds {
            for tx in &self.txs {
                let event = ChainEvent::TransactionAddedToMempool(Arc::clone(tx));
                Self::publish(&self.notifier, &self.tally, &mut self.published, event)?;
            }
            let event = ChainEvent::BlockConnected {
                block: Arc::clone(&self.block),
                height: self.height,
            };
            Self::publish(&self.notifier, &self.tally, &mut self.published, event)?;
            self.height += 1;
        }
        self.tally.wait_for(self.published)
    }

    /// Publishes one event, first waiting while [`WINDOW`] are undelivered (in steps of half
    /// a window, so the publisher does not wake for every delivery).
    #[inline]
    fn publish(
        notifier: &Notifier,
        tally: &Tally,
        published: &mut u64,
        event: ChainEvent,
    ) -> anyhow::Result<()> {
        if *published >= WINDOW && published.is_multiple_of(WINDOW / 2) {
            tally.wait_for(*published - WINDOW / 2)?;
        }
        notifier.publish(event);
        *published += 1;
        Ok(())
    }

    /// Notifications published so far.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Delivers rounds for about `budget` (at least one chunk of `chunk` rounds, after one
    /// untimed) and returns the notifications delivered per second.
    pub fn rate(&mut self, chunk: u64, budget: Duration) -> anyhow::Result<f64> {
        self.deliver(chunk)?;
        let start = Instant::now();
        let mut rounds = 0;
        while rounds == 0 || start.elapsed() < budget {
            self.deliver(chunk)?;
            rounds += chunk;
        }
        Ok((rounds * PER_ROUND) as f64 / start.elapsed().as_secs_f64())
    }
}

/// Starts a peer serving a [`Sink`] and connects to it: the proxy is what the node holds
/// for a wallet in another process.
pub fn spawn(setup: Setup) -> anyhow::Result<Remote<ChainNotificationsProxy>> {
    Remote::spawn(ROLE, setup, &[], ChainNotificationsProxy::new)
}

/// The peer: serves a [`Sink`] until the client hangs up.
pub(crate) fn serve() -> anyhow::Result<()> {
    remote::serve(Arc::new(ChainNotificationsServer::new(Arc::new(
        Sink::default(),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_reach_the_subscriber_and_failures_stop_the_publisher() {
        let sink = Arc::new(Sink::default());
        let mut publisher = Publisher::new(Arc::clone(&sink) as Arc<dyn ChainNotifications>)
            .expect("a node in a temporary datadir");
        // More than a window, so that the publisher has to wait for delivery on the way.
        let rounds = 2 * WINDOW / PER_ROUND + 1;
        publisher.deliver(rounds).expect("delivered");
        assert_eq!(sink.blocks.load(Ordering::Relaxed), rounds);
        assert_eq!(
            sink.transactions.load(Ordering::Relaxed),
            rounds * TXS_PER_BLOCK as u64
        );

        struct Refuse;
        impl ChainNotifications for Refuse {
            fn block_connected(&self, _: &Block, _: u32) -> Result<(), InterfaceError> {
                Err(InterfaceError::Disconnected)
            }
        }
        let mut publisher = Publisher::new(Arc::new(Refuse)).expect("a node");
        let err = publisher.deliver(1).expect_err("a failed notification");
        assert!(err.to_string().contains("a notification failed"), "{err}");
    }
}
