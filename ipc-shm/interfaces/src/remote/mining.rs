//! `Mining` and `BlockTemplate` over a session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Block, BlockHash, Script, ScriptBuf, Transaction, TxMerkleNode, block};
use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{args, call, call_object, methods, reply, reply_object, unknown_method};
use crate::{BlockRef, BlockTemplate, InterfaceError, Mining};

methods! {
    /// The methods of [`Mining`].
    MiningMethod {
        /// [`Mining::get_tip`].
        GetTip = 0,
        /// [`Mining::wait_tip_changed`].
        WaitTipChanged = 1,
        /// [`Mining::create_new_block`].
        CreateNewBlock = 2,
    }
}

methods! {
    /// The methods of [`BlockTemplate`].
    BlockTemplateMethod {
        /// [`BlockTemplate::get_block_header`].
        GetBlockHeader = 0,
        /// [`BlockTemplate::get_block`].
        GetBlock = 1,
        /// [`BlockTemplate::get_coinbase_tx`].
        GetCoinbaseTx = 2,
        /// [`BlockTemplate::get_coinbase_merkle_path`].
        GetCoinbaseMerklePath = 3,
        /// [`BlockTemplate::submit_solution`].
        SubmitSolution = 4,
    }
}

/// Calls a [`Mining`] the peer exports.
#[derive(Debug, Clone)]
pub struct MiningProxy {
    object: RemoteObject,
}

impl MiningProxy {
    /// A proxy for the peer's `Mining` object.
    pub fn new(object: RemoteObject) -> Self {
        MiningProxy { object }
    }
}

impl Mining for MiningProxy {
    fn get_tip(&self) -> Result<Option<BlockRef>, InterfaceError> {
        call(&self.object, MiningMethod::GetTip.id(), &())
    }

    fn wait_tip_changed(
        &self,
        current: &BlockHash,
        timeout: Duration,
    ) -> Result<Option<BlockRef>, InterfaceError> {
        call(
            &self.object,
            MiningMethod::WaitTipChanged.id(),
            &(current, timeout),
        )
    }

    fn create_new_block(
        &self,
        coinbase_script: &Script,
    ) -> Result<Arc<dyn BlockTemplate>, InterfaceError> {
        let object = call_object(
            &self.object,
            MiningMethod::CreateNewBlock.id(),
            coinbase_script,
        )?;
        Ok(Arc::new(BlockTemplateProxy::new(object)))
    }
}

/// Serves a [`Mining`] to the peer.
pub struct MiningServer {
    mining: Arc<dyn Mining>,
}

impl MiningServer {
    /// Serves `mining`.
    pub fn new(mining: Arc<dyn Mining>) -> Self {
        MiningServer { mining }
    }
}

impl fmt::Debug for MiningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MiningServer")
    }
}

const MINING: &str = "Mining";

impl Dispatch for MiningServer {
    fn interface_name(&self) -> &'static str {
        MINING
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = MiningMethod::from_id(call.method()) else {
            return Err(unknown_method(MINING, call.method()));
        };
        match method {
            MiningMethod::GetTip => {
                args::<()>(call, MINING)?;
                reply(call, self.mining.get_tip())
            }
            MiningMethod::WaitTipChanged => {
                let (current, timeout): (BlockHash, Duration) = args(call, MINING)?;
                reply(call, self.mining.wait_tip_changed(&current, timeout))
            }
            MiningMethod::CreateNewBlock => {
                let script: ScriptBuf = args(call, MINING)?;
                let outcome = self
                    .mining
                    .create_new_block(&script)
                    .map(|t| Arc::new(BlockTemplateServer::new(t)) as _);
                reply_object(call, outcome)
            }
        }
    }
}

/// Calls a [`BlockTemplate`] the peer exports.
#[derive(Debug, Clone)]
pub struct BlockTemplateProxy {
    object: RemoteObject,
}

impl BlockTemplateProxy {
    /// A proxy for the peer's `BlockTemplate` object.
    pub fn new(object: RemoteObject) -> Self {
        BlockTemplateProxy { object }
    }
}

impl BlockTemplate for BlockTemplateProxy {
    fn get_block_header(&self) -> Result<block::Header, InterfaceError> {
        call(&self.object, BlockTemplateMethod::GetBlockHeader.id(), &())
    }

    fn get_block(&self) -> Result<Block, InterfaceError> {
        call(&self.object, BlockTemplateMethod::GetBlock.id(), &())
    }

    fn get_coinbase_tx(&self) -> Result<Transaction, InterfaceError> {
        call(&self.object, BlockTemplateMethod::GetCoinbaseTx.id(), &())
    }

    fn get_coinbase_merkle_path(&self) -> Result<Vec<TxMerkleNode>, InterfaceError> {
        call(
            &self.object,
            BlockTemplateMethod::GetCoinbaseMerklePath.id(),
            &(),
        )
    }

    fn submit_solution(
        &self,
        version: block::Version,
        time: u32,
        nonce: u32,
        coinbase: &Transaction,
    ) -> Result<bool, InterfaceError> {
        call(
            &self.object,
            BlockTemplateMethod::SubmitSolution.id(),
            &(version, time, nonce, coinbase),
        )
    }
}

/// Serves a [`BlockTemplate`] to the peer.
pub struct BlockTemplateServer {
    template: Arc<dyn BlockTemplate>,
}

impl BlockTemplateServer {
    /// Serves `template`.
    pub fn new(template: Arc<dyn BlockTemplate>) -> Self {
        BlockTemplateServer { template }
    }
}

impl fmt::Debug for BlockTemplateServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockTemplateServer")
    }
}

const BLOCK_TEMPLATE: &str = "BlockTemplate";

impl Dispatch for BlockTemplateServer {
    fn interface_name(&self) -> &'static str {
        BLOCK_TEMPLATE
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = BlockTemplateMethod::from_id(call.method()) else {
            return Err(unknown_method(BLOCK_TEMPLATE, call.method()));
        };
        let template = &*self.template;
        match method {
            BlockTemplateMethod::GetBlockHeader => {
                args::<()>(call, BLOCK_TEMPLATE)?;
                reply(call, template.get_block_header())
            }
            BlockTemplateMethod::GetBlock => {
                args::<()>(call, BLOCK_TEMPLATE)?;
                reply(call, template.get_block())
            }
            BlockTemplateMethod::GetCoinbaseTx => {
                args::<()>(call, BLOCK_TEMPLATE)?;
                reply(call, template.get_coinbase_tx())
            }
            BlockTemplateMethod::GetCoinbaseMerklePath => {
                args::<()>(call, BLOCK_TEMPLATE)?;
                reply(call, template.get_coinbase_merkle_path())
            }
            BlockTemplateMethod::SubmitSolution => {
                let (version, time, nonce, coinbase): (block::Version, u32, u32, Transaction) =
                    args(call, BLOCK_TEMPLATE)?;
                reply(
                    call,
                    template.submit_solution(version, time, nonce, &coinbase),
                )
            }
        }
    }
}
