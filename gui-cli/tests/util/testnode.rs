//! The real node (`node::service::NodeContext` on a fresh regtest chain state in a temporary
//! datadir), served over a real `ipc-shm` session, plus a stand-in wallet process. Shared by
//! the unit tests (`#[path]`) and the integration tests that drive the `bitcoin-gui` binary.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::{Address, Amount, BlockHash, FeeRate, Network, Script, Txid};
use interfaces::remote::{InitProxy, InitServer};
use interfaces::{ErrorCode, Handler, Init, InterfaceError, Mining, Wallet, WalletLoader};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;
use node::chainstate::ChainState;
use node::service::{NodeContext, NodeInit};
use tempfile::TempDir;

/// A real node on a fresh regtest chain in its own datadir. It carries a watchdog: a test
/// that still holds it after [`NODE_WATCHDOG`] is taken to hang, and aborts the process.
pub(crate) struct TestNode {
    pub(crate) ctx: Arc<NodeContext>,
    dir: TempDir,
    _watchdog: Watchdog,
}

/// How long a test may keep a [`TestNode`]: far longer than any test takes.
const NODE_WATCHDOG: std::time::Duration = std::time::Duration::from_secs(180);

/// Aborts the process unless dropped within [`NODE_WATCHDOG`].
struct Watchdog {
    _called_off: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let (called_off, done) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done.recv_timeout(NODE_WATCHDOG)
            {
                // Straight to stderr: libtest captures eprintln! in test threads, and the
                // abort would throw the capture away.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: a test kept its TestNode past {NODE_WATCHDOG:?}; aborting"
                );
                std::process::abort();
            }
        });
        Watchdog {
            _called_off: called_off,
        }
    }
}

impl TestNode {
    /// A node whose chain is the regtest genesis block, in `DIR/regtest`.
    pub(crate) fn new() -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = ChainState::open(&dir.path().join("regtest")).expect("open the chain state");
        let ctx = NodeContext::new(chain).expect("node context");
        TestNode {
            ctx,
            dir,
            _watchdog: Watchdog::start(),
        }
    }

    /// The datadir (`-datadir`).
    pub(crate) fn datadir(&self) -> &Path {
        self.dir.path()
    }

    /// The `Init` this node serves.
    pub(crate) fn init(&self) -> Arc<dyn Init> {
        Arc::new(NodeInit::new(Arc::clone(&self.ctx)))
    }

    /// The node's side bootstrap object for a session.
    pub(crate) fn bootstrap(&self) -> Arc<dyn Dispatch> {
        Arc::new(InitServer::new(self.init()))
    }

    /// Serves this node over a session pair; returns the client's `Init` proxy and both
    /// sessions (dropping the first, the node's side, disconnects the client).
    pub(crate) fn serve_pair(&self) -> (Arc<dyn Init>, (Session, Session)) {
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

    /// Whether `Node::shutdown` was called.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.ctx.shutdown_requested()
    }

    /// Attaches a stand-in wallet process with a loaded default wallet holding `balance`.
    pub(crate) fn attach_wallets(&self, balance: Amount) -> Arc<TestWalletLoader> {
        let loader = Arc::new(TestWalletLoader::default());
        loader.add("default", balance);
        self.ctx.set_wallet_loader(Some(Arc::clone(&loader) as _));
        loader
    }

    /// Mines one block paying `script` in this process, as another client would.
    pub(crate) fn mine_one(&self, script: &Script) -> BlockHash {
        let template = self.ctx.create_new_block(script).expect("template");
        let mut header = template.get_block_header().expect("header");
        let target = header.target();
        while !target.is_met_by(header.block_hash()) {
            header.nonce += 1;
        }
        let coinbase = template.get_coinbase_tx().expect("coinbase");
        let accepted = template
            .submit_solution(header.version, header.time, header.nonce, &coinbase)
            .expect("submit");
        assert!(accepted, "the node accepts a solved template");
        header.block_hash()
    }
}

struct NoHandler;

impl Handler for NoHandler {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        Ok(())
    }
}

/// A stand-in for the wallet process: named wallets with set balances. (The real wallet, on
/// bdk, is not on main yet; this checks the front end's routing and output shapes, not
/// wallet logic.)
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

    fn unload_wallet(&self, name: &str) -> Result<(), InterfaceError> {
        let mut wallets = self.wallets.lock().unwrap_or_else(PoisonError::into_inner);
        let at = wallets.iter().position(|w| w.name == name).ok_or_else(|| {
            InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "Requested wallet does not exist or is not loaded",
            )
        })?;
        wallets.remove(at);
        Ok(())
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
