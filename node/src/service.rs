//! The node's implementations of the process interfaces (Core's `node/interfaces.cpp`):
//! [`Init`], [`Echo`], [`Chain`], [`Node`], [`Mining`] and [`BlockTemplate`], all over one
//! [`NodeContext`]. They run in-process as they are, and the IPC layer serves them to the
//! wallet and front ends unchanged.
//!
//! # Locking
//!
//! The chain state sits behind one mutex. Notifications are delivered on the notifier's own
//! thread, never under that mutex, so a subscriber may call back (`block_connected` →
//! `get_height`). `wait_tip_changed` takes the tip-watch mutex and then the chain mutex; no
//! code takes them in the other order.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bitcoin::address::NetworkUnchecked;
use bitcoin::{
    Address, Block, BlockHash, FeeRate, Network, OutPoint, Script, Transaction, TxMerkleNode, Txid,
    block,
};
use interfaces::{
    BlockRef, BlockTemplate, BlockWhat, Chain, ChainNotifications, Coin, Echo, ErrorCode,
    FoundBlock, FoundTransaction, Handler, Init, InterfaceError, MempoolInfo, Mining, Node,
    NotifyBlockTipFn, RemovalReason, TipInfo, WalletLoader,
};

use crate::chainstate::{self, ChainError, ChainState};
use crate::mempool::MempoolError;
use crate::mining;
use crate::notify::{self, ChainEvent, Notifier, Subscription, SubscriptionId};
use crate::validation::TxError;

/// Wakes `wait_tip_changed` callers and records a shutdown request.
#[derive(Debug, Default)]
struct TipWatch {
    /// Bumped on every tip change; waiters wake on any change and re-read the chain.
    changes: u64,
    shutdown: bool,
}

/// Most block templates handed out and not yet released, across all clients.
pub const MAX_TEMPLATES: usize = 1024;
/// Most bytes (serialized blocks) those templates may hold in all: a template is a copy of
/// its block, up to 4 MB, so a miner that keeps asking and never releases would otherwise
/// hold gigabytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 << 20;

/// Most block templates one connection may hold (a quarter of [`MAX_TEMPLATES`]): a miner
/// that never releases its templates cannot take every place from the other clients.
pub const MAX_TEMPLATES_PER_CLIENT: usize = MAX_TEMPLATES / 4;
/// Most template bytes one connection may hold (a quarter of [`MAX_TEMPLATE_BYTES`]).
pub const MAX_TEMPLATE_BYTES_PER_CLIENT: usize = MAX_TEMPLATE_BYTES / 4;
/// Most notification subscriptions one connection may hold (a quarter of
/// [`notify::MAX_SUBSCRIBERS`]): one front end that leaks them leaves three quarters to
/// the other clients, the wallet process among them. Each process subscribes once or
/// twice.
pub const MAX_SUBSCRIPTIONS_PER_CLIENT: usize = notify::MAX_SUBSCRIBERS / 4;

/// Most hashes in a block locator (Core's `MAX_LOCATOR_SZ`).
pub const MAX_LOCATOR: usize = 101;

/// Most bytes of coins one `find_coins` answer may hold. The outpoints asked for may all
/// name one output with a 10,000-byte script: a million of them would otherwise be copied
/// into ten gigabytes before the reply was found too large to send.
pub const MAX_FIND_COINS_BYTES: usize = 32 << 20;

/// What live templates hold: all of them (`NodeContext::templates`), or one client's.
#[derive(Debug, Default)]
struct Templates {
    count: usize,
    bytes: usize,
}

impl Templates {
    /// Whether another template would go past `count` templates or `bytes` bytes.
    fn full(&self, count: usize, bytes: usize) -> bool {
        self.count >= count || self.bytes >= bytes
    }
}

/// What one connection holds of the node's shared limits (subscriptions, templates): the
/// per-client share of them, so that one client cannot take them all. Each connection's
/// [`NodeInit`] has one; in-process users of [`NodeContext`] have none, and only the
/// node-wide limits apply to them.
#[derive(Debug, Default)]
pub struct ClientShare(Mutex<Held>);

#[derive(Debug, Default)]
struct Held {
    /// Places taken for subscriptions, some perhaps still being made.
    subscriptions: usize,
    /// The subscriptions made: what this client's `wait_for_notifications` waits for.
    subscribed: Vec<SubscriptionId>,
    templates: Templates,
}

impl ClientShare {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one of this client's subscription places, given back when the place drops.
    fn subscription_place(self: &Arc<Self>) -> Result<SubscriptionPlace, InterfaceError> {
        let mut held = self.held();
        if held.subscriptions >= MAX_SUBSCRIPTIONS_PER_CLIENT {
            return Err(InterfaceError::remote(
                ErrorCode::MISC_ERROR,
                format!(
                    "this connection holds {} notification subscriptions, the most one may: \
                     disconnect some first",
                    held.subscriptions
                ),
            ));
        }
        held.subscriptions += 1;
        Ok(SubscriptionPlace {
            share: Arc::clone(self),
            id: None,
        })
    }

    /// This client's subscriptions.
    fn subscribed(&self) -> Vec<SubscriptionId> {
        self.held().subscribed.clone()
    }
}

/// A subscription's place in its client's share.
struct SubscriptionPlace {
    share: Arc<ClientShare>,
    /// The subscription, once made.
    id: Option<SubscriptionId>,
}

impl SubscriptionPlace {
    fn fill(&mut self, id: SubscriptionId) {
        self.share.held().subscribed.push(id);
        self.id = Some(id);
    }
}

impl Drop for SubscriptionPlace {
    fn drop(&mut self) {
        let mut held = self.share.held();
        held.subscriptions -= 1;
        if let Some(id) = self.id {
            held.subscribed.retain(|s| *s != id);
        }
    }
}

/// Everything the node's interface implementations share (Core's `NodeContext`).
pub struct NodeContext {
    chain: Mutex<ChainState>,
    notifier: Arc<Notifier>,
    watch: Mutex<TipWatch>,
    watch_changed: Condvar,
    /// The attached wallet processes' loaders, oldest first; the last is the one handed
    /// out. One that leaves is taken out wherever it stands, so that a wallet attached
    /// while another was comes back when the newer one goes.
    wallet_loader: Mutex<Vec<Arc<dyn WalletLoader>>>,
    /// Signals a change of `wallet_loader` (attached or detached).
    wallet_changed: Condvar,
    /// Keeps `watch` informed of tip changes.
    _tip_subscription: Subscription,
    /// Block templates alive, within `MAX_TEMPLATES` and `MAX_TEMPLATE_BYTES`.
    templates: Mutex<Templates>,
    this: Weak<NodeContext>,
}

impl fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeContext")
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

fn internal(what: impl fmt::Display) -> InterfaceError {
    InterfaceError::remote(ErrorCode::INTERNAL_ERROR, what.to_string())
}

impl From<ChainError> for InterfaceError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Invalid(e) => InterfaceError::remote(ErrorCode::VERIFY_ERROR, e.reason()),
            ChainError::Store(e) => {
                InterfaceError::remote(ErrorCode::DATABASE_ERROR, e.to_string())
            }
        }
    }
}

/// Core's mapping of a mempool rejection to an RPC error: missing inputs are
/// `RPC_VERIFY_ERROR`, an already confirmed transaction `RPC_VERIFY_ALREADY_IN_CHAIN`, every
/// other rejection `RPC_VERIFY_REJECTED`; the message is Core's reject reason.
impl From<MempoolError> for InterfaceError {
    fn from(e: MempoolError) -> Self {
        let code = match &e {
            MempoolError::Consensus(TxError::InputsMissingOrSpent(_)) => ErrorCode::VERIFY_ERROR,
            MempoolError::AlreadyKnown => ErrorCode::VERIFY_ALREADY_IN_CHAIN,
            MempoolError::Store(_) => ErrorCode::DATABASE_ERROR,
            _ => ErrorCode::VERIFY_REJECTED,
        };
        InterfaceError::remote(code, e.reason())
    }
}

impl NodeContext {
    /// Wraps an opened chain state. Fails only when the thread delivering tip changes to
    /// `wait_tip_changed` cannot be started.
    pub fn new(chain: ChainState) -> std::io::Result<Arc<Self>> {
        let notifier = chain.notifier();
        let me: Arc<std::sync::OnceLock<Weak<Self>>> = Arc::default();
        let weak = Arc::clone(&me);
        let tip_subscription = notifier
            .subscribe(Arc::new(move |ev| {
                if let (ChainEvent::UpdatedBlockTip(_), Some(ctx)) =
                    (ev, weak.get().and_then(Weak::upgrade))
                {
                    ctx.update_watch(|w| w.changes += 1);
                }
            }))
            .map_err(std::io::Error::other)?;
        let ctx = Arc::new_cyclic(|this: &Weak<Self>| NodeContext {
            chain: Mutex::new(chain),
            notifier,
            watch: Mutex::default(),
            watch_changed: Condvar::new(),
            wallet_loader: Mutex::new(Vec::new()),
            wallet_changed: Condvar::new(),
            _tip_subscription: tip_subscription,
            templates: Mutex::default(),
            this: this.clone(),
        });
        let _ = me.set(Arc::downgrade(&ctx));
        Ok(ctx)
    }

    /// The chain state, locked. Poisoning (a panic while it was held) is reported as an
    /// internal error rather than propagated.
    pub fn lock_chain(&self) -> Result<MutexGuard<'_, ChainState>, InterfaceError> {
        self.chain
            .lock()
            .map_err(|_| internal("chain state unavailable after an earlier failure"))
    }

    fn update_watch(&self, f: impl FnOnce(&mut TipWatch)) {
        f(&mut self.watch.lock().unwrap_or_else(PoisonError::into_inner));
        self.watch_changed.notify_all();
    }

    /// Attaches a wallet process's loader: [`Node::wallet_loader`] hands it out until it is
    /// detached, or another is attached after it. With `None`, detaches every one.
    pub fn set_wallet_loader(&self, loader: Option<Arc<dyn WalletLoader>>) {
        let mut attached = self
            .wallet_loader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match loader {
            Some(loader) => attached.push(loader),
            None => attached.clear(),
        }
        self.wallet_changed.notify_all();
    }

    /// Detaches `loader`: a wallet process that went away. The one attached before it, if
    /// still there, is handed out again (a newer one stays).
    pub fn unset_wallet_loader(&self, loader: &Arc<dyn WalletLoader>) {
        let mut attached = self
            .wallet_loader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = attached.len();
        attached.retain(|l| !Arc::ptr_eq(l, loader));
        if attached.len() != before {
            self.wallet_changed.notify_all();
        }
    }

    /// Waits at most `timeout` until a wallet process is attached (`attached`) or none is;
    /// returns the loader attached then. For whoever starts a wallet process next to a node
    /// in the same program and must know when the node can hand its wallets out.
    pub fn wait_for_wallet_loader(
        &self,
        attached: bool,
        timeout: Duration,
    ) -> Option<Arc<dyn WalletLoader>> {
        let current = self
            .wallet_loader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (current, _) = self
            .wallet_changed
            .wait_timeout_while(current, timeout, |l| l.is_empty() == attached)
            .unwrap_or_else(PoisonError::into_inner);
        current.last().cloned()
    }

    /// Asks the node to shut down: [`NodeContext::wait_for_shutdown`] returns and
    /// `wait_tip_changed` callers get `None`.
    pub fn request_shutdown(&self) {
        self.update_watch(|w| w.shutdown = true);
    }

    /// Whether a shutdown was requested.
    pub fn shutdown_requested(&self) -> bool {
        self.watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shutdown
    }

    /// Blocks until [`NodeContext::request_shutdown`] (or [`Node::shutdown`]) is called.
    pub fn wait_for_shutdown(&self) {
        let mut w = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        while !w.shutdown {
            w = self
                .watch_changed
                .wait(w)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn arc(&self) -> Result<Arc<Self>, InterfaceError> {
        self.this
            .upgrade()
            .ok_or_else(|| internal("node context is shutting down"))
    }

    fn found_block(
        chain: &ChainState,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        let Some(entry) = chain.entry(hash) else {
            return Ok(None);
        };
        let block = match what {
            BlockWhat::Header => None,
            BlockWhat::Full => chain.encoded_block(hash)?,
        };
        if let Some(b) = &block
            && *b.header() != entry.header
        {
            tracing::error!(block = %hash, "the stored block is not the one the index names");
            return Err(internal(format!(
                "stored block {hash} does not match its header"
            )));
        }
        Ok(Some(FoundBlock {
            header: entry.header,
            height: entry.height,
            median_time_past: chain.median_time_past(hash),
            in_active_chain: chain.is_active(hash),
            block,
        }))
    }
}

fn tip_info(t: &chainstate::TipInfo) -> TipInfo {
    TipInfo {
        height: t.height,
        hash: t.hash,
        time: t.time,
        median_time_past: t.median_time_past,
        chain_work: t.chain_work,
    }
}

fn removal_reason(r: notify::RemovalReason) -> RemovalReason {
    match r {
        notify::RemovalReason::Block => RemovalReason::Block,
        notify::RemovalReason::Conflict => RemovalReason::Conflict,
        notify::RemovalReason::Reorg => RemovalReason::Reorg,
    }
}

/// A subscription handed out as a [`Handler`], with its place in its client's share.
type Subscribed = (Subscription, Option<SubscriptionPlace>);

/// A subscription handed out as a [`Handler`].
struct SubscriptionHandler(Mutex<Option<Subscribed>>);

impl Handler for SubscriptionHandler {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        let sub = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(sub); // no event is handed over after this; see `notify`
        Ok(())
    }
}

/// Forwards one event to a [`ChainNotifications`] subscriber.
fn forward(n: &dyn ChainNotifications, ev: &ChainEvent) -> Result<(), InterfaceError> {
    match ev {
        ChainEvent::TransactionAddedToMempool(tx) => n.transaction_added_to_mempool(tx),
        ChainEvent::TransactionRemovedFromMempool(tx, r) => {
            n.transaction_removed_from_mempool(tx, removal_reason(*r))
        }
        ChainEvent::BlockConnected { block, height } => n.block_connected(block, *height),
        ChainEvent::BlockDisconnected { block, height } => n.block_disconnected(block, *height),
        ChainEvent::UpdatedBlockTip(_) => n.updated_block_tip(),
        ChainEvent::ChainStateFlushed(locator) => n.chain_state_flushed(locator),
    }
}

impl Chain for NodeContext {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Ok(Some(self.lock_chain()?.height()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Ok(self.lock_chain()?.block_hash(height))
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        let chain = self.lock_chain()?;
        Ok(chain
            .block_hash(height)
            .is_some_and(|h| chain.have_block(&h)))
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        let chain = self.lock_chain()?;
        Self::found_block(&chain, hash, what)
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        let chain = self.lock_chain()?;
        match chain.ancestor(hash, ancestor_height) {
            Some(a) => Self::found_block(&chain, &a, what),
            None => Ok(None),
        }
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        // Core's bound for a locator (`MAX_LOCATOR_SZ`): one of a whole chain's length steps
        // back only 2^100 blocks at most, and a longer one is a peer making us look up
        // hashes under the chain lock.
        if locator.len() > MAX_LOCATOR {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                format!("locator of {} hashes: at most {MAX_LOCATOR}", locator.len()),
            ));
        }
        let chain = self.lock_chain()?;
        Ok(chain.find_locator_fork(locator).and_then(|height| {
            Some(BlockRef {
                hash: chain.block_hash(height)?,
                height,
            })
        }))
    }

    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        let chain = self.lock_chain()?;
        let mut found = Vec::with_capacity(outpoints.len());
        let mut bytes = 0usize;
        for op in outpoints {
            let coin = match chain.coin(op)? {
                Some(c) => Some(Coin {
                    txout: c.output,
                    height: Some(c.height),
                    is_coinbase: c.is_coinbase,
                }),
                None => chain.mempool().output(op).map(|o| Coin {
                    txout: o.clone(),
                    height: None,
                    is_coinbase: false,
                }),
            };
            bytes += coin
                .as_ref()
                .map_or(1, |c| 16 + c.txout.script_pubkey.len());
            if bytes > MAX_FIND_COINS_BYTES {
                return Err(InterfaceError::remote(
                    ErrorCode::INVALID_PARAMETER,
                    format!(
                        "the {} coins asked for hold more than {MAX_FIND_COINS_BYTES} bytes: \
                         ask for fewer at a time",
                        outpoints.len()
                    ),
                ));
            }
            found.push(coin);
        }
        Ok(found)
    }

    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError> {
        Ok(self.lock_chain()?.mempool().contains(txid))
    }

    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        self.broadcast(tx, max_fee_rate)?;
        Ok(())
    }

    fn estimate_fee_rate(&self, _target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        Ok(None) // no fee estimator on regtest
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        Ok(self.lock_chain()?.mempool().min_relay_fee())
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        Ok(self.lock_chain()?.is_initial_block_download())
    }

    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.handle_notifications_for(None, notifications)
    }

    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        self.notifier.sync();
        Ok(())
    }
}

impl Node for NodeContext {
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError> {
        Ok(tip_info(&self.lock_chain()?.tip()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Chain::get_block_hash(self, height)
    }

    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError> {
        let chain = self.lock_chain()?;
        Ok(Self::found_block(&chain, hash, BlockWhat::Full)?.filter(|f| f.block.is_some()))
    }

    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError> {
        let info = self.lock_chain()?.mempool().info();
        Ok(MempoolInfo {
            size: info.size as u64,
            bytes: info.bytes,
            usage: info.usage,
            total_fee: info.total_fee,
            mempool_min_fee: info.min_relay_fee,
            min_relay_tx_fee: info.min_relay_fee,
        })
    }

    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError> {
        let chain = self.lock_chain()?;
        let Some((tx, block)) = chain.transaction(txid)? else {
            return Ok(None);
        };
        let block = block.and_then(|hash| {
            Some(BlockRef {
                hash,
                height: chain.entry(&hash)?.height,
            })
        });
        Ok(Some(FoundTransaction { tx, block }))
    }

    fn send_raw_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Txid, InterfaceError> {
        Ok(self.broadcast(tx, max_fee_rate)?.compute_txid())
    }

    fn generate_to_address(
        &self,
        n: u32,
        address: &Address<NetworkUnchecked>,
    ) -> Result<Vec<BlockHash>, InterfaceError> {
        let address = address
            .clone()
            .require_network(Network::Regtest)
            .map_err(|_| {
                InterfaceError::remote(ErrorCode::INVALID_ADDRESS_OR_KEY, "Error: Invalid address")
            })?;
        // The hashes must fit one reply: refused up front, not after mining them all.
        if n > interfaces::codec::MAX_ITEMS {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                format!(
                    "Cannot generate {n} blocks at once: at most {}",
                    interfaces::codec::MAX_ITEMS
                ),
            ));
        }
        // One block per lock, so other callers interleave with a long run; a shutdown
        // request ends it early with the blocks mined so far.
        let script = address.script_pubkey();
        let mut hashes = Vec::with_capacity(n.min(1_000) as usize);
        for _ in 0..n {
            if self.shutdown_requested() {
                break;
            }
            hashes.extend(self.lock_chain()?.generate_to_script(1, &script)?);
        }
        Ok(hashes)
    }

    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        self.wallet_loader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
            .ok_or_else(|| {
                InterfaceError::remote(ErrorCode::WALLET_NOT_FOUND, "no wallet process is attached")
            })
    }

    fn shutdown(&self) -> Result<(), InterfaceError> {
        tracing::info!("shutdown requested through the Node interface");
        self.request_shutdown();
        Ok(())
    }

    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.handle_notify_block_tip_for(None, callback)
    }
}

impl Mining for NodeContext {
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError> {
        let tip = self.lock_chain()?.tip();
        Ok(Some(BlockRef {
            hash: tip.hash,
            height: tip.height,
        }))
    }

    fn wait_tip_changed(
        &self,
        current: &BlockHash,
        timeout: Duration,
    ) -> Result<Option<BlockRef>, InterfaceError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if watch.shutdown {
                return Ok(None);
            }
            // The chain is the truth; the watch only wakes us (lock order: watch, chain).
            let tip = self.lock_chain()?.tip();
            let now = Instant::now();
            if tip.hash != *current || deadline.is_some_and(|d| now >= d) {
                return Ok(Some(BlockRef {
                    hash: tip.hash,
                    height: tip.height,
                }));
            }
            watch = match deadline {
                Some(d) => {
                    self.watch_changed
                        .wait_timeout(watch, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .watch_changed
                    .wait(watch)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        self.create_new_block_for(None, coinbase_script)
    }
}

/// The node's shared objects as one client sees them: subscriptions and templates count
/// against the client's share too (see [`ClientShare`]).
impl NodeContext {
    fn handle_notifications_for(
        &self,
        client: Option<&Arc<ClientShare>>,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.subscribe_for(client, move |ev| {
            if let Err(e) = forward(notifications.as_ref(), ev) {
                tracing::warn!(error = %e, "chain notification subscriber failed");
            }
        })
    }

    fn handle_notify_block_tip_for(
        &self,
        client: Option<&Arc<ClientShare>>,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.subscribe_for(client, move |ev| {
            if let ChainEvent::UpdatedBlockTip(tip) = ev {
                callback(&tip_info(tip));
            }
        })
    }

    /// Subscribes `deliver` to chain events, in `client`'s share if any.
    fn subscribe_for(
        &self,
        client: Option<&Arc<ClientShare>>,
        deliver: impl Fn(&ChainEvent) + Send + Sync + 'static,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let mut place = client.map(ClientShare::subscription_place).transpose()?;
        let sub = self
            .notifier
            .subscribe(Arc::new(deliver))
            .map_err(internal)?;
        if let Some(place) = &mut place {
            place.fill(sub.id());
        }
        Ok(Box::new(SubscriptionHandler(Mutex::new(Some((
            sub, place,
        ))))))
    }

    fn create_new_block_for(
        &self,
        client: Option<&Arc<ClientShare>>,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        // Consensus caps a script at 10,000 bytes to be spendable; a longer one would only
        // make every template (and the block built from it) that much bigger.
        if coinbase_script.len() > crate::validation::MAX_SCRIPT_SIZE {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                format!(
                    "coinbase script of {} bytes: at most {}",
                    coinbase_script.len(),
                    crate::validation::MAX_SCRIPT_SIZE
                ),
            ));
        }
        let ctx = self.arc()?;
        // A place is taken before the template is built (under the chain lock), so that a
        // client at the limit cannot make the node build templates only to refuse them.
        let mut place = self.template_place(client)?;
        let template = self.lock_chain()?.create_new_block(coinbase_script);
        let bytes = template.block().total_size();
        place.add_bytes(bytes)?;
        // The template gives its place back when it is dropped.
        place.kept = true;
        Ok(Arc::new(Template {
            ctx,
            client: client.cloned(),
            template,
            bytes,
            solved: AtomicBool::new(false),
        }))
    }

    /// Takes a place for one more template, node-wide and in `client`'s share.
    fn template_place<'a>(
        &'a self,
        client: Option<&'a Arc<ClientShare>>,
    ) -> Result<TemplatePlace<'a>, InterfaceError> {
        // Lock order: the node-wide count, then the client's.
        let mut live = self.live_templates();
        if live.full(MAX_TEMPLATES, MAX_TEMPLATE_BYTES) {
            return Err(too_many_templates(&live, TemplateLimit::Node));
        }
        if let Some(c) = client {
            let mut held = c.held();
            if held
                .templates
                .full(MAX_TEMPLATES_PER_CLIENT, MAX_TEMPLATE_BYTES_PER_CLIENT)
            {
                return Err(too_many_templates(&held.templates, TemplateLimit::Client));
            }
            held.templates.count += 1;
        }
        live.count += 1;
        Ok(TemplatePlace {
            ctx: self,
            client: client.map(Arc::as_ref),
            bytes: 0,
            kept: false,
        })
    }
}

impl NodeContext {
    /// Core's `BroadcastTransaction`, with the scripts checked outside the chain lock: they
    /// cost as much as the square of a transaction's size (libbitcoinconsensus parses the
    /// whole transaction for each input), and a peer could send, again and again, one of
    /// thousands of inputs whose last script fails, holding every other call up for a
    /// second each time. Every other check runs under the lock, before and after.
    fn broadcast(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Arc<Transaction>, InterfaceError> {
        let spent = self
            .lock_chain()?
            .broadcast_spent_outputs(tx, max_fee_rate)?;
        let Some(spent) = spent else {
            // In the mempool already: accepted again, as Core does.
            return Ok(self
                .lock_chain()?
                .broadcast_transaction(tx.clone(), max_fee_rate)?);
        };
        crate::validation::verify_scripts(tx, &spent).map_err(MempoolError::from)?;
        Ok(self
            .lock_chain()?
            .broadcast_checked_transaction(tx.clone(), max_fee_rate, &spent)?)
    }

    fn live_templates(&self) -> std::sync::MutexGuard<'_, Templates> {
        self.templates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which limit a template would break.
#[derive(Debug, Clone, Copy)]
enum TemplateLimit {
    Node,
    Client,
}

fn too_many_templates(held: &Templates, limit: TemplateLimit) -> InterfaceError {
    let (who, count, bytes) = match limit {
        TemplateLimit::Node => ("the node holds", MAX_TEMPLATES, MAX_TEMPLATE_BYTES),
        TemplateLimit::Client => (
            "this connection holds",
            MAX_TEMPLATES_PER_CLIENT,
            MAX_TEMPLATE_BYTES_PER_CLIENT,
        ),
    };
    InterfaceError::remote(
        ErrorCode::MISC_ERROR,
        format!(
            "too many block templates: {who} {} of {count}, {} of {bytes} bytes: release some \
             first",
            held.count, held.bytes
        ),
    )
}

/// A place taken for a template being built, node-wide and in its client's share: given
/// back when dropped, unless a template keeps it.
struct TemplatePlace<'a> {
    ctx: &'a NodeContext,
    client: Option<&'a ClientShare>,
    /// The template's bytes, once counted.
    bytes: usize,
    kept: bool,
}

impl TemplatePlace<'_> {
    /// Counts the built template's `bytes`, if they fit within both limits.
    fn add_bytes(&mut self, bytes: usize) -> Result<(), InterfaceError> {
        let mut live = self.ctx.live_templates();
        if live.bytes + bytes > MAX_TEMPLATE_BYTES {
            return Err(too_many_templates(&live, TemplateLimit::Node));
        }
        if let Some(c) = self.client {
            let mut held = c.held();
            if held.templates.bytes + bytes > MAX_TEMPLATE_BYTES_PER_CLIENT {
                return Err(too_many_templates(&held.templates, TemplateLimit::Client));
            }
            held.templates.bytes += bytes;
        }
        live.bytes += bytes;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for TemplatePlace<'_> {
    fn drop(&mut self) {
        if !self.kept {
            release_template(self.ctx, self.client, self.bytes);
        }
    }
}

/// Gives back a template's place, node-wide and in its client's share.
fn release_template(ctx: &NodeContext, client: Option<&ClientShare>, bytes: usize) {
    let mut live = ctx.live_templates();
    live.count -= 1;
    live.bytes -= bytes;
    if let Some(c) = client {
        let mut held = c.held();
        held.templates.count -= 1;
        held.templates.bytes -= bytes;
    }
}

/// A block template handed to a miner; solutions go to the chain state it came from.
struct Template {
    ctx: Arc<NodeContext>,
    /// The share of the client it was made for, if any.
    client: Option<Arc<ClientShare>>,
    template: mining::BlockTemplate,
    /// Its bytes in `NodeContext::templates` (and its client's share), given back when it is
    /// dropped.
    bytes: usize,
    /// A solution of it was accepted.
    solved: AtomicBool,
}

impl Drop for Template {
    fn drop(&mut self) {
        release_template(&self.ctx, self.client.as_deref(), self.bytes);
    }
}

impl BlockTemplate for Template {
    fn get_block_header(&self) -> Result<block::Header, InterfaceError> {
        Ok(self.template.header())
    }

    fn get_block(&self) -> Result<Block, InterfaceError> {
        Ok(self.template.block().clone())
    }

    fn get_coinbase_tx(&self) -> Result<Transaction, InterfaceError> {
        Ok(self.template.coinbase_tx().clone())
    }

    fn get_coinbase_merkle_path(&self) -> Result<Vec<TxMerkleNode>, InterfaceError> {
        Ok(self.template.coinbase_merkle_path())
    }

    fn submit_solution(
        &self,
        version: block::Version,
        time: u32,
        nonce: u32,
        coinbase: &Transaction,
    ) -> Result<bool, InterfaceError> {
        let mut chain = self.ctx.lock_chain()?;
        // A template yields one block: another solution of it would be a sibling of equal
        // work, stored for good, a template's worth of bytes for each call. (Checked and set
        // under the chain lock, so that two solutions at once cannot both pass.)
        if self.solved.load(Ordering::Relaxed) {
            tracing::info!("submitted block solution rejected: its template was solved already");
            return Ok(false);
        }
        let result = chain.submit_solution(&self.template, version, time, nonce, coinbase.clone());
        match result {
            Ok(_) => {
                self.solved.store(true, Ordering::Relaxed);
                Ok(true)
            }
            Err(ChainError::Invalid(e)) => {
                tracing::info!(reason = %e.reason(), "submitted block solution rejected");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `Echo` of the node process.
#[derive(Debug)]
struct NodeEcho;

impl Echo for NodeEcho {
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError> {
        Ok(data.to_vec())
    }
}

/// The node process's [`Init`] for one connection: hands out its `Echo`, and its `Chain`,
/// `Node` and `Mining` as that connection's client (see [`ClientShare`]).
#[derive(Debug, Clone)]
pub struct NodeInit {
    client: Arc<ClientView>,
}

impl NodeInit {
    /// The `Init` of one new connection to `ctx`, with a share of its own.
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        Self {
            client: Arc::new(ClientView {
                ctx,
                share: Arc::default(),
            }),
        }
    }
}

impl Init for NodeInit {
    fn make_echo(&self) -> Result<Arc<dyn Echo>, InterfaceError> {
        Ok(Arc::new(NodeEcho))
    }

    fn make_chain(&self) -> Result<Arc<dyn Chain>, InterfaceError> {
        Ok(self.client.clone())
    }

    fn make_node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        Ok(self.client.clone())
    }

    fn make_mining(&self) -> Result<Arc<dyn Mining>, InterfaceError> {
        Ok(self.client.clone())
    }
}

/// The node as one connection sees it: [`NodeContext`] itself, except that what it
/// subscribes and the templates it holds count against its [`ClientShare`] too.
#[derive(Debug)]
struct ClientView {
    ctx: Arc<NodeContext>,
    share: Arc<ClientShare>,
}

impl Chain for ClientView {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Chain::get_height(&*self.ctx)
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Chain::get_block_hash(&*self.ctx, height)
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        self.ctx.have_block_on_disk(height)
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        self.ctx.find_block(hash, what)
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        self.ctx
            .find_ancestor_by_height(hash, ancestor_height, what)
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        self.ctx.find_locator_fork(locator)
    }

    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        self.ctx.find_coins(outpoints)
    }

    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError> {
        self.ctx.is_in_mempool(txid)
    }

    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        self.ctx.broadcast_transaction(tx, max_fee_rate)
    }

    fn estimate_fee_rate(&self, target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        self.ctx.estimate_fee_rate(target)
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        self.ctx.relay_min_fee()
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        self.ctx.is_initial_block_download()
    }

    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.ctx
            .handle_notifications_for(Some(&self.share), notifications)
    }

    /// Waits for this connection's subscribers only: another client's subscriber that
    /// stopped answering must not hold this one up (it holds up only itself, until it is
    /// dropped for falling too far behind).
    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        self.ctx.notifier.sync_only(&self.share.subscribed());
        Ok(())
    }
}

impl Node for ClientView {
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError> {
        self.ctx.get_tip_info()
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Node::get_block_hash(&*self.ctx, height)
    }

    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError> {
        self.ctx.get_block(hash)
    }

    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError> {
        self.ctx.get_mempool_info()
    }

    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError> {
        self.ctx.get_raw_transaction(txid)
    }

    fn send_raw_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Txid, InterfaceError> {
        self.ctx.send_raw_transaction(tx, max_fee_rate)
    }

    fn generate_to_address(
        &self,
        n: u32,
        address: &Address<NetworkUnchecked>,
    ) -> Result<Vec<BlockHash>, InterfaceError> {
        self.ctx.generate_to_address(n, address)
    }

    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        self.ctx.wallet_loader()
    }

    fn shutdown(&self) -> Result<(), InterfaceError> {
        self.ctx.shutdown()
    }

    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.ctx
            .handle_notify_block_tip_for(Some(&self.share), callback)
    }
}

impl Mining for ClientView {
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError> {
        self.ctx.get_tip()
    }

    fn wait_tip_changed(
        &self,
        current: &BlockHash,
        timeout: Duration,
    ) -> Result<Option<BlockRef>, InterfaceError> {
        self.ctx.wait_tip_changed(current, timeout)
    }

    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        self.ctx
            .create_new_block_for(Some(&self.share), coinbase_script)
    }
}
