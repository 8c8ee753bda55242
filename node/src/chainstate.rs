//! The chain state: block index, active chain, UTXO set (in the [`Store`]) and mempool, and
//! the logic that moves them together — accepting blocks, connecting and disconnecting them,
//! and reorganising to the chain with most work (Core's `ChainstateManager`).
//!
//! # Invariants
//!
//! - `active[h]` is the hash of the active block at height `h`; `active.last()` is the tip
//!   recorded in the store, and the stored UTXO set is exactly the outputs of that chain.
//! - Every block in `index` has its data in the store, passed the context-free and contextual
//!   checks, and has a parent in `index` (except genesis).
//! - A block whose status is failed is never connected; its descendants are marked
//!   [`BlockStatus::FailedChild`] and new children are refused with `bad-prevblk`.
//! - Events are published while `&mut self` is held, so they are queued in the order the
//!   changes happened.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::pow::Work;
use bitcoin::{Amount, Block, BlockHash, FeeRate, Network, OutPoint, Transaction, TxOut, Txid};
use interfaces::EncodedBlock;

use crate::mempool::{Mempool, MempoolError, TipContext};
use crate::notify::{Callback, ChainEvent, Notifier, RemovalReason, SubscribeError, Subscription};
use crate::store::{Batch, BlockStatus, Coin, IndexEntry, Store, StoreError};
use crate::validation::{self, BlockError, MEDIAN_TIME_SPAN, TxError};

/// Error of a chain state operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChainError {
    /// The block broke a consensus rule.
    Invalid(BlockError),
    /// The database failed or is inconsistent.
    Store(StoreError),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "invalid block: {e}"),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChainError {}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<BlockError> for ChainError {
    fn from(e: BlockError) -> Self {
        Self::Invalid(e)
    }
}

/// The active tip (`Node` tip info, `Mining::get_tip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TipInfo {
    /// Block hash.
    pub hash: BlockHash,
    /// Height.
    pub height: u32,
    /// Header time.
    pub time: u32,
    /// Median time past.
    pub median_time_past: u32,
    /// Total work of the active chain.
    pub chain_work: Work,
}

/// A tip older than this (seconds) means the node is in initial block download.
const MAX_TIP_AGE: u32 = 24 * 60 * 60;

impl Drop for ChainState {
    fn drop(&mut self) {
        if let Err(e) = self.save_mempool() {
            tracing::error!("cannot save the mempool: {e}");
        }
    }
}

/// Median time of the 11 blocks of `index` ending with `hash` (0 for an unknown hash).
fn median_time_past(index: &HashMap<BlockHash, IndexEntry>, hash: &BlockHash) -> u32 {
    let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
    let mut cursor = index.get(hash);
    while let Some(e) = cursor {
        times.push(e.header.time);
        if times.len() == MEDIAN_TIME_SPAN || e.height == 0 {
            break;
        }
        cursor = index.get(&e.header.prev_blockhash);
    }
    validation::median_time(&mut times)
}

/// Median time past of the active block at `height` (0 above the tip).
fn active_mtp(index: &HashMap<BlockHash, IndexEntry>, active: &[BlockHash], height: u32) -> u32 {
    active
        .get(height as usize)
        .map_or(0, |h| median_time_past(index, h))
}

/// Seconds since the Unix epoch, saturated to `u32`.
pub(crate) fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The node's chain state for regtest.
#[derive(Debug)]
pub struct ChainState {
    store: Store,
    index: HashMap<BlockHash, IndexEntry>,
    /// Arrival order of index entries: among chains of equal work the first seen wins.
    arrival: HashMap<BlockHash, u64>,
    active: Vec<BlockHash>,
    mempool: Mempool,
    notifier: Arc<Notifier>,
    /// Set once the node has left initial block download.
    ibd_done: AtomicBool,
}

impl ChainState {
    /// Opens the chain state in `chain_dir` (`DATADIR/regtest`), creating it with the regtest
    /// genesis block if new, and finishes any reorganisation a crash interrupted.
    pub fn open(chain_dir: &Path) -> Result<Self, ChainError> {
        let store = Store::open(chain_dir)?;
        let notifier = Arc::new(Notifier::new());
        let mut state = Self {
            store,
            index: HashMap::new(),
            arrival: HashMap::new(),
            active: Vec::new(),
            mempool: Mempool::default(),
            notifier,
            ibd_done: AtomicBool::new(false),
        };
        match state.store.tip()? {
            None => state.init_genesis()?,
            Some(tip) => state.load(tip)?,
        }
        state.activate_best_chain(None)?;
        for tx in state.store.load_mempool()? {
            // Whatever no longer fits the chain is dropped, as Core's LoadMempool does.
            let _ = state.accept_to_mempool(tx, None);
        }
        Ok(state)
    }

    fn init_genesis(&mut self) -> Result<(), ChainError> {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chain_work: genesis.header.work(),
            status: BlockStatus::Valid,
        };
        // As in Core, the genesis coinbase output is not added to the UTXO set.
        let mut batch = Batch::default();
        batch.put_block(&genesis);
        batch.put_index(hash, entry);
        batch.set_tip(hash);
        self.store.commit(batch)?;
        self.insert_index(hash, entry);
        self.active.push(hash);
        Ok(())
    }

    fn load(&mut self, tip: BlockHash) -> Result<(), ChainError> {
        self.index = self.store.load_index()?.into_iter().collect();
        // Every block but genesis has its parent in the index, one below it: walks along side
        // branches (`activate_best_chain`) rely on it.
        for entry in self.index.values().filter(|e| e.height > 0) {
            match self.index.get(&entry.header.prev_blockhash) {
                Some(parent) if parent.height + 1 == entry.height => {}
                _ => return Err(StoreError::Corrupt("block index entry without its parent").into()),
            }
        }
        let tip_entry = self
            .index
            .get(&tip)
            .ok_or(StoreError::Corrupt("tip not in block index"))?;
        // A chain cannot be longer than the index; this also bounds the allocation.
        if tip_entry.height as usize >= self.index.len() {
            return Err(StoreError::Corrupt("tip height beyond the block index").into());
        }
        let mut chain = vec![tip; tip_entry.height as usize + 1];
        let mut cursor = Some(tip);
        for (height, slot) in chain.iter_mut().enumerate().rev() {
            let gap = StoreError::Corrupt("active chain has a gap");
            let hash = cursor.ok_or(gap)?;
            *slot = hash;
            let e = self
                .index
                .get(&hash)
                .ok_or(StoreError::Corrupt("active chain has a gap"))?;
            if e.height as usize != height {
                return Err(StoreError::Corrupt("block index heights do not chain").into());
            }
            cursor = (e.height > 0).then_some(e.header.prev_blockhash);
        }
        // The active chain counts as seen first, so a restart never switches between
        // branches of equal work.
        let active: HashSet<&BlockHash> = chain.iter().collect();
        let mut others: Vec<(u32, BlockHash)> = self
            .index
            .iter()
            .filter(|(h, _)| !active.contains(h))
            .map(|(h, e)| (e.height, *h))
            .collect();
        others.sort();
        for (n, hash) in chain
            .iter()
            .copied()
            .chain(others.into_iter().map(|(_, h)| h))
            .enumerate()
        {
            self.arrival.insert(hash, n as u64);
        }
        self.active = chain;
        Ok(())
    }

    fn insert_index(&mut self, hash: BlockHash, entry: IndexEntry) {
        let n = self.arrival.len() as u64;
        self.arrival.entry(hash).or_insert(n);
        self.index.insert(hash, entry);
    }

    /// Saves the mempool so the next start reloads it (Core's `mempool.dat`). Called on
    /// drop; after a crash the previous save (if any) is what comes back.
    pub fn save_mempool(&self) -> Result<(), ChainError> {
        Ok(self.store.save_mempool(&self.mempool.transactions())?)
    }

    /// Subscribes to chain events; they are delivered in order on a thread of the
    /// subscriber's own. Fails past [`notify::MAX_SUBSCRIBERS`](crate::notify::MAX_SUBSCRIBERS)
    /// subscribers, or when the system is out of threads.
    pub fn subscribe(&self, callback: Callback) -> Result<Subscription, SubscribeError> {
        self.notifier.subscribe(callback)
    }

    /// Waits until every event published so far has been delivered
    /// (`Chain::wait_for_notifications`). Do not call from a subscriber callback, nor while
    /// holding a lock a subscriber takes: use [`ChainState::notifier`] to wait outside it.
    pub fn sync_notifications(&self) {
        self.notifier.sync();
    }

    /// The notification queue, for subscribing or waiting without holding the chain state.
    pub fn notifier(&self) -> Arc<Notifier> {
        Arc::clone(&self.notifier)
    }

    /// The database (read access, e.g. for checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        u32::try_from(self.active.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The active tip.
    pub fn tip(&self) -> TipInfo {
        let hash = *self
            .active
            .last()
            .expect("the active chain always holds genesis");
        let e = &self.index[&hash];
        TipInfo {
            hash,
            height: e.height,
            time: e.header.time,
            median_time_past: self.median_time_past(&hash),
            chain_work: e.chain_work,
        }
    }

    /// Hash of the active block at `height`.
    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// The index entry (header, height, work, status) of any known block.
    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|e| self.block_hash(e.height) == Some(*hash))
    }

    /// A stored block (active or not).
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        Ok(self.store.block(hash)?)
    }

    /// A stored block in its consensus encoding, without decoding it (`Chain::find_block`).
    pub fn encoded_block(&self, hash: &BlockHash) -> Result<Option<EncodedBlock>, ChainError> {
        Ok(self.store.encoded_block(hash)?)
    }

    /// The ancestor of `hash` at `height` (`Chain::find_ancestor_by_height`).
    pub fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        if self.is_active(hash) && height <= self.index[hash].height {
            return self.block_hash(height);
        }
        // Back along a side branch until it meets the active chain, then by height (a walk
        // the whole chain long would hold the chain lock for a side block's every ancestor).
        let mut cursor = *hash;
        loop {
            let e = self.index.get(&cursor)?;
            if e.height == height {
                return Some(cursor);
            }
            if e.height < height || e.height == 0 {
                return None;
            }
            if self.is_active(&cursor) {
                return self.block_hash(height);
            }
            cursor = e.header.prev_blockhash;
        }
    }

    /// A block locator of the active chain (Core's `GetLocator`): the tip, then hashes
    /// stepping back 1 block at a time for 10 entries and doubling the step after that,
    /// ending with genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = i64::from(self.height());
        let mut step = 1;
        while height > 0 {
            out.push(self.active[height as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(self.active[0]);
        out
    }

    /// Height of the first locator entry on the active chain (`Chain::find_locator_fork`).
    pub fn find_locator_fork(&self, locator: &[BlockHash]) -> Option<u32> {
        locator
            .iter()
            .find(|h| self.is_active(h))
            .map(|h| self.index[h].height)
    }

    /// A transaction from the mempool or the active chain (`Node::get_raw_transaction`), with
    /// the hash of the block confirming it (`None` while in the mempool).
    pub fn transaction(
        &self,
        txid: &Txid,
    ) -> Result<Option<(Transaction, Option<BlockHash>)>, ChainError> {
        if let Some(entry) = self.mempool.get(txid) {
            return Ok(Some(((*entry.tx).clone(), None)));
        }
        let Some(block_hash) = self.store.tx_block(txid)? else {
            return Ok(None);
        };
        let block = self
            .store
            .block(&block_hash)?
            .ok_or(StoreError::Corrupt("indexed block without data"))?;
        let tx = block
            .txdata
            .into_iter()
            .find(|tx| tx.compute_txid() == *txid)
            .ok_or(StoreError::Corrupt(
                "transaction index points to the wrong block",
            ))?;
        Ok(Some((tx, Some(block_hash))))
    }

    /// Whether the block's data is stored (`Chain::have_block_on_disk`).
    pub fn have_block(&self, hash: &BlockHash) -> bool {
        // Every index entry has its data stored (see the invariants).
        self.index.contains_key(hash)
    }

    /// Whether the node is still catching up: its tip is more than a day old (Core's
    /// `IsInitialBlockDownload` on regtest). Latches to `false` once the tip is recent.
    pub fn is_initial_block_download(&self) -> bool {
        if self.ibd_done.load(Ordering::Relaxed) {
            return false;
        }
        if self.tip().time >= unix_now().saturating_sub(MAX_TIP_AGE) {
            // Relaxed: a one-way latch with no data published through it.
            self.ibd_done.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Unspent outputs of the active chain (`Chain::find_coins`), `None` where spent or unknown.
    pub fn coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, ChainError> {
        outpoints.iter().map(|op| self.coin(op)).collect()
    }

    /// The unspent output at `outpoint` in the UTXO set, if any.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        Ok(self.store.coin(outpoint)?)
    }

    /// Median time of the 11 blocks ending with `hash`.
    pub fn median_time_past(&self, hash: &BlockHash) -> u32 {
        median_time_past(&self.index, hash)
    }

    /// Validates `tx` against the tip and the pool and adds it, without notifying.
    fn accept_to_mempool(
        &mut self,
        tx: Transaction,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Arc<Transaction>, MempoolError> {
        self.accept_checked(tx, max_fee_rate, None)
    }

    /// [`Self::accept_to_mempool`], trusting scripts found valid against `scripts_checked`
    /// (see [`Mempool::accept_checked`]).
    fn accept_checked(
        &mut self,
        tx: Transaction,
        max_fee_rate: Option<FeeRate>,
        scripts_checked: Option<&[TxOut]>,
    ) -> Result<Arc<Transaction>, MempoolError> {
        let tip = self.tip();
        let (index, active) = (&self.index, &self.active);
        let mtp_at = |h| active_mtp(index, active, h);
        let ctx = TipContext {
            next_height: tip.height + 1,
            median_time_past: tip.median_time_past,
            median_time_past_at: &mtp_at,
        };
        self.mempool
            .accept_checked(tx, &self.store, ctx, max_fee_rate, scripts_checked)
    }

    /// What [`Self::broadcast_transaction`] would check `tx`'s scripts against: the outputs
    /// it spends, once every other check has passed (`None` when it is in the mempool
    /// already). A caller checks the scripts without holding the chain state, then hands
    /// them to [`Self::broadcast_checked_transaction`].
    pub fn broadcast_spent_outputs(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Option<Vec<TxOut>>, MempoolError> {
        if self.mempool.contains(&tx.compute_txid()) {
            return Ok(None);
        }
        let tip = self.tip();
        let mtp_at = |h| active_mtp(&self.index, &self.active, h);
        let ctx = TipContext {
            next_height: tip.height + 1,
            median_time_past: tip.median_time_past,
            median_time_past_at: &mtp_at,
        };
        let max = (max_fee_rate != FeeRate::ZERO).then_some(max_fee_rate);
        self.mempool
            .spent_outputs(tx, &self.store, ctx, max)
            .map(Some)
    }

    /// [`Self::broadcast_transaction`] of a transaction whose scripts were found valid
    /// against `spent`: they are not checked again while it spends the same outputs (the
    /// chain may have moved since; then they are).
    pub fn broadcast_checked_transaction(
        &mut self,
        tx: Transaction,
        max_fee_rate: FeeRate,
        spent: &[TxOut],
    ) -> Result<Arc<Transaction>, MempoolError> {
        self.broadcast(tx, max_fee_rate, Some(spent))
    }

    fn broadcast(
        &mut self,
        tx: Transaction,
        max_fee_rate: FeeRate,
        scripts_checked: Option<&[TxOut]>,
    ) -> Result<Arc<Transaction>, MempoolError> {
        if let Some(entry) = self.mempool.get(&tx.compute_txid()) {
            return Ok(Arc::clone(&entry.tx));
        }
        let max = (max_fee_rate != FeeRate::ZERO).then_some(max_fee_rate);
        let tx = self.accept_checked(tx, max, scripts_checked)?;
        self.notifier
            .publish(ChainEvent::TransactionAddedToMempool(Arc::clone(&tx)));
        Ok(tx)
    }

    /// Validates a transaction and adds it to the mempool (`Node::send_raw_transaction`,
    /// `Chain::broadcast_transaction`).
    pub fn process_transaction(
        &mut self,
        tx: Transaction,
    ) -> Result<Arc<Transaction>, MempoolError> {
        let tx = self.accept_to_mempool(tx, None)?;
        self.notifier
            .publish(ChainEvent::TransactionAddedToMempool(Arc::clone(&tx)));
        Ok(tx)
    }

    /// Core's `BroadcastTransaction`: like [`ChainState::process_transaction`], but a
    /// transaction already in the mempool is accepted again, and one paying more than
    /// `max_fee_rate` is refused (`FeeRate::ZERO` disables that check).
    pub fn broadcast_transaction(
        &mut self,
        tx: Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Arc<Transaction>, MempoolError> {
        self.broadcast(tx, max_fee_rate, None)
    }

    /// Validates a block, stores it and, if it leads to the chain with most work, makes that
    /// chain active (Core's `ProcessNewBlock`). Errors if this block is invalid, including
    /// when it fails only while being connected.
    pub fn process_block(&mut self, block: Block) -> Result<(), ChainError> {
        let hash = block.block_hash();
        if let Some(e) = self.index.get(&hash) {
            return Err(if e.status.is_failed() {
                BlockError::DuplicateInvalid
            } else {
                BlockError::Duplicate
            }
            .into());
        }
        validation::check_block(&block)?;
        let parent = *self
            .index
            .get(&block.header.prev_blockhash)
            .ok_or(BlockError::PrevBlockNotFound)?;
        if parent.status.is_failed() {
            return Err(BlockError::BadPrevBlock.into());
        }
        let height = parent.height + 1;
        let mtp = self.median_time_past(&block.header.prev_blockhash);
        validation::contextual_check_header(&block.header, mtp, unix_now())?;
        validation::contextual_check_block(&block, height, mtp)?;

        let entry = IndexEntry {
            header: block.header,
            height,
            chain_work: parent.chain_work + block.header.work(),
            status: BlockStatus::Stored,
        };
        let mut batch = Batch::default();
        batch.put_block(&block);
        batch.put_index(hash, entry);
        self.store.commit(batch)?;
        self.insert_index(hash, entry);
        tracing::debug!(%hash, height, "accepted block");
        self.activate_best_chain(Some(hash))
    }

    /// The valid block with most work, the first seen among equals (Core's
    /// `FindMostWorkChain`), if that is not the active tip.
    fn best_candidate(&self) -> Option<BlockHash> {
        let tip = *self.active.last()?;
        let best = self
            .index
            .iter()
            .filter(|(_, e)| !e.status.is_failed())
            .max_by(|(ha, a), (hb, b)| {
                a.chain_work
                    .cmp(&b.chain_work)
                    .then_with(|| self.arrival[*hb].cmp(&self.arrival[*ha]))
            })
            .map(|(h, _)| *h)?;
        (best != tip).then_some(best)
    }

    /// Moves the active chain to the valid chain with most work (Core's
    /// `ActivateBestChain`). If a block fails to connect it is marked invalid and the
    /// choice is made again, possibly going back to the old chain. Returns the error of
    /// `submitted` if that block turned out invalid.
    fn activate_best_chain(&mut self, submitted: Option<BlockHash>) -> Result<(), ChainError> {
        let old_tip = *self
            .active
            .last()
            .expect("the active chain always holds genesis");
        let mut disconnected: Vec<Arc<Block>> = Vec::new();
        let mut result = Ok(());
        while let Some(best) = self.best_candidate() {
            // Path from the fork point to `best`.
            let mut path = Vec::new();
            let mut cursor = best;
            while !self.is_active(&cursor) {
                path.push(cursor);
                cursor = self.index[&cursor].header.prev_blockhash;
            }
            let fork_height = self.index[&cursor].height;
            while self.height() > fork_height {
                disconnected.push(self.disconnect_tip()?);
            }
            for hash in path.into_iter().rev() {
                match self.connect_block(hash) {
                    Ok(()) => {}
                    Err(ChainError::Invalid(e)) => {
                        tracing::warn!(%hash, reason = %e.reason(), "block failed to connect");
                        self.mark_failed(hash)?;
                        if Some(hash) == submitted {
                            result = Err(ChainError::Invalid(e));
                        }
                        break;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        let tip = self.tip();
        if !disconnected.is_empty() {
            self.readd_after_reorg(&disconnected);
        }
        if tip.hash != old_tip {
            tracing::info!(hash = %tip.hash, height = tip.height, "new tip");
            self.notifier.publish(ChainEvent::UpdatedBlockTip(tip));
            self.notifier
                .publish(ChainEvent::ChainStateFlushed(self.locator().into()));
        }
        result
    }

    /// Marks `hash` failed and every known descendant failed-child, durably.
    fn mark_failed(&mut self, hash: BlockHash) -> Result<(), ChainError> {
        let mut batch = Batch::default();
        let mut updates = vec![(hash, BlockStatus::Failed)];
        let descendants: Vec<BlockHash> = self
            .index
            .iter()
            .filter(|(h, e)| {
                **h != hash
                    && e.height > self.index[&hash].height
                    && self.ancestor(h, self.index[&hash].height) == Some(hash)
            })
            .map(|(h, _)| *h)
            .collect();
        updates.extend(
            descendants
                .into_iter()
                .map(|h| (h, BlockStatus::FailedChild)),
        );
        for (h, status) in updates {
            if let Some(e) = self.index.get_mut(&h) {
                e.status = status;
                batch.put_index(h, *e);
            }
        }
        self.store.commit(batch)?;
        Ok(())
    }

    /// Connects the stored block `hash`, a child of the tip (Core's `ConnectBlock` +
    /// `ConnectTip`), in one store transaction, then updates the mempool and notifies.
    fn connect_block(&mut self, hash: BlockHash) -> Result<(), ChainError> {
        let block = self
            .store
            .block(&hash)?
            .ok_or(StoreError::Corrupt("indexed block without data"))?;
        let mut entry = self.index[&hash];
        let height = entry.height;
        let prev_mtp = self.median_time_past(&entry.header.prev_blockhash);
        let mut batch = Batch::default();
        // Coins created earlier in this block, and store coins spent by it.
        let mut created: HashMap<OutPoint, Coin> = HashMap::new();
        let mut spent_from_store: HashSet<OutPoint> = HashSet::new();
        let mut undo: Vec<Coin> = Vec::new();
        let mut fees = Amount::ZERO;
        let mut sigops = 0usize;
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            batch.index_tx(txid, hash);
            let fail = |error: TxError| ChainError::Invalid(BlockError::Tx { txid, error });
            if tx.is_coinbase() {
                sigops = sigops.saturating_add(validation::sigop_cost(tx, &[]));
            } else {
                let mut coins = Vec::with_capacity(tx.input.len());
                for input in &tx.input {
                    let op = input.previous_output;
                    let coin = match created.remove(&op) {
                        Some(c) => c,
                        None if spent_from_store.contains(&op) => {
                            return Err(fail(TxError::InputsMissingOrSpent(op)));
                        }
                        None => match self.store.coin(&op)? {
                            Some(c) => {
                                spent_from_store.insert(op);
                                batch.spend_coin(op);
                                c
                            }
                            None => return Err(fail(TxError::InputsMissingOrSpent(op))),
                        },
                    };
                    coins.push(coin);
                }
                let heights: Vec<u32> = coins.iter().map(|c| c.height).collect();
                let mtp_at = |h| active_mtp(&self.index, &self.active, h);
                if !validation::sequence_locks_satisfied(tx, &heights, height, prev_mtp, &mtp_at) {
                    return Err(fail(TxError::SequenceLocks));
                }
                let fee = validation::check_tx_inputs(tx, &coins, height).map_err(fail)?;
                fees = fees
                    .checked_add(fee)
                    .ok_or_else(|| fail(TxError::InputValuesOutOfRange))?;
                let spent: Vec<TxOut> = coins.iter().map(|c| c.output.clone()).collect();
                sigops = sigops.saturating_add(validation::sigop_cost(tx, &spent));
                if sigops > validation::MAX_BLOCK_SIGOPS_COST {
                    return Err(BlockError::BadSigops.into());
                }
                // Core's script cache, by its simplest source: a transaction in the mempool
                // with the same witness had its scripts checked against the same outputs
                // (an outpoint names one output for good) when it was accepted. A template
                // block of thousands of inputs is then not checked again, at the square of
                // each transaction's size, under the chain lock.
                let checked = self
                    .mempool
                    .get(&tx.compute_txid())
                    .is_some_and(|e| e.tx.compute_wtxid() == tx.compute_wtxid());
                if !checked {
                    validation::verify_scripts(tx, &spent).map_err(fail)?;
                }
                undo.extend(coins);
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if validation::is_unspendable(&out.script_pubkey) {
                    continue; // never enters the UTXO set
                }
                let op = OutPoint {
                    txid,
                    vout: u32::try_from(vout).unwrap_or(u32::MAX),
                };
                created.insert(
                    op,
                    Coin {
                        output: out.clone(),
                        height,
                        is_coinbase: tx.is_coinbase(),
                    },
                );
            }
        }
        let paid: Amount = block.txdata[0].output.iter().map(|o| o.value).sum();
        let limit = validation::block_subsidy(height) + fees;
        if paid > limit {
            return Err(BlockError::BadCoinbaseAmount { paid, limit }.into());
        }
        for (op, coin) in created {
            batch.add_coin(op, coin);
        }
        batch.put_undo(hash, &undo);
        entry.status = BlockStatus::Valid;
        batch.put_index(hash, entry);
        batch.set_tip(hash);
        self.store.commit(batch)?;
        self.index.insert(hash, entry);
        self.active.push(hash);
        tracing::debug!(%hash, height, txs = block.txdata.len(), "connected block");

        let (confirmed, conflicts) = self.mempool.remove_for_block(&block);
        for tx in conflicts {
            self.notifier
                .publish(ChainEvent::TransactionRemovedFromMempool(
                    tx,
                    RemovalReason::Conflict,
                ));
        }
        for tx in confirmed {
            self.notifier
                .publish(ChainEvent::TransactionRemovedFromMempool(
                    tx,
                    RemovalReason::Block,
                ));
        }
        self.notifier.publish(ChainEvent::BlockConnected {
            block: Arc::new(block),
            height,
        });
        Ok(())
    }

    /// Disconnects the tip using its undo data, in one store transaction, and notifies.
    fn disconnect_tip(&mut self) -> Result<Arc<Block>, ChainError> {
        let hash = *self
            .active
            .last()
            .expect("the active chain always holds genesis");
        let entry = self.index[&hash];
        if entry.height == 0 {
            return Err(StoreError::Corrupt("cannot disconnect genesis").into());
        }
        let block = self
            .store
            .block(&hash)?
            .ok_or(StoreError::Corrupt("active block without data"))?;
        let undo = self
            .store
            .undo(&hash)?
            .ok_or(StoreError::Corrupt("active block without undo data"))?;
        let inputs: usize = block.txdata.iter().skip(1).map(|tx| tx.input.len()).sum();
        if undo.len() != inputs {
            return Err(StoreError::Corrupt("undo data does not match the block").into());
        }
        let mut batch = Batch::default();
        let mut undo = undo.into_iter().rev();
        for tx in block.txdata.iter().rev() {
            let txid = tx.compute_txid();
            batch.unindex_tx(txid);
            for vout in 0..tx.output.len() {
                batch.spend_coin(OutPoint {
                    txid,
                    vout: u32::try_from(vout).unwrap_or(u32::MAX),
                });
            }
            if !tx.is_coinbase() {
                for input in tx.input.iter().rev() {
                    let coin = undo
                        .next()
                        .ok_or(StoreError::Corrupt("undo data does not match the block"))?;
                    batch.add_coin(input.previous_output, coin);
                }
            }
        }
        batch.remove_undo(hash);
        batch.set_tip(entry.header.prev_blockhash);
        self.store.commit(batch)?;
        self.active.pop();
        tracing::debug!(%hash, height = entry.height, "disconnected block");
        let block = Arc::new(block);
        self.notifier.publish(ChainEvent::BlockDisconnected {
            block: Arc::clone(&block),
            height: entry.height,
        });
        Ok(block)
    }

    /// After a reorganisation: offers the transactions of the disconnected blocks (oldest
    /// first) to the mempool, then re-validates what was already there, removing what no
    /// longer fits (Core's `MaybeUpdateMempoolForReorg`).
    fn readd_after_reorg(&mut self, disconnected: &[Arc<Block>]) {
        let previous = self.mempool.drain();
        for block in disconnected.iter().rev() {
            for tx in block.txdata.iter().skip(1) {
                if let Ok(tx) = self.accept_to_mempool(tx.clone(), None) {
                    self.notifier
                        .publish(ChainEvent::TransactionAddedToMempool(tx));
                }
            }
        }
        for tx in previous {
            if self.accept_to_mempool((*tx).clone(), None).is_err() {
                self.notifier
                    .publish(ChainEvent::TransactionRemovedFromMempool(
                        tx,
                        RemovalReason::Reorg,
                    ));
            }
        }
    }
}
