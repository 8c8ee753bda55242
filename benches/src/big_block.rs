//! A large block behind `Chain::find_block`: the real mainnet block of `shared/data`, or a
//! regtest block of about the same size when that file is absent, served by [`OneBlock`], a
//! `Chain` that knows this one block.

use std::sync::Arc;

use anyhow::Context;
use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, Txid};
use interfaces::remote::{ChainProxy, ChainServer};
use interfaces::{
    BlockRef, BlockWhat, Chain, ChainNotifications, Coin, EncodedBlock, FoundBlock, Handler,
    InterfaceError,
};
use node::testdata;

use crate::conn::Setup;
use crate::remote::{self, Remote};

/// The peer role that serves [`OneBlock`] over the [`BigBlock::load`] block.
pub const ROLE: &str = "one_block";

/// Transactions of the fallback regtest block: about 370 bytes each, so the block is about
/// 1.4 MB, the size of the mainnet one.
const FALLBACK_TXS: u32 = 3_780;

/// The block and its raw consensus encoding.
#[derive(Debug, Clone)]
pub struct BigBlock {
    /// The block, decoded.
    pub block: Block,
    /// Its consensus encoding (the file's bytes, for the mainnet block).
    pub raw: Vec<u8>,
    /// Whether it is the mainnet block (else the generated regtest one).
    pub mainnet: bool,
}

impl BigBlock {
    /// The mainnet block of `../shared/data` (or `$BITCOIN_SHM_BLOCK`, see
    /// [`testdata::mainnet_block_path`]), read in place; when there is no such file, a
    /// generated regtest block of about the same size. A file that is there but does not
    /// decode is an error, not a reason to fall back.
    pub fn load() -> anyhow::Result<BigBlock> {
        let Some(path) = testdata::mainnet_block_path() else {
            let block = testdata::large_regtest_block(FALLBACK_TXS);
            let raw = bitcoin::consensus::serialize(&block);
            return Ok(BigBlock {
                block,
                raw,
                mainnet: false,
            });
        };
        let raw = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let block = bitcoin::consensus::deserialize(&raw)
            .with_context(|| format!("decode the block in {}", path.display()))?;
        Ok(BigBlock {
            block,
            raw,
            mainnet: true,
        })
    }

    /// The block's hash.
    pub fn hash(&self) -> BlockHash {
        self.block.block_hash()
    }
}

/// A `Chain` whose only block is `block`, at height `height`, and the tip. `find_block` and
/// the other block queries answer about it; the methods about coins, the mempool and
/// notifications are not supported.
#[derive(Debug)]
pub struct OneBlock {
    /// The block in consensus encoding, as a node keeps it on disk and serves it.
    block: EncodedBlock,
    hash: BlockHash,
    height: u32,
}

impl OneBlock {
    /// Serves `block`, at the height its coinbase states (BIP34), else 0.
    pub fn new(block: Block) -> OneBlock {
        let height = block
            .bip34_block_height()
            .ok()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(0);
        OneBlock {
            hash: block.block_hash(),
            block: EncodedBlock::from(&block),
            height,
        }
    }

    fn found(&self, what: BlockWhat) -> FoundBlock {
        FoundBlock {
            header: *self.block.header(),
            height: self.height,
            median_time_past: self.block.header().time,
            in_active_chain: true,
            block: (what == BlockWhat::Full).then(|| self.block.clone()),
        }
    }
}

impl Chain for OneBlock {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Ok(Some(self.height))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Ok((height == self.height).then_some(self.hash))
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        Ok(height == self.height)
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        Ok((*hash == self.hash).then(|| self.found(what)))
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        Ok((*hash == self.hash && ancestor_height == self.height).then(|| self.found(what)))
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        Ok(locator.contains(&self.hash).then_some(BlockRef {
            hash: self.hash,
            height: self.height,
        }))
    }

    fn find_coins(&self, _outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        Err(InterfaceError::not_supported("find_coins"))
    }

    fn is_in_mempool(&self, _txid: &Txid) -> Result<bool, InterfaceError> {
        Ok(false)
    }

    fn broadcast_transaction(
        &self,
        _tx: &Transaction,
        _max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        Err(InterfaceError::not_supported("broadcast_transaction"))
    }

    fn estimate_fee_rate(&self, _target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        Ok(None)
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        Err(InterfaceError::not_supported("relay_min_fee"))
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        Ok(false)
    }

    fn handle_notifications(
        &self,
        _notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        Err(InterfaceError::not_supported("handle_notifications"))
    }

    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        Ok(())
    }
}

/// The full block `hash` from `chain`, in consensus encoding; a chain that does not have it
/// is an error.
#[inline]
pub fn fetch(chain: &dyn Chain, hash: &BlockHash) -> anyhow::Result<EncodedBlock> {
    chain
        .find_block(hash, BlockWhat::Full)
        .context("Chain::find_block")?
        .and_then(|found| found.block)
        .with_context(|| format!("Chain::find_block: no block {hash}"))
}

/// Starts a peer serving [`OneBlock`] over [`BigBlock::load`]'s block and connects to it.
pub fn spawn(setup: Setup) -> anyhow::Result<Remote<ChainProxy>> {
    Remote::spawn(ROLE, setup, &[], ChainProxy::new)
}

/// The peer: loads the block as the client does and serves it until the client hangs up.
pub(crate) fn serve() -> anyhow::Result<()> {
    let big = BigBlock::load()?;
    remote::serve(Arc::new(ChainServer::new(Arc::new(OneBlock::new(
        big.block,
    )))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the mainnet file, the benchmark still moves a block of about its size.
    #[test]
    fn fallback_block_is_about_the_size_of_the_mainnet_one() {
        let block = testdata::large_regtest_block(FALLBACK_TXS);
        let size = block.total_size();
        assert!((1_350_000..1_450_000).contains(&size), "{size} bytes");
    }

    #[test]
    fn one_block_serves_its_block_and_nothing_else() {
        let block = testdata::large_regtest_block(10);
        let hash = block.block_hash();
        let chain = OneBlock::new(block.clone());
        assert_eq!(fetch(&chain, &hash).ok(), Some(EncodedBlock::from(&block)));
        let header = chain.find_block(&hash, BlockWhat::Header).ok().flatten();
        assert_eq!(header.map(|f| f.block), Some(None));
        let other = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        assert!(fetch(&chain, &other).is_err());
        let height = chain.get_height().ok().flatten();
        assert_eq!(
            height.map(|h| chain.get_block_hash(h).ok()),
            Some(Some(Some(hash)))
        );
    }
}
