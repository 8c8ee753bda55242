//! The one error type every interface method returns.

use std::fmt;

use ipc_shm::call::{CallError, RemoteErrorKind};

use crate::codec::{DecodeError, LimitError};

/// Why an interface call failed.
///
/// The same type comes back whether the callee lives in this process or across a
/// connection, so callers handle both alike. [`InterfaceError::Remote`] is an error the
/// callee itself raised (a rejected transaction, a missing wallet) and travels unchanged
/// across the connection; the other variants come from the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterfaceError {
    /// The peer closed the connection or died. Every later call on the same connection fails
    /// the same way.
    Disconnected,
    /// The callee refused or failed the request.
    Remote {
        /// What kind of failure, in Bitcoin Core's RPC error codes.
        code: ErrorCode,
        /// Human-readable detail in Bitcoin Core's wording where one exists (for a rejected
        /// transaction, Core's reject reason such as `bad-txns-inputs-missingorspent`).
        message: String,
    },
    /// An argument or result is larger than the protocol carries, so it was not sent.
    TooLarge(LimitError),
    /// A value received from the peer did not decode.
    Decode(DecodeError),
    /// The call layer failed the call for another reason: the peer does not know the
    /// object or could not decode the arguments (an interface mismatch), a message exceeds
    /// the session's limit, or a reply had bytes left over.
    Call {
        /// How the peer refused the call; `None` when it failed on this side.
        remote: Option<RemoteErrorKind>,
        /// The call layer's description.
        message: String,
    },
}

impl InterfaceError {
    /// An error raised by the callee, with its code and message.
    pub fn remote(code: ErrorCode, message: impl Into<String>) -> Self {
        InterfaceError::Remote {
            code,
            message: message.into(),
        }
    }

    /// The error an implementation returns for a method it does not offer (for example,
    /// [`Init::make_wallet_loader`](crate::Init::make_wallet_loader) in the node process).
    pub fn not_supported(method: &str) -> Self {
        Self::remote(
            ErrorCode::METHOD_NOT_FOUND,
            format!("{method} is not supported here"),
        )
    }

    /// The callee's error code, if the callee raised this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            InterfaceError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for InterfaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceError::Disconnected => f.write_str("peer disconnected"),
            InterfaceError::Remote { code, message } => write!(f, "{message} (code {code})"),
            InterfaceError::TooLarge(e) => write!(f, "value too large to send: {e}"),
            InterfaceError::Decode(e) => write!(f, "undecodable value from peer: {e}"),
            InterfaceError::Call { message, .. } => write!(f, "call failed: {message}"),
        }
    }
}

impl std::error::Error for InterfaceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InterfaceError::TooLarge(e) => Some(e),
            InterfaceError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DecodeError> for InterfaceError {
    fn from(e: DecodeError) -> Self {
        InterfaceError::Decode(e)
    }
}

impl From<LimitError> for InterfaceError {
    fn from(e: LimitError) -> Self {
        InterfaceError::TooLarge(e)
    }
}

/// How a failure of the call layer reaches the caller of an interface method. A method the
/// peer's object does not have is reported like a method an implementation does not offer.
impl From<CallError> for InterfaceError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Disconnected => InterfaceError::Disconnected,
            CallError::Remote {
                kind: RemoteErrorKind::UnknownMethod,
                message,
            } => InterfaceError::remote(ErrorCode::METHOD_NOT_FOUND, message),
            other => InterfaceError::Call {
                remote: match other {
                    CallError::Remote { kind, .. } => Some(kind),
                    _ => None,
                },
                message: other.to_string(),
            },
        }
    }
}

/// The kind of an error raised by a callee: Bitcoin Core's RPC error codes
/// (`src/rpc/protocol.h`), so front ends can print `error code: -26` exactly as
/// `bitcoin-cli` does. Codes not listed here travel unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    /// `RPC_MISC_ERROR`: any failure without a more specific code.
    pub const MISC_ERROR: Self = Self(-1);
    /// `RPC_WALLET_ERROR`: unspecified wallet failure.
    pub const WALLET_ERROR: Self = Self(-4);
    /// `RPC_INVALID_ADDRESS_OR_KEY`: bad address, or block/transaction not found.
    pub const INVALID_ADDRESS_OR_KEY: Self = Self(-5);
    /// `RPC_WALLET_INSUFFICIENT_FUNDS`.
    pub const WALLET_INSUFFICIENT_FUNDS: Self = Self(-6);
    /// `RPC_INVALID_PARAMETER`: an argument out of range (amount, fee rate, count...).
    pub const INVALID_PARAMETER: Self = Self(-8);
    /// `RPC_CLIENT_IN_INITIAL_DOWNLOAD`.
    pub const CLIENT_IN_INITIAL_DOWNLOAD: Self = Self(-10);
    /// `RPC_WALLET_NOT_FOUND`: no wallet of that name is loaded or on disk.
    pub const WALLET_NOT_FOUND: Self = Self(-18);
    /// `RPC_DATABASE_ERROR`.
    pub const DATABASE_ERROR: Self = Self(-20);
    /// `RPC_DESERIALIZATION_ERROR`: a transaction or block did not decode.
    pub const DESERIALIZATION_ERROR: Self = Self(-22);
    /// `RPC_VERIFY_ERROR`: validation failed for a reason other than a policy reject.
    pub const VERIFY_ERROR: Self = Self(-25);
    /// `RPC_VERIFY_REJECTED`: transaction or block rejected; the message is Core's reject
    /// reason.
    pub const VERIFY_REJECTED: Self = Self(-26);
    /// `RPC_VERIFY_ALREADY_IN_CHAIN`: the transaction is already confirmed.
    pub const VERIFY_ALREADY_IN_CHAIN: Self = Self(-27);
    /// `RPC_IN_WARMUP`: the callee is starting up or shutting down.
    pub const IN_WARMUP: Self = Self(-28);
    /// `RPC_WALLET_ALREADY_LOADED`.
    pub const WALLET_ALREADY_LOADED: Self = Self(-35);
    /// `RPC_WALLET_ALREADY_EXISTS`.
    pub const WALLET_ALREADY_EXISTS: Self = Self(-36);
    /// `RPC_METHOD_NOT_FOUND`: the callee does not offer this method or interface.
    pub const METHOD_NOT_FOUND: Self = Self(-32601);
    /// `RPC_INTERNAL_ERROR`: a bug or an unexpected failure in the callee.
    pub const INTERNAL_ERROR: Self = Self(-32603);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
