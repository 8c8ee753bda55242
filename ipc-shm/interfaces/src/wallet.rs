//! `WalletLoader` and `Wallet` (front end or node → wallet), after Core's
//! `src/interfaces/wallet.h`.

use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, Transaction, Txid};

use crate::{BlockRef, Handler, InterfaceError};

/// A wallet's balances (`getbalances`'s `mine` section; Core's `WalletBalances`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    /// Confirmed outputs, and unconfirmed change of our own transactions.
    pub trusted: Amount,
    /// Unconfirmed outputs received from others.
    pub untrusted_pending: Amount,
    /// Coinbase outputs not yet mature (fewer than 100 confirmations).
    pub immature: Amount,
}

/// A transaction that touches the wallet (Core's `interfaces::WalletTx` and
/// `WalletTxStatus`, reduced to what `listtransactions` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletTx {
    /// The transaction.
    pub tx: Transaction,
    /// Sum of the outputs that pay to the wallet.
    pub credit: Amount,
    /// Sum of the wallet's coins that the inputs spend.
    pub debit: Amount,
    /// The fee, known when every input spends a wallet coin.
    pub fee: Option<Amount>,
    /// One entry per output of `tx`: whether it pays to the wallet.
    pub txout_is_mine: Vec<bool>,
    /// One entry per output of `tx`: whether it is change, an output of the wallet's own
    /// transaction back to its internal keychain (Core's `txout_is_change`). Change is
    /// always also `txout_is_mine`; `listtransactions` leaves it out.
    pub txout_is_change: Vec<bool>,
    /// The active-chain block that confirms it; `None` while unconfirmed.
    pub block: Option<BlockRef>,
    /// When the wallet first saw it (Unix seconds), or the block time if earlier.
    pub time: u64,
}

/// How a wallet transaction changed (Core's `ChangeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// The wallet saw the transaction for the first time.
    New,
    /// Its confirmation status changed (confirmed, reorganised out, ...).
    Updated,
    /// The wallet dropped it.
    Deleted,
}

/// Called with a txid and what happened to it each time a wallet transaction changes.
pub type TransactionChangedFn = Arc<dyn Fn(&Txid, ChangeType) + Send + Sync>;

/// Creates, loads and lists the wallets of a wallet process (Core's
/// `interfaces::WalletLoader`). Wallet names are directory names under
/// `DIR/regtest/wallets/`.
pub trait WalletLoader: Send + Sync {
    /// Creates and loads a new wallet. [`ErrorCode::WALLET_ALREADY_EXISTS`](crate::ErrorCode)
    /// when one of that name exists.
    fn create_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError>;

    /// Loads an existing wallet. [`ErrorCode::WALLET_NOT_FOUND`](crate::ErrorCode) when
    /// there is none of that name, [`ErrorCode::WALLET_ALREADY_LOADED`](crate::ErrorCode)
    /// when it is loaded already.
    fn load_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError>;

    /// Names of the loaded wallets, in load order (`listwallets`).
    fn list_wallets(&self) -> Result<Vec<String>, InterfaceError>;

    /// A loaded wallet by name. [`ErrorCode::WALLET_NOT_FOUND`](crate::ErrorCode) when no
    /// wallet of that name is loaded.
    fn get_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError>;

    /// The default wallet: the one created on first start, or chosen with `-wallet=NAME`.
    /// [`ErrorCode::WALLET_NOT_FOUND`](crate::ErrorCode) when it is not loaded.
    fn get_default_wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError>;

    /// Unloads a loaded wallet (`unloadwallet`): it leaves `list_wallets`, stops following
    /// the chain, and every handle on it still held fails from then on with
    /// [`ErrorCode::WALLET_NOT_FOUND`](crate::ErrorCode). Its database stays locked until the
    /// last handle is released, so loading it again meanwhile fails with
    /// [`ErrorCode::WALLET_ERROR`](crate::ErrorCode). `WALLET_NOT_FOUND` when no wallet of
    /// that name is loaded.
    fn unload_wallet(&self, name: &str) -> Result<(), InterfaceError>;
}

/// One loaded wallet (Core's `interfaces::Wallet`).
pub trait Wallet: Send + Sync {
    /// The wallet's name.
    fn get_wallet_name(&self) -> Result<String, InterfaceError>;

    /// A receive address never handed out before, also across restarts.
    fn get_new_address(&self) -> Result<Address<NetworkUnchecked>, InterfaceError>;

    /// The wallet's balances.
    fn get_balances(&self) -> Result<Balances, InterfaceError>;

    /// Every transaction touching the wallet, oldest first.
    fn list_transactions(&self) -> Result<Vec<WalletTx>, InterfaceError>;

    /// Builds, signs and broadcasts a transaction paying `amount` to `address`, and
    /// returns its txid. `fee_rate` `None` lets the wallet choose.
    ///
    /// Errors (all [`InterfaceError::Remote`]): an address of another network
    /// ([`ErrorCode::INVALID_ADDRESS_OR_KEY`](crate::ErrorCode)), a dust or zero amount or a
    /// fee rate below the node's minimum ([`ErrorCode::INVALID_PARAMETER`](crate::ErrorCode)),
    /// not enough funds ([`ErrorCode::WALLET_INSUFFICIENT_FUNDS`](crate::ErrorCode)), and the
    /// node's rejection as from [`Chain::broadcast_transaction`](crate::Chain::broadcast_transaction).
    fn send_to_address(
        &self,
        address: &Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, InterfaceError>;

    /// Calls `callback` each time a wallet transaction is added or changes, until the
    /// returned [`Handler`] is disconnected or dropped.
    fn handle_transaction_changed(
        &self,
        callback: TransactionChangedFn,
    ) -> Result<Box<dyn Handler>, InterfaceError>;
}
