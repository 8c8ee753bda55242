//! A small, deterministic, in-memory node: the test implementation of `Chain`, `Node`,
//! `Mining`, `BlockTemplate`, `Echo` and `Init`. It builds and connects real regtest
//! blocks (proof of work, merkle roots) and verifies transaction signatures with Bitcoin
//! Core's interpreter (`bitcoinconsensus`), so the values crossing the connection are
//! real ones. Notifications are delivered synchronously on the thread that caused them,
//! never with the state locked, so a subscriber may call back in.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bitcoin::address::NetworkUnchecked;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::{Hash, HashEngine};
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::Builder;
use bitcoin::{
    Address, Amount, Block, BlockHash, FeeRate, Network, OutPoint, Script, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Txid, Witness, Work, absolute, block, transaction,
};
use interfaces::{
    BlockRef, BlockTemplate, BlockWhat, Chain, ChainNotifications, Coin, Echo, EncodedBlock,
    ErrorCode, FoundBlock, FoundTransaction, Handler, Init, InterfaceError, MempoolInfo, Mining,
    Node, NotifyBlockTipFn, RemovalReason, TipInfo, WalletLoader,
};

use super::wallet::TestWalletLoader;

/// The block subsidy of every block in the test world.
pub(crate) const SUBSIDY: Amount = Amount::from_sat(50 * 100_000_000);
/// `-minrelaytxfee` of the test world: 1 sat/vB.
pub(crate) const RELAY_MIN_FEE: FeeRate = FeeRate::from_sat_per_kwu(250);

/// An event to deliver to subscribers once the state lock is released.
enum Event {
    Added(Transaction),
    Removed(Transaction, RemovalReason),
    Connected(Arc<Block>, u32),
    Disconnected(Arc<Block>, u32),
    Tip(TipInfo),
    Flushed(Vec<BlockHash>),
}

struct State {
    /// The active chain; index = height.
    active: Vec<Arc<Block>>,
    /// Every block ever connected, by hash, with its height.
    known: HashMap<BlockHash, (Arc<Block>, u32)>,
    utxos: HashMap<OutPoint, Coin>,
    /// Coins each active block spent, to undo it.
    undo: HashMap<BlockHash, Vec<(OutPoint, Coin)>>,
    /// Mempool transactions in arrival order, with their fees.
    mempool: Vec<(Transaction, Amount)>,
    chain_subscribers: Vec<(u64, Arc<dyn ChainNotifications>)>,
    tip_subscribers: Vec<(u64, NotifyBlockTipFn)>,
    next_subscription: u64,
    shutting_down: bool,
    wallet_loader: Option<Arc<dyn WalletLoader>>,
    /// Found blocks carry the genesis block whatever is asked for.
    wrong_blocks: bool,
}

/// The test node.
pub(crate) struct World {
    state: Mutex<State>,
    tip_changed: Condvar,
    me: Weak<World>,
}

impl World {
    /// A world whose chain is genesis plus `blocks` blocks paying to `coinbase_script`.
    pub(crate) fn new(blocks: u32, coinbase_script: &Script) -> Arc<World> {
        let genesis = Arc::new(genesis_block(Network::Regtest));
        let mut state = State {
            active: Vec::new(),
            known: HashMap::new(),
            utxos: HashMap::new(),
            undo: HashMap::new(),
            mempool: Vec::new(),
            chain_subscribers: Vec::new(),
            tip_subscribers: Vec::new(),
            next_subscription: 0,
            shutting_down: false,
            wallet_loader: None,
            wrong_blocks: false,
        };
        state.apply(genesis, &mut Vec::new());
        let world = Arc::new_cyclic(|me| World {
            state: Mutex::new(state),
            tip_changed: Condvar::new(),
            me: me.clone(),
        });
        for _ in 0..blocks {
            world.mine(coinbase_script);
        }
        world
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many subscriptions (chain notifications and tip callbacks) are registered.
    pub(crate) fn subscribers(&self) -> usize {
        let state = self.lock();
        state.chain_subscribers.len() + state.tip_subscribers.len()
    }

    /// Mines one block on the tip with the whole mempool, paying to `script`.
    pub(crate) fn mine(&self, script: &Script) -> BlockHash {
        let mut block = self.lock().template(script);
        solve(&mut block.header);
        let hash = block.block_hash();
        self.connect(block)
            .expect("a block built on the tip connects");
        hash
    }

    /// Connects `block` on the tip and notifies; an error names the reject reason.
    fn connect(&self, block: Block) -> Result<(), &'static str> {
        let mut events = Vec::new();
        {
            let mut state = self.lock();
            if block.header.prev_blockhash != state.tip_hash() {
                return Err("prev-blk-not-tip");
            }
            if block.header.validate_pow(block.header.target()).is_err() {
                return Err("high-hash");
            }
            if !block.check_merkle_root() {
                return Err("bad-txnmrklroot");
            }
            if block.txdata.first().is_none_or(|cb| !cb.is_coinbase()) {
                return Err("bad-cb-missing");
            }
            for tx in &block.txdata[1..] {
                state.check_inputs(tx, false)?;
            }
            state.apply(Arc::new(block), &mut events);
        }
        self.tip_changed.notify_all();
        self.deliver(events);
        Ok(())
    }

    /// Disconnects the tip block (a reorganisation by hand): its transactions go back to
    /// the mempool, and subscribers hear of it.
    pub(crate) fn disconnect_tip(&self) {
        let mut events = Vec::new();
        self.lock().unapply(&mut events);
        self.tip_changed.notify_all();
        self.deliver(events);
    }

    /// Delivers events to the subscribers registered now, in order.
    fn deliver(&self, events: Vec<Event>) {
        let (chain_subscribers, tip_subscribers) = {
            let state = self.lock();
            (
                state.chain_subscribers.clone(),
                state.tip_subscribers.clone(),
            )
        };
        for event in events {
            for (_, n) in &chain_subscribers {
                let result = match &event {
                    Event::Added(tx) => n.transaction_added_to_mempool(tx),
                    Event::Removed(tx, reason) => n.transaction_removed_from_mempool(tx, *reason),
                    Event::Connected(block, height) => n.block_connected(block, *height),
                    Event::Disconnected(block, height) => n.block_disconnected(block, *height),
                    Event::Tip(_) => n.updated_block_tip(),
                    Event::Flushed(locator) => n.chain_state_flushed(locator),
                };
                if let Err(e) = result {
                    eprintln!("notification failed: {e}");
                }
            }
            if let Event::Tip(tip) = &event {
                for (_, callback) in &tip_subscribers {
                    callback(tip);
                }
            }
        }
    }

    /// Validates `tx` and adds it to the mempool.
    fn accept(&self, tx: &Transaction, max_fee_rate: FeeRate) -> Result<(), InterfaceError> {
        let event = {
            let mut state = self.lock();
            let txid = tx.compute_txid();
            if state.mempool.iter().any(|(m, _)| m.compute_txid() == txid) {
                return Ok(());
            }
            if state
                .active
                .iter()
                .any(|b| b.txdata.iter().any(|t| t.compute_txid() == txid))
            {
                return Err(InterfaceError::remote(
                    ErrorCode::VERIFY_ALREADY_IN_CHAIN,
                    "Transaction already in block chain",
                ));
            }
            let fee = state.check_inputs(tx, true).map_err(rejected)?;
            let rate = FeeRate::from_sat_per_kwu(
                fee.to_sat().saturating_mul(1000) / tx.weight().to_wu().max(1),
            );
            if rate < RELAY_MIN_FEE {
                return Err(rejected("min relay fee not met"));
            }
            if max_fee_rate != FeeRate::ZERO && rate > max_fee_rate {
                return Err(InterfaceError::remote(
                    ErrorCode::VERIFY_REJECTED,
                    "max-fee-exceeded",
                ));
            }
            state.mempool.push((tx.clone(), fee));
            Event::Added(tx.clone())
        };
        self.deliver(vec![event]);
        Ok(())
    }

    fn subscribe_chain(&self, n: Arc<dyn ChainNotifications>) -> Box<dyn Handler> {
        let mut state = self.lock();
        let id = state.next_subscription;
        state.next_subscription += 1;
        state.chain_subscribers.push((id, n));
        Box::new(Subscription {
            world: self.me.clone(),
            id,
        })
    }

    fn subscribe_tip(&self, callback: NotifyBlockTipFn) -> Box<dyn Handler> {
        let mut state = self.lock();
        let id = state.next_subscription;
        state.next_subscription += 1;
        state.tip_subscribers.push((id, callback));
        Box::new(Subscription {
            world: self.me.clone(),
            id,
        })
    }

    fn unsubscribe(&self, id: u64) {
        let removed = {
            let mut state = self.lock();
            let chain = take_where(&mut state.chain_subscribers, id);
            let tip = take_where(&mut state.tip_subscribers, id);
            (chain, tip)
        };
        // Dropped here, without the lock: dropping a proxy releases a remote object.
        drop(removed);
    }

    /// From now on, a found block carries another block (the genesis block), as a store
    /// that went wrong would.
    pub(crate) fn serve_wrong_blocks(&self) {
        self.lock().wrong_blocks = true;
    }

    fn found_block(state: &State, hash: &BlockHash, what: BlockWhat) -> Option<FoundBlock> {
        let (block, height) = state.known.get(hash)?;
        Some(FoundBlock {
            header: block.header,
            height: *height,
            median_time_past: state.median_time_past(hash),
            in_active_chain: state
                .active
                .get(*height as usize)
                .is_some_and(|b| b.block_hash() == *hash),
            block: (what == BlockWhat::Full).then(|| match state.wrong_blocks {
                true => EncodedBlock::from(&*state.active[0]),
                false => EncodedBlock::from(&**block),
            }),
        })
    }
}

/// Removes and returns the subscribers with this id.
fn take_where<T>(subscribers: &mut Vec<(u64, T)>, id: u64) -> Vec<(u64, T)> {
    let (taken, kept) = std::mem::take(subscribers)
        .into_iter()
        .partition(|(i, _)| *i == id);
    *subscribers = kept;
    taken
}

/// The error of a transaction that fails validation, with Core's reject reason.
fn rejected(reason: &str) -> InterfaceError {
    InterfaceError::remote(ErrorCode::VERIFY_REJECTED, reason)
}

/// Finds a nonce that satisfies the header's (regtest) target.
pub(crate) fn solve(header: &mut block::Header) {
    while header.validate_pow(header.target()).is_err() {
        header.nonce += 1;
    }
}

/// The coinbase of a block at `height` paying `value` to `script`.
fn coinbase(height: u32, value: Amount, script: &Script) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new()
                .push_int(height.into())
                .push_opcode(OP_RETURN)
                .into_script(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: script.to_owned(),
        }],
    }
}

/// The merkle branch of the first transaction of `txids`: sibling hashes, bottom up.
pub(crate) fn coinbase_merkle_path(txids: &[Txid]) -> Vec<TxMerkleNode> {
    let mut level: Vec<TxMerkleNode> = txids
        .iter()
        .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash()))
        .collect();
    let mut path = Vec::new();
    while level.len() > 1 {
        path.push(level[1]);
        level = level
            .chunks(2)
            .map(|pair| merkle_parent(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    path
}

/// The merkle node above `left` and `right`.
pub(crate) fn merkle_parent(left: &TxMerkleNode, right: &TxMerkleNode) -> TxMerkleNode {
    let mut engine = TxMerkleNode::engine();
    engine.input(left.as_byte_array());
    engine.input(right.as_byte_array());
    TxMerkleNode::from_engine(engine)
}

impl State {
    fn tip_height(&self) -> u32 {
        (self.active.len() - 1) as u32
    }

    fn tip_hash(&self) -> BlockHash {
        self.active[self.active.len() - 1].block_hash()
    }

    fn median_time_past(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::new();
        let mut cursor = self.known.get(hash);
        while let Some((block, _)) = cursor {
            if times.len() == 11 {
                break;
            }
            times.push(block.header.time);
            cursor = self.known.get(&block.header.prev_blockhash);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    fn tip_info(&self) -> TipInfo {
        let tip = &self.active[self.active.len() - 1];
        let hash = tip.block_hash();
        TipInfo {
            height: self.tip_height(),
            hash,
            time: tip.header.time,
            median_time_past: self.median_time_past(&hash),
            chain_work: self
                .active
                .iter()
                .map(|b| b.header.work())
                .fold(Work::from_be_bytes([0; 32]), |a, b| a + b),
        }
    }

    fn locator(&self) -> Vec<BlockHash> {
        let mut locator = Vec::new();
        let mut height = self.tip_height() as i64;
        let mut step = 1;
        while height >= 0 {
            locator.push(self.active[height as usize].block_hash());
            if locator.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        locator
    }

    /// A block on the tip with the mempool's transactions, coinbase paying to `script`;
    /// proof of work not solved.
    fn template(&self, script: &Script) -> Block {
        let height = self.tip_height() + 1;
        let fees = self
            .mempool
            .iter()
            .map(|(_, fee)| *fee)
            .fold(Amount::ZERO, |a, b| a + b);
        let mut txdata = vec![coinbase(height, SUBSIDY + fees, script)];
        txdata.extend(self.mempool.iter().map(|(tx, _)| tx.clone()));
        let tip = &self.active[self.active.len() - 1];
        let mut block = Block {
            header: block::Header {
                version: block::Version::TWO,
                prev_blockhash: tip.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: tip.header.time + 600,
                bits: tip.header.bits,
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("a block has a coinbase");
        block
    }

    /// Checks that `tx`'s inputs exist, are unspent (also by the mempool when
    /// `mempool`), are not spent twice and carry valid signatures; returns the fee.
    fn check_inputs(&self, tx: &Transaction, mempool: bool) -> Result<Amount, &'static str> {
        if tx.input.is_empty() || tx.is_coinbase() {
            return Err("bad-txns-vin-empty");
        }
        let mut spent = HashMap::new();
        for input in &tx.input {
            let in_mempool_spend = mempool
                && self.mempool.iter().any(|(m, _)| {
                    m.input
                        .iter()
                        .any(|i| i.previous_output == input.previous_output)
                });
            if in_mempool_spend {
                return Err("txn-mempool-conflict");
            }
            let coin = self
                .utxos
                .get(&input.previous_output)
                .map(|c| c.txout.clone())
                .or_else(|| {
                    let parent = self
                        .mempool
                        .iter()
                        .find(|(m, _)| m.compute_txid() == input.previous_output.txid)?;
                    parent
                        .0
                        .output
                        .get(input.previous_output.vout as usize)
                        .cloned()
                });
            let Some(coin) =
                coin.filter(|_| mempool || self.utxos.contains_key(&input.previous_output))
            else {
                return Err("bad-txns-inputs-missingorspent");
            };
            if spent.insert(input.previous_output, coin).is_some() {
                return Err("bad-txns-inputs-duplicate");
            }
        }
        let value_in = spent
            .values()
            .map(|o| o.value)
            .fold(Amount::ZERO, |a, b| a + b);
        let value_out = tx
            .output
            .iter()
            .map(|o| o.value)
            .fold(Amount::ZERO, |a, b| a + b);
        let fee = value_in
            .checked_sub(value_out)
            .ok_or("bad-txns-in-belowout")?;
        let prevouts: Vec<TxOut> = tx
            .input
            .iter()
            .map(|input| spent[&input.previous_output].clone())
            .collect();
        interfaces::script::verify_scripts(tx, &prevouts)
            .map_err(|_| "mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)")?;
        Ok(fee)
    }

    /// Connects `block` (already checked) on the tip, collecting the events.
    fn apply(&mut self, block: Arc<Block>, events: &mut Vec<Event>) {
        let height = self.active.len() as u32;
        let hash = block.block_hash();
        let mut undo = Vec::new();
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            if !tx.is_coinbase() {
                for input in &tx.input {
                    if let Some(coin) = self.utxos.remove(&input.previous_output) {
                        undo.push((input.previous_output, coin));
                    }
                }
            }
            for (vout, txout) in tx.output.iter().enumerate() {
                let coin = Coin {
                    txout: txout.clone(),
                    height: Some(height),
                    is_coinbase: tx.is_coinbase(),
                };
                self.utxos.insert(
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    coin,
                );
            }
            if let Some(at) = self
                .mempool
                .iter()
                .position(|(m, _)| m.compute_txid() == txid)
            {
                let (removed, _) = self.mempool.remove(at);
                events.push(Event::Removed(removed, RemovalReason::Block));
            }
        }
        self.undo.insert(hash, undo);
        self.known.insert(hash, (block.clone(), height));
        self.active.push(block.clone());
        events.push(Event::Connected(block, height));
        events.push(Event::Tip(self.tip_info()));
        events.push(Event::Flushed(self.locator()));
    }

    /// Disconnects the tip block, collecting the events.
    fn unapply(&mut self, events: &mut Vec<Event>) {
        let block = self
            .active
            .pop()
            .expect("the test never disconnects genesis");
        let height = self.active.len() as u32;
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                self.utxos.remove(&OutPoint {
                    txid,
                    vout: vout as u32,
                });
            }
        }
        for (outpoint, coin) in self.undo.remove(&block.block_hash()).unwrap_or_default() {
            self.utxos.insert(outpoint, coin);
        }
        events.push(Event::Disconnected(block.clone(), height));
        for tx in block.txdata.iter().skip(1) {
            if let Ok(fee) = self.check_inputs(tx, true) {
                self.mempool.push((tx.clone(), fee));
                events.push(Event::Added(tx.clone()));
            }
        }
        events.push(Event::Tip(self.tip_info()));
    }
}

/// A subscription; unsubscribes when disconnected or dropped.
struct Subscription {
    world: Weak<World>,
    id: u64,
}

impl Handler for Subscription {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        if let Some(world) = self.world.upgrade() {
            world.unsubscribe(self.id);
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(world) = self.world.upgrade() {
            world.unsubscribe(self.id);
        }
    }
}

impl Chain for World {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Ok(Some(self.lock().tip_height()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Ok(self
            .lock()
            .active
            .get(height as usize)
            .map(|b| b.block_hash()))
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        Ok(height <= self.lock().tip_height())
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        Ok(World::found_block(&self.lock(), hash, what))
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        let state = self.lock();
        let mut cursor = *hash;
        loop {
            let Some((block, height)) = state.known.get(&cursor) else {
                return Ok(None);
            };
            if *height < ancestor_height {
                return Ok(None);
            }
            if *height == ancestor_height {
                return Ok(World::found_block(&state, &cursor, what));
            }
            cursor = block.header.prev_blockhash;
        }
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        let state = self.lock();
        Ok(locator.iter().find_map(|hash| {
            let (_, height) = state.known.get(hash)?;
            let in_active = state
                .active
                .get(*height as usize)
                .is_some_and(|b| b.block_hash() == *hash);
            in_active.then_some(BlockRef {
                hash: *hash,
                height: *height,
            })
        }))
    }

    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        let state = self.lock();
        Ok(outpoints
            .iter()
            .map(|outpoint| {
                let spent_in_mempool = state
                    .mempool
                    .iter()
                    .any(|(m, _)| m.input.iter().any(|i| i.previous_output == *outpoint));
                if spent_in_mempool {
                    return None;
                }
                state.utxos.get(outpoint).cloned().or_else(|| {
                    let (tx, _) = state
                        .mempool
                        .iter()
                        .find(|(m, _)| m.compute_txid() == outpoint.txid)?;
                    let txout = tx.output.get(outpoint.vout as usize)?.clone();
                    Some(Coin {
                        txout,
                        height: None,
                        is_coinbase: false,
                    })
                })
            })
            .collect())
    }

    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError> {
        Ok(self
            .lock()
            .mempool
            .iter()
            .any(|(m, _)| m.compute_txid() == *txid))
    }

    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        self.accept(tx, max_fee_rate)
    }

    fn estimate_fee_rate(&self, target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        match target {
            0 => Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                "Invalid conf_target, must be between 1 and 1008",
            )),
            1..=25 => Ok(Some(FeeRate::from_sat_per_kwu(
                250 * u64::from(26 - target),
            ))),
            _ => Ok(None),
        }
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        Ok(RELAY_MIN_FEE)
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        Ok(false)
    }

    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        Ok(self.subscribe_chain(notifications))
    }

    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        // Delivery is synchronous: everything before this call has been delivered.
        Ok(())
    }
}

impl Node for World {
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError> {
        Ok(self.lock().tip_info())
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Chain::get_block_hash(self, height)
    }

    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError> {
        self.find_block(hash, BlockWhat::Full)
    }

    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError> {
        let state = self.lock();
        Ok(MempoolInfo {
            size: state.mempool.len() as u64,
            bytes: state.mempool.iter().map(|(tx, _)| tx.vsize() as u64).sum(),
            usage: state
                .mempool
                .iter()
                .map(|(tx, _)| 2 * tx.total_size() as u64)
                .sum(),
            total_fee: state
                .mempool
                .iter()
                .map(|(_, fee)| *fee)
                .fold(Amount::ZERO, |a, b| a + b),
            mempool_min_fee: RELAY_MIN_FEE,
            min_relay_tx_fee: RELAY_MIN_FEE,
        })
    }

    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError> {
        let state = self.lock();
        if let Some((tx, _)) = state
            .mempool
            .iter()
            .find(|(m, _)| m.compute_txid() == *txid)
        {
            return Ok(Some(FoundTransaction {
                tx: tx.clone(),
                block: None,
            }));
        }
        Ok(state.active.iter().enumerate().find_map(|(height, block)| {
            let tx = block.txdata.iter().find(|t| t.compute_txid() == *txid)?;
            Some(FoundTransaction {
                tx: tx.clone(),
                block: Some(BlockRef {
                    hash: block.block_hash(),
                    height: height as u32,
                }),
            })
        }))
    }

    fn send_raw_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Txid, InterfaceError> {
        self.accept(tx, max_fee_rate)?;
        Ok(tx.compute_txid())
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
        if n > 1000 {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                "at most 1000 blocks at once",
            ));
        }
        Ok((0..n)
            .map(|_| self.mine(&address.script_pubkey()))
            .collect())
    }

    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        self.lock().wallet_loader.clone().ok_or_else(|| {
            InterfaceError::remote(ErrorCode::WALLET_NOT_FOUND, "No wallet is loaded")
        })
    }

    fn shutdown(&self) -> Result<(), InterfaceError> {
        self.lock().shutting_down = true;
        self.tip_changed.notify_all();
        Ok(())
    }

    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        Ok(self.subscribe_tip(callback))
    }
}

impl Mining for World {
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError> {
        let state = self.lock();
        Ok(Some(BlockRef {
            hash: state.tip_hash(),
            height: state.tip_height(),
        }))
    }

    fn wait_tip_changed(
        &self,
        current: &BlockHash,
        timeout: Duration,
    ) -> Result<Option<BlockRef>, InterfaceError> {
        let state = self.lock();
        let (state, _) = self
            .tip_changed
            .wait_timeout_while(state, timeout, |s| {
                s.tip_hash() == *current && !s.shutting_down
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.shutting_down {
            return Ok(None);
        }
        Ok(Some(BlockRef {
            hash: state.tip_hash(),
            height: state.tip_height(),
        }))
    }

    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        if coinbase_script.is_empty() {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                "empty coinbase output script",
            ));
        }
        let block = self.lock().template(coinbase_script);
        Ok(Arc::new(Template {
            world: self.me.upgrade().expect("the world is alive while called"),
            block,
        }))
    }
}

/// A block template of the test world.
struct Template {
    world: Arc<World>,
    block: Block,
}

impl BlockTemplate for Template {
    fn get_block_header(&self) -> Result<block::Header, InterfaceError> {
        Ok(self.block.header)
    }

    fn get_block(&self) -> Result<Block, InterfaceError> {
        Ok(self.block.clone())
    }

    fn get_coinbase_tx(&self) -> Result<Transaction, InterfaceError> {
        Ok(self.block.txdata[0].clone())
    }

    fn get_coinbase_merkle_path(&self) -> Result<Vec<TxMerkleNode>, InterfaceError> {
        let txids: Vec<Txid> = self
            .block
            .txdata
            .iter()
            .map(Transaction::compute_txid)
            .collect();
        Ok(coinbase_merkle_path(&txids))
    }

    fn submit_solution(
        &self,
        version: block::Version,
        time: u32,
        nonce: u32,
        coinbase: &Transaction,
    ) -> Result<bool, InterfaceError> {
        let mut block = self.block.clone();
        block.txdata[0] = coinbase.clone();
        block.header.version = version;
        block.header.time = time;
        block.header.nonce = nonce;
        block.header.merkle_root = block.compute_merkle_root().expect("a block has a coinbase");
        Ok(self.world.connect(block).is_ok())
    }
}

/// The test `Echo`: returns its input, and refuses an input starting with `error`.
pub(crate) struct TestEcho;

impl Echo for TestEcho {
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError> {
        if data.starts_with(b"error") {
            return Err(InterfaceError::remote(
                ErrorCode::MISC_ERROR,
                "echo refused: input starts with \"error\"",
            ));
        }
        Ok(data.to_vec())
    }
}

/// The test `Init`: hands out the world as `Chain`, `Node` and `Mining`, a `TestEcho`, and
/// a wallet loader working against the `Chain` it is given.
pub(crate) struct TestInit {
    pub(crate) world: Arc<World>,
}

impl Init for TestInit {
    fn make_echo(&self) -> Result<Arc<dyn Echo>, InterfaceError> {
        Ok(Arc::new(TestEcho))
    }

    fn make_chain(&self) -> Result<Arc<dyn Chain>, InterfaceError> {
        Ok(self.world.clone())
    }

    fn make_node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        Ok(self.world.clone())
    }

    fn make_wallet_loader(
        &self,
        chain: Arc<dyn Chain>,
    ) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        let loader: Arc<dyn WalletLoader> = Arc::new(TestWalletLoader::new(chain));
        self.world.lock().wallet_loader = Some(loader.clone());
        Ok(loader)
    }

    fn make_mining(&self) -> Result<Arc<dyn Mining>, InterfaceError> {
        Ok(self.world.clone())
    }
}
