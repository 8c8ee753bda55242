//! `Node` (front end → node), after Core's `src/interfaces/node.h`.

use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, BlockHash, FeeRate, Transaction, Txid, Work};

use crate::{BlockRef, FoundBlock, Handler, InterfaceError, WalletLoader};

/// The active chain's tip (what `getblockchaininfo` reports about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipInfo {
    /// The tip's height.
    pub height: u32,
    /// The tip's hash.
    pub hash: BlockHash,
    /// The tip's header time (Unix seconds).
    pub time: u32,
    /// Median time past at the tip.
    pub median_time_past: u32,
    /// Total proof of work of the active chain up to and including the tip.
    pub chain_work: Work,
}

/// The mempool's state (what `getmempoolinfo` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: u64,
    /// Sum of the transactions' virtual sizes.
    pub bytes: u64,
    /// Memory the mempool uses, in bytes (an estimate).
    pub usage: u64,
    /// Sum of the transactions' fees.
    pub total_fee: Amount,
    /// The lowest fee rate the mempool currently accepts.
    pub mempool_min_fee: FeeRate,
    /// The lowest fee rate relayed (`-minrelaytxfee`).
    pub min_relay_tx_fee: FeeRate,
}

/// A transaction the node found, with the block that confirmed it if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// The active-chain block containing it; `None` while it is in the mempool.
    pub block: Option<BlockRef>,
}

/// Called with the new tip each time the active chain's tip changes.
pub type NotifyBlockTipFn = Arc<dyn Fn(&TipInfo) + Send + Sync>;

/// The node as a front end sees it (Core's `interfaces::Node`).
pub trait Node: Send + Sync {
    /// The active chain's tip.
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError>;

    /// Hash of the active chain's block at `height`, `None` above the tip.
    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError>;

    /// The block with this hash (its [`FoundBlock::block`] is always `Some`), `None` when
    /// the node does not have it.
    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError>;

    /// The mempool's state.
    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError>;

    /// A transaction in the mempool or in an active-chain block, `None` when unknown.
    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError>;

    /// Validates `tx`, adds it to the mempool and returns its txid (`sendrawtransaction`).
    /// Rejections are as for [`Chain::broadcast_transaction`](crate::Chain::broadcast_transaction),
    /// whose `max_fee_rate` rule applies too.
    fn send_raw_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Txid, InterfaceError>;

    /// Mines `n` blocks paying to `address` (regtest only; `generatetoaddress`) and returns
    /// their hashes. An address of another network is
    /// [`ErrorCode::INVALID_ADDRESS_OR_KEY`](crate::ErrorCode).
    fn generate_to_address(
        &self,
        n: u32,
        address: &Address<NetworkUnchecked>,
    ) -> Result<Vec<BlockHash>, InterfaceError>;

    /// The wallet process's loader, whether the node spawned the wallet or the wallet
    /// connected. [`ErrorCode::WALLET_NOT_FOUND`](crate::ErrorCode) when no wallet process
    /// is attached.
    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError>;

    /// Asks the node to shut down (`stop`); returns before the node has finished.
    fn shutdown(&self) -> Result<(), InterfaceError>;

    /// Calls `callback` with the new tip after each tip change, until the returned
    /// [`Handler`] is disconnected or dropped.
    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError>;
}
