//! The one error type of the wallet core. Each variant names the offending value where one
//! exists, so the message alone tells a user (or a front end across the IPC boundary) what
//! to fix.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use bdk_wallet::rusqlite;
use bitcoin::{Amount, BlockHash, FeeRate, Network, Txid};

/// Why a wallet operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WalletError {
    /// A wallet name that cannot be a directory name (empty, `.`/`..`, a path separator,
    /// or characters outside `[A-Za-z0-9._-]`, or longer than 64 bytes).
    InvalidName {
        /// The name given.
        name: String,
    },
    /// `create_wallet` for a name that already has a wallet on disk.
    AlreadyExists {
        /// The wallet's name.
        name: String,
    },
    /// `load_wallet` for a name with no wallet on disk.
    NotFound {
        /// The wallet's name.
        name: String,
    },
    /// `load_wallet` for a wallet this process has already loaded.
    AlreadyLoaded {
        /// The wallet's name.
        name: String,
    },
    /// Another process (or another loader in this one) holds the wallet's database.
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database refused an operation.
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// The file system refused an operation.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The database holds data this wallet cannot use (wrong network, descriptors that do not
    /// match the stored key, missing tables).
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The text given as an address is not an address.
    InvalidAddress {
        /// The text given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The address is valid but belongs to another network.
    WrongNetwork {
        /// The address given.
        address: String,
        /// The wallet's network.
        expected: Network,
    },
    /// The amount is below the dust threshold of the destination's script.
    Dust {
        /// The amount requested.
        amount: Amount,
        /// The smallest amount relayed for that script.
        threshold: Amount,
    },
    /// The spendable (trusted, mature) coins do not cover amount plus fee.
    InsufficientFunds {
        /// Amount plus fee.
        needed: Amount,
        /// What the wallet could spend.
        available: Amount,
    },
    /// The amount is above the 21 million BTC that can ever exist (`MAX_MONEY`).
    AmountOutOfRange {
        /// The amount requested.
        amount: Amount,
    },
    /// The fee rate asked for is 1 BTC/kvB or more, which Bitcoin Core's wallet refuses too.
    FeeRateTooHigh {
        /// The fee rate asked for.
        fee_rate: FeeRate,
    },
    /// The fee rate asked for is below the node's minimum relay fee rate.
    FeeRateTooLow {
        /// The fee rate asked for.
        fee_rate: FeeRate,
        /// The node's minimum.
        minimum: FeeRate,
    },
    /// Building the transaction failed for a reason not listed above.
    CreateTransaction {
        /// What the transaction builder reported.
        reason: String,
    },
    /// The wallet could not produce a complete, valid signature set for its own transaction.
    Sign {
        /// What failed.
        reason: String,
    },
    /// No wallet transaction has this id, or it is not in a state that allows the operation
    /// (for example abandoning a confirmed transaction).
    UnknownTransaction {
        /// The transaction id.
        txid: Txid,
    },
    /// A connected block whose parent is not in the wallet's chain: notifications were missed
    /// and the wallet must catch up from the chain first.
    BlockDoesNotConnect {
        /// The block's height.
        height: u32,
        /// The block's hash.
        hash: BlockHash,
        /// The block's parent.
        prev_blockhash: BlockHash,
    },
    /// The chain does not have a block it just named, or its tip dropped below a height it
    /// just reported (it reorganised meanwhile).
    BlockNotFound {
        /// The block's height.
        height: u32,
        /// The block's hash; all zeros when the height itself is gone.
        hash: BlockHash,
    },
    /// The chain has no block in common with the wallet (a wallet of another chain).
    NoCommonBlock,
    /// During a catch-up, the wallet's own chain changed under it (a notification or another
    /// catch-up rewound it): the fork found is no longer the wallet's block. Retried.
    ForkMoved {
        /// The fork's height.
        height: u32,
        /// The fork's hash.
        hash: BlockHash,
    },
    /// The chain source failed (for the IPC chain: the node went away).
    Chain(Box<dyn StdError + Send + Sync>),
    /// A thread panicked while changing the wallet; its in-memory state may be half-updated.
    /// The database is consistent: reload the wallet.
    Poisoned,
    /// A handle on a wallet that has been unloaded since it was handed out.
    Unloaded {
        /// The wallet's name.
        name: String,
    },
    /// `handle_transaction_changed` with [`MAX_SUBSCRIBERS`](crate::MAX_SUBSCRIBERS)
    /// subscribed already.
    TooManySubscribers {
        /// The limit.
        limit: usize,
    },
    /// A subscriber's delivery thread could not be started.
    NoThread(io::Error),
    /// The chain sent something no valid chain holds (a block whose transactions do not
    /// match its header, impossible amounts); it is refused.
    InvalidFromChain {
        /// What it sent.
        reason: String,
    },
    /// `create_wallet` or `load_wallet` with
    /// [`MAX_LOADED_WALLETS`](crate::MAX_LOADED_WALLETS) loaded already.
    TooManyWallets {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for WalletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name } => write!(
                f,
                "invalid wallet name {name:?}: use 1 to 64 characters from [A-Za-z0-9._-], not \".\" or \"..\""
            ),
            Self::AlreadyExists { name } => write!(f, "wallet {name:?} already exists"),
            Self::NotFound { name } => write!(f, "wallet {name:?} not found"),
            Self::AlreadyLoaded { name } => write!(f, "wallet {name:?} is already loaded"),
            Self::Locked { path } => write!(
                f,
                "wallet database {} is in use by another process",
                path.display()
            ),
            Self::Database { path, source } => {
                write!(f, "wallet database {}: {source}", path.display())
            }
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Corrupt { path, reason } => {
                write!(
                    f,
                    "wallet database {} is unusable: {reason}",
                    path.display()
                )
            }
            Self::InvalidAddress { address, reason } => {
                write!(f, "invalid address {address:?}: {reason}")
            }
            Self::WrongNetwork { address, expected } => {
                write!(f, "address {address} is not valid on {expected}")
            }
            Self::Dust { amount, threshold } => write!(
                f,
                "amount {amount} is dust: the smallest amount relayed to this address is {threshold}"
            ),
            Self::InsufficientFunds { needed, available } => {
                write!(
                    f,
                    "insufficient funds: {needed} needed, {available} available"
                )
            }
            Self::AmountOutOfRange { amount } => {
                write!(
                    f,
                    "amount {amount} is out of range: at most {}",
                    Amount::MAX_MONEY
                )
            }
            Self::FeeRateTooHigh { fee_rate } => write!(
                f,
                "fee rate {} sat/kvB is too high: rates of 1 BTC/kvB or more are not accepted",
                sat_per_kvb(*fee_rate)
            ),
            Self::FeeRateTooLow { fee_rate, minimum } => write!(
                f,
                "fee rate {} sat/kvB is below the minimum relay fee rate {} sat/kvB",
                sat_per_kvb(*fee_rate),
                sat_per_kvb(*minimum)
            ),
            Self::CreateTransaction { reason } => write!(f, "cannot build transaction: {reason}"),
            Self::Sign { reason } => write!(f, "cannot sign transaction: {reason}"),
            Self::UnknownTransaction { txid } => {
                write!(f, "no unconfirmed wallet transaction {txid}")
            }
            Self::BlockDoesNotConnect {
                height,
                hash,
                prev_blockhash,
            } => write!(
                f,
                "block {hash} at height {height} does not connect: parent {prev_blockhash} is not the wallet's block at height {}",
                height.saturating_sub(1)
            ),
            Self::BlockNotFound { height, hash } => {
                write!(f, "the chain has no block {hash} (height {height})")
            }
            Self::NoCommonBlock => write!(f, "the chain has no block in common with the wallet"),
            Self::ForkMoved { height, hash } => write!(
                f,
                "the wallet's chain changed during a catch-up: block {hash} at height {height} is no longer its own"
            ),
            Self::Chain(err) => write!(f, "chain: {err}"),
            Self::Poisoned => write!(
                f,
                "wallet state is unusable after a panic in another thread; reload the wallet"
            ),
            Self::Unloaded { name } => write!(
                f,
                "wallet {name:?} was unloaded; load it again for a new handle"
            ),
            Self::TooManySubscribers { limit } => {
                write!(
                    f,
                    "too many transaction-changed subscribers (limit {limit})"
                )
            }
            Self::NoThread(source) => write!(f, "cannot start a notification thread: {source}"),
            Self::InvalidFromChain { reason } => write!(f, "the chain sent {reason}"),
            Self::TooManyWallets { limit } => {
                write!(f, "too many wallets loaded (limit {limit})")
            }
        }
    }
}

impl StdError for WalletError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Database { source, .. } => Some(source),
            Self::Io { source, .. } | Self::NoThread(source) => Some(source),
            Self::Chain(err) => Some(err.as_ref()),
            _ => None,
        }
    }
}

/// Fee rates are shown in Bitcoin Core's unit, satoshis per 1000 virtual bytes.
fn sat_per_kvb(rate: FeeRate) -> u64 {
    rate.to_sat_per_kwu().saturating_mul(4)
}

/// Maps a SQLite error on `path` to [`WalletError`]: a busy or locked database means another
/// connection holds our exclusive lock.
pub(crate) fn db_error(path: &std::path::Path, source: rusqlite::Error) -> WalletError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match source.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => WalletError::Locked {
            path: path.to_owned(),
        },
        _ => WalletError::Database {
            path: path.to_owned(),
            source,
        },
    }
}
