//! The errors of the call layer.

use std::fmt;

/// Why a call (or serving one) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The connection is gone (the peer exited, hung up or broke the protocol). Every
    /// pending and later call on the session fails with this.
    Disconnected,
    /// The peer received the call and answered with an error.
    Remote {
        /// What kind of failure the peer reported.
        kind: RemoteErrorKind,
        /// The peer's description (at most [`MAX_ERROR_MESSAGE`] bytes).
        message: String,
    },
    /// Server side: no method with this id on the object's interface. Sent to the caller as
    /// [`RemoteErrorKind::UnknownMethod`].
    UnknownMethod {
        /// The interface the object implements.
        interface: &'static str,
        /// The method id asked for.
        method: u32,
    },
    /// Bytes could not be decoded as the value expected (arguments on the server side,
    /// a result on the caller side). Arguments that fail are answered with
    /// [`RemoteErrorKind::BadArguments`].
    Decode {
        /// What was wrong.
        reason: &'static str,
    },
    /// A value is larger than the session allows for one message.
    TooLarge {
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A call was made from inside an encode or decode function of another call (which
    /// hold the session's send lock or its receiving ring); it would deadlock.
    Reentrant,
    /// Server side: the method failed; sent to the caller as [`RemoteErrorKind::Failed`].
    Failed {
        /// What went wrong.
        message: String,
    },
}

/// The kinds of error a peer can answer a call with (the response status on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The method ran and failed.
    Failed,
    /// The call named an object the peer does not export (never exported or released).
    UnknownObject,
    /// The object has no method with that id.
    UnknownMethod,
    /// The arguments could not be decoded (wrong length, bad encoding, interface mismatch).
    BadArguments,
}

/// The longest error message carried in a response; longer ones are truncated.
pub const MAX_ERROR_MESSAGE: usize = 1024;

impl CallError {
    /// A decode failure with a fixed reason.
    pub const fn decode(reason: &'static str) -> CallError {
        CallError::Decode { reason }
    }

    /// A method failure with a message, for servers.
    pub fn failed(message: impl fmt::Display) -> CallError {
        CallError::Failed {
            message: message.to_string(),
        }
    }
}

impl RemoteErrorKind {
    pub(crate) fn status(self) -> u16 {
        match self {
            RemoteErrorKind::Failed => 1,
            RemoteErrorKind::UnknownObject => 2,
            RemoteErrorKind::UnknownMethod => 3,
            RemoteErrorKind::BadArguments => 4,
        }
    }

    pub(crate) fn from_status(status: u16) -> Option<RemoteErrorKind> {
        Some(match status {
            1 => RemoteErrorKind::Failed,
            2 => RemoteErrorKind::UnknownObject,
            3 => RemoteErrorKind::UnknownMethod,
            4 => RemoteErrorKind::BadArguments,
            _ => return None,
        })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Disconnected => f.write_str("peer disconnected"),
            CallError::Remote { kind, message } => write!(f, "remote {kind}: {message}"),
            CallError::UnknownMethod { interface, method } => {
                write!(f, "interface {interface} has no method {method}")
            }
            CallError::Decode { reason } => write!(f, "cannot decode value: {reason}"),
            CallError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max} bytes")
            }
            CallError::Reentrant => {
                f.write_str("call made from inside the encoding or decoding of another call")
            }
            CallError::Failed { message } => write!(f, "call failed: {message}"),
        }
    }
}

impl fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteErrorKind::Failed => "failure",
            RemoteErrorKind::UnknownObject => "unknown object",
            RemoteErrorKind::UnknownMethod => "unknown method",
            RemoteErrorKind::BadArguments => "bad arguments",
        })
    }
}

impl std::error::Error for CallError {}
