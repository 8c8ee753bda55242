//! `Handler`: a subscription that a callee hands back for a registered callback.

use crate::InterfaceError;

/// A registered callback or notification subscription (Core's `interfaces::Handler`).
///
/// Returned by [`Chain::handle_notifications`](crate::Chain::handle_notifications),
/// [`Node::handle_notify_block_tip`](crate::Node::handle_notify_block_tip) and
/// [`Wallet::handle_transaction_changed`](crate::Wallet::handle_transaction_changed).
/// Calling [`disconnect`](Handler::disconnect) or dropping the handler unsubscribes; after
/// `disconnect` returns, the callback is not called again.
pub trait Handler: Send + Sync {
    /// Unsubscribes. Calling it again does nothing.
    fn disconnect(&self) -> Result<(), InterfaceError>;
}
