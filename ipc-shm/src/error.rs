//! The errors of the transport. Each names the offending value where one exists.

use std::fmt;
use std::io;

use crate::connect::ConnectError;
use crate::handshake::HandshakeError;

/// Why a transport operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed the connection or died. Every later operation fails the same way.
    Disconnected,
    /// The peer broke the protocol (for example, scribbled on shared state). The connection
    /// is unusable and must be dropped.
    Protocol(ProtocolError),
    /// A record longer than the transport's record limit was requested.
    TooLarge {
        /// The requested length in bytes.
        len: usize,
        /// The longest record the transport carries.
        max: usize,
    },
    /// Setting the connection up failed.
    Handshake(HandshakeError),
    /// An endpoint could not be parsed, bound or reached, or a child not started.
    Connect(ConnectError),
    /// The operating system refused an operation.
    Io(io::Error),
}

/// A violation of the protocol by the peer. Seeing one means the peer is buggy or hostile;
/// the connection is closed and the process goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The segment's size is not the one announced in the handshake.
    SegmentSize {
        /// The size announced.
        expected: u64,
        /// The size `fstat` reports.
        found: u64,
    },
    /// The segment is not sealed against shrinking, so the peer could make our accesses fault.
    SegmentNotSealed {
        /// The seals found.
        seals: u32,
    },
    /// The ring header does not start with the magic number.
    BadMagic {
        /// The value found.
        found: u64,
    },
    /// The ring header has a layout version we do not speak.
    BadVersion {
        /// The version found.
        found: u32,
    },
    /// The ring's capacity in the header disagrees with the segment or is not a power of two.
    BadGeometry {
        /// The capacity found in the header.
        capacity: u64,
        /// The size of the segment that holds the ring.
        segment: u64,
    },
    /// A position published by the peer is outside what the protocol allows.
    BadPosition {
        /// Which position ("producer" or "consumer").
        which: &'static str,
        /// The value found.
        found: u64,
        /// The lowest value allowed.
        min: u64,
        /// The highest value allowed.
        max: u64,
    },
    /// A record header announces a length that does not fit in what was committed.
    BadRecordLength {
        /// The length found.
        len: u64,
        /// The bytes available for it.
        available: u64,
    },
    /// A record does not have the length its type requires.
    UnexpectedLength {
        /// The length found.
        len: u64,
        /// The length required.
        expected: u64,
    },
    /// A record header carries flags we do not know.
    BadRecordFlags {
        /// The flags found.
        flags: u32,
    },
    /// The peer sent bytes on the connection socket where none were expected.
    UnexpectedSocketData,
    /// A framed message on the socket transport was malformed.
    BadFrame {
        /// What was wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disconnected => f.write_str("peer disconnected"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::TooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Connect(e) => e.fmt(f),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::SegmentSize { expected, found } => {
                write!(f, "segment is {found} bytes, expected {expected}")
            }
            ProtocolError::SegmentNotSealed { seals } => {
                write!(f, "segment is not sealed against shrinking (seals {seals:#x})")
            }
            ProtocolError::BadMagic { found } => write!(f, "bad ring magic {found:#018x}"),
            ProtocolError::BadVersion { found } => write!(f, "unsupported ring version {found}"),
            ProtocolError::BadGeometry { capacity, segment } => write!(
                f,
                "ring capacity {capacity} does not fit a segment of {segment} bytes"
            ),
            ProtocolError::BadPosition { which, found, min, max } => write!(
                f,
                "{which} position {found} outside the allowed range {min}..={max}"
            ),
            ProtocolError::BadRecordLength { len, available } => write!(
                f,
                "record length {len} exceeds the {available} bytes available"
            ),
            ProtocolError::UnexpectedLength { len, expected } => {
                write!(f, "record of {len} bytes where {expected} were expected")
            }
            ProtocolError::BadRecordFlags { flags } => write!(f, "unknown record flags {flags:#x}"),
            ProtocolError::UnexpectedSocketData => {
                f.write_str("unexpected data on the connection socket")
            }
            ProtocolError::BadFrame { reason } => write!(f, "malformed frame: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake(e) => Some(e),
            Error::Connect(e) => e.source(),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Self {
        Error::Connect(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(io::Error::from(e))
    }
}
