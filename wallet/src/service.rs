//! The wallet process's side of the interfaces: [`WalletInit`] (`Init::make_wallet_loader`),
//! [`WalletLoaderImpl`] (`WalletLoader`), [`WalletImpl`] (`Wallet`), and the
//! `ChainNotifications` subscriber that keeps every loaded wallet in step with the node.
//! The names follow Bitcoin Core's `src/wallet/interfaces.cpp`.
//!
//! These are thin: each method maps to the wallet core and turns a [`WalletError`] into an
//! [`InterfaceError`] with Bitcoin Core's RPC error code. They work the same whether the
//! `Chain` is the node's own object (in-process) or a proxy across a connection.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, Block, FeeRate, Transaction, Txid};
use interfaces::{
    Balances, BlockRef, Chain, ChainNotifications, ErrorCode, Handler, Init, InterfaceError,
    RemovalReason, TransactionChangedFn, WalletTx,
};

use crate::error::WalletError;
use crate::store::WalletStore;
use crate::wallet::Wallet;

/// Fee rate when the caller gives none and the node has no estimate: 0.0002 BTC/kvB, the
/// `-fallbackfee` Bitcoin Core's regtest test framework configures.
const FALLBACK_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(5_000);

/// Confirmation target for the node's fee estimate.
const FEE_ESTIMATE_TARGET: u32 = 6;

/// Highest fee rate the wallet lets the node accept from it: Core's
/// `DEFAULT_MAX_RAW_TX_FEE_RATE`, 0.1 BTC/kvB.
const MAX_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(2_500_000);

/// The wallet process's `Init`: hands the node (or a front end) a wallet loader bound to
/// the chain the caller passes. Each call binds a new loader to that chain over the same
/// wallets (after a reconnection, the new connection's chain). The latest loader is kept
/// alive here, and with it its subscription to the chain's notifications, even when the
/// caller drops its handle. An earlier one stops following its chain, since the latest
/// keeps every wallet in step (two would apply each block twice: in connect mode both the
/// wallet and the node make a loader); it serves calls while someone holds it.
#[derive(Debug)]
pub struct WalletInit {
    store: Arc<WalletStore>,
    default_wallet: String,
    current: Mutex<Option<Arc<WalletLoaderImpl>>>,
    /// Held while a loader starts. In connect mode the wallet binds a loader itself while
    /// the node asks for one: started together on a fresh datadir, both would find no
    /// default wallet, and one would fail creating it (or a wallet just created, before its
    /// birthday is set, would be caught up from genesis).
    starting: Mutex<()>,
}

impl WalletInit {
    /// An `Init` over the wallets of `store` that loads (or creates) `default_wallet` when
    /// a loader is made.
    pub fn new(store: WalletStore, default_wallet: String) -> Self {
        Self {
            store: Arc::new(store),
            default_wallet,
            current: Mutex::default(),
            starting: Mutex::default(),
        }
    }
}

impl Init for WalletInit {
    fn make_wallet_loader(
        &self,
        chain: Arc<dyn Chain>,
    ) -> Result<Arc<dyn interfaces::WalletLoader>, InterfaceError> {
        let _starting = self.starting.lock().unwrap_or_else(PoisonError::into_inner);
        let loader = WalletLoaderImpl::start(Arc::clone(&self.store), chain, &self.default_wallet)
            .map_err(interface_error)?;
        let previous = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Arc::clone(&loader));
        if let Some(previous) = previous {
            previous.stop_following();
        }
        Ok(loader)
    }
}

/// The `WalletLoader`: the wallets of one data directory, synced with one chain.
pub struct WalletLoaderImpl {
    store: Arc<WalletStore>,
    chain: Arc<dyn Chain>,
    default_wallet: String,
    /// Keeps the chain's notifications flowing to the loaded wallets; dropped with us.
    subscription: Mutex<Option<Box<dyn Handler>>>,
}

impl std::fmt::Debug for WalletLoaderImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletLoaderImpl")
            .field("store", &self.store)
            .field("default_wallet", &self.default_wallet)
            .finish_non_exhaustive()
    }
}

impl WalletLoaderImpl {
    /// Subscribes to `chain`'s notifications, then loads (or creates) `default_wallet` and
    /// brings it and every other loaded wallet to the chain's tip. Subscribing first means
    /// no block falls between the catch-up and the notifications (see
    /// [`Wallet::sync_with_chain`]).
    pub fn start(
        store: Arc<WalletStore>,
        chain: Arc<dyn Chain>,
        default_wallet: &str,
    ) -> Result<Arc<Self>, WalletError> {
        let loader = Arc::new(Self {
            store,
            chain: Arc::clone(&chain),
            default_wallet: default_wallet.to_owned(),
            subscription: Mutex::default(),
        });
        let notifications = Arc::new(Notifications {
            loader: Arc::downgrade(&loader),
        });
        let subscription = chain
            .handle_notifications(notifications)
            .map_err(|err| WalletError::Chain(Box::new(err)))?;
        *loader
            .subscription
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(subscription);
        // Loaded already (here, or by a front end's `loadwallet` or `createwallet` that got
        // there first) is as good as loaded now.
        match loader.store.load_wallet(default_wallet) {
            Err(WalletError::NotFound { .. }) => match loader.create(default_wallet) {
                Ok(_) => {}
                Err(WalletError::AlreadyExists { .. })
                    if loader.store.get_wallet(default_wallet).is_some() => {}
                Err(err) => return Err(err),
            },
            Ok(_) | Err(WalletError::AlreadyLoaded { .. }) => {}
            Err(err) => return Err(err),
        }
        for wallet in loader.store.get_wallets() {
            match wallet
                .sync_with_chain(&*chain)
                .and_then(|_| resubmit(&wallet, &*chain))
            {
                // Unloaded by a front end meanwhile: no longer ours to bring up to date.
                Ok(()) | Err(WalletError::Unloaded { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(loader)
    }

    /// Stops following the chain's notifications (a later loader does); the wallets stay
    /// usable through this one.
    fn stop_following(&self) {
        let subscription = self
            .subscription
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Dropping the handler unsubscribes.
        drop(subscription);
    }

    /// The store of wallets, for the process's own use.
    pub fn store(&self) -> &WalletStore {
        &self.store
    }

    /// Creates wallet `name`, born at the chain's current tip (see [`Wallet::set_birthday`]).
    fn create(&self, name: &str) -> Result<Arc<Wallet>, WalletError> {
        let chain_err = |err: InterfaceError| WalletError::Chain(Box::new(err));
        let wallet = self.store.create_wallet(name)?;
        if let Some(height) = self.chain.get_height().map_err(chain_err)?
            && let Some(hash) = self.chain.get_block_hash(height).map_err(chain_err)?
        {
            wallet.set_birthday(BlockRef { hash, height })?;
        }
        Ok(wallet)
    }

    fn wrap(&self, wallet: Arc<Wallet>) -> Arc<dyn interfaces::Wallet> {
        Arc::new(WalletImpl {
            wallet,
            chain: Arc::clone(&self.chain),
        })
    }

    /// Brings a wallet just created or loaded to the chain's tip and hands its payments
    /// the node lacks to the node again (as at start: a wallet unloaded between a payment
    /// and its broadcast, or loaded after a node restart, has some).
    fn synced(&self, wallet: Arc<Wallet>) -> Result<Arc<dyn interfaces::Wallet>, InterfaceError> {
        wallet
            .sync_with_chain(&*self.chain)
            .and_then(|_| resubmit(&wallet, &*self.chain))
            .map_err(interface_error)?;
        Ok(self.wrap(wallet))
    }
}

impl interfaces::WalletLoader for WalletLoaderImpl {
    fn create_wallet(&self, name: &str) -> Result<Arc<dyn interfaces::Wallet>, InterfaceError> {
        let wallet = self.create(name).map_err(interface_error)?;
        self.synced(wallet)
    }

    fn load_wallet(&self, name: &str) -> Result<Arc<dyn interfaces::Wallet>, InterfaceError> {
        let wallet = self.store.load_wallet(name).map_err(interface_error)?;
        self.synced(wallet)
    }

    fn list_wallets(&self) -> Result<Vec<String>, InterfaceError> {
        Ok(self.store.list_wallets())
    }

    fn get_wallet(&self, name: &str) -> Result<Arc<dyn interfaces::Wallet>, InterfaceError> {
        let wallet = self.store.get_wallet(name).ok_or_else(|| {
            interface_error(WalletError::NotFound {
                name: name.to_owned(),
            })
        })?;
        Ok(self.wrap(wallet))
    }

    fn get_default_wallet(&self) -> Result<Arc<dyn interfaces::Wallet>, InterfaceError> {
        self.get_wallet(&self.default_wallet)
    }

    fn unload_wallet(&self, name: &str) -> Result<(), InterfaceError> {
        self.store.unload_wallet(name).map_err(interface_error)
    }
}

/// One loaded wallet as the `Wallet` interface: the core plus the chain it broadcasts to.
pub struct WalletImpl {
    wallet: Arc<Wallet>,
    chain: Arc<dyn Chain>,
}

impl std::fmt::Debug for WalletImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletImpl")
            .field("wallet", &self.wallet)
            .finish_non_exhaustive()
    }
}

impl WalletImpl {
    /// Answers reflect every block the node has connected, as a caller who just mined expects.
    fn block_until_synced(&self) -> Result<(), InterfaceError> {
        self.wallet
            .block_until_synced(&*self.chain)
            .map_err(interface_error)
    }
}

impl interfaces::Wallet for WalletImpl {
    fn get_wallet_name(&self) -> Result<String, InterfaceError> {
        self.wallet.check_loaded().map_err(interface_error)?;
        Ok(self.wallet.name().to_owned())
    }

    fn get_new_address(&self) -> Result<Address<NetworkUnchecked>, InterfaceError> {
        let address = self.wallet.get_new_address().map_err(interface_error)?;
        Ok(address.into_unchecked())
    }

    fn get_balances(&self) -> Result<Balances, InterfaceError> {
        self.block_until_synced()?;
        self.wallet.get_balances().map_err(interface_error)
    }

    fn list_transactions(&self) -> Result<Vec<WalletTx>, InterfaceError> {
        self.block_until_synced()?;
        self.wallet.get_wallet_txs().map_err(interface_error)
    }

    /// Builds, signs and commits the payment, then broadcasts it; a payment the node
    /// refuses is abandoned so its coins are free again, and the node's error returned. One
    /// whose broadcast got no answer is kept (the node may have it) and resubmitted at the
    /// next start if the node lacks it.
    fn send_to_address(
        &self,
        address: &Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, InterfaceError> {
        // Coins of the latest blocks are spendable, and coins they spent are not.
        self.block_until_synced()?;
        let minimum = self.chain.relay_min_fee()?;
        let fee_rate = match fee_rate {
            Some(rate) => rate,
            None => self
                .chain
                .estimate_fee_rate(FEE_ESTIMATE_TARGET)?
                .unwrap_or(FALLBACK_FEE_RATE)
                .max(minimum),
        };
        let tx = self
            .wallet
            .send_to_address(address, amount, fee_rate, minimum)
            .map_err(interface_error)?;
        let txid = tx.compute_txid();
        match self.chain.broadcast_transaction(&tx, MAX_FEE_RATE) {
            Ok(()) => Ok(txid),
            // The node answered no: the payment will never confirm, so its coins are freed.
            Err(err @ InterfaceError::Remote { .. }) => {
                tracing::warn!(%txid, error = %err, "node refused the payment; abandoning it");
                if let Err(abandon) = self.wallet.abandon_transaction(txid) {
                    tracing::error!(%txid, error = %abandon, "cannot abandon refused payment");
                }
                Err(err)
            }
            // No answer (the node went away mid-call): it may have the payment. Keep it; the
            // next start resubmits it if the node lacks it, or abandons it if refused then.
            Err(err) => {
                tracing::warn!(%txid, error = %err, "payment committed; its broadcast got no answer");
                Err(err)
            }
        }
    }

    fn handle_transaction_changed(
        &self,
        callback: TransactionChangedFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let handler = self
            .wallet
            .handle_transaction_changed(callback)
            .map_err(interface_error)?;
        Ok(Box::new(handler))
    }
}

/// Hands the node every unconfirmed payment of `wallet` that its mempool lacks (Core's
/// `ResubmitWalletTransactions` at start): one committed just before a crash, or dropped
/// while the wallet was away. A payment the node refuses is abandoned, so its coins are
/// spendable again.
fn resubmit(wallet: &Wallet, chain: &dyn Chain) -> Result<(), WalletError> {
    let chain_err = |err: InterfaceError| WalletError::Chain(Box::new(err));
    // Oldest first, so a payment reaches the node before those spending its change.
    for wtx in wallet.get_wallet_txs()? {
        if wtx.block.is_some() || wtx.debit == Amount::ZERO {
            continue;
        }
        let txid = wtx.tx.compute_txid();
        if chain.is_in_mempool(&txid).map_err(chain_err)? {
            continue;
        }
        match chain.broadcast_transaction(&wtx.tx, MAX_FEE_RATE) {
            Ok(()) => tracing::info!(wallet = wallet.name(), %txid, "resubmitted payment"),
            Err(InterfaceError::Remote { message, .. }) => {
                tracing::warn!(wallet = wallet.name(), %txid, reason = %message, "node refuses payment; abandoning it");
                wallet.abandon_transaction(txid)?;
            }
            Err(err) => return Err(chain_err(err)),
        }
    }
    Ok(())
}

/// Delivers the chain's notifications to every loaded wallet.
struct Notifications {
    loader: Weak<WalletLoaderImpl>,
}

impl Notifications {
    /// Runs `apply` on every loaded wallet. A block that does not connect (notifications
    /// missed, or a wallet still catching up) makes that wallet catch up from the chain.
    /// The first failure is returned after every wallet had its turn.
    fn each(
        &self,
        apply: impl Fn(&Wallet) -> Result<(), WalletError>,
    ) -> Result<(), InterfaceError> {
        let Some(loader) = self.loader.upgrade() else {
            return Ok(());
        };
        let mut first_error = None;
        for wallet in loader.store.get_wallets() {
            let result = match apply(&wallet) {
                Err(WalletError::BlockDoesNotConnect { .. }) => {
                    wallet.sync_with_chain(&*loader.chain).map(drop)
                }
                other => other,
            };
            match result {
                // Unloaded since the list was read: it follows the chain no more.
                Ok(()) | Err(WalletError::Unloaded { .. }) => {}
                Err(err) => {
                    tracing::error!(wallet = wallet.name(), error = %err, "wallet missed a notification");
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), |err| Err(interface_error(err)))
    }
}

impl ChainNotifications for Notifications {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        self.each(|wallet| wallet.transaction_added_to_mempool(tx))
    }

    fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), InterfaceError> {
        self.each(|wallet| wallet.transaction_removed_from_mempool(tx, reason))
    }

    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.each(|wallet| wallet.block_connected(block, height))
    }

    fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.each(|wallet| wallet.block_disconnected(block, height))
    }
}

/// A wallet error as the interface reports it, with Bitcoin Core's RPC error code. An error
/// of the chain itself (the node went away) passes through unchanged.
pub fn interface_error(err: WalletError) -> InterfaceError {
    use WalletError as E;
    let code = match &err {
        E::Chain(inner) => {
            if let Some(inner) = inner.downcast_ref::<InterfaceError>() {
                return inner.clone();
            }
            ErrorCode::MISC_ERROR
        }
        E::AlreadyExists { .. } => ErrorCode::WALLET_ALREADY_EXISTS,
        E::NotFound { .. } | E::Unloaded { .. } => ErrorCode::WALLET_NOT_FOUND,
        E::AlreadyLoaded { .. } => ErrorCode::WALLET_ALREADY_LOADED,
        E::InvalidName { .. }
        | E::Dust { .. }
        | E::AmountOutOfRange { .. }
        | E::FeeRateTooHigh { .. }
        | E::FeeRateTooLow { .. } => ErrorCode::INVALID_PARAMETER,
        E::InvalidAddress { .. } | E::WrongNetwork { .. } | E::UnknownTransaction { .. } => {
            ErrorCode::INVALID_ADDRESS_OR_KEY
        }
        E::InsufficientFunds { .. } => ErrorCode::WALLET_INSUFFICIENT_FUNDS,
        E::Database { .. } | E::Io { .. } | E::Corrupt { .. } => ErrorCode::DATABASE_ERROR,
        E::Locked { .. }
        | E::CreateTransaction { .. }
        | E::Sign { .. }
        | E::TooManyWallets { .. } => ErrorCode::WALLET_ERROR,
        E::Poisoned => ErrorCode::INTERNAL_ERROR,
        _ => ErrorCode::MISC_ERROR,
    };
    InterfaceError::remote(code, err.to_string())
}
