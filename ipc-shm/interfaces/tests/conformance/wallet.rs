//! The test implementation of `WalletLoader` and `Wallet`: in-memory wallets that learn
//! everything from the `Chain` they are given (across the connection, in the remote
//! runs) and sign real transactions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use interfaces::{
    Balances, BlockRef, BlockWhat, Chain, ChangeType, ErrorCode, Handler, InterfaceError,
    TransactionChangedFn, Wallet, WalletLoader, WalletTx,
};

use super::keys::{Key, signed_tx};

/// Confirmations a coinbase output needs before the test wallet spends it (100 on the real
/// network; 5 keeps the test chain short).
pub(crate) const COINBASE_MATURITY: u32 = 5;
/// The virtual size the test wallet budgets for a one-input, two-output transaction.
const SEND_VSIZE: u64 = 141;
/// Outputs below this are dust.
const DUST: Amount = Amount::from_sat(546);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Loader {
    /// Loaded wallets in load order.
    loaded: Vec<Arc<TestWallet>>,
    /// Names of wallets that exist, loaded or not.
    on_disk: Vec<String>,
    /// Wallets made so far (seeds the next wallet's keys).
    made: u8,
}

/// The test `WalletLoader`. A wallet named `bob` exists on disk from the start.
pub(crate) struct TestWalletLoader {
    chain: Arc<dyn Chain>,
    state: Mutex<Loader>,
}

impl TestWalletLoader {
    pub(crate) fn new(chain: Arc<dyn Chain>) -> TestWalletLoader {
        let state = Loader {
            loaded: Vec::new(),
            on_disk: vec![String::from("bob")],
            made: 0,
        };
        TestWalletLoader {
            chain,
            state: Mutex::new(state),
        }
    }

    fn open(&self, state: &mut Loader, name: &str) -> Arc<dyn Wallet> {
        state.made += 1;
        let wallet = Arc::new(TestWallet::new(name, state.made, self.chain.clone()));
        state.loaded.push(wallet.clone());
        wallet
    }
}

impl WalletLoader for TestWalletLoader {
    fn create_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let mut state = lock(&self.state);
        if state.on_disk.iter().any(|n| n == name) {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_ALREADY_EXISTS,
                format!("Wallet {name} already exists."),
            ));
        }
        state.on_disk.push(name.to_owned());
        Ok(self.open(&mut state, name))
    }

    fn load_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let mut state = lock(&self.state);
        if state.loaded.iter().any(|w| w.name == name) {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_ALREADY_LOADED,
                format!("Wallet \"{name}\" is already loaded."),
            ));
        }
        if !state.on_disk.iter().any(|n| n == name) {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                format!("Wallet file verification failed. Wallet \"{name}\" not found."),
            ));
        }
        Ok(self.open(&mut state, name))
    }

    fn list_wallets(&self) -> Result<Vec<String>, InterfaceError> {
        Ok(lock(&self.state)
            .loaded
            .iter()
            .map(|w| w.name.clone())
            .collect())
    }

    fn get_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let state = lock(&self.state);
        match state.loaded.iter().find(|w| w.name == name) {
            Some(wallet) => Ok(wallet.clone()),
            None => Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "Requested wallet does not exist or is not loaded",
            )),
        }
    }

    fn unload_wallet(&self, name: &str) -> Result<(), InterfaceError> {
        let mut state = lock(&self.state);
        let Some(at) = state.loaded.iter().position(|w| w.name == name) else {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "Requested wallet does not exist or is not loaded",
            ));
        };
        state
            .loaded
            .remove(at)
            .unloaded
            .store(true, Ordering::Relaxed);
        Ok(())
    }

    fn get_default_wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError> {
        match lock(&self.state).loaded.first() {
            Some(wallet) => Ok(wallet.clone()),
            None => Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                "No wallet is loaded",
            )),
        }
    }
}

struct WalletState {
    /// Keys by the script they pay to: the main key first, then each address handed out.
    keys: Vec<Key>,
    /// Transactions this wallet sent, in order.
    sent: Vec<Transaction>,
    callbacks: Vec<(u64, TransactionChangedFn)>,
    next_callback: u64,
}

/// A test wallet. Its main key (seed = the wallet's number) receives the change; the
/// test world's blocks pay to seed 1, the first wallet made.
pub(crate) struct TestWallet {
    name: String,
    chain: Arc<dyn Chain>,
    state: Arc<Mutex<WalletState>>,
    seed: u8,
    /// Unloaded by its loader: every method fails from then on.
    unloaded: AtomicBool,
}

/// A coin the wallet owns.
struct OwnCoin {
    outpoint: OutPoint,
    txout: TxOut,
    /// `None` while unconfirmed.
    height: Option<u32>,
    is_coinbase: bool,
}

/// A transaction touching the wallet, with where it was confirmed.
struct Seen {
    tx: Transaction,
    block: Option<(BlockRef, u32)>,
}

impl TestWallet {
    fn new(name: &str, seed: u8, chain: Arc<dyn Chain>) -> TestWallet {
        let state = WalletState {
            keys: vec![Key::new(seed)],
            sent: Vec::new(),
            callbacks: Vec::new(),
            next_callback: 0,
        };
        TestWallet {
            name: name.to_owned(),
            chain,
            state: Arc::new(Mutex::new(state)),
            seed,
            unloaded: AtomicBool::new(false),
        }
    }

    /// Fails once the wallet is unloaded, as the real one does.
    fn check_loaded(&self) -> Result<(), InterfaceError> {
        if self.unloaded.load(Ordering::Relaxed) {
            return Err(InterfaceError::remote(
                ErrorCode::WALLET_NOT_FOUND,
                format!("Wallet \"{}\" was unloaded.", self.name),
            ));
        }
        Ok(())
    }

    fn scripts(&self) -> Vec<ScriptBuf> {
        lock(&self.state).keys.iter().map(Key::script).collect()
    }

    /// Every transaction touching the wallet: those in active blocks (read through the
    /// `Chain`), then those it sent that are still unconfirmed.
    fn history(&self) -> Result<Vec<Seen>, InterfaceError> {
        let scripts = self.scripts();
        let mut seen = Vec::new();
        let mut mine: HashMap<OutPoint, ()> = HashMap::new();
        let height = self.chain.get_height()?.unwrap_or(0);
        for h in 1..=height {
            let hash = self
                .chain
                .get_block_hash(h)?
                .ok_or_else(|| InterfaceError::remote(ErrorCode::MISC_ERROR, "chain shrank"))?;
            let found = self.chain.find_block(&hash, BlockWhat::Full)?;
            let Some(block) = found.and_then(|f| f.block) else {
                continue;
            };
            let block = block.to_block()?;
            for tx in &block.txdata {
                let txid = tx.compute_txid();
                let pays = tx.output.iter().any(|o| scripts.contains(&o.script_pubkey));
                let spends = tx
                    .input
                    .iter()
                    .any(|i| mine.contains_key(&i.previous_output));
                for (vout, o) in tx.output.iter().enumerate() {
                    if scripts.contains(&o.script_pubkey) {
                        mine.insert(
                            OutPoint {
                                txid,
                                vout: vout as u32,
                            },
                            (),
                        );
                    }
                }
                if pays || spends {
                    seen.push(Seen {
                        tx: tx.clone(),
                        block: Some((BlockRef { hash, height: h }, block.header.time)),
                    });
                }
            }
        }
        let confirmed: Vec<Txid> = seen.iter().map(|s| s.tx.compute_txid()).collect();
        for tx in lock(&self.state).sent.iter() {
            if !confirmed.contains(&tx.compute_txid())
                && self.chain.is_in_mempool(&tx.compute_txid())?
            {
                seen.push(Seen {
                    tx: tx.clone(),
                    block: None,
                });
            }
        }
        Ok(seen)
    }

    /// The wallet's unspent coins, checked with `Chain::find_coins`.
    fn coins(&self, history: &[Seen]) -> Result<Vec<OwnCoin>, InterfaceError> {
        let scripts = self.scripts();
        let mut candidates = Vec::new();
        for seen in history {
            let txid = seen.tx.compute_txid();
            for (vout, o) in seen.tx.output.iter().enumerate() {
                if scripts.contains(&o.script_pubkey) {
                    candidates.push(OutPoint {
                        txid,
                        vout: vout as u32,
                    });
                }
            }
        }
        let found = self.chain.find_coins(&candidates)?;
        Ok(candidates
            .into_iter()
            .zip(found)
            .filter_map(|(outpoint, coin)| {
                let coin = coin?;
                Some(OwnCoin {
                    outpoint,
                    txout: coin.txout,
                    height: coin.height,
                    is_coinbase: coin.is_coinbase,
                })
            })
            .collect())
    }

    fn spendable(coin: &OwnCoin, tip: u32) -> bool {
        match coin.height {
            None => false,
            Some(h) => !coin.is_coinbase || tip + 1 - h >= COINBASE_MATURITY,
        }
    }

    fn notify(&self, txid: &Txid, change: ChangeType) {
        let callbacks: Vec<_> = lock(&self.state)
            .callbacks
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        for callback in callbacks {
            callback(txid, change);
        }
    }
}

impl Wallet for TestWallet {
    fn get_wallet_name(&self) -> Result<String, InterfaceError> {
        self.check_loaded()?;
        Ok(self.name.clone())
    }

    fn get_new_address(&self) -> Result<Address<NetworkUnchecked>, InterfaceError> {
        self.check_loaded()?;
        let mut state = lock(&self.state);
        let key = Key::new(
            self.seed
                .wrapping_mul(16)
                .wrapping_add(state.keys.len() as u8)
                .wrapping_add(100),
        );
        let address = key.address(Network::Regtest).into_unchecked();
        state.keys.push(key);
        Ok(address)
    }

    fn get_balances(&self) -> Result<Balances, InterfaceError> {
        self.check_loaded()?;
        let history = self.history()?;
        let tip = self.chain.get_height()?.unwrap_or(0);
        let mut balances = Balances::default();
        for coin in self.coins(&history)? {
            let value = coin.txout.value;
            match coin.height {
                Some(_) if !Self::spendable(&coin, tip) => balances.immature += value,
                Some(_) => balances.trusted += value,
                // Unconfirmed outputs are change of the wallet's own transactions.
                None => balances.trusted += value,
            }
        }
        Ok(balances)
    }

    fn list_transactions(&self) -> Result<Vec<WalletTx>, InterfaceError> {
        self.check_loaded()?;
        let scripts = self.scripts();
        let history = self.history()?;
        let mut outputs: HashMap<OutPoint, Amount> = HashMap::new();
        let mut listed = Vec::new();
        for seen in history {
            let txid = seen.tx.compute_txid();
            let debit = seen
                .tx
                .input
                .iter()
                .filter_map(|i| outputs.get(&i.previous_output))
                .fold(Amount::ZERO, |a, b| a + *b);
            let all_ours = !seen.tx.is_coinbase()
                && seen
                    .tx
                    .input
                    .iter()
                    .all(|i| outputs.contains_key(&i.previous_output));
            let txout_is_mine: Vec<bool> = seen
                .tx
                .output
                .iter()
                .map(|o| scripts.contains(&o.script_pubkey))
                .collect();
            // The wallet's own sends pay their change to its main key.
            let main = Key::new(self.seed).script();
            let txout_is_change: Vec<bool> = seen
                .tx
                .output
                .iter()
                .map(|o| debit > Amount::ZERO && o.script_pubkey == main)
                .collect();
            let credit = seen
                .tx
                .output
                .iter()
                .filter(|o| scripts.contains(&o.script_pubkey))
                .map(|o| o.value)
                .fold(Amount::ZERO, |a, b| a + b);
            for (vout, o) in seen.tx.output.iter().enumerate() {
                if scripts.contains(&o.script_pubkey) {
                    outputs.insert(
                        OutPoint {
                            txid,
                            vout: vout as u32,
                        },
                        o.value,
                    );
                }
            }
            let total_out = seen
                .tx
                .output
                .iter()
                .map(|o| o.value)
                .fold(Amount::ZERO, |a, b| a + b);
            listed.push(WalletTx {
                fee: all_ours.then(|| debit - total_out),
                credit,
                debit,
                txout_is_mine,
                txout_is_change,
                block: seen.block.map(|(b, _)| b),
                time: seen.block.map_or(0, |(_, time)| time.into()),
                tx: seen.tx,
            });
        }
        Ok(listed)
    }

    fn send_to_address(
        &self,
        address: &Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, InterfaceError> {
        self.check_loaded()?;
        if !address.is_valid_for_network(Network::Regtest) {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_ADDRESS_OR_KEY,
                "Invalid address for this network",
            ));
        }
        if amount < DUST {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                "Transaction amount too small",
            ));
        }
        let min = self.chain.relay_min_fee()?;
        let fee_rate = fee_rate.unwrap_or(min);
        if fee_rate < min {
            return Err(InterfaceError::remote(
                ErrorCode::INVALID_PARAMETER,
                "Fee rate is below the minimum relay fee rate",
            ));
        }
        let fee = fee_rate.fee_vb(SEND_VSIZE).ok_or_else(|| {
            InterfaceError::remote(ErrorCode::INVALID_PARAMETER, "Fee rate too high")
        })?;
        let tip = self.chain.get_height()?.unwrap_or(0);
        let history = self.history()?;
        let main = Key::new(self.seed);
        let coin = self
            .coins(&history)?
            .into_iter()
            .filter(|c| c.txout.script_pubkey == main.script() && Self::spendable(c, tip))
            .find(|c| {
                amount
                    .checked_add(fee)
                    .is_some_and(|need| c.txout.value >= need + DUST)
            })
            .ok_or_else(|| {
                InterfaceError::remote(ErrorCode::WALLET_INSUFFICIENT_FUNDS, "Insufficient funds")
            })?;
        let change = coin.txout.value - amount - fee;
        let outputs = vec![
            TxOut {
                value: amount,
                script_pubkey: address.assume_checked_ref().script_pubkey(),
            },
            TxOut {
                value: change,
                script_pubkey: main.script(),
            },
        ];
        let tx = signed_tx(&main, &[(coin.outpoint, coin.txout.value)], outputs);
        self.chain.broadcast_transaction(&tx, FeeRate::ZERO)?;
        let txid = tx.compute_txid();
        lock(&self.state).sent.push(tx);
        self.notify(&txid, ChangeType::New);
        Ok(txid)
    }

    fn handle_transaction_changed(
        &self,
        callback: TransactionChangedFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        self.check_loaded()?;
        let mut state = lock(&self.state);
        let id = state.next_callback;
        state.next_callback += 1;
        state.callbacks.push((id, callback));
        Ok(Box::new(CallbackHandler {
            state: Arc::downgrade(&self.state),
            id,
        }))
    }
}

/// Unregisters a transaction-changed callback when disconnected or dropped.
struct CallbackHandler {
    state: std::sync::Weak<Mutex<WalletState>>,
    id: u64,
}

impl CallbackHandler {
    fn remove(&self) {
        if let Some(state) = self.state.upgrade() {
            let removed: Vec<_> = {
                let mut state = lock(&state);
                let (removed, kept) = std::mem::take(&mut state.callbacks)
                    .into_iter()
                    .partition(|(i, _)| *i == self.id);
                state.callbacks = kept;
                removed
            };
            drop(removed);
        }
    }
}

impl Handler for CallbackHandler {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        self.remove();
        Ok(())
    }
}

impl Drop for CallbackHandler {
    fn drop(&mut self) {
        self.remove();
    }
}
