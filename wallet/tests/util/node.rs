//! `TestNode`: the node's side of `interfaces::Chain` over a [`TestChain`], with a mempool
//! that checks every transaction's scripts with libbitcoinconsensus and refuses double
//! spends, and `ChainNotifications` delivered in order on the mining thread, as the node
//! delivers them. It keeps the wallet's unit-level tests small and gives them hooks the real
//! node has no reason to offer (refusing every payment, counting blocks served); the
//! end-to-end behaviour is tested against the real node in `tests/real_node.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use bitcoin::{Block, BlockHash, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use interfaces::{
    BlockRef, BlockWhat, Chain, ChainNotifications, Coin, EncodedBlock, ErrorCode, FoundBlock,
    Handler, InterfaceError, RemovalReason,
};

use super::{MIN_RELAY, TestChain};

type Subscribers = Arc<Mutex<Vec<(u64, Arc<dyn ChainNotifications>)>>>;

pub(crate) struct TestNode {
    chain: Mutex<TestChain>,
    mempool: Mutex<Vec<Transaction>>,
    subscribers: Subscribers,
    next_id: AtomicU64,
    /// When set, `broadcast_transaction` refuses everything (a node that rejects).
    pub(crate) refuse: AtomicBool,
    /// How many full blocks `find_block` has handed out.
    blocks_served: AtomicUsize,
    /// Told of every new notification subscriber.
    pub(crate) on_subscribe: Mutex<Option<mpsc::Sender<()>>>,
}

impl TestNode {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            chain: Mutex::new(TestChain::new()),
            mempool: Mutex::default(),
            subscribers: Arc::default(),
            next_id: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            blocks_served: AtomicUsize::new(0),
            on_subscribe: Mutex::default(),
        })
    }

    pub(crate) fn with_chain<T>(&self, f: impl FnOnce(&TestChain) -> T) -> T {
        f(&self.chain.lock().unwrap())
    }

    /// How many notification subscribers are listening.
    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.lock().unwrap().len()
    }

    pub(crate) fn blocks_served(&self) -> usize {
        self.blocks_served.load(Ordering::SeqCst)
    }

    pub(crate) fn mempool(&self) -> Vec<Transaction> {
        self.mempool.lock().unwrap().clone()
    }

    fn each(&self, f: impl Fn(&dyn ChainNotifications) -> Result<(), InterfaceError>) {
        let subscribers: Vec<_> = self.subscribers.lock().unwrap().clone();
        for (id, subscriber) in subscribers {
            match f(subscriber.as_ref()) {
                Ok(()) => {}
                // A subscriber in a process that went away: forget it, as the node does.
                Err(InterfaceError::Disconnected) => {
                    self.subscribers.lock().unwrap().retain(|(i, _)| *i != id);
                }
                Err(err) => panic!("subscriber failed a notification: {err}"),
            }
        }
    }

    /// Mines a block with the whole mempool, paying to `script`, and notifies: the
    /// included transactions leave the mempool (reason `Block`), then the block connects.
    pub(crate) fn mine(&self, script: &ScriptBuf) -> Block {
        let txs = std::mem::take(&mut *self.mempool.lock().unwrap());
        let (block, height) = {
            let mut chain = self.chain.lock().unwrap();
            let block = chain.mine(script, txs.clone());
            (block, chain.height())
        };
        for tx in &txs {
            self.each(|s| s.transaction_removed_from_mempool(tx, RemovalReason::Block));
        }
        self.each(|s| s.block_connected(&block, height));
        self.each(|s| s.updated_block_tip());
        block
    }

    /// Disconnects the blocks above `height`, tip first, notifying each.
    pub(crate) fn disconnect_to(&self, height: u32) {
        let removed = self.chain.lock().unwrap().rewind(height);
        let top = height + removed.len() as u32;
        for (block, h) in removed.iter().zip((height + 1..=top).rev()) {
            self.each(|s| s.block_disconnected(block, h));
        }
    }

    fn found(&self, chain: &TestChain, hash: &BlockHash, what: BlockWhat) -> Option<FoundBlock> {
        let (height, block, in_active_chain) = chain.lookup(hash)?;
        // Median time past: the median of this block's time and its ten ancestors'.
        let mut times = vec![block.header.time];
        let mut prev = block.header.prev_blockhash;
        while times.len() < 11 {
            let Some((_, parent, _)) = chain.lookup(&prev) else {
                break;
            };
            times.push(parent.header.time);
            prev = parent.header.prev_blockhash;
        }
        times.sort_unstable();
        Some(FoundBlock {
            header: block.header,
            height,
            median_time_past: times[times.len() / 2],
            in_active_chain,
            block: (what == BlockWhat::Full).then(|| EncodedBlock::from(block)),
        })
    }
}

struct Subscription {
    subscribers: Subscribers,
    id: u64,
}

impl Handler for Subscription {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        self.subscribers
            .lock()
            .unwrap()
            .retain(|(id, _)| *id != self.id);
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = Handler::disconnect(self);
    }
}

fn rejected(reason: &str) -> InterfaceError {
    InterfaceError::remote(ErrorCode::VERIFY_REJECTED, reason)
}

impl Chain for TestNode {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Ok(Some(self.chain.lock().unwrap().height()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        let chain = self.chain.lock().unwrap();
        Ok((height <= chain.height()).then(|| chain.block(height).block_hash()))
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        Ok(height <= self.chain.lock().unwrap().height())
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        if what == BlockWhat::Full {
            self.blocks_served.fetch_add(1, Ordering::SeqCst);
        }
        let chain = self.chain.lock().unwrap();
        Ok(self.found(&chain, hash, what))
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        let chain = self.chain.lock().unwrap();
        let mut current = *hash;
        loop {
            let Some((height, block, _)) = chain.lookup(&current) else {
                return Ok(None);
            };
            if height < ancestor_height {
                return Ok(None);
            }
            if height == ancestor_height {
                return Ok(self.found(&chain, &current, what));
            }
            current = block.header.prev_blockhash;
        }
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        let chain = self.chain.lock().unwrap();
        Ok(locator.iter().find_map(|hash| match chain.lookup(hash) {
            Some((height, _, true)) => Some(BlockRef {
                hash: *hash,
                height,
            }),
            _ => None,
        }))
    }

    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        let chain = self.chain.lock().unwrap();
        Ok(outpoints
            .iter()
            .map(|op| {
                chain.utxo(op).map(|txout| Coin {
                    txout: txout.clone(),
                    height: None,
                    is_coinbase: false,
                })
            })
            .collect())
    }

    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError> {
        Ok(self
            .mempool
            .lock()
            .unwrap()
            .iter()
            .any(|tx| tx.compute_txid() == *txid))
    }

    /// Accepts a transaction whose inputs are unspent coins of the chain or outputs of
    /// mempool transactions, not spent by another mempool transaction, with valid scripts
    /// (libbitcoinconsensus) and at least the minimum relay fee.
    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        _max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(rejected("test node refuses everything"));
        }
        {
            let chain = self.chain.lock().unwrap();
            let mut mempool = self.mempool.lock().unwrap();
            let txid = tx.compute_txid();
            if mempool.iter().any(|m| m.compute_txid() == txid) {
                return Ok(());
            }
            let spent: HashSet<OutPoint> = mempool
                .iter()
                .flat_map(|m| m.input.iter().map(|i| i.previous_output))
                .collect();
            let prevout = |op: &OutPoint| -> Option<TxOut> {
                chain.utxo(op).cloned().or_else(|| {
                    mempool
                        .iter()
                        .find(|m| m.compute_txid() == op.txid)
                        .and_then(|m| m.output.get(op.vout as usize).cloned())
                })
            };
            if tx.input.iter().any(|i| spent.contains(&i.previous_output)) {
                return Err(rejected("txn-mempool-conflict"));
            }
            let mut value_in = bitcoin::Amount::ZERO;
            for input in &tx.input {
                value_in += prevout(&input.previous_output)
                    .ok_or_else(|| rejected("bad-txns-inputs-missingorspent"))?
                    .value;
            }
            let spent: Vec<_> = tx
                .input
                .iter()
                .filter_map(|i| prevout(&i.previous_output))
                .collect();
            interfaces::script::verify_scripts(tx, &spent)
                .map_err(|e| rejected(&format!("mandatory-script-verify-flag-failed ({e})")))?;
            let fee = value_in - tx.output.iter().map(|o| o.value).sum();
            if fee < MIN_RELAY.fee_vb(tx.vsize() as u64).unwrap() {
                return Err(rejected("min relay fee not met"));
            }
            mempool.push(tx.clone());
        }
        self.each(|s| s.transaction_added_to_mempool(tx));
        Ok(())
    }

    fn estimate_fee_rate(&self, _target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        Ok(None)
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        Ok(MIN_RELAY)
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        Ok(false)
    }

    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscribers.lock().unwrap().push((id, notifications));
        if let Some(tell) = self.on_subscribe.lock().unwrap().as_ref() {
            let _ = tell.send(());
        }
        Ok(Box::new(Subscription {
            subscribers: Arc::clone(&self.subscribers),
            id,
        }))
    }

    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        // Notifications are delivered synchronously by the thread that caused them.
        Ok(())
    }
}

/// The node's `Init` for a client: it offers the test node's chain.
pub(crate) struct TestNodeInit(pub(crate) Arc<TestNode>);

impl interfaces::Init for TestNodeInit {
    fn make_chain(&self) -> Result<Arc<dyn Chain>, InterfaceError> {
        Ok(Arc::clone(&self.0) as Arc<dyn Chain>)
    }
}
