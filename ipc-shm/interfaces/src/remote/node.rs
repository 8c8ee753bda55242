//! `Node` over a session, with its block tip callback.

use std::fmt;
use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, BlockHash, FeeRate, Transaction, Txid};
use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{
    HandlerProxy, HandlerServer, WalletLoaderProxy, WalletLoaderServer, args, call, call_object,
    call_with, methods, object_arg, reply, reply_object, unknown_method,
};
use crate::{
    FoundBlock, FoundTransaction, Handler, InterfaceError, MempoolInfo, Node, NotifyBlockTipFn,
    TipInfo, WalletLoader,
};

methods! {
    /// The methods of [`Node`].
    NodeMethod {
        /// [`Node::get_tip_info`].
        GetTipInfo = 0,
        /// [`Node::get_block_hash`].
        GetBlockHash = 1,
        /// [`Node::get_block`].
        GetBlock = 2,
        /// [`Node::get_mempool_info`].
        GetMempoolInfo = 3,
        /// [`Node::get_raw_transaction`].
        GetRawTransaction = 4,
        /// [`Node::send_raw_transaction`].
        SendRawTransaction = 5,
        /// [`Node::generate_to_address`].
        GenerateToAddress = 6,
        /// [`Node::wallet_loader`].
        WalletLoader = 7,
        /// [`Node::shutdown`].
        Shutdown = 8,
        /// [`Node::handle_notify_block_tip`].
        HandleNotifyBlockTip = 9,
    }
}

methods! {
    /// The method of the callback object [`Node::handle_notify_block_tip`] exports.
    NotifyBlockTipMethod {
        /// Calls the [`NotifyBlockTipFn`] with a [`TipInfo`].
        Notify = 0,
    }
}

/// Calls a [`Node`] the peer exports.
#[derive(Debug, Clone)]
pub struct NodeProxy {
    object: RemoteObject,
}

impl NodeProxy {
    /// A proxy for the peer's `Node` object.
    pub fn new(object: RemoteObject) -> Self {
        NodeProxy { object }
    }
}

impl Node for NodeProxy {
    fn get_tip_info(&self) -> Result<TipInfo, InterfaceError> {
        call(&self.object, NodeMethod::GetTipInfo.id(), &())
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, InterfaceError> {
        call(&self.object, NodeMethod::GetBlockHash.id(), &height)
    }

    fn get_block(&self, hash: &BlockHash) -> Result<Option<FoundBlock>, InterfaceError> {
        call(&self.object, NodeMethod::GetBlock.id(), hash)
    }

    fn get_mempool_info(&self) -> Result<MempoolInfo, InterfaceError> {
        call(&self.object, NodeMethod::GetMempoolInfo.id(), &())
    }

    fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<FoundTransaction>, InterfaceError> {
        call(&self.object, NodeMethod::GetRawTransaction.id(), txid)
    }

    fn send_raw_transaction(
        &self,
        tx: &Transaction,
        max_fee_rate: FeeRate,
    ) -> Result<Txid, InterfaceError> {
        call(
            &self.object,
            NodeMethod::SendRawTransaction.id(),
            &(tx, max_fee_rate),
        )
    }

    fn generate_to_address(
        &self,
        n: u32,
        address: &Address<NetworkUnchecked>,
    ) -> Result<Vec<BlockHash>, InterfaceError> {
        call(
            &self.object,
            NodeMethod::GenerateToAddress.id(),
            &(n, address),
        )
    }

    fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        let object = call_object(&self.object, NodeMethod::WalletLoader.id(), &())?;
        Ok(Arc::new(WalletLoaderProxy::new(object)))
    }

    fn shutdown(&self) -> Result<(), InterfaceError> {
        call(&self.object, NodeMethod::Shutdown.id(), &())
    }

    fn handle_notify_block_tip(
        &self,
        callback: NotifyBlockTipFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let server: Arc<dyn Dispatch> = Arc::new(NotifyBlockTipServer { callback });
        let handler = call_with(
            &self.object,
            NodeMethod::HandleNotifyBlockTip.id(),
            8,
            |enc| enc.put_object(server),
            |dec| Ok(dec.get_object()?),
        )?;
        Ok(Box::new(HandlerProxy::new(handler)))
    }
}

/// Serves a [`Node`] to the peer.
pub struct NodeServer {
    node: Arc<dyn Node>,
}

impl NodeServer {
    /// Serves `node`.
    pub fn new(node: Arc<dyn Node>) -> Self {
        NodeServer { node }
    }
}

impl fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeServer")
    }
}

const NODE: &str = "Node";

impl Dispatch for NodeServer {
    fn interface_name(&self) -> &'static str {
        NODE
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = NodeMethod::from_id(call.method()) else {
            return Err(unknown_method(NODE, call.method()));
        };
        let node = &*self.node;
        match method {
            NodeMethod::GetTipInfo => {
                args::<()>(call, NODE)?;
                reply(call, node.get_tip_info())
            }
            NodeMethod::GetBlockHash => {
                let height = args(call, NODE)?;
                reply(call, node.get_block_hash(height))
            }
            NodeMethod::GetBlock => {
                let hash: BlockHash = args(call, NODE)?;
                reply(call, node.get_block(&hash))
            }
            NodeMethod::GetMempoolInfo => {
                args::<()>(call, NODE)?;
                reply(call, node.get_mempool_info())
            }
            NodeMethod::GetRawTransaction => {
                let txid: Txid = args(call, NODE)?;
                reply(call, node.get_raw_transaction(&txid))
            }
            NodeMethod::SendRawTransaction => {
                let (tx, max_fee_rate): (Transaction, FeeRate) = args(call, NODE)?;
                reply(call, node.send_raw_transaction(&tx, max_fee_rate))
            }
            NodeMethod::GenerateToAddress => {
                let (n, address): (u32, Address<NetworkUnchecked>) = args(call, NODE)?;
                reply(call, node.generate_to_address(n, &address))
            }
            NodeMethod::WalletLoader => {
                args::<()>(call, NODE)?;
                let outcome = node
                    .wallet_loader()
                    .map(|l| Arc::new(WalletLoaderServer::new(l)) as _);
                reply_object(call, outcome)
            }
            NodeMethod::Shutdown => {
                args::<()>(call, NODE)?;
                reply(call, node.shutdown())
            }
            NodeMethod::HandleNotifyBlockTip => {
                let remote = object_arg(call)?;
                let outcome = node
                    .handle_notify_block_tip(notify_block_tip_proxy(remote))
                    .map(|h| Arc::new(HandlerServer::new(h)) as _);
                reply_object(call, outcome)
            }
        }
    }
}

/// A [`NotifyBlockTipFn`] that calls the peer's callback object. A notification the peer
/// cannot take (it has gone) is dropped with a log line: the peer's handler is released
/// with the connection, which unsubscribes.
fn notify_block_tip_proxy(remote: RemoteObject) -> NotifyBlockTipFn {
    Arc::new(move |tip: &TipInfo| {
        if let Err(e) = call::<_, ()>(&remote, NotifyBlockTipMethod::Notify.id(), tip) {
            tracing::debug!(error = %e, "block tip notification not delivered");
        }
    })
}

/// Serves a [`NotifyBlockTipFn`] to the peer.
struct NotifyBlockTipServer {
    callback: NotifyBlockTipFn,
}

impl fmt::Debug for NotifyBlockTipServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NotifyBlockTipServer")
    }
}

const NOTIFY_BLOCK_TIP: &str = "NotifyBlockTip";

impl Dispatch for NotifyBlockTipServer {
    fn interface_name(&self) -> &'static str {
        NOTIFY_BLOCK_TIP
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match NotifyBlockTipMethod::from_id(call.method()) {
            Some(NotifyBlockTipMethod::Notify) => {
                let tip: TipInfo = args(call, NOTIFY_BLOCK_TIP)?;
                (self.callback)(&tip);
                reply(call, Ok(()))
            }
            None => Err(unknown_method(NOTIFY_BLOCK_TIP, call.method())),
        }
    }
}
