//! "Transaction changed" subscriptions, Bitcoin Core's `handleTransactionChanged`.
//!
//! The wallet compares its canonical transactions before and after each change and tells
//! every subscriber which transactions are new, updated (confirmed, unconfirmed by a reorg,
//! moved to another block) or deleted (evicted, replaced, or disconnected coinbase).
//! Callbacks run on the thread that changed the wallet, after the wallet's lock is released,
//! so a callback may call back into the wallet.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bdk_wallet::chain::{BlockId, ChainPosition};
use bitcoin::Txid;
use interfaces::{ChangeType, InterfaceError, TransactionChangedFn};

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

/// The subscriber list of one wallet.
#[derive(Default)]
pub(crate) struct Subscribers {
    next_id: AtomicU64,
    list: Mutex<Vec<(u64, TransactionChangedFn)>>,
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.lock().len())
            .finish()
    }
}

impl Subscribers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, TransactionChangedFn)>> {
        // The list is a plain Vec that no panic can leave half-updated.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anyone listens; when nobody does the wallet skips the snapshots.
    pub(crate) fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    pub(crate) fn subscribe(self: &Arc<Self>, callback: TransactionChangedFn) -> Handler {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, callback));
        Handler {
            subscribers: Arc::downgrade(self),
            id,
        }
    }

    /// Calls every subscriber for every change. The list is copied first so a callback may
    /// subscribe or unsubscribe without deadlock.
    pub(crate) fn notify(&self, changes: &[(Txid, ChangeType)]) {
        if changes.is_empty() {
            return;
        }
        let callbacks: Vec<_> = self.lock().iter().map(|(_, cb)| Arc::clone(cb)).collect();
        for (txid, change) in changes {
            for callback in &callbacks {
                callback(txid, *change);
            }
        }
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
    /// Unsubscribes. Idempotent; a callback already running may still finish.
    pub fn disconnect(&self) {
        if let Some(subscribers) = self.subscribers.upgrade() {
            subscribers.lock().retain(|(id, _)| *id != self.id);
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
