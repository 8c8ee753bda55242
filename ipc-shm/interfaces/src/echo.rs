//! `Echo`: returns what it is given, to test and measure the call path.

use crate::InterfaceError;

/// Returns its argument unchanged (Core's `interfaces::Echo`).
pub trait Echo: Send + Sync {
    /// Returns a copy of `data`.
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError>;
}
