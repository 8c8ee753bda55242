//! "Transaction changed" subscriptions, Bitcoin Core's `handleTransactionChanged`.
//!
//! The wallet compares its canonical transactions before and after each change and tells
//! every subscriber which transactions are new, updated (confirmed, unconfirmed by a reorg,
//! moved to another block) or deleted (evicted, replaced, or disconnected coinbase).
//!
//! # Delivery
//!
//! Each subscriber has a queue and a delivery thread of its own, which calls it for one
//! change at a time, in the order the changes happened (they are queued under the wallet's
//! lock). A callback therefore runs outside every lock of the wallet and may call back into
//! it, and a slow subscriber delays only itself: a front end that is paused, or slow to
//! redraw, no longer holds up the thread that changed the wallet (the node's notification
//! thread, which then fell behind until the node dropped the wallet, or a payment's caller).
//! A subscriber that falls more than [`MAX_QUEUED_CHANGES`] behind is dropped, with a log
//! line; at most [`MAX_SUBSCRIBERS`] are subscribed at once.
//!
//! Once [`Handler::disconnect`] (or drop) returns, no further change is taken for the
//! callback; one taken just before may still be delivered, its callback running or even
//! beginning after the return. [`Subscribers::sync`] waits
//! until every change queued before it was handed over and returned.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use bdk_wallet::chain::{BlockId, ChainPosition};
use bitcoin::Txid;
use interfaces::delivery::{Delivery, Limits, Pushed};
use interfaces::{ChangeType, InterfaceError, TransactionChangedFn};

use crate::error::WalletError;

/// Most subscribers of one wallet at once (a front end or two is the usual): each has a
/// delivery thread, and a process holds up to [`MAX_LOADED_WALLETS`](crate::MAX_LOADED_WALLETS)
/// wallets, so this bounds the threads at 1,024.
pub const MAX_SUBSCRIBERS: usize = 8;
/// Most changes waiting for one subscriber before it is dropped (33 bytes each).
pub const MAX_QUEUED_CHANGES: usize = 100_000;

/// Where each canonical wallet transaction sits: `Some(block)` when confirmed.
pub(crate) type Snapshot = BTreeMap<Txid, Option<BlockId>>;

/// Takes the snapshot [`diff`] compares.
pub(crate) fn snapshot(wallet: &bdk_wallet::Wallet) -> Snapshot {
    wallet
        .transactions()
        .map(|tx| {
            let block = match tx.chain_position {
                ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id),
                ChainPosition::Unconfirmed { .. } => None,
            };
            (tx.tx_node.txid, block)
        })
        .collect()
}

/// The changes that turn `before` into `after`, in txid order (deletions last).
pub(crate) fn diff(before: &Snapshot, after: &Snapshot) -> Vec<(Txid, ChangeType)> {
    let mut changes: Vec<_> = after
        .iter()
        .filter_map(|(txid, block)| match before.get(txid) {
            None => Some((*txid, ChangeType::New)),
            Some(old) if old != block => Some((*txid, ChangeType::Updated)),
            Some(_) => None,
        })
        .collect();
    changes.extend(
        before
            .keys()
            .filter(|txid| !after.contains_key(*txid))
            .map(|txid| (*txid, ChangeType::Deleted)),
    );
    changes
}

/// The subscribers of one wallet.
pub(crate) struct Subscribers {
    next_id: AtomicU64,
    list: Mutex<Vec<Subscriber>>,
    /// [`MAX_QUEUED_CHANGES`], or less in tests.
    max_queued: usize,
}

struct Subscriber {
    id: u64,
    delivery: Arc<Delivery<(Txid, ChangeType)>>,
}

impl Default for Subscribers {
    fn default() -> Self {
        Self::with_queue_limit(MAX_QUEUED_CHANGES)
    }
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.list().len())
            .finish()
    }
}

impl Subscribers {
    /// Subscribers dropped when more than `max_queued` changes wait for them.
    pub(crate) fn with_queue_limit(max_queued: usize) -> Self {
        Subscribers {
            next_id: AtomicU64::new(0),
            list: Mutex::new(Vec::new()),
            max_queued,
        }
    }

    fn list(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        // The list is a plain Vec that no panic can leave half-updated.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anyone listens; when nobody does the wallet skips the snapshots.
    pub(crate) fn any(&self) -> bool {
        !self.list().is_empty()
    }

    /// Subscribes `callback`, on a delivery thread of its own.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        callback: TransactionChangedFn,
    ) -> Result<Handler, WalletError> {
        let mut list = self.list();
        if list.len() >= MAX_SUBSCRIBERS {
            return Err(WalletError::TooManySubscribers {
                limit: MAX_SUBSCRIBERS,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let limits = Limits {
            events: self.max_queued,
            bytes: usize::MAX,
        };
        let delivery = Delivery::start(
            format!("wallet-notify-{id}"),
            limits,
            move |(txid, change): (Txid, ChangeType)| callback(&txid, change),
        )
        .map_err(WalletError::NoThread)?;
        list.push(Subscriber { id, delivery });
        Ok(Handler {
            subscribers: Arc::downgrade(self),
            id,
        })
    }

    /// Queues every change for every subscriber, to be delivered in this order. Called
    /// under the wallet's lock, so that changes made one after the other are heard in that
    /// order; never waits for a subscriber. One too far behind is dropped.
    pub(crate) fn notify(&self, changes: &[(Txid, ChangeType)]) {
        if changes.is_empty() {
            return;
        }
        self.list().retain(|sub| {
            for change in changes {
                match sub.delivery.push(*change, 0) {
                    Pushed::Queued => {}
                    Pushed::Closed => return false,
                    Pushed::Overflow => {
                        tracing::warn!(
                            subscriber = sub.id,
                            "transaction-changed subscriber dropped: more than {} changes undelivered",
                            self.max_queued
                        );
                        sub.delivery.close();
                        return false;
                    }
                }
            }
            true
        });
    }

    /// Waits until every change queued before this call has been handed to its subscriber
    /// and the callback has returned (or the subscriber is gone). A subscriber's own
    /// thread does not wait for itself.
    pub(crate) fn sync(&self) {
        let deliveries: Vec<_> = self
            .list()
            .iter()
            .map(|s| Arc::clone(&s.delivery))
            .collect();
        for delivery in deliveries {
            delivery.sync();
        }
    }

    fn remove(&self, id: u64) {
        let mut list = self.list();
        if let Some(at) = list.iter().position(|s| s.id == id) {
            list.swap_remove(at).delivery.close();
        }
    }
}

impl Subscribers {
    /// Ends every subscription: their delivery threads end after the callback each is in,
    /// if any, and hear nothing more.
    pub(crate) fn close_all(&self) {
        for sub in std::mem::take(&mut *self.list()) {
            sub.delivery.close();
        }
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// A subscription; dropping it (or calling [`Handler::disconnect`]) unsubscribes.
#[derive(Debug)]
#[must_use = "dropping the handler unsubscribes at once"]
pub struct Handler {
    subscribers: Weak<Subscribers>,
    id: u64,
}

impl Handler {
    /// Unsubscribes: no change is taken for the callback after this returns (one taken just
    /// before may still be delivered). Idempotent; never waits for a callback, so a callback may
    /// disconnect its own handler.
    pub fn disconnect(&self) {
        if let Some(subscribers) = self.subscribers.upgrade() {
            subscribers.remove(self.id);
        }
    }
}

impl interfaces::Handler for Handler {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        Handler::disconnect(self);
        Ok(())
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use bitcoin::hashes::Hash;

    use super::*;

    fn change(n: u8) -> [(Txid, ChangeType); 1] {
        [(Txid::from_byte_array([n; 32]), ChangeType::New)]
    }

    #[test]
    fn a_subscriber_too_far_behind_is_dropped() {
        let subs = Arc::new(Subscribers::with_queue_limit(3));
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let (entered, enters) = mpsc::channel();
        let _handler = subs
            .subscribe(Arc::new(move |_, _| {
                let _ = entered.send(());
                let _ = released.lock().unwrap().recv();
            }))
            .unwrap();
        subs.notify(&change(0));
        // The delivery thread is in the callback now, its queue empty.
        enters.recv_timeout(Duration::from_secs(30)).unwrap();
        for n in 1..=3 {
            subs.notify(&change(n));
            assert!(
                subs.any(),
                "dropped at {n} changes waiting, within the limit"
            );
        }
        subs.notify(&change(4));
        assert!(!subs.any(), "kept with more changes waiting than the limit");
        drop(release);
        subs.sync();
    }

    #[test]
    fn subscribers_past_the_limit_are_refused_until_one_leaves() {
        let subs = Arc::new(Subscribers::default());
        let mut handlers: Vec<Handler> = (0..MAX_SUBSCRIBERS)
            .map(|_| subs.subscribe(Arc::new(|_, _| {})).unwrap())
            .collect();
        let refused = subs.subscribe(Arc::new(|_, _| {})).unwrap_err();
        assert!(matches!(
            refused,
            WalletError::TooManySubscribers {
                limit: MAX_SUBSCRIBERS
            }
        ));
        assert_eq!(
            refused.to_string(),
            "too many transaction-changed subscribers (limit 8)"
        );
        handlers.pop();
        let (heard, hear) = mpsc::channel();
        let _handler = subs
            .subscribe(Arc::new(move |txid, _| {
                let _ = heard.send(*txid);
            }))
            .unwrap();
        subs.notify(&change(7));
        subs.sync();
        assert_eq!(hear.try_recv().unwrap(), change(7)[0].0);
    }
}
