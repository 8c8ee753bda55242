//! The memory pool: unconfirmed transactions valid on top of the active tip.
//!
//! # Invariants
//!
//! - Every entry is valid against the UTXO set of the tip plus the outputs of the entries it
//!   spends; no two entries spend the same outpoint (`spent_by` indexes them; no replacement).
//! - A parent entry always has a smaller `sequence` than its children, so sorting by sequence
//!   is a topological order (used by templates and by reorganisations).
//! - The pool never holds a coinbase.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use bitcoin::{Amount, FeeRate, OutPoint, Transaction, TxOut, Txid, Weight};

use crate::store::{Coin, Store, StoreError};
use crate::validation::{self, TxError};

/// Bytes an entry costs beyond its serialized transaction (indexes, `Arc`, map slots).
const ENTRY_OVERHEAD: u64 = 256;
/// Height given to coins created by mempool transactions (Core's `MEMPOOL_HEIGHT`).
const MEMPOOL_HEIGHT: u32 = 0x7fff_ffff;
/// Largest standard transaction weight (Core's `MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_TX_WEIGHT: Weight = Weight::from_wu(400_000);
/// Largest standard signature-operation cost (Core's `MAX_STANDARD_TX_SIGOPS_COST`).
const MAX_STANDARD_TX_SIGOPS_COST: usize = 16_000;
/// Smallest standard non-witness size (Core's `MIN_STANDARD_TX_NONWITNESS_SIZE`).
const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Largest standard input script (Core's `MAX_STANDARD_SCRIPTSIG_SIZE`).
const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;
/// Largest standard `OP_RETURN` output script (Core's `MAX_OP_RETURN_RELAY`).
const MAX_OP_RETURN_RELAY: usize = 83;
/// Default size limit: 300 M weight units of transactions (Core's `-maxmempool` is 300 MB
/// of memory, which holds far fewer).
pub const DEFAULT_MAX_WEIGHT: Weight = Weight::from_wu(300_000_000);
/// Default minimum relay fee rate: 1 sat/vB (Core's `DEFAULT_MIN_RELAY_TX_FEE`).
pub const DEFAULT_MIN_RELAY_FEE: FeeRate = FeeRate::from_sat_per_vb_u32(1);
/// Most transactions in a chain of unconfirmed ancestors, the new one included (Core's
/// `-limitancestorcount` default). With the descendant limit, this bounds what accepting a
/// transaction and building a template cost, however a peer chains its transactions.
pub const MAX_ANCESTORS: usize = 25;
/// Most virtual bytes of a transaction and its unconfirmed ancestors (Core's
/// `-limitancestorsize` default, 101 kvB).
pub const MAX_ANCESTOR_VSIZE: u64 = 101_000;
/// Most unconfirmed descendants of a pool transaction, itself included (Core's
/// `-limitdescendantcount` default).
pub const MAX_DESCENDANTS: usize = 25;
/// Most virtual bytes of a pool transaction and its unconfirmed descendants (Core's
/// `-limitdescendantsize` default, 101 kvB).
pub const MAX_DESCENDANT_VSIZE: u64 = 101_000;

/// A transaction the mempool refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum MempoolError {
    /// A consensus rule failed.
    Consensus(TxError),
    /// A coinbase cannot enter the mempool.
    Coinbase,
    /// A standardness (relay policy) rule failed; the string is Core's reason.
    NonStandard(&'static str),
    /// Lock time not reached for the next block.
    NonFinal,
    /// A BIP68 relative lock time not reached for the next block.
    NonBip68Final,
    /// The pool is at its size limit.
    Full,
    /// The fee is above the caller's maximum for the transaction's size.
    MaxFeeExceeded {
        /// The fee it pays.
        fee: Amount,
        /// The most the caller allowed.
        max: Amount,
    },
    /// The transaction is already in the mempool.
    AlreadyInMempool,
    /// The transaction's outputs are already in the UTXO set (it is confirmed).
    AlreadyKnown,
    /// It spends an outpoint a mempool transaction already spends.
    Conflict(Txid),
    /// It would make a chain of unconfirmed transactions longer or larger than the limits
    /// ([`MAX_ANCESTORS`] and the others); the string says which, as Core does.
    TooLongChain(String),
    /// Its fee is below the minimum relay fee for its size.
    MinRelayFee {
        /// The fee it pays.
        fee: Amount,
        /// The fee it would need.
        min: Amount,
    },
    /// Reading the UTXO set failed.
    Store(StoreError),
}

impl MempoolError {
    /// Bitcoin Core's reject reason.
    pub fn reason(&self) -> String {
        match self {
            Self::Consensus(e) => e.reason(),
            Self::Coinbase => "coinbase".into(),
            Self::NonStandard(r) => (*r).into(),
            Self::NonFinal => "non-final".into(),
            Self::NonBip68Final => "non-BIP68-final".into(),
            Self::Full => "mempool full".into(),
            Self::MaxFeeExceeded { .. } => "max-fee-exceeded".into(),
            Self::AlreadyInMempool => "txn-already-in-mempool".into(),
            Self::AlreadyKnown => "txn-already-known".into(),
            Self::Conflict(_) => "txn-mempool-conflict".into(),
            Self::TooLongChain(_) => "too-long-mempool-chain".into(),
            Self::MinRelayFee { .. } => "min relay fee not met".into(),
            Self::Store(_) => "store-error".into(),
        }
    }
}

impl fmt::Display for MempoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Consensus(e) => e.fmt(f),
            Self::Conflict(txid) => write!(f, "txn-mempool-conflict: conflicts with {txid}"),
            Self::TooLongChain(why) => write!(f, "too-long-mempool-chain, {why}"),
            Self::MinRelayFee { fee, min } => write!(
                f,
                "min relay fee not met, {} < {}",
                fee.to_sat(),
                min.to_sat()
            ),
            Self::Store(e) => write!(f, "cannot read the UTXO set: {e}"),
            Self::MaxFeeExceeded { fee, max } => {
                write!(
                    f,
                    "max-fee-exceeded: fee {} > maximum {}",
                    fee.to_sat(),
                    max.to_sat()
                )
            }
            other => f.write_str(&other.reason()),
        }
    }
}

impl std::error::Error for MempoolError {}

impl From<TxError> for MempoolError {
    fn from(e: TxError) -> Self {
        Self::Consensus(e)
    }
}

impl From<StoreError> for MempoolError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// One mempool transaction.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Fee it pays.
    pub fee: Amount,
    /// Weight.
    pub weight: Weight,
    /// Arrival order; parents always come before their children.
    sequence: u64,
}

impl Entry {
    /// Virtual size in vbytes.
    pub fn vsize(&self) -> u64 {
        self.weight.to_vbytes_ceil()
    }
}

/// Summary of the mempool (`Node` mempool info).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: usize,
    /// Sum of their virtual sizes.
    pub bytes: u64,
    /// Estimated memory use in bytes: serialized sizes plus a fixed per-entry overhead.
    pub usage: u64,
    /// Sum of their fees.
    pub total_fee: Amount,
    /// Minimum relay fee rate.
    pub min_relay_fee: FeeRate,
}

/// Where the chain is for mempool checks: the next block's height, the tip's median time
/// past (BIP113 finality) and the median time past at any height (BIP68).
#[derive(Clone, Copy)]
pub struct TipContext<'a> {
    /// Height of the next block.
    pub next_height: u32,
    /// Median time past of the tip.
    pub median_time_past: u32,
    /// Median time past of the active block at a height.
    pub median_time_past_at: &'a dyn Fn(u32) -> u32,
}

impl fmt::Debug for TipContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TipContext")
            .field("next_height", &self.next_height)
            .field("median_time_past", &self.median_time_past)
            .finish_non_exhaustive()
    }
}

/// The memory pool.
#[derive(Debug)]
pub struct Mempool {
    entries: HashMap<Txid, Entry>,
    spent_by: HashMap<OutPoint, Txid>,
    next_sequence: u64,
    min_relay_fee: FeeRate,
    /// Sum of the entries' weights, kept at most `max_weight`.
    weight: Weight,
    max_weight: Weight,
}

impl Default for Mempool {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_RELAY_FEE, DEFAULT_MAX_WEIGHT)
    }
}

impl Mempool {
    /// An empty pool with the given minimum relay fee rate, holding at most `max_weight`
    /// of transactions (further ones are refused with `mempool full`; there is no eviction).
    pub fn new(min_relay_fee: FeeRate, max_weight: Weight) -> Self {
        Self {
            entries: HashMap::new(),
            spent_by: HashMap::new(),
            next_sequence: 0,
            min_relay_fee,
            weight: Weight::ZERO,
            max_weight,
        }
    }

    /// Minimum relay fee rate.
    pub fn min_relay_fee(&self) -> FeeRate {
        self.min_relay_fee
    }

    /// Whether `txid` is in the pool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// A pool entry.
    pub fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid)
    }

    /// Size and fee totals.
    pub fn info(&self) -> MempoolInfo {
        MempoolInfo {
            size: self.entries.len(),
            bytes: self.entries.values().map(Entry::vsize).sum(),
            usage: self
                .entries
                .values()
                .map(|e| e.tx.total_size() as u64 + ENTRY_OVERHEAD)
                .sum(),
            total_fee: self.entries.values().map(|e| e.fee).sum(),
            min_relay_fee: self.min_relay_fee,
        }
    }

    /// An output created by a pool transaction.
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.entries
            .get(&outpoint.txid)?
            .tx
            .output
            .get(usize::try_from(outpoint.vout).ok()?)
    }

    /// Validates `tx` against the UTXO set in `store` plus the pool (Core's
    /// `AcceptToMemoryPool`) and adds it.
    /// With `max_fee_rate`, a transaction paying a higher fee rate is refused
    /// (`max-fee-exceeded`, the wallet's guard against absurd fees).
    pub fn accept(
        &mut self,
        tx: Transaction,
        store: &Store,
        tip: TipContext,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Arc<Transaction>, MempoolError> {
        self.accept_checked(tx, store, tip, max_fee_rate, None)
    }

    /// As [`Mempool::accept`], but scripts already found valid against `scripts_checked`
    /// (the outputs `tx` spends, from [`Mempool::spent_outputs`]) are not checked again
    /// while `tx` spends the same outputs: a caller checks them without holding what
    /// guards the pool, since their cost grows with the square of the transaction's size.
    pub fn accept_checked(
        &mut self,
        tx: Transaction,
        store: &Store,
        tip: TipContext,
        max_fee_rate: Option<FeeRate>,
        scripts_checked: Option<&[TxOut]>,
    ) -> Result<Arc<Transaction>, MempoolError> {
        let Checked {
            txid,
            fee,
            weight,
            spent,
        } = self.check(&tx, store, tip, max_fee_rate)?;
        if scripts_checked != Some(spent.as_slice()) {
            validation::verify_scripts(&tx, &spent)?;
        }

        let tx = Arc::new(tx);
        for input in &tx.input {
            self.spent_by.insert(input.previous_output, txid);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.weight += weight;
        self.entries.insert(
            txid,
            Entry {
                tx: Arc::clone(&tx),
                fee,
                weight,
                sequence,
            },
        );
        Ok(tx)
    }

    /// The outputs `tx` spends, once every check of [`Mempool::accept`] but its scripts
    /// has passed: what to check its scripts against.
    pub fn spent_outputs(
        &self,
        tx: &Transaction,
        store: &Store,
        tip: TipContext,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Vec<TxOut>, MempoolError> {
        Ok(self.check(tx, store, tip, max_fee_rate)?.spent)
    }

    /// Every check of [`Mempool::accept`] but the scripts.
    fn check(
        &self,
        tx: &Transaction,
        store: &Store,
        tip: TipContext,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Checked, MempoolError> {
        validation::check_transaction(tx)?;
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        check_standard(tx)?;
        if !validation::is_final_tx(tx, tip.next_height, tip.median_time_past) {
            return Err(MempoolError::NonFinal);
        }
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyInMempool);
        }
        if let Some(other) = tx
            .input
            .iter()
            .find_map(|i| self.spent_by.get(&i.previous_output))
        {
            return Err(MempoolError::Conflict(*other));
        }
        let mut coins = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let op = input.previous_output;
            let coin = match self.output(&op) {
                Some(out) => Some(Coin {
                    output: out.clone(),
                    height: MEMPOOL_HEIGHT,
                    is_coinbase: false,
                }),
                None => store.coin(&op)?,
            };
            match coin {
                Some(c) => coins.push(c),
                None => {
                    // Core: a transaction whose own outputs are unspent is already confirmed.
                    for vout in 0..u32::try_from(tx.output.len()).unwrap_or(u32::MAX) {
                        if store.coin(&OutPoint { txid, vout })?.is_some() {
                            return Err(MempoolError::AlreadyKnown);
                        }
                    }
                    return Err(TxError::InputsMissingOrSpent(op).into());
                }
            }
        }
        // Coins of pool parents count as confirmed in the next block (Core does the same).
        let heights: Vec<u32> = coins
            .iter()
            .map(|c| {
                if c.height == MEMPOOL_HEIGHT {
                    tip.next_height
                } else {
                    c.height
                }
            })
            .collect();
        if !validation::sequence_locks_satisfied(
            tx,
            &heights,
            tip.next_height,
            tip.median_time_past,
            tip.median_time_past_at,
        ) {
            return Err(MempoolError::NonBip68Final);
        }
        let fee = validation::check_tx_inputs(tx, &coins, tip.next_height)?;
        let weight = tx.weight();
        let min = self
            .min_relay_fee
            .fee_vb(weight.to_vbytes_ceil())
            .unwrap_or(Amount::MAX_MONEY);
        if fee < min {
            return Err(MempoolError::MinRelayFee { fee, min });
        }
        if let Some(max_rate) = max_fee_rate {
            let max = max_rate
                .fee_vb(weight.to_vbytes_ceil())
                .unwrap_or(Amount::MAX_MONEY);
            if fee > max {
                return Err(MempoolError::MaxFeeExceeded { fee, max });
            }
        }
        if self.weight + weight > self.max_weight {
            return Err(MempoolError::Full);
        }
        self.check_chain_limits(tx, weight.to_vbytes_ceil())?;
        let spent: Vec<TxOut> = coins.into_iter().map(|c| c.output).collect();
        if validation::sigop_cost(tx, &spent) > MAX_STANDARD_TX_SIGOPS_COST {
            return Err(MempoolError::NonStandard("bad-txns-too-many-sigops"));
        }
        Ok(Checked {
            txid,
            fee,
            weight,
            spent,
        })
    }

    /// Core's chain limits for a new transaction `tx` of `vsize` vbytes: its unconfirmed
    /// ancestors, and the unconfirmed descendants of each of them, stay within
    /// [`MAX_ANCESTORS`], [`MAX_ANCESTOR_VSIZE`], [`MAX_DESCENDANTS`] and
    /// [`MAX_DESCENDANT_VSIZE`]. Every walk stops at a limit, so the check costs a bounded
    /// amount of work whatever the pool holds.
    fn check_chain_limits(&self, tx: &Transaction, vsize: u64) -> Result<(), MempoolError> {
        let in_pool = |t: &Transaction| -> Vec<Txid> {
            t.input
                .iter()
                .map(|i| i.previous_output.txid)
                .filter(|p| self.entries.contains_key(p))
                .collect()
        };
        let mut ancestors: HashSet<Txid> = HashSet::new();
        let mut ancestors_vsize = vsize;
        let mut stack = in_pool(tx);
        while let Some(id) = stack.pop() {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if !ancestors.insert(id) {
                continue;
            }
            if ancestors.len() + 1 > MAX_ANCESTORS {
                return Err(MempoolError::TooLongChain(format!(
                    "too many unconfirmed ancestors [limit: {MAX_ANCESTORS}]"
                )));
            }
            ancestors_vsize += entry.vsize();
            if ancestors_vsize > MAX_ANCESTOR_VSIZE {
                return Err(MempoolError::TooLongChain(format!(
                    "exceeds ancestor size limit [limit: {MAX_ANCESTOR_VSIZE}]"
                )));
            }
            stack.extend(in_pool(&entry.tx));
        }
        for id in &ancestors {
            // The ancestor, its descendants, and the new transaction.
            let (count, size) = self.descendants_of(id, MAX_DESCENDANTS);
            if count + 1 > MAX_DESCENDANTS {
                return Err(MempoolError::TooLongChain(format!(
                    "too many descendants for tx {id} [limit: {MAX_DESCENDANTS}]"
                )));
            }
            if size + vsize > MAX_DESCENDANT_VSIZE {
                return Err(MempoolError::TooLongChain(format!(
                    "exceeds descendant size limit for tx {id} [limit: {MAX_DESCENDANT_VSIZE}]"
                )));
            }
        }
        Ok(())
    }

    /// The number and total vsize of `txid` and its pool descendants, counting no further
    /// than `limit` transactions (past it, the count is `limit + 1`).
    fn descendants_of(&self, txid: &Txid, limit: usize) -> (usize, u64) {
        let family = self.with_descendants(&[*txid], limit);
        let size = family
            .iter()
            .filter_map(|id| self.entries.get(id))
            .map(Entry::vsize)
            .sum();
        (family.len(), size)
    }

    /// Removes `txid` and every pool transaction descending from it; returns them, parents
    /// first.
    pub fn remove_recursive(&mut self, txid: &Txid) -> Vec<Arc<Transaction>> {
        let doomed = self.with_descendants(&[*txid], usize::MAX);
        let mut removed: Vec<Entry> = doomed.iter().filter_map(|id| self.remove_one(id)).collect();
        removed.sort_by_key(|e| e.sequence);
        removed.into_iter().map(|e| e.tx).collect()
    }

    fn remove_one(&mut self, txid: &Txid) -> Option<Entry> {
        let entry = self.entries.remove(txid)?;
        self.weight -= entry.weight;
        for input in &entry.tx.input {
            if self.spent_by.get(&input.previous_output) == Some(txid) {
                self.spent_by.remove(&input.previous_output);
            }
        }
        Some(entry)
    }

    /// Removes what a newly connected block confirms or conflicts with (Core's
    /// `removeForBlock`). Returns the confirmed transactions and then the conflicting ones
    /// (with their descendants).
    pub fn remove_for_block(
        &mut self,
        block: &bitcoin::Block,
    ) -> (Vec<Arc<Transaction>>, Vec<Arc<Transaction>>) {
        let mut confirmed = Vec::new();
        let mut conflicts = Vec::new();
        for tx in block.txdata.iter().skip(1) {
            if let Some(entry) = self.remove_one(&tx.compute_txid()) {
                confirmed.push(entry.tx);
            }
        }
        for tx in block.txdata.iter().skip(1) {
            for input in &tx.input {
                if let Some(other) = self.spent_by.get(&input.previous_output).copied() {
                    conflicts.extend(self.remove_recursive(&other));
                }
            }
        }
        (confirmed, conflicts)
    }

    /// The pool's transactions in topological (arrival) order.
    pub fn transactions(&self) -> Vec<Arc<Transaction>> {
        let mut all: Vec<&Entry> = self.entries.values().collect();
        all.sort_by_key(|e| e.sequence);
        all.into_iter().map(|e| Arc::clone(&e.tx)).collect()
    }

    /// Empties the pool, returning its transactions in topological (arrival) order.
    pub fn drain(&mut self) -> Vec<Arc<Transaction>> {
        let mut all: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
        self.spent_by.clear();
        self.weight = Weight::ZERO;
        all.sort_by_key(|e| e.sequence);
        all.into_iter().map(|e| e.tx).collect()
    }

    /// Chooses transactions for a block of at most `max_weight`: greedily by ancestor-package
    /// fee rate (so a child can pay for its parent), as Core's `BlockAssembler`. Returns them
    /// in block order — packages in the order chosen, each parent before its children — and
    /// their total fee.
    ///
    /// Candidates sit in a max-heap keyed by the fee rate of their not-yet-chosen ancestor
    /// package. Choosing a package changes the packages of its descendants only, so just
    /// those are re-keyed (older heap entries are recognised as stale by a version number).
    pub fn select(&self, max_weight: Weight) -> (Vec<Arc<Transaction>>, Amount) {
        let mut included: HashSet<Txid> = HashSet::new();
        let mut skipped: HashSet<Txid> = HashSet::new();
        let mut versions: HashMap<Txid, u64> = HashMap::new();
        let mut heap = BinaryHeap::new();
        for (txid, entry) in &self.entries {
            heap.push(self.candidate(*txid, entry, &included, 0));
        }
        let mut chosen: Vec<&Entry> = Vec::new();
        let mut weight = Weight::ZERO;
        let mut fees = Amount::ZERO;
        while let Some(c) = heap.pop() {
            if included.contains(&c.txid)
                || skipped.contains(&c.txid)
                || versions.get(&c.txid).copied().unwrap_or(0) != c.version
            {
                continue;
            }
            let Some(entry) = self.entries.get(&c.txid) else {
                continue;
            };
            let package = self.ancestors(entry, &included);
            if package
                .iter()
                .any(|e| skipped.contains(&e.tx.compute_txid()))
                || weight + c.weight > max_weight
            {
                skipped.insert(c.txid); // its ancestors may still fit on their own
                continue;
            }
            weight += c.weight;
            fees += c.fee;
            let members: Vec<Txid> = package.iter().map(|e| e.tx.compute_txid()).collect();
            included.extend(members.iter().copied());
            chosen.extend(package);
            // (The members themselves are among them, and skipped as included.)
            for descendant in self.with_descendants(&members, usize::MAX) {
                if included.contains(&descendant) {
                    continue;
                }
                let v = versions.entry(descendant).or_insert(0);
                *v += 1;
                if let Some(e) = self.entries.get(&descendant) {
                    heap.push(self.candidate(descendant, e, &included, *v));
                }
            }
        }
        (
            chosen.into_iter().map(|e| Arc::clone(&e.tx)).collect(),
            fees,
        )
    }

    /// The heap entry of `entry` given what is already `included`.
    fn candidate(
        &self,
        txid: Txid,
        entry: &Entry,
        included: &HashSet<Txid>,
        version: u64,
    ) -> Candidate {
        let package = self.ancestors(entry, included);
        let (fee, weight) = package
            .iter()
            .fold((Amount::ZERO, Weight::ZERO), |(f, w), e| {
                (f + e.fee, w + e.weight)
            });
        Candidate {
            fee,
            weight,
            sequence: entry.sequence,
            txid,
            version,
        }
    }

    /// The pool transactions spending an output of `entry`, the pool's `txid`.
    fn children<'a>(&'a self, txid: Txid, entry: &'a Entry) -> impl Iterator<Item = Txid> + 'a {
        (0..entry.tx.output.len()).filter_map(move |vout| {
            let vout = u32::try_from(vout).ok()?;
            self.spent_by.get(&OutPoint { txid, vout }).copied()
        })
    }

    /// The pool transactions among `roots` and every pool transaction descending from
    /// them, found no further than `limit` transactions: past it, the walk stops with
    /// `limit + 1` found.
    fn with_descendants(&self, roots: &[Txid], limit: usize) -> HashSet<Txid> {
        let mut found = HashSet::new();
        let mut stack = roots.to_vec();
        while let Some(id) = stack.pop() {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if !found.insert(id) {
                continue;
            }
            if found.len() > limit {
                break;
            }
            stack.extend(self.children(id, entry));
        }
        found
    }

    /// `entry` and its pool ancestors that are not in `exclude`, in arrival order.
    fn ancestors<'a>(&'a self, entry: &'a Entry, exclude: &HashSet<Txid>) -> Vec<&'a Entry> {
        let mut found: BTreeMap<u64, &Entry> = BTreeMap::new();
        let mut stack = vec![entry];
        while let Some(e) = stack.pop() {
            if found.insert(e.sequence, e).is_some() {
                continue;
            }
            for input in &e.tx.input {
                let parent = input.previous_output.txid;
                if exclude.contains(&parent) {
                    continue;
                }
                if let Some(p) = self.entries.get(&parent) {
                    stack.push(p);
                }
            }
        }
        found.into_values().collect()
    }
}

/// A transaction that passed every mempool check but its scripts.
struct Checked {
    txid: Txid,
    fee: Amount,
    weight: Weight,
    /// The outputs it spends, in input order.
    spent: Vec<TxOut>,
}

/// A template candidate: a transaction with the totals of its not-yet-chosen ancestor
/// package. Ordered by package fee rate, then earlier arrival.
#[derive(Debug)]
struct Candidate {
    fee: Amount,
    weight: Weight,
    sequence: u64,
    txid: Txid,
    /// Matches `versions[txid]` while this entry is current.
    version: u64,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // fee / weight compared without division; the weight of a transaction is never 0.
        let a = u128::from(self.fee.to_sat()) * u128::from(other.weight.to_wu());
        let b = u128::from(other.fee.to_sat()) * u128::from(self.weight.to_wu());
        a.cmp(&b).then_with(|| other.sequence.cmp(&self.sequence))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Core's `IsStandardTx` (the parts that apply to our policy).
fn check_standard(tx: &Transaction) -> Result<(), MempoolError> {
    let nonstandard = MempoolError::NonStandard;
    if !(1..=3).contains(&tx.version.0) {
        return Err(nonstandard("version"));
    }
    if tx.weight() > MAX_STANDARD_TX_WEIGHT {
        return Err(nonstandard("tx-size"));
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(nonstandard("scriptsig-size"));
        }
        if !input.script_sig.is_push_only() {
            return Err(nonstandard("scriptsig-not-pushonly"));
        }
    }
    let mut op_returns = 0;
    for out in &tx.output {
        let s = &out.script_pubkey;
        if s.is_op_return() {
            if s.len() > MAX_OP_RETURN_RELAY {
                return Err(nonstandard("scriptpubkey"));
            }
            op_returns += 1;
            continue;
        }
        let standard =
            s.is_p2pkh() || s.is_p2sh() || s.is_witness_program() || s.is_p2pk() || s.is_multisig();
        if !standard {
            return Err(nonstandard("scriptpubkey"));
        }
        if out.value < s.minimal_non_dust() {
            return Err(nonstandard("dust"));
        }
    }
    if op_returns > 1 {
        return Err(nonstandard("multi-op-return"));
    }
    if tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE {
        return Err(nonstandard("tx-size-small"));
    }
    Ok(())
}
