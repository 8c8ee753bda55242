//! `Mining` and `BlockTemplate` (template client → node), after Core's
//! `src/interfaces/mining.h` (the Stratum v2 template provider's interface).

use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Block, BlockHash, Script, Transaction, TxMerkleNode, block};

use crate::{BlockRef, InterfaceError};

/// Block templates and tip changes for a miner (Core's `interfaces::Mining`).
pub trait Mining: Send + Sync {
    /// The active chain's tip, `None` while the node has no blocks.
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError>;

    /// Waits until the tip is no longer `current` or `timeout` has passed, and returns the
    /// tip then (still `current` on timeout). `None` when the node is shutting down.
    fn wait_tip_changed(
        &self,
        current: &BlockHash,
        timeout: Duration,
    ) -> Result<Option<BlockRef>, InterfaceError>;

    /// A new block template on the current tip, filled from the mempool by fee rate, whose
    /// coinbase pays subsidy and fees to `coinbase_script`.
    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError>;
}

/// A block ready to be mined (Core's `interfaces::BlockTemplate`).
pub trait BlockTemplate: Send + Sync {
    /// The template's header, with the merkle root of the template's transactions and a
    /// zero nonce.
    fn get_block_header(&self) -> Result<block::Header, InterfaceError>;

    /// The whole template block.
    fn get_block(&self) -> Result<Block, InterfaceError>;

    /// The template's coinbase transaction.
    fn get_coinbase_tx(&self) -> Result<Transaction, InterfaceError>;

    /// The merkle branch from the coinbase to the root: the sibling hashes, bottom up, that
    /// a miner combines with a changed coinbase's txid to recompute the merkle root.
    fn get_coinbase_merkle_path(&self) -> Result<Vec<TxMerkleNode>, InterfaceError>;

    /// Submits a solved block: the template with this header `version`, `time` and
    /// `nonce`, and `coinbase` in place of the template's coinbase. `Ok(true)` when the node
    /// accepted and connected it, `Ok(false)` when it failed validation.
    fn submit_solution(
        &self,
        version: block::Version,
        time: u32,
        nonce: u32,
        coinbase: &Transaction,
    ) -> Result<bool, InterfaceError>;
}
