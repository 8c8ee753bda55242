//! `Init` over a session: the bootstrap object of every process.

use std::fmt;
use std::sync::Arc;

use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{
    ChainProxy, ChainServer, EchoProxy, EchoServer, MiningProxy, MiningServer, NodeProxy,
    NodeServer, WalletLoaderProxy, WalletLoaderServer, args, call_object, call_with, methods,
    object_arg, reply_object, unknown_method,
};
use crate::{Chain, Echo, Init, InterfaceError, Mining, Node, WalletLoader};

methods! {
    /// The methods of [`Init`].
    InitMethod {
        /// [`Init::make_echo`].
        MakeEcho = 0,
        /// [`Init::make_chain`].
        MakeChain = 1,
        /// [`Init::make_node`].
        MakeNode = 2,
        /// [`Init::make_wallet_loader`].
        MakeWalletLoader = 3,
        /// [`Init::make_mining`].
        MakeMining = 4,
    }
}

/// Calls the [`Init`] the peer exports, normally its bootstrap object
/// (`InitProxy::new(session.bootstrap())`).
#[derive(Debug, Clone)]
pub struct InitProxy {
    object: RemoteObject,
}

impl InitProxy {
    /// A proxy for the peer's `Init` object.
    pub fn new(object: RemoteObject) -> Self {
        InitProxy { object }
    }
}

impl Init for InitProxy {
    fn make_echo(&self) -> Result<Arc<dyn Echo>, InterfaceError> {
        let object = call_object(&self.object, InitMethod::MakeEcho.id(), &())?;
        Ok(Arc::new(EchoProxy::new(object)))
    }

    fn make_chain(&self) -> Result<Arc<dyn Chain>, InterfaceError> {
        let object = call_object(&self.object, InitMethod::MakeChain.id(), &())?;
        Ok(Arc::new(ChainProxy::new(object)))
    }

    fn make_node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        let object = call_object(&self.object, InitMethod::MakeNode.id(), &())?;
        Ok(Arc::new(NodeProxy::new(object)))
    }

    fn make_wallet_loader(
        &self,
        chain: Arc<dyn Chain>,
    ) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        let server: Arc<dyn Dispatch> = Arc::new(ChainServer::new(chain));
        let object = call_with(
            &self.object,
            InitMethod::MakeWalletLoader.id(),
            8,
            |enc| enc.put_object(server),
            |dec| Ok(dec.get_object()?),
        )?;
        Ok(Arc::new(WalletLoaderProxy::new(object)))
    }

    fn make_mining(&self) -> Result<Arc<dyn Mining>, InterfaceError> {
        let object = call_object(&self.object, InitMethod::MakeMining.id(), &())?;
        Ok(Arc::new(MiningProxy::new(object)))
    }
}

/// Serves an [`Init`] to the peer; give it to the session as the bootstrap object.
pub struct InitServer {
    init: Arc<dyn Init>,
}

impl InitServer {
    /// Serves `init`.
    pub fn new(init: Arc<dyn Init>) -> Self {
        InitServer { init }
    }
}

impl fmt::Debug for InitServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InitServer")
    }
}

impl Dispatch for InitServer {
    fn interface_name(&self) -> &'static str {
        "Init"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = InitMethod::from_id(call.method()) else {
            return Err(unknown_method("Init", call.method()));
        };
        let outcome: Result<Arc<dyn Dispatch>, InterfaceError> = match method {
            InitMethod::MakeEcho => {
                args::<()>(call, "Init")?;
                self.init
                    .make_echo()
                    .map(|e| Arc::new(EchoServer::new(e)) as _)
            }
            InitMethod::MakeChain => {
                args::<()>(call, "Init")?;
                self.init
                    .make_chain()
                    .map(|c| Arc::new(ChainServer::new(c)) as _)
            }
            InitMethod::MakeNode => {
                args::<()>(call, "Init")?;
                self.init
                    .make_node()
                    .map(|n| Arc::new(NodeServer::new(n)) as _)
            }
            InitMethod::MakeWalletLoader => {
                let chain = ChainProxy::new(object_arg(call)?);
                self.init
                    .make_wallet_loader(Arc::new(chain))
                    .map(|l| Arc::new(WalletLoaderServer::new(l)) as _)
            }
            InitMethod::MakeMining => {
                args::<()>(call, "Init")?;
                self.init
                    .make_mining()
                    .map(|m| Arc::new(MiningServer::new(m)) as _)
            }
        };
        reply_object(call, outcome)
    }
}
