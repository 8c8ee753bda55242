//! `WalletLoader` and `Wallet` over a session, with the transaction-changed callback.

use std::fmt;
use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, Txid};
use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{
    HandlerProxy, HandlerServer, args, call, call_object, call_with, methods, object_arg, reply,
    reply_object, unknown_method,
};
use crate::{
    Balances, ChangeType, Handler, InterfaceError, TransactionChangedFn, Wallet, WalletLoader,
    WalletTx,
};

methods! {
    /// The methods of [`WalletLoader`].
    WalletLoaderMethod {
        /// [`WalletLoader::create_wallet`].
        CreateWallet = 0,
        /// [`WalletLoader::load_wallet`].
        LoadWallet = 1,
        /// [`WalletLoader::list_wallets`].
        ListWallets = 2,
        /// [`WalletLoader::get_wallet`].
        GetWallet = 3,
        /// [`WalletLoader::get_default_wallet`].
        GetDefaultWallet = 4,
        /// [`WalletLoader::unload_wallet`].
        UnloadWallet = 5,
    }
}

methods! {
    /// The methods of [`Wallet`].
    WalletMethod {
        /// [`Wallet::get_wallet_name`].
        GetWalletName = 0,
        /// [`Wallet::get_new_address`].
        GetNewAddress = 1,
        /// [`Wallet::get_balances`].
        GetBalances = 2,
        /// [`Wallet::list_transactions`].
        ListTransactions = 3,
        /// [`Wallet::send_to_address`].
        SendToAddress = 4,
        /// [`Wallet::handle_transaction_changed`].
        HandleTransactionChanged = 5,
    }
}

methods! {
    /// The method of the callback object [`Wallet::handle_transaction_changed`] exports.
    TransactionChangedMethod {
        /// Calls the [`TransactionChangedFn`] with a txid and a [`ChangeType`].
        Notify = 0,
    }
}

/// Calls a [`WalletLoader`] the peer exports.
#[derive(Debug, Clone)]
pub struct WalletLoaderProxy {
    object: RemoteObject,
}

impl WalletLoaderProxy {
    /// A proxy for the peer's `WalletLoader` object.
    pub fn new(object: RemoteObject) -> Self {
        WalletLoaderProxy { object }
    }

    fn wallet(
        &self,
        method: WalletLoaderMethod,
        name: &str,
    ) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let object = call_object(&self.object, method.id(), name)?;
        Ok(Arc::new(WalletProxy::new(object)))
    }
}

impl WalletLoader for WalletLoaderProxy {
    fn create_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        self.wallet(WalletLoaderMethod::CreateWallet, name)
    }

    fn load_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        self.wallet(WalletLoaderMethod::LoadWallet, name)
    }

    fn list_wallets(&self) -> Result<Vec<String>, InterfaceError> {
        call(&self.object, WalletLoaderMethod::ListWallets.id(), &())
    }

    fn unload_wallet(&self, name: &str) -> Result<(), InterfaceError> {
        call(&self.object, WalletLoaderMethod::UnloadWallet.id(), name)
    }

    fn get_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>, InterfaceError> {
        self.wallet(WalletLoaderMethod::GetWallet, name)
    }

    fn get_default_wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let object = call_object(&self.object, WalletLoaderMethod::GetDefaultWallet.id(), &())?;
        Ok(Arc::new(WalletProxy::new(object)))
    }
}

/// Serves a [`WalletLoader`] to the peer.
pub struct WalletLoaderServer {
    loader: Arc<dyn WalletLoader>,
}

impl WalletLoaderServer {
    /// Serves `loader`.
    pub fn new(loader: Arc<dyn WalletLoader>) -> Self {
        WalletLoaderServer { loader }
    }
}

impl fmt::Debug for WalletLoaderServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WalletLoaderServer")
    }
}

const WALLET_LOADER: &str = "WalletLoader";

/// Exports a wallet a loader method returned.
fn wallet_server(
    wallet: Result<Arc<dyn Wallet>, InterfaceError>,
) -> Result<Arc<dyn Dispatch>, InterfaceError> {
    wallet.map(|w| Arc::new(WalletServer::new(w)) as _)
}

impl Dispatch for WalletLoaderServer {
    fn interface_name(&self) -> &'static str {
        WALLET_LOADER
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = WalletLoaderMethod::from_id(call.method()) else {
            return Err(unknown_method(WALLET_LOADER, call.method()));
        };
        let loader = &*self.loader;
        match method {
            WalletLoaderMethod::CreateWallet => {
                let name: String = args(call, WALLET_LOADER)?;
                reply_object(call, wallet_server(loader.create_wallet(&name)))
            }
            WalletLoaderMethod::LoadWallet => {
                let name: String = args(call, WALLET_LOADER)?;
                reply_object(call, wallet_server(loader.load_wallet(&name)))
            }
            WalletLoaderMethod::ListWallets => {
                args::<()>(call, WALLET_LOADER)?;
                reply(call, loader.list_wallets())
            }
            WalletLoaderMethod::UnloadWallet => {
                let name: String = args(call, WALLET_LOADER)?;
                reply(call, loader.unload_wallet(&name))
            }
            WalletLoaderMethod::GetWallet => {
                let name: String = args(call, WALLET_LOADER)?;
                reply_object(call, wallet_server(loader.get_wallet(&name)))
            }
            WalletLoaderMethod::GetDefaultWallet => {
                args::<()>(call, WALLET_LOADER)?;
                reply_object(call, wallet_server(loader.get_default_wallet()))
            }
        }
    }
}

/// Calls a [`Wallet`] the peer exports.
#[derive(Debug, Clone)]
pub struct WalletProxy {
    object: RemoteObject,
}

impl WalletProxy {
    /// A proxy for the peer's `Wallet` object.
    pub fn new(object: RemoteObject) -> Self {
        WalletProxy { object }
    }
}

impl Wallet for WalletProxy {
    fn get_wallet_name(&self) -> Result<String, InterfaceError> {
        call(&self.object, WalletMethod::GetWalletName.id(), &())
    }

    fn get_new_address(&self) -> Result<Address<NetworkUnchecked>, InterfaceError> {
        call(&self.object, WalletMethod::GetNewAddress.id(), &())
    }

    fn get_balances(&self) -> Result<Balances, InterfaceError> {
        call(&self.object, WalletMethod::GetBalances.id(), &())
    }

    fn list_transactions(&self) -> Result<Vec<WalletTx>, InterfaceError> {
        call(&self.object, WalletMethod::ListTransactions.id(), &())
    }

    fn send_to_address(
        &self,
        address: &Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, InterfaceError> {
        call(
            &self.object,
            WalletMethod::SendToAddress.id(),
            &(address, amount, fee_rate),
        )
    }

    fn handle_transaction_changed(
        &self,
        callback: TransactionChangedFn,
    ) -> Result<Box<dyn Handler>, InterfaceError> {
        let server: Arc<dyn Dispatch> = Arc::new(TransactionChangedServer { callback });
        let handler = call_with(
            &self.object,
            WalletMethod::HandleTransactionChanged.id(),
            8,
            |enc| enc.put_object(server),
            |dec| Ok(dec.get_object()?),
        )?;
        Ok(Box::new(HandlerProxy::new(handler)))
    }
}

/// Serves a [`Wallet`] to the peer.
pub struct WalletServer {
    wallet: Arc<dyn Wallet>,
}

impl WalletServer {
    /// Serves `wallet`.
    pub fn new(wallet: Arc<dyn Wallet>) -> Self {
        WalletServer { wallet }
    }
}

impl fmt::Debug for WalletServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WalletServer")
    }
}

const WALLET: &str = "Wallet";

impl Dispatch for WalletServer {
    fn interface_name(&self) -> &'static str {
        WALLET
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let Some(method) = WalletMethod::from_id(call.method()) else {
            return Err(unknown_method(WALLET, call.method()));
        };
        let wallet = &*self.wallet;
        match method {
            WalletMethod::GetWalletName => {
                args::<()>(call, WALLET)?;
                reply(call, wallet.get_wallet_name())
            }
            WalletMethod::GetNewAddress => {
                args::<()>(call, WALLET)?;
                reply(call, wallet.get_new_address())
            }
            WalletMethod::GetBalances => {
                args::<()>(call, WALLET)?;
                reply(call, wallet.get_balances())
            }
            WalletMethod::ListTransactions => {
                args::<()>(call, WALLET)?;
                reply(call, wallet.list_transactions())
            }
            WalletMethod::SendToAddress => {
                let (address, amount, fee_rate): (
                    Address<NetworkUnchecked>,
                    Amount,
                    Option<FeeRate>,
                ) = args(call, WALLET)?;
                reply(call, wallet.send_to_address(&address, amount, fee_rate))
            }
            WalletMethod::HandleTransactionChanged => {
                let remote = object_arg(call)?;
                let outcome = wallet
                    .handle_transaction_changed(transaction_changed_proxy(remote))
                    .map(|h| Arc::new(HandlerServer::new(h)) as _);
                reply_object(call, outcome)
            }
        }
    }
}

/// A [`TransactionChangedFn`] that calls the peer's callback object; a notification the
/// peer cannot take is dropped with a log line.
fn transaction_changed_proxy(remote: RemoteObject) -> TransactionChangedFn {
    Arc::new(move |txid: &Txid, change: ChangeType| {
        let method = TransactionChangedMethod::Notify.id();
        if let Err(e) = call::<_, ()>(&remote, method, &(txid, change)) {
            tracing::debug!(error = %e, "transaction change notification not delivered");
        }
    })
}

/// Serves a [`TransactionChangedFn`] to the peer.
struct TransactionChangedServer {
    callback: TransactionChangedFn,
}

impl fmt::Debug for TransactionChangedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactionChangedServer")
    }
}

const TRANSACTION_CHANGED: &str = "TransactionChanged";

impl Dispatch for TransactionChangedServer {
    fn interface_name(&self) -> &'static str {
        TRANSACTION_CHANGED
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match TransactionChangedMethod::from_id(call.method()) {
            Some(TransactionChangedMethod::Notify) => {
                let (txid, change): (Txid, ChangeType) = args(call, TRANSACTION_CHANGED)?;
                (self.callback)(&txid, change);
                reply(call, Ok(()))
            }
            None => Err(unknown_method(TRANSACTION_CHANGED, call.method())),
        }
    }
}
