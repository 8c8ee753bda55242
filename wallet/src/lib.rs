//! The core of `bitcoin-wallet`: descriptor wallets on [`bdk_wallet`] with SQLite
//! persistence, kept in step with the node by the `ChainNotifications` callbacks, and the
//! operations front ends reach through the `Wallet` and `WalletLoader` interfaces.
//!
//! Two layers:
//! - The interfaces, for the other processes: [`WalletInit`] hands out the
//!   [`WalletLoaderImpl`] (`interfaces::WalletLoader`), which hands out [`WalletImpl`]s
//!   (`interfaces::Wallet`) and keeps every loaded wallet subscribed to the chain's
//!   notifications. They work the same on the node's `Chain` and on its proxy.
//! - The wallet core underneath: [`WalletStore`] (create, load, list wallets on disk) and
//!   [`Wallet`] (addresses, balances, history, sending, change subscriptions, the
//!   notification methods and [`Wallet::sync_with_chain`]).
//!
//! # Invariants
//! - Nothing leaves a wallet before it is on disk: an address is persisted before it is
//!   returned, a transaction is committed and persisted before it is handed out for
//!   broadcasting. A `kill -9` at any moment never reuses an address or loses a spend.
//! - A wallet's database is held by exactly one connection (SQLite's exclusive lock), so two
//!   processes cannot both write one wallet.
//! - Balances and coin selection share one rule for what is spendable: the trusted balance
//!   is exactly what `send_to_address` may spend.
//! - The wallet reads the chain only through [`ChainSource`] and the notification methods.

mod cli;
mod coins;
mod error;
mod history;
mod keys;
mod notify;
mod send;
mod service;
mod store;
mod sync;
mod wallet;

pub use cli::{Args, CliExit, one_line};
pub use error::WalletError;
pub use history::{Category, TransactionEntry};
pub use notify::{Handler, MAX_QUEUED_CHANGES, MAX_SUBSCRIBERS};
pub use send::parse_address;
pub use service::{WalletImpl, WalletInit, WalletLoaderImpl, interface_error};
pub use store::{
    DATABASE_FILE, DEFAULT_WALLET, MAX_LOADED_WALLETS, WalletStore, chain_dir_name,
    check_wallet_name,
};
pub use sync::ChainSource;
pub use wallet::Wallet;
