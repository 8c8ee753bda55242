//! The errors of the transport. Each names the offending value where one exists.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

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
    /// A bell descriptor the peer sent is not a datagram socket.
    NotADoorbell,
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
                write!(
                    f,
                    "segment is not sealed against shrinking (seals {seals:#x})"
                )
            }
            ProtocolError::BadMagic { found } => write!(f, "bad ring magic {found:#018x}"),
            ProtocolError::BadVersion { found } => write!(f, "unsupported ring version {found}"),
            ProtocolError::BadGeometry { capacity, segment } => write!(
                f,
                "ring capacity {capacity} does not fit a segment of {segment} bytes"
            ),
            ProtocolError::BadPosition {
                which,
                found,
                min,
                max,
            } => write!(
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
            ProtocolError::NotADoorbell => {
                f.write_str("a bell descriptor is not a datagram socket")
            }
            ProtocolError::BadFrame { reason } => write!(f, "malformed frame: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    // No `source`: every message already names its cause in one line, and a chain printer
    // (anyhow's `{:#}`) would print the cause twice.
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

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer did not complete the handshake before the deadline (a silent peer).
    Timeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The peer closed the connection in the middle of a message.
    Truncated {
        /// The message ("hello", "reply", "ring descriptors").
        what: &'static str,
        /// Bytes received before the end of the stream.
        received: usize,
        /// Bytes the message has.
        expected: usize,
    },
    /// The peer does not speak this protocol: a message did not start with its magic.
    BadMagic {
        /// The message expected.
        what: &'static str,
        /// The 8 bytes received instead.
        found: [u8; 8],
    },
    /// The peer speaks another version of the protocol.
    UnsupportedVersion {
        /// The version the peer sent.
        found: u32,
        /// The version we speak.
        supported: u32,
    },
    /// The peer runs as another user (`SO_PEERCRED`) and `allow_other_uids` is off.
    PeerUid {
        /// The peer's uid.
        peer: u32,
        /// Ours.
        ours: u32,
    },
    /// A ring capacity is not a power of two in the allowed range, or exceeds the proposal.
    BadRingSize {
        /// The capacity in question.
        capacity: u64,
    },
    /// The hello names a transport we do not know.
    BadTransport {
        /// The transport code found.
        found: u64,
    },
    /// The peer sent a different number of descriptors than a ring needs (any extra were
    /// closed on arrival).
    BadFds {
        /// Descriptors expected.
        expected: usize,
        /// Descriptors received.
        received: usize,
    },
    /// The acceptor refused our hello.
    Refused(Refusal),
}

/// Why an acceptor refused a hello, as the initiator learns it from the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Our hello did not start with the magic (status 1).
    BadMagic,
    /// Our hello was cut short (status 2).
    Truncated,
    /// The acceptor speaks another version (status 3).
    UnsupportedVersion {
        /// The version the acceptor speaks.
        supported: u32,
    },
    /// We run as a user the acceptor does not accept (status 4).
    PeerUid {
        /// Our uid as the acceptor saw it.
        uid: u32,
    },
    /// A proposed ring capacity is invalid (status 5).
    BadRingSize {
        /// The capacity refused.
        capacity: u64,
    },
    /// The proposed transport is unknown to the acceptor (status 6).
    BadTransport {
        /// The transport code refused.
        found: u64,
    },
    /// We did not complete our hello before the acceptor's deadline (status 7).
    Timeout {
        /// The acceptor's deadline, in milliseconds.
        after_ms: u64,
    },
    /// The acceptor already has as many connections as it allows (status 8).
    TooManyConnections {
        /// Its limit.
        limit: u64,
    },
    /// A status code this version does not know.
    Other {
        /// The status code.
        status: u32,
        /// Its detail value.
        detail: u64,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Timeout { after } => {
                write!(f, "peer did not complete the handshake within {after:?}")
            }
            HandshakeError::Truncated {
                what,
                received,
                expected,
            } => write!(
                f,
                "peer closed the connection after {received} of the {expected} bytes of its {what}"
            ),
            HandshakeError::BadMagic { what, found } => write!(
                f,
                "peer does not speak this protocol: its {what} starts with \"{}\"",
                found.escape_ascii()
            ),
            HandshakeError::UnsupportedVersion { found, supported } => write!(
                f,
                "peer speaks protocol version {found}, this process speaks version {supported}"
            ),
            HandshakeError::PeerUid { peer, ours } => write!(
                f,
                "peer runs as uid {peer}, this process as uid {ours}, and other users are not allowed"
            ),
            HandshakeError::BadRingSize { capacity } => write!(
                f,
                "ring capacity {capacity} is not a power of two between {} and {} bytes, or more than proposed",
                crate::ring::MIN_CAPACITY,
                crate::ring::MAX_CAPACITY
            ),
            HandshakeError::BadTransport { found } => write!(f, "unknown transport code {found}"),
            HandshakeError::BadFds { expected, received } => {
                write!(
                    f,
                    "peer sent {received} descriptors for its ring, expected {expected}"
                )
            }
            HandshakeError::Refused(r) => write!(f, "peer refused the connection: {r}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::BadMagic => f.write_str("our hello was not recognised"),
            Refusal::Truncated => f.write_str("our hello was truncated"),
            Refusal::UnsupportedVersion { supported } => {
                write!(f, "it speaks protocol version {supported} only")
            }
            Refusal::PeerUid { uid } => write!(f, "connections from uid {uid} are not allowed"),
            Refusal::BadRingSize { capacity } => write!(f, "invalid ring capacity {capacity}"),
            Refusal::BadTransport { found } => write!(f, "unknown transport code {found}"),
            Refusal::Timeout { after_ms } => {
                write!(
                    f,
                    "our hello did not arrive within its {after_ms} ms deadline"
                )
            }
            Refusal::TooManyConnections { limit } => {
                write!(f, "it already has its maximum of {limit} connections")
            }
            Refusal::Other { status, detail } => write!(f, "status {status} (detail {detail})"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Why an endpoint could not be parsed, bound, connected to, or a child spawned.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// An `-ipcbind`/`-ipcconnect` value other than `unix` or `unix:PATH`.
    Unsupported {
        /// The value given.
        spec: String,
    },
    /// The socket path does not fit in a unix socket address.
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest path that fits.
        max: usize,
    },
    /// Another process is listening on the socket.
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Nobody listens on the socket.
    NoListener {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is in the way at the socket path; it is left alone.
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A file-system or socket operation on the path failed.
    Io {
        /// What we were doing ("create the directory of", "bind", ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The child executable could not be started.
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A child started with its stderr captured (`SpawnOptions::capture_stderr`) exited
    /// before the handshake completed, typically having written why to its stderr.
    ChildExited {
        /// The executable.
        exe: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// The end of what it wrote to its stderr (at most `STDERR_CAPTURE_LIMIT` bytes).
        stderr: Vec<u8>,
        /// What the handshake reported (usually [`Error::Disconnected`] or a truncated reply).
        error: Box<Error>,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Unsupported { spec } => write!(
                f,
                "unsupported address \"{}\", expected \"unix\" or \"unix:PATH\"",
                spec.escape_debug()
            ),
            ConnectError::PathTooLong { path, len, max } => write!(
                f,
                "socket path {} is {len} bytes, longer than the {max} bytes a unix socket address holds",
                path.display()
            ),
            ConnectError::InUse { path } => {
                write!(
                    f,
                    "socket {} is already in use by a running process",
                    path.display()
                )
            }
            ConnectError::NoListener { path } => {
                write!(f, "no node listening at {}", path.display())
            }
            ConnectError::NotASocket { path } => {
                write!(
                    f,
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                )
            }
            ConnectError::Io {
                action,
                path,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            ConnectError::Spawn { exe, source } => {
                write!(f, "cannot start {}: {source}", exe.display())
            }
            ConnectError::ChildExited {
                exe,
                status,
                stderr,
                ..
            } => {
                write!(
                    f,
                    "{} exited during the handshake ({status})",
                    exe.display()
                )?;
                // Its last line, which says why if anything does.
                let text = String::from_utf8_lossy(stderr);
                match text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
                    Some(line) => write!(f, ": {line}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// No `source`, for the reason given at `Error`'s.
impl std::error::Error for ConnectError {}
