//! Keeping the wallet in step with the node: blocks connected and disconnected, mempool
//! additions and removals (the `ChainNotifications` callbacks), and catching up from the
//! wallet's last block on start.
//!
//! # Disconnected blocks
//!
//! bdk's chain only drops a block when a block of the same height replaces it, so a
//! disconnect alone would leave balances counting a block that is gone until the next block
//! arrives, or forever after an `invalidateblock`. The wallet does what Bitcoin Core's does
//! and moves balances back at once: it writes the removal of the disconnected checkpoints
//! straight to the database and reloads bdk's wallet from it. Transactions of the removed
//! blocks keep their (now stale) anchors; bdk then treats them as unconfirmed, except
//! coinbase transactions, which disappear. A reload costs a read of the wallet database;
//! reorgs are rare enough for that.
//!
//! # Ordering against live notifications
//!
//! Subscribe to notifications first, then call [`Wallet::sync_with_chain`]: a block
//! announced during the catch-up either does not connect yet ([`WalletError::BlockDoesNotConnect`],
//! which the catch-up then covers) or is already applied (a duplicate, ignored).
//!
//! Catch-ups themselves may run at once (the notification thread's and a caller's): each
//! checks under the wallet's lock that its fork is still the wallet's block and starts over
//! with a fresh locator when it is not ([`WalletError::ForkMoved`]). No lock is held across a
//! catch-up, so a transaction-changed callback that calls back into the wallet cannot
//! deadlock with one.

use bdk_wallet::ChangeSet;
use bdk_wallet::chain::{BlockId, local_chain};
use bdk_wallet::rusqlite::Connection;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, Transaction};
use interfaces::{BlockRef, BlockWhat, Chain, InterfaceError, RemovalReason};

use crate::error::{WalletError, db_error};
use crate::wallet::{State, Wallet};

/// The blocks a wallet needs from the node to catch up: the part of [`interfaces::Chain`]
/// that the wallet core calls. Every `interfaces::Chain` (the node's, or its proxy across
/// a connection) is one; tests also use a chain of their own.
pub trait ChainSource {
    /// The error of a call (for a remote chain: the connection failed).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Height of the active chain's tip, `None` while the node has no blocks.
    fn get_height(&self) -> Result<Option<u32>, Self::Error>;

    /// Hash of the active chain's block at `height`, `None` above the tip.
    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, Self::Error>;

    /// The block with this hash, active or not; `None` when the node does not have it.
    fn find_block(&self, hash: &BlockHash) -> Result<Option<Block>, Self::Error>;

    /// The most recent block of `locator` (newest first) that is in the active chain;
    /// `None` when no entry is.
    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, Self::Error>;
}

/// How many catch-up attempts a chain that keeps reorganising gets before the error is
/// returned to the caller.
const CATCH_UP_ATTEMPTS: usize = 8;

/// Catch-up writes the database every this many blocks, so a crash during a long catch-up
/// keeps most of the work.
const CATCH_UP_BATCH: u32 = 500;

impl Wallet {
    /// Applies a block the node connected at `height`. A block already applied is ignored;
    /// a block whose parent the wallet does not have is [`WalletError::BlockDoesNotConnect`].
    /// A block replacing one the wallet has (a reorg whose disconnects were not seen) moves
    /// the wallet to the new branch.
    pub fn block_connected(&self, block: &Block, height: u32) -> Result<(), WalletError> {
        self.mutate(|state| connect(state, block, height))
    }

    /// Undoes a block the node disconnected from its tip at `height`. A block the wallet
    /// does not have is ignored.
    pub fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), WalletError> {
        let hash = block.block_hash();
        self.mutate(|state| {
            let have = state.bdk.local_chain().get(height).map(|cp| cp.hash());
            if height == 0 || have != Some(hash) {
                tracing::debug!(%hash, height, "ignoring disconnect of a block the wallet does not have");
                return Ok(());
            }
            self.rewind(
                state,
                BlockId {
                    height: height - 1,
                    hash: block.header.prev_blockhash,
                },
            )
        })
    }

    /// Records a transaction the node accepted to its mempool (ignored unless it pays to or
    /// spends from the wallet).
    pub fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), WalletError> {
        check_amounts(tx)?;
        self.mutate(|state| {
            check_wallet_total(state, [tx])?;
            let seen = state.next_seen_time();
            state.bdk.apply_unconfirmed_txs([(tx.clone(), seen)]);
            Ok(())
        })
    }

    /// Records that the node dropped a transaction from its mempool. Inclusion in a block
    /// changes nothing here (the block's notification confirms it); any other reason makes
    /// an unconfirmed wallet transaction leave the balances.
    pub fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), WalletError> {
        let txid = tx.compute_txid();
        if reason == RemovalReason::Block {
            return Ok(());
        }
        self.mutate(|state| {
            let seen = state.next_seen_time();
            state.bdk.apply_evicted_txs([(txid, seen)]);
            Ok(())
        })
    }

    /// Brings the wallet to the chain's tip: finds the last block the wallet and the chain
    /// share (`find_locator_fork` with the wallet's locator), undoes the wallet's blocks
    /// above it, and applies the chain's blocks from there. Returns the new tip height.
    pub fn sync_with_chain<C: ChainSource + ?Sized>(&self, chain: &C) -> Result<u32, WalletError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.catch_up_once(chain) {
                // The chain reorganised under us, or the wallet's chain changed under us (a
                // notification, or another caller's catch-up, got there first): the next
                // locator finds the fork anew. Catch-ups may run at once; they converge.
                Err(
                    WalletError::BlockDoesNotConnect { .. }
                    | WalletError::BlockNotFound { .. }
                    | WalletError::ForkMoved { .. },
                ) if attempt < CATCH_UP_ATTEMPTS => {}
                result => return result,
            }
        }
    }

    /// Makes sure the wallet has seen every block of the chain's current tip before it
    /// answers (Core's `BlockUntilSyncedToCurrentChain`): a caller that has just mined or
    /// submitted a block must see its effect, although the notification for it may still be
    /// on its way. Costs two calls when the wallet is in step; when it is behind, it catches
    /// up itself rather than waiting for the notifications, so a slow subscriber elsewhere
    /// on the node cannot stall it. The notifications then arrive as duplicates and are
    /// ignored.
    pub fn block_until_synced<C: ChainSource + ?Sized>(
        &self,
        chain: &C,
    ) -> Result<(), WalletError> {
        let chain_err = |err: C::Error| WalletError::Chain(Box::new(err));
        let ours = self.last_block()?;
        let Some(height) = chain.get_height().map_err(chain_err)? else {
            return Ok(());
        };
        if height == ours.height
            && chain.get_block_hash(height).map_err(chain_err)? == Some(ours.hash)
        {
            return Ok(());
        }
        self.sync_with_chain(chain).map(drop)
    }

    fn catch_up_once<C: ChainSource + ?Sized>(&self, chain: &C) -> Result<u32, WalletError> {
        let chain_err = |err: C::Error| WalletError::Chain(Box::new(err));
        let locator = self.locator()?;
        let fork = chain
            .find_locator_fork(&locator)
            .map_err(chain_err)?
            .ok_or(WalletError::NoCommonBlock)?;
        self.mutate(|state| {
            match state.bdk.local_chain().get(fork.height) {
                Some(cp) if cp.hash() == fork.hash => {}
                // The locator held only our blocks, so the fork was one of them; it is gone
                // if the wallet's chain changed since the locator was taken.
                _ => {
                    return Err(WalletError::ForkMoved {
                        height: fork.height,
                        hash: fork.hash,
                    });
                }
            }
            if state.tip_height() > fork.height {
                let fork = BlockId {
                    height: fork.height,
                    hash: fork.hash,
                };
                self.rewind(state, fork)?;
            }
            Ok(())
        })?;

        // Blocks are fetched outside the lock (a remote call must not stall the wallet's
        // other callers) and applied one by one; the database is written every
        // CATCH_UP_BATCH blocks and at the end.
        let tip = chain.get_height().map_err(chain_err)?.unwrap_or(0);
        let mut height = fork.height;
        while height < tip {
            height += 1;
            let gone = WalletError::BlockNotFound {
                height,
                hash: BlockHash::all_zeros(),
            };
            let hash = chain
                .get_block_hash(height)
                .map_err(chain_err)?
                .ok_or(gone)?;
            let block = chain
                .find_block(&hash)
                .map_err(chain_err)?
                .ok_or(WalletError::BlockNotFound { height, hash })?;
            let persist = height == tip || height % CATCH_UP_BATCH == 0;
            self.change(persist, |state| connect(state, &block, height))?;
        }
        tracing::info!(wallet = self.name(), height, "wallet synced with chain");
        Ok(height)
    }

    /// A block locator of the wallet's chain, as Bitcoin Core builds one: the last ten
    /// blocks, then exponentially sparser, always ending with the genesis block.
    pub fn locator(&self) -> Result<Vec<BlockHash>, WalletError> {
        let state = self.lock()?;
        let chain = state.bdk.local_chain();
        let mut locator = Vec::new();
        let mut height = i64::from(chain.tip().height());
        let mut step = 1;
        while height > 0 {
            if let Some(cp) = chain.get(height as u32) {
                locator.push(cp.hash());
            }
            if locator.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        locator.push(chain.genesis_hash());
        Ok(locator)
    }

    /// Makes `fork` the wallet's tip: its blocks above `fork` are removed and `fork` itself
    /// recorded (a wallet born after `fork.height` may not have it), in the database, then
    /// bdk's wallet is reloaded from it. See the module documentation for why.
    fn rewind(&self, state: &mut State, fork: BlockId) -> Result<(), WalletError> {
        self.persist(state)?;
        let mut removed: local_chain::ChangeSet = state
            .bdk
            .checkpoints()
            .take_while(|cp| cp.height() > fork.height)
            .map(|cp| (cp.height(), None))
            .collect();
        removed.blocks.insert(fork.height, Some(fork.hash));
        tracing::info!(
            wallet = self.name(),
            fork = %fork.hash,
            height = fork.height,
            removed = removed.blocks.len() - 1,
            "rewinding wallet to fork point"
        );
        let changeset = ChangeSet {
            local_chain: removed,
            ..ChangeSet::default()
        };
        write_changeset(&mut state.conn, &changeset).map_err(|err| db_error(self.path(), err))?;
        self.reload(state)
    }
}

/// Applies one connected block under the lock (shared by live notifications and catch-up).
fn connect(state: &mut State, block: &Block, height: u32) -> Result<(), WalletError> {
    check_height(height)?;
    check_block(block)?;
    check_wallet_total(state, &block.txdata)?;
    let hash = block.block_hash();
    let chain = state.bdk.local_chain();
    if chain.get(height).is_some_and(|cp| cp.hash() == hash) {
        return Ok(());
    }
    let prev_blockhash = block.header.prev_blockhash;
    let parent_known = height
        .checked_sub(1)
        .and_then(|h| chain.get(h))
        .is_some_and(|cp| cp.hash() == prev_blockhash);
    let does_not_connect = WalletError::BlockDoesNotConnect {
        height,
        hash,
        prev_blockhash,
    };
    if !parent_known {
        return Err(does_not_connect);
    }
    let parent = BlockId {
        height: height - 1,
        hash: prev_blockhash,
    };
    state
        .bdk
        .apply_block_connected_to(block, height, parent)
        .map_err(|_| does_not_connect)
}

/// A block height the wallet can hold: below 500,000,000, where lock times switch from
/// heights to UNIX times. bdk builds every payment's lock time from the tip's height and
/// panics on a height past that (under the wallet's lock, disabling the wallet, and
/// written to disk, so for good).
pub(crate) fn check_height(height: u32) -> Result<(), WalletError> {
    if height >= bitcoin::absolute::LOCK_TIME_THRESHOLD {
        return Err(WalletError::InvalidFromChain {
            reason: format!(
                "a block at height {height}: heights stay below {}",
                bitcoin::absolute::LOCK_TIME_THRESHOLD
            ),
        });
    }
    Ok(())
}

/// Checks what the wallet needs to hold of a block the chain sent: its transactions are
/// the ones its header commits to, and their amounts are possible (see [`check_amounts`]).
/// The node has validated it; this guards the wallet against a node that is broken or
/// hostile, whose impossible amounts would make bdk's sums overflow.
fn check_block(block: &Block) -> Result<(), WalletError> {
    if !block.check_merkle_root() {
        return Err(WalletError::InvalidFromChain {
            reason: format!(
                "block {} whose transactions do not match its merkle root",
                block.block_hash()
            ),
        });
    }
    block.txdata.iter().try_for_each(check_amounts)
}

/// Core's value rules of `CheckTransaction`: no output above 21 million BTC, nor outputs
/// adding up past it. bdk sums amounts with arithmetic that panics on overflow, and a
/// panic under the wallet's lock would disable the wallet until it is reloaded.
fn check_amounts(tx: &Transaction) -> Result<(), WalletError> {
    let total = tx.output.iter().try_fold(Amount::ZERO, |total, out| {
        let total = total.checked_add(out.value)?;
        (out.value <= Amount::MAX_MONEY && total <= Amount::MAX_MONEY).then_some(total)
    });
    if total.is_none() {
        return Err(WalletError::InvalidFromChain {
            reason: format!(
                "transaction {} with output amounts out of range",
                tx.compute_txid()
            ),
        });
    }
    Ok(())
}

/// What `txs` would bring into the wallet stays within 21 million BTC: the wallet's unspent
/// coins with what they pay it, and what each spends of the wallet's known outputs. Each
/// transaction passing [`check_amounts`] is not enough: many of them, each paying the wallet
/// 21 million BTC, add up past `u64` in the balances and in bdk's own sums (which panic).
fn check_wallet_total<'t>(
    state: &State,
    txs: impl IntoIterator<Item = &'t Transaction>,
) -> Result<(), WalletError> {
    let bdk = &state.bdk;
    let within =
        |total: Amount, value: Amount| total.checked_add(value).filter(|t| *t <= Amount::MAX_MONEY);
    let out_of_range = |what: String| WalletError::InvalidFromChain {
        reason: format!("{what}: more than 21 million BTC for the wallet"),
    };
    let mut total = bdk
        .list_unspent()
        .try_fold(Amount::ZERO, |t, o| within(t, o.txout.value))
        .ok_or_else(|| out_of_range("coins already held".into()))?;
    for tx in txs {
        let spent = tx.input.iter().try_fold(Amount::ZERO, |t, input| {
            match bdk.tx_graph().get_txout(input.previous_output) {
                Some(out) => within(t, out.value),
                None => Some(t),
            }
        });
        let received = tx
            .output
            .iter()
            .filter(|out| bdk.is_mine(out.script_pubkey.clone()))
            .try_fold(total, |t, out| within(t, out.value));
        match (spent, received) {
            (Some(_), Some(t)) => total = t,
            _ => return Err(out_of_range(format!("transaction {}", tx.compute_txid()))),
        }
    }
    Ok(())
}

/// Writes a changeset in one SQLite transaction.
fn write_changeset(
    conn: &mut Connection,
    changeset: &ChangeSet,
) -> bdk_wallet::rusqlite::Result<()> {
    let db_tx = conn.transaction()?;
    changeset.persist_to_sqlite(&db_tx)?;
    db_tx.commit()
}

impl<C: Chain + ?Sized> ChainSource for C {
    type Error = InterfaceError;

    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        Chain::get_height(self)
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        Chain::get_block_hash(self, height)
    }

    fn find_block(&self, hash: &BlockHash) -> Result<Option<Block>, InterfaceError> {
        let found = Chain::find_block(self, hash, BlockWhat::Full)?;
        match found.and_then(|found| found.block) {
            Some(block) => Ok(Some(block.to_block()?)),
            None => Ok(None),
        }
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        Chain::find_locator_fork(self, locator)
    }
}
