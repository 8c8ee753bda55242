//! `Chain` and `ChainNotifications` over a session.

use std::fmt;
use std::sync::Arc;

use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, Txid};
use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{
    HandlerProxy, HandlerServer, args, call, call_reading, call_with, methods, object_arg, reply,
    reply_object, unknown_method,
};
use crate::codec::{DecodeError, decode_list};
use crate::{
    BlockRef, BlockWhat, Chain, ChainNotifications, Coin, FoundBlock, Handler, InterfaceError,
    RemovalReason,
};

methods! {
    /// The methods of [`Chain`].
    ChainMethod {
        /// [`Chain::get_height`].
        GetHeight = 0,
        /// [`Chain::get_block_hash`].
        GetBlockHash = 1,
        /// [`Chain::have_block_on_disk`].
        HaveBlockOnDisk = 2,
        /// [`Chain::find_block`].
        FindBlock = 3,
        /// [`Chain::find_ancestor_by_height`].
        FindAncestorByHeight = 4,
        /// [`Chain::find_locator_fork`].
        FindLocatorFork = 5,
        /// [`Chain::find_coins`].
        FindCoins = 6,
        /// [`Chain::is_in_mempool`].
        IsInMempool = 7,
        /// [`Chain::broadcast_transaction`].
        BroadcastTransaction = 8,
        /// [`Chain::estimate_fee_rate`].
        EstimateFeeRate = 9,
        /// [`Chain::relay_min_fee`].
        RelayMinFee = 10,
        /// [`Chain::is_initial_block_download`].
        IsInitialBlockDownload = 11,
        /// [`Chain::handle_notifications`].
        HandleNotifications = 12,
        /// [`Chain::wait_for_notifications`].
        WaitForNotifications = 13,
    }
}

/// Calls a [`Chain`] the peer exports.
#[derive(Debug, Clone)]
pub struct ChainProxy {
    object: RemoteObject,
}

impl ChainProxy {
    /// A proxy for the peer's `Chain` object.
    pub fn new(object: RemoteObject) -> Self {
        ChainProxy { object }
    }
}

impl Chain for ChainProxy {
    fn get_height(&self) -> Result<Option<u32>, InterfaceError> {
        call(&self.object, ChainMethod::GetHeight.id(), &())
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        call(&self.object, ChainMethod::GetBlockHash.id(), &height)
    }

    fn have_block_on_disk(&self, height: u32) -> Result<bool, InterfaceError> {
        call(&self.object, ChainMethod::HaveBlockOnDisk.id(), &height)
    }

    fn find_block(
        &self,
        hash: &BlockHash,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        call(&self.object, ChainMethod::FindBlock.id(), &(hash, what))
    }

    fn find_ancestor_by_height(
        &self,
        hash: &BlockHash,
        ancestor_height: u32,
        what: BlockWhat,
    ) -> Result<Option<FoundBlock>, InterfaceError> {
        call(
            &self.object,
            ChainMethod::FindAncestorByHeight.id(),
            &(hash, ancestor_height, what),
        )
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, InterfaceError> {
        call(&self.object, ChainMethod::FindLocatorFork.id(), locator)
    }

    fn find_coins(&self, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, InterfaceError> {
        // One answer per outpoint, and no more is decoded: an unspent-nothing (`None`) is
        // one byte on the wire and 48 in memory, so a million of them, in a 1 MiB reply to
        // a question about one outpoint, would have cost us 48 MiB.
        let asked = u32::try_from(outpoints.len()).unwrap_or(u32::MAX);
        let coins = call_reading(
            &self.object,
            ChainMethod::FindCoins.id(),
            outpoints,
            |dec| Ok(decode_list(dec, asked)?),
        )?;
        if coins.len() != outpoints.len() {
            return Err(InterfaceError::Decode(DecodeError::InvalidValue {
                what: "number of coins found",
                value: coins.len() as u64,
            }));
        }
        Ok(coins)
    }

    fn is_in_mempool(&self, txid: &Txid) -> Result<bool, InterfaceError> {
        call(&self.object, ChainMethod::IsInMempool.id(), txid)
    }

    fn broadcast_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainMethod::BroadcastTransaction.id(),
            &(tx, max_fee_rate),
        )
    }

    fn estimate_fee_rate(&self, target: u32) -> Result<Option<FeeRate>, InterfaceError> {
        call(&self.object, ChainMethod::EstimateFeeRate.id(), &target)
    }

    fn relay_min_fee(&self) -> Result<FeeRate, InterfaceError> {
        call(&self.object, ChainMethod::RelayMinFee.id(), &())
    }

    fn is_initial_block_download(&self) -> Result<bool, InterfaceError> {
        call(&self.object, ChainMethod::IsInitialBlockDownload.id(), &())
    }

    fn handle_notifications(
        &self,
        notifications: Arc<dyn ChainNotifications>,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let server: Arc<dyn Dispatch> = Arc::new(ChainNotificationsServer::new(notifications));
        let handler = call_with(
            &self.object,
            ChainMethod::HandleNotifications.id(),
            8,
            |enc| enc.put_object(server),
            |dec| Ok(dec.get_object()?),
        )?;
        Ok(Box::new(HandlerProxy::new(handler)))
    }

    fn wait_for_notifications(&self) -> Result<(), InterfaceError> {
        call(&self.object, ChainMethod::WaitForNotifications.id(), &())
    }
}

/// Serves a [`Chain`] to the peer.
pub struct ChainServer {
    chain: Arc<dyn Chain>,
}

impl ChainServer {
    /// Serves `chain`.
    pub fn new(chain: Arc<dyn Chain>) -> Self {
        ChainServer { chain }
    }
}

impl fmt::Debug for ChainServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainServer")
    }
}

const CHAIN: &str = "Chain";

impl Dispatch for ChainServer {
    fn interface_name(&self) -> &'static str {
        CHAIN
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = ChainMethod::from_id(call.method()) else {
            return Err(unknown_method(CHAIN, call.method()));
        };
        let chain = &*self.chain;
        match method {
            ChainMethod::GetHeight => {
                args::<()>(call, CHAIN)?;
                reply(call, chain.get_height())
            }
            ChainMethod::GetBlockHash => {
                let height = args(call, CHAIN)?;
                reply(call, chain.get_block_hash(height))
            }
            ChainMethod::HaveBlockOnDisk => {
                let height = args(call, CHAIN)?;
                reply(call, chain.have_block_on_disk(height))
            }
            ChainMethod::FindBlock => {
                let (hash, what): (BlockHash, BlockWhat) = args(call, CHAIN)?;
                reply(call, chain.find_block(&hash, what))
            }
            ChainMethod::FindAncestorByHeight => {
                let (hash, height, what): (BlockHash, u32, BlockWhat) = args(call, CHAIN)?;
                reply(call, chain.find_ancestor_by_height(&hash, height, what))
            }
            ChainMethod::FindLocatorFork => {
                let locator: Vec<BlockHash> = args(call, CHAIN)?;
                reply(call, chain.find_locator_fork(&locator))
            }
            ChainMethod::FindCoins => {
                let outpoints: Vec<OutPoint> = args(call, CHAIN)?;
                reply(call, chain.find_coins(&outpoints))
            }
            ChainMethod::IsInMempool => {
                let txid: Txid = args(call, CHAIN)?;
                reply(call, chain.is_in_mempool(&txid))
            }
            ChainMethod::BroadcastTransaction => {
                let (tx, max_fee_rate): (Transaction, FeeRate) = args(call, CHAIN)?;
                reply(call, chain.broadcast_transaction(&tx, max_fee_rate))
            }
            ChainMethod::EstimateFeeRate => {
                let target = args(call, CHAIN)?;
                reply(call, chain.estimate_fee_rate(target))
            }
            ChainMethod::RelayMinFee => {
                args::<()>(call, CHAIN)?;
                reply(call, chain.relay_min_fee())
            }
            ChainMethod::IsInitialBlockDownload => {
                args::<()>(call, CHAIN)?;
                reply(call, chain.is_initial_block_download())
            }
            ChainMethod::HandleNotifications => {
                let notifications = ChainNotificationsProxy::new(object_arg(call)?);
                let outcome = chain
                    .handle_notifications(Arc::new(notifications))
                    .map(|h| Arc::new(HandlerServer::new(h)) as _);
                reply_object(call, outcome)
            }
            ChainMethod::WaitForNotifications => {
                args::<()>(call, CHAIN)?;
                reply(call, chain.wait_for_notifications())
            }
        }
    }
}

methods! {
    /// The methods of [`ChainNotifications`].
    ChainNotificationsMethod {
        /// [`ChainNotifications::transaction_added_to_mempool`].
        TransactionAddedToMempool = 0,
        /// [`ChainNotifications::transaction_removed_from_mempool`].
        TransactionRemovedFromMempool = 1,
        /// [`ChainNotifications::block_connected`].
        BlockConnected = 2,
        /// [`ChainNotifications::block_disconnected`].
        BlockDisconnected = 3,
        /// [`ChainNotifications::updated_block_tip`].
        UpdatedBlockTip = 4,
        /// [`ChainNotifications::chain_state_flushed`].
        ChainStateFlushed = 5,
    }
}

/// Delivers notifications to a [`ChainNotifications`] the peer subscribed. Each call
/// returns once the peer's implementation has handled it, so notifications arrive in the
/// order they are sent.
#[derive(Debug, Clone)]
pub struct ChainNotificationsProxy {
    object: RemoteObject,
}

impl ChainNotificationsProxy {
    /// A proxy for the peer's `ChainNotifications` object.
    pub fn new(object: RemoteObject) -> Self {
        ChainNotificationsProxy { object }
    }
}

impl ChainNotifications for ChainNotificationsProxy {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::TransactionAddedToMempool.id(),
            tx,
        )
    }

    fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::TransactionRemovedFromMempool.id(),
            &(tx, reason),
        )
    }

    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::BlockConnected.id(),
            &(block, height),
        )
    }

    fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::BlockDisconnected.id(),
            &(block, height),
        )
    }

    fn updated_block_tip(&self) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::UpdatedBlockTip.id(),
            &(),
        )
    }

    fn chain_state_flushed(&self, locator: &[BlockHash]) -> Result<(), InterfaceError> {
        call(
            &self.object,
            ChainNotificationsMethod::ChainStateFlushed.id(),
            locator,
        )
    }
}

/// Serves a [`ChainNotifications`] to the peer (the subscriber's side).
pub struct ChainNotificationsServer {
    notifications: Arc<dyn ChainNotifications>,
}

impl ChainNotificationsServer {
    /// Serves `notifications`.
    pub fn new(notifications: Arc<dyn ChainNotifications>) -> Self {
        ChainNotificationsServer { notifications }
    }
}

impl fmt::Debug for ChainNotificationsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainNotificationsServer")
    }
}

const CHAIN_NOTIFICATIONS: &str = "ChainNotifications";

impl Dispatch for ChainNotificationsServer {
    fn interface_name(&self) -> &'static str {
        CHAIN_NOTIFICATIONS
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = ChainNotificationsMethod::from_id(call.method()) else {
            return Err(unknown_method(CHAIN_NOTIFICATIONS, call.method()));
        };
        let n = &*self.notifications;
        let outcome = match method {
            ChainNotificationsMethod::TransactionAddedToMempool => {
                let tx: Transaction = args(call, CHAIN_NOTIFICATIONS)?;
                n.transaction_added_to_mempool(&tx)
            }
            ChainNotificationsMethod::TransactionRemovedFromMempool => {
                let (tx, reason): (Transaction, RemovalReason) = args(call, CHAIN_NOTIFICATIONS)?;
                n.transaction_removed_from_mempool(&tx, reason)
            }
            ChainNotificationsMethod::BlockConnected => {
                let (block, height): (Block, u32) = args(call, CHAIN_NOTIFICATIONS)?;
                n.block_connected(&block, height)
            }
            ChainNotificationsMethod::BlockDisconnected => {
                let (block, height): (Block, u32) = args(call, CHAIN_NOTIFICATIONS)?;
                n.block_disconnected(&block, height)
            }
            ChainNotificationsMethod::UpdatedBlockTip => {
                args::<()>(call, CHAIN_NOTIFICATIONS)?;
                n.updated_block_tip()
            }
            ChainNotificationsMethod::ChainStateFlushed => {
                let locator: Vec<BlockHash> = args(call, CHAIN_NOTIFICATIONS)?;
                n.chain_state_flushed(&locator)
            }
        };
        reply(call, outcome)
    }
}
