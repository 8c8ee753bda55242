//! Bitcoin Core's process interfaces (`src/interfaces/`) as Rust traits, with proxies and
//! servers that carry them over an [`ipc_shm`] connection.
//!
//! Each interface is a synchronous, `Send + Sync` trait. An implementation lives in the
//! process that owns the state (the node implements [`Chain`], [`Node`], [`Mining`]; the
//! wallet implements [`WalletLoader`], [`Wallet`]); other processes hold the same trait
//! object backed by a proxy that forwards each call over a connection. A caller holds an
//! `Arc<dyn Trait>` and cannot tell which it has.
//!
//! Every method returns `Result<_, `[`InterfaceError`]`>`: the callee's own failures
//! ([`InterfaceError::Remote`], with Bitcoin Core's RPC [`ErrorCode`]s) and the
//! connection's ([`InterfaceError::Disconnected`], ...) come through the same channel.
//!
//! Interfaces cross the connection as objects: [`Init`] returns the others, and
//! [`Chain::handle_notifications`] takes a [`ChainNotifications`] and returns a
//! [`Handler`]; dropping the handler (or calling [`Handler::disconnect`]) unsubscribes.

mod chain;
pub mod codec;
pub mod delivery;
mod echo;
mod encoded_block;
mod error;
mod handler;
mod init;
mod mining;
mod node;
pub mod remote;
pub mod script;
mod wallet;

pub use chain::{BlockRef, BlockWhat, Chain, ChainNotifications, Coin, FoundBlock, RemovalReason};
pub use echo::Echo;
pub use encoded_block::EncodedBlock;
pub use error::{ErrorCode, InterfaceError};
pub use handler::Handler;
pub use init::Init;
pub use mining::{BlockTemplate, Mining};
pub use node::{FoundTransaction, MempoolInfo, Node, NotifyBlockTipFn, TipInfo};
pub use wallet::{Balances, ChangeType, TransactionChangedFn, Wallet, WalletLoader, WalletTx};
