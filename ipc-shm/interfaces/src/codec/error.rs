//! The errors of encoding and decoding.

use std::fmt;
use std::io;

/// Why bytes received from the peer do not decode into the expected value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of `what`.
    UnexpectedEnd {
        /// The value being decoded.
        what: &'static str,
    },
    /// A length or count read from the input exceeds what we accept for `what`.
    TooLong {
        /// The value being decoded.
        what: &'static str,
        /// The length or count found.
        len: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A field holds a value outside its domain (an unknown enum tag, a bool that is
    /// neither 0 nor 1).
    InvalidValue {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A string is not UTF-8.
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// An address string does not parse.
    InvalidAddress {
        /// The parser's explanation.
        reason: String,
    },
    /// A block, header or transaction is not valid consensus encoding.
    Consensus {
        /// The value being decoded.
        what: &'static str,
        /// The consensus decoder's explanation.
        reason: String,
    },
    /// Bytes were left over after the value.
    TrailingBytes {
        /// How many.
        len: u64,
    },
    /// Reading the input failed.
    Io {
        /// The kind of failure.
        kind: io::ErrorKind,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd { what } => write!(f, "input ends inside {what}"),
            DecodeError::TooLong { what, len, max } => {
                write!(f, "{what} of length {len} exceeds the limit of {max}")
            }
            DecodeError::InvalidValue { what, value } => write!(f, "invalid {what} {value}"),
            DecodeError::InvalidUtf8 { what } => write!(f, "{what} is not utf-8"),
            DecodeError::InvalidAddress { reason } => write!(f, "invalid address: {reason}"),
            DecodeError::Consensus { what, reason } => write!(f, "invalid {what}: {reason}"),
            DecodeError::TrailingBytes { len } => write!(f, "{len} bytes left after the value"),
            DecodeError::Io { kind } => write!(f, "read failed: {kind}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A value exceeds a limit the receiving decoder enforces, so it cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// The value.
    pub what: &'static str,
    /// Its length or count.
    pub len: u64,
    /// The largest the decoder accepts.
    pub max: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of length {} exceeds the limit of {}",
            self.what, self.len, self.max
        )
    }
}

impl std::error::Error for LimitError {}
