//! `Chain` (wallet → node) and `ChainNotifications` (node → wallet), after Core's
//! `src/interfaces/chain.h`.

use std::sync::Arc;

use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid, block};

use crate::{EncodedBlock, Handler, InterfaceError};

/// A block identified by hash and height (Core's `interfaces::BlockRef`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// The block's hash.
    pub hash: BlockHash,
    /// The block's height; the genesis block is at 0.
    pub height: u32,
}

/// How much of a block [`Chain::find_block`] should return (Core's `FoundBlock` selectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockWhat {
    /// Header and position only; [`FoundBlock::block`] is `None`.
    Header,
    /// Also the full block; [`FoundBlock::block`] is `Some`.
    Full,
}

/// A block the node knows, with its place in the block tree (Core's `FoundBlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundBlock {
    /// The block's header; its hash is `header.block_hash()`.
    pub header: block::Header,
    /// The block's height.
    pub height: u32,
    /// Median time past at this block: the median of the last 11 block times.
    pub median_time_past: u32,
    /// Whether the block is in the currently active chain (not on a stale branch).
    pub in_active_chain: bool,
    /// The whole block, when [`BlockWhat::Full`] was asked for and the block is on disk,
    /// in consensus encoding ([`EncodedBlock::to_block`] decodes it).
    pub block: Option<EncodedBlock>,
}

/// An unspent output, as [`Chain::find_coins`] reports it (Core's `Coin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output itself.
    pub txout: TxOut,
    /// The height of the block that created it; `None` for an output of a mempool
    /// transaction.
    pub height: Option<u32>,
    /// Whether it is an output of a coinbase transaction (spendable after 100 blocks).
    pub is_coinbase: bool,
}

/// Why a transaction left the mempool (Core's `MemPoolRemovalReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalReason {
    /// Expired from the mempool.
    Expiry,
    /// Evicted to keep the mempool within its size limit.
    SizeLimit,
    /// Removed in a reorganisation because it no longer fits the new chain.
    Reorg,
    /// Included in a connected block.
    Block,
    /// Removed because a conflicting transaction was included in a block.
    Conflict,
    /// Replaced by a transaction paying a higher fee (RBF).
    Replaced,
}

/// The node's chain as a wallet sees it (Core's `interfaces::Chain`).
///
/// Heights are `u32`; a height above the tip gives `None`, not an error. The methods that
/// take a block hash return `None` for a block the node does not know.
pub trait Chain: Send + Sync {
    /// Height of the active chain's tip, `None` while the node has no blocks.
    fn get_height(&self) -> Result<Option<u32>, InterfaceError>;

    /// Hash of the active chain's block at `height`, `None` above the tip.
    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError>;

    /// Whether the full data of the active chain's block at `height` is on disk (`false`
    /// above the tip).
    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError>;

    /// The block with this hash, in the active chain or not, with as much data as `what`
    /// asks for; `None` for an unknown block.
    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError>;

    /// The ancestor at `ancestor_height` of the block `hash` (the block itself when the
    /// heights are equal); `None` when `hash` is unknown or `ancestor_height` is above it.
    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError>;

    /// The most recent block of `locator` (hashes from newest to oldest, as in a
    /// `CBlockLocator`) that is in the active chain: where a wallet that last synced to the
    /// locator's tip must resume. `None` when no locator entry is in the active chain.
    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError>;

    /// The unspent outputs among `outpoints`, looked up in the UTXO set and the mempool;
    /// the result has one entry per outpoint, in order, `None` for spent or unknown ones.
    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError>;

    /// Whether a transaction with this txid is in the mempool.
    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError>;

    /// Validates `tx` and adds it to the mempool (Core's `broadcastTransaction`).
    ///
    /// A transaction already in the mempool is accepted again without error. A rejection
    /// is [`InterfaceError::Remote`] with [`ErrorCode::VERIFY_REJECTED`](crate::ErrorCode)
    /// and Core's reject reason as the message (`max-fee-exceeded` when the transaction's
    /// fee rate is above `max_fee_rate`; [`FeeRate::ZERO`] disables that check).
    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError>;

    /// Estimated fee rate for confirmation within `target` blocks, `None` when the node
    /// has no estimate.
    fn estimate_fee_rate(&self, target: u32) -> Result<Option<FeeRate>, InterfaceError>;

    /// The lowest fee rate the node relays and accepts into its mempool (`-minrelaytxfee`).
    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError>;

    /// Whether the node is still catching up with the network.
    fn is_initial_block_download(&self) -> Result<bool, InterfaceError>;

    /// Subscribes `notifications` to chain and mempool events, delivered in the order they
    /// happened, one at a time, until the returned [`Handler`] is disconnected or dropped.
    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError>;

    /// Returns once every notification for events before this call has been delivered to
    /// every subscriber (Core's `waitForNotifications`): every subscriber made through this
    /// `Chain`'s connection, when the chain is served to several clients, so that a client
    /// is never held up by another's subscriber.
    fn wait_for_notifications(&self) -> Result<(), InterfaceError>;
}

/// Chain and mempool events, delivered by the node to a subscriber such as a wallet (Core's
/// `Chain::Notifications`). Every method has an empty default.
///
/// The node calls them one at a time and in order. An error returned from a callback is
/// logged by the node; it does not stop later notifications.
pub trait ChainNotifications: Send + Sync {
    /// `tx` entered the mempool.
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        let _ = tx;
        Ok(())
    }

    /// `tx` left the mempool, for `reason`. A transaction confirmed in a block is reported
    /// with [`RemovalReason::Block`] before the `block_connected` of that block.
    fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), InterfaceError> {
        let _ = (tx, reason);
        Ok(())
    }

    /// `block` was connected to the active chain at `height`.
    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        let _ = (block, height);
        Ok(())
    }

    /// `block`, which was at `height`, was disconnected from the active chain in a
    /// reorganisation. Blocks are disconnected tip first.
    fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        let _ = (block, height);
        Ok(())
    }

    /// The active chain's tip changed (after the `block_connected`/`block_disconnected`
    /// calls that changed it).
    fn updated_block_tip(&self) -> Result<(), InterfaceError> {
        Ok(())
    }

    /// The node wrote its chain state to disk; `locator` describes the flushed tip. A
    /// wallet may record it as the point to resume from.
    fn chain_state_flushed(&self, locator: &[BlockHash]) -> Result<(), InterfaceError> {
        let _ = locator;
        Ok(())
    }
}
