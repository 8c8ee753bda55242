//! `Init`: the first object a process offers on a connection; it hands out the others.

use std::sync::Arc;

use crate::{Chain, Echo, InterfaceError, Mining, Node, WalletLoader};

/// The bootstrap interface of a process (Core's `interfaces::Init`).
///
/// Every process serves one `Init` on each connection, and each method returns the
/// interface the process offers or [`InterfaceError::not_supported`] (the default) when it
/// does not: `bitcoin-node` offers `make_echo`, `make_chain`, `make_node` and
/// `make_mining`; `bitcoin-wallet` offers `make_wallet_loader`.
pub trait Init: Send + Sync {
    /// An [`Echo`] for tests and benchmarks.
    fn make_echo(&self) -> Result<Arc<dyn Echo>, InterfaceError> {
        Err(InterfaceError::not_supported("make_echo"))
    }

    /// The node's [`Chain`], for a wallet.
    fn make_chain(&self) -> Result<Arc<dyn Chain>, InterfaceError> {
        Err(InterfaceError::not_supported("make_chain"))
    }

    /// The node's [`Node`], for a front end.
    fn make_node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        Err(InterfaceError::not_supported("make_node"))
    }

    /// The wallet process's [`WalletLoader`], working against `chain` (Core's
    /// `makeWalletLoader(Chain&)`). The node calls this on the wallet's `Init`, giving the
    /// wallet its `Chain`, whether it spawned the wallet or the wallet connected to it.
    fn make_wallet_loader(
        &self,
        chain: Arc<dyn Chain>,
    ) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        let _ = chain;
        Err(InterfaceError::not_supported("make_wallet_loader"))
    }

    /// The node's [`Mining`], for a block template client.
    fn make_mining(&self) -> Result<Arc<dyn Mining>, InterfaceError> {
        Err(InterfaceError::not_supported("make_mining"))
    }
}
