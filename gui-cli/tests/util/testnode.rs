//! A small regtest node for the tests, served over a real `ipc-shm` session (a pair in one
//! process, or a listener another process connects to) so every call crosses the
//! interfaces' proxies and servers as it will against `bitcoin-node`. Shared by the unit
//! tests (`#[path]`) and the integration tests that drive the `bitcoin-gui` binary.
//!
//! It stands in until the node crate's in-process `NodeContext` is on main: it keeps a
//! chain of real blocks from the regtest genesis, builds templates whose coinbase pays the
//! given script, and accepts a solution only if it extends the tip, keeps the template's
//! transactions and merkle root, and meets the proof-of-work target. No mempool and no
//! wallet process: those calls answer as a node without them does.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};

use bitcoin::absolute::LockTime;
use bitcoin::blockdata::script::Builder;
use bitcoin::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, FeeRate, Network, OutPoint, Script, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, block,
};
use interfaces::remote::{InitProxy, InitServer};
use interfaces::{
    BlockRef, BlockTemplate, Echo, ErrorCode, FoundBlock, FoundTransaction, Handler, Init,
    InterfaceError, MempoolInfo, Mining, Node, NotifyBlockTipFn, TipInfo, Wallet, WalletLoader,
};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;

/// The chain and the tip subscribers.
#[derive(Default)]
struct State {
    blocks: Vec<Block>,
    subscribers: Vec<NotifyBlockTipFn>,
    shutdown: bool,
    /// The wallet process, once [`TestNode::attach_wallets`] is called.
    wallets: Option<Arc<TestWalletLoader>>,
}

pub(crate) struct TestNode {
    state: Arc<Mutex<State>>,
}

impl TestNode {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Whether `Node::shutdown` was called.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.state().shutdown
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tip_info(state: &State) -> TipInfo {
    let height = state.blocks.len() - 1;
    let tip = &state.blocks[height];
    TipInfo {
        height: height as u32,
        hash: tip.block_hash(),
        time: tip.header.time,
        median_time_past: median_time_past(state, height),
        chain_work: state
            .blocks
            .iter()
            .map(|b| b.header.work())
            .reduce(|a, w| a + w)
            .expect("the chain has its genesis block"),
    }
}

fn median_time_past(state: &State, height: usize) -> u32 {
    let mut times: Vec<u32> = state.blocks[height.saturating_sub(10)..=height]
        .iter()
        .map(|b| b.header.time)
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

impl TestNode {
    /// A node whose chain is the regtest genesis block.
    pub(crate) fn new() -> Arc<TestNode> {
        Arc::new(TestNode {
            state: Arc::new(Mutex::new(State {
                blocks: vec![genesis_block(Network::Regtest)],
                ..State::default()
            })),
        })
    }

    /// The `Init` this node serves.
    pub(crate) fn init(self: &Arc<Self>) -> Arc<dyn Init> {
        Arc::new(TestInit(Arc::clone(self)))
    }

    /// The server side's bootstrap object for a session.
    pub(crate) fn bootstrap(self: &Arc<Self>) -> Arc<dyn Dispatch> {
        Arc::new(InitServer::new(self.init()))
    }

    /// Serves this node over a session pair; returns the client's `Init` proxy and both
    /// sessions (dropping the first, the node's side, disconnects the client).
    pub(crate) fn serve_pair(self: &Arc<Self>) -> (Arc<dyn Init>, (Session, Session)) {
        let (server, client) = Session::pair(
            1 << 20,
            WaitPolicy::default(),
            Some(self.bootstrap()),
            None,
            &SessionConfig::default(),
        )
        .expect("session pair");
        let init: Arc<dyn Init> = Arc::new(InitProxy::new(client.bootstrap()));
        (init, (server, client))
    }

    /// Attaches a wallet process with a loaded default wallet holding `balance` (trusted).
    pub(crate) fn attach_wallets(&self, balance: Amount) -> Arc<TestWalletLoader> {
        let loader = Arc::new(TestWalletLoader::default());
        loader.add("default", balance);
        self.state().wallets = Some(Arc::clone(&loader));
        loader
    }

    /// Mines one block paying `script` in this process (as another client would).
    pub(crate) fn mine_one(&self, script: &Script) -> BlockHash {
        let template = self.create_new_block(script).expect("template");
        let mut header = template.get_block_header().expect("header");
        let target = header.target();
        while !target.is_met_by(header.block_hash()) {
            header.nonce += 1;
        }
        let coinbase = template.get_coinbase_tx().expect("coinbase");
        assert!(
            template
                .submit_solution(header.version, header.time, header.nonce, &coinbase)
                .expect("submit")
        );
        header.block_hash()
    }
}

struct TestInit(Arc<TestNode>);

impl Init for TestInit {
    fn make_echo(&self) -> Result<Arc<dyn Echo>, InterfaceError> {
        Ok(Arc::new(TestEcho))
    }

    fn make_node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        Ok(Arc::clone(&self.0) as _)
    }

    fn make_mining(&self) -> Result<Arc<dyn Mining>, InterfaceError> {
        Ok(Arc::clone(&self.0) as _)
    }
}

struct TestEcho;

impl Echo for TestEcho {
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError> {
        Ok(data.to_vec())
    }
}

struct NoHandler;

impl Handler for NoHandler {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        Ok(())
    }
}

impl Node for TestNode {
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError> {
        Ok(tip_info(&self.state()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Ok(self
            .state()
            .blocks
            .get(height as usize)
            .map(Block::block_hash))
    }

    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError> {
        let state = self.state();
        let height = state.blocks.iter().position(|b| b.block_hash() == *hash);
        Ok(height.map(|height| FoundBlock {
            header: state.blocks[height].header,
            height: height as u32,
            median_time_past: median_time_past(&state, height),
            in_active_chain: true,
            block: Some(state.blocks[height].clone()),
        }))
    }

    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError> {
        Ok(MempoolInfo {
            size: 0,
            bytes: 0,
            usage: 0,
            total_fee: Amount::ZERO,
            mempool_min_fee: FeeRate::from_sat_per_kwu(250),
            min_relay_tx_fee: FeeRate::from_sat_per_kwu(250),
        })
    }

    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError> {
        let state = self.state();
        Ok(state.blocks.iter().enumerate().find_map(|(height, b)| {
            let tx = b.txdata.iter().find(|tx| tx.compute_txid() == *txid)?;
            Some(FoundTransaction {
                tx: tx.clone(),
                block: Some(BlockRef {
                    hash: b.block_hash(),
                    height: height as u32,
                }),
            })
        }))
    }

    fn send_raw_transaction(&self, _: &Transaction, _: FeeRate) -> Result<Txid, InterfaceError> {
        Err(InterfaceError::remote(
            ErrorCode::VERIFY_REJECTED,
            "bad-txns-inputs-missingorspent",
        ))
    }

    fn generate_to_address(
        &self,
        _: u32,
        _: &Address<bitcoin::address::NetworkUnchecked>,
    ) -> Result<Vec<BlockHash>, InterfaceError> {
        Err(InterfaceError::not_supported("generate_to_address"))
    }

    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        match &self.state().wallets {
            Some(loader) => Ok(Arc::clone(loader) as _),
            None => Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "no wallet process is attached",
            )),
        }
    }

    fn shutdown(&self) -> Result<(), InterfaceError> {
        self.state().shutdown = true;
        Ok(())
    }

    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.state().subscribers.push(callback);
        Ok(Box::new(NoHandler))
    }
}

impl Mining for TestNode {
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError> {
        let tip = tip_info(&self.state());
        Ok(Some(BlockRef {
            hash: tip.hash,
            height: tip.height,
        }))
    }

    fn wait_tip_changed(
        &self,
        _: &BlockHash,
        _: std::time::Duration,
    ) -> Result<Option<BlockRef>, InterfaceError> {
        Err(InterfaceError::not_supported("wait_tip_changed"))
    }

    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        let tip = tip_info(&self.state());
        let height = tip.height + 1;
        let coinbase = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: Builder::new()
                    .push_int(i64::from(height))
                    .push_int(0)
                    .into_script(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_int_btc(50),
                script_pubkey: coinbase_script.to_owned(),
            }],
        };
        let mut block = Block {
            header: block::Header {
                version: block::Version::from_consensus(0x2000_0000),
                prev_blockhash: tip.hash,
                merkle_root: TxMerkleNode::from_raw_hash(coinbase.compute_txid().to_raw_hash()),
                time: tip.time + 1,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata: vec![coinbase],
        };
        block.header.merkle_root = block.compute_merkle_root().expect("one transaction");
        Ok(Arc::new(TestTemplate {
            state: Arc::clone(&self.state),
            block,
        }))
    }
}

struct TestTemplate {
    state: Arc<Mutex<State>>,
    block: Block,
}

impl BlockTemplate for TestTemplate {
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
        Ok(Vec::new())
    }

    fn submit_solution(
        &self,
        version: block::Version,
        time: u32,
        nonce: u32,
        coinbase: &Transaction,
    ) -> Result<bool, InterfaceError> {
        let mut block = self.block.clone();
        block.header.version = version;
        block.header.time = time;
        block.header.nonce = nonce;
        block.txdata[0] = coinbase.clone();
        let mut state = lock(&self.state);
        let tip = state.blocks.last().map(Block::block_hash);
        let valid = block.header.prev_blockhash == tip.unwrap_or(BlockHash::all_zeros())
            && block.check_merkle_root()
            && block.header.validate_pow(block.header.target()).is_ok();
        if !valid {
            return Ok(false);
        }
        state.blocks.push(block);
        let info = tip_info(&state);
        let subscribers = state.subscribers.clone();
        drop(state);
        for notify in subscribers {
            notify(&info);
        }
        Ok(true)
    }
}

/// A wallet process's loader for the tests: named wallets with set balances. (The real
/// wallet, on bdk, is not on main yet; this checks routing and output shapes, not wallet
/// logic.)
#[derive(Default)]
pub(crate) struct TestWalletLoader {
    wallets: Mutex<Vec<Arc<TestWallet>>>,
}

impl TestWalletLoader {
    fn add(&self, name: &str, balance: Amount) -> Arc<TestWallet> {
        let wallet = Arc::new(TestWallet {
            name: name.to_owned(),
            state: Mutex::new(WalletState {
                trusted: balance,
                ..WalletState::default()
            }),
        });
        self.wallets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&wallet));
        wallet
    }

    fn find(&self, name: &str) -> Option<Arc<TestWallet>> {
        let wallets = self.wallets.lock().unwrap_or_else(PoisonError::into_inner);
        wallets.iter().find(|w| w.name == name).cloned()
    }

    /// A loaded wallet, to inspect.
    pub(crate) fn wallet(&self, name: &str) -> Arc<TestWallet> {
        self.find(name).expect("wallet loaded")
    }
}

impl WalletLoader for TestWalletLoader {
    fn create_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        if self.find(name).is_some() {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_ALREADY_EXISTS,
                format!("Wallet {name} already exists."),
            ));
        }
        Ok(self.add(name, Amount::ZERO) as _)
    }

    fn load_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        match self.find(name) {
            Some(_) => Err(InterfaceError::remote(
                ErrorCode::WALLET_ALREADY_LOADED,
                format!("Wallet \"{name}\" is already loaded."),
            )),
            None => Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                format!("Wallet file verification failed. Failed to load database path '{name}'."),
            )),
        }
    }

    fn list_wallets(&self) -> Result<Vec<String>, InterfaceError> {
        let wallets = self.wallets.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(wallets.iter().map(|w| w.name.clone()).collect())
    }

    fn get_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        self.find(name).map(|w| w as _).ok_or_else(|| {
            InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "Requested wallet does not exist or is not loaded",
            )
        })
    }

    fn get_default_wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError> {
        self.get_wallet("default")
    }
}

#[derive(Default)]
struct WalletState {
    trusted: Amount,
    addresses: u32,
    sent: Vec<(
        Address<bitcoin::address::NetworkUnchecked>,
        Amount,
        Option<FeeRate>,
    )>,
    subscribers: Vec<interfaces::TransactionChangedFn>,
}

pub(crate) struct TestWallet {
    name: String,
    state: Mutex<WalletState>,
}

impl TestWallet {
    fn state(&self) -> std::sync::MutexGuard<'_, WalletState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `send_to_address` was asked to pay, in order.
    pub(crate) fn sent(&self) -> Vec<(String, Amount, Option<FeeRate>)> {
        let state = self.state();
        state
            .sent
            .iter()
            .map(|(a, m, f)| (a.clone().assume_checked().to_string(), *m, *f))
            .collect()
    }
}

impl Wallet for TestWallet {
    fn get_wallet_name(&self) -> Result<String, InterfaceError> {
        Ok(self.name.clone())
    }

    /// A distinct regtest P2WSH address per call.
    fn get_new_address(
        &self,
    ) -> Result<Address<bitcoin::address::NetworkUnchecked>, InterfaceError> {
        let mut state = self.state();
        state.addresses += 1;
        let witness_script = Builder::new()
            .push_int(i64::from(state.addresses))
            .into_script();
        Ok(Address::p2wsh(&witness_script, Network::Regtest)
            .as_unchecked()
            .clone())
    }

    fn get_balances(&self) -> Result<interfaces::Balances, InterfaceError> {
        Ok(interfaces::Balances {
            trusted: self.state().trusted,
            ..Default::default()
        })
    }

    fn list_transactions(&self) -> Result<Vec<interfaces::WalletTx>, InterfaceError> {
        Ok(Vec::new())
    }

    /// Records the payment and takes `amount` off the balance; notifies subscribers.
    fn send_to_address(
        &self,
        address: &Address<bitcoin::address::NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, InterfaceError> {
        let mut state = self.state();
        state.trusted = state.trusted.checked_sub(amount).ok_or_else(|| {
            InterfaceError::remote(ErrorCode::WALLET_INSUFFICIENT_FUNDS, "Insufficient funds")
        })?;
        state.sent.push((address.clone(), amount, fee_rate));
        let txid = Txid::from_byte_array([state.sent.len() as u8; 32]);
        let subscribers = state.subscribers.clone();
        drop(state);
        for notify in subscribers {
            notify(&txid, interfaces::ChangeType::New);
        }
        Ok(txid)
    }

    fn handle_transaction_changed(
        &self,
        callback: interfaces::TransactionChangedFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.state().subscribers.push(callback);
        Ok(Box::new(NoHandler))
    }
}
