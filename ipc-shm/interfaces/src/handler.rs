//! `Handler`: a subscription that a callee hands back for a registered callback.

use crate::InterfaceError;

/// A registered callback or notification subscription (Core's `interfaces::Handler`).
///
/// Returned by [`Chain::handle_notifications`](crate::Chain::handle_notifications),
/// [`Node::handle_notify_block_tip`](crate::Node::handle_notify_block_tip) and
/// [`Wallet::handle_transaction_changed`](crate::Wallet::handle_transaction_changed).
/// Calling [`disconnect`](Handler::disconnect) or dropping the handler unsubscribes. After
/// `disconnect` returns, the callback is not called again. Dropping is the same in-process;
/// across a connection the release travels to the callee and takes effect there shortly
/// after the drop, so a notification already under way may still arrive.
pub trait Handler: Send + Sync {
    /// Unsubscribes. Calling it again does nothing.
    fn disconnect(&self) -> Result<(), InterfaceError>;
}
