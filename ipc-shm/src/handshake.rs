//! The versioned hello exchanged over the unix socket before any ring is used.

use std::fmt;

/// Why a handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer did not complete the handshake before the deadline.
    Timeout,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Timeout => f.write_str("peer did not complete the handshake in time"),
        }
    }
}

impl std::error::Error for HandshakeError {}
