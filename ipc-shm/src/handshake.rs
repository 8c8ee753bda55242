//! The versioned hello exchanged over the unix socket before any ring is used.
//!
//! The *initiator* is the side that spawned the peer or connected to a listener; the
//! *acceptor* is the child started with `-ipcfd=N` or the listener. In order:
//!
//! 1. initiator → acceptor: the *hello* (72 bytes): magic, protocol version, transport, the
//!    ring capacity it proposes for each direction, its pid and role name.
//! 2. acceptor → initiator: the *reply* (80 bytes). The acceptor first checks the peer's uid
//!    (`SO_PEERCRED`), then the hello's magic, version, transport and capacities. It
//!    accepts (status 0, with the capacities agreed: the smaller of the two sides' in each
//!    direction) or refuses with a status code naming the problem and closes the socket.
//! 3. shared memory only: each side creates its sending ring and sends an 8-byte message
//!    carrying three descriptors (`SCM_RIGHTS`): initiator first, then acceptor.
//!
//! Every step runs against one deadline ([`crate::Config::handshake_timeout`]), enforced with
//! `poll`. Nothing read from the peer sizes an allocation. `docs/protocol.md` has the byte
//! layouts.

use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, send};
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

pub use crate::error::{HandshakeError, Refusal};

use crate::error::Error;
use crate::ring::{PreparedRings, RingFds, valid_capacity};
use crate::sys::{
    PeerCredentials, inline_out_of_band, peer_credentials, recv_with_fds, send_with_fds,
    socket_error,
};
use crate::transport::{Config, Connection, PeerInfo, Transport};

/// The protocol version this crate speaks: the handshake, the rings and the call records.
/// Version 2 added the call layer's `VOID` flag (a version 1 peer would close the connection
/// on it, so the two are told apart at the handshake); version 3 made the bells datagram
/// sockets instead of eventfds (see `wait::Bell`); version 4 added the `UNTAKEN` flag of
/// responses (a callee that took none of the request's objects says so).
pub const PROTOCOL_VERSION: u32 = 4;
/// Bytes of the role name in a hello or reply (UTF-8, zero-padded, truncated if longer).
pub const NAME_LEN: usize = 32;

const HELLO_MAGIC: [u8; 8] = *b"BSHMHELO";
const REPLY_MAGIC: [u8; 8] = *b"BSHMRPLY";
const FDS_MAGIC: [u8; 8] = *b"BSHMRFDS";
/// Descriptors in a ring message: memfd, space bell, data bell.
const RING_FDS: usize = 3;

/// Reply status codes. 0 accepts; every other value is a [`Refusal`].
mod status {
    pub(super) const ACCEPTED: u32 = 0;
    pub(super) const BAD_MAGIC: u32 = 1;
    pub(super) const TRUNCATED: u32 = 2;
    pub(super) const UNSUPPORTED_VERSION: u32 = 3;
    pub(super) const PEER_UID: u32 = 4;
    pub(super) const BAD_RING_SIZE: u32 = 5;
    pub(super) const BAD_TRANSPORT: u32 = 6;
    pub(super) const TIMEOUT: u32 = 7;
    pub(super) const TOO_MANY_CONNECTIONS: u32 = 8;
}

/// The initiator's first message. Fixed layout, little-endian, no padding.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Hello {
    magic: [u8; 8],
    version: U32,
    /// 0 = shared memory, 1 = socket.
    transport: U32,
    /// Proposed capacity of the ring the initiator sends on.
    to_acceptor: U64,
    /// Proposed capacity of the ring the acceptor sends on.
    to_initiator: U64,
    pid: U32,
    reserved: U32,
    name: [u8; NAME_LEN],
}

/// The acceptor's answer. `magic`, `version`, `status` and `detail` keep their place in
/// every protocol version, so that a refusal is understood by any peer.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Reply {
    magic: [u8; 8],
    version: U32,
    status: U32,
    /// The value a refusal is about (see [`Refusal`]); 0 on accept.
    detail: U64,
    /// Agreed capacities (zero in a refusal).
    to_acceptor: U64,
    to_initiator: U64,
    pid: U32,
    reserved: U32,
    name: [u8; NAME_LEN],
}

impl Refusal {
    fn from_wire(status: u32, detail: u64) -> Refusal {
        match status {
            status::BAD_MAGIC => Refusal::BadMagic,
            status::TRUNCATED => Refusal::Truncated,
            status::UNSUPPORTED_VERSION => Refusal::UnsupportedVersion {
                supported: u32::try_from(detail).unwrap_or(u32::MAX),
            },
            status::PEER_UID => Refusal::PeerUid {
                uid: u32::try_from(detail).unwrap_or(u32::MAX),
            },
            status::BAD_RING_SIZE => Refusal::BadRingSize { capacity: detail },
            status::BAD_TRANSPORT => Refusal::BadTransport { found: detail },
            status::TIMEOUT => Refusal::Timeout { after_ms: detail },
            status::TOO_MANY_CONNECTIONS => Refusal::TooManyConnections { limit: detail },
            status => Refusal::Other { status, detail },
        }
    }

    /// The refusal an acceptor sends for an error it found in a hello, if it sends one.
    fn for_error(e: &HandshakeError) -> Option<(u32, u64)> {
        Some(match *e {
            HandshakeError::BadMagic { .. } => (status::BAD_MAGIC, 0),
            HandshakeError::Truncated { .. } => (status::TRUNCATED, 0),
            HandshakeError::UnsupportedVersion { .. } => {
                (status::UNSUPPORTED_VERSION, PROTOCOL_VERSION.into())
            }
            HandshakeError::PeerUid { peer, .. } => (status::PEER_UID, peer.into()),
            HandshakeError::BadRingSize { capacity } => (status::BAD_RING_SIZE, capacity),
            HandshakeError::BadTransport { found } => (status::BAD_TRANSPORT, found),
            HandshakeError::Timeout { after } => (
                status::TIMEOUT,
                after.as_millis().min(u64::MAX.into()) as u64,
            ),
            HandshakeError::BadFds { .. } | HandshakeError::Refused(_) => return None,
        })
    }
}

/// The terms both sides agreed on.
#[derive(Debug, Clone, Copy)]
struct Terms {
    transport: Transport,
    to_acceptor: usize,
    to_initiator: usize,
}

/// Runs the initiator's side of the handshake on a connected socket. `child` is the pid of
/// the peer when we spawned it: `SO_PEERCRED` on a socketpair names its creator, us.
pub(crate) fn initiate(
    sock: OwnedFd,
    config: &Config,
    child: Option<u32>,
) -> Result<Connection, Error> {
    config.validate()?;
    inline_out_of_band(sock.as_fd())?;
    let mut creds = peer_credentials(sock.as_fd())?;
    if let Some(pid) = child {
        creds.pid = pid;
    }
    let wire = Wire::new(sock.as_fd(), config.handshake_timeout);
    let proposed = config.ring_capacity as u64;
    let hello = Hello {
        magic: HELLO_MAGIC,
        version: PROTOCOL_VERSION.into(),
        transport: config.transport.code().into(),
        to_acceptor: proposed.into(),
        to_initiator: proposed.into(),
        pid: std::process::id().into(),
        reserved: 0.into(),
        name: encode_name(&config.name),
    };
    // Even if the acceptor hung up on our hello, its refusal may be waiting for us: a reply
    // explains more than the broken pipe.
    let sent = wire.write_all(hello.as_bytes());
    let result = match (sent, read_reply(&wire, proposed, config.transport)) {
        (Err(e), Err(Error::Handshake(HandshakeError::Truncated { received: 0, .. }))) => Err(e),
        (_, result) => result,
    };
    let (terms, name) = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("handshake with pid {} failed: {e}", creds.pid);
            return Err(e);
        }
    };
    let peer = PeerInfo::new(creds.pid, creds.uid, name);
    let deadline = wire.deadline;
    establish(sock, Role::Initiator, terms, config, peer, deadline)
}

/// Runs the acceptor's side of the handshake on a connected socket. A bad hello is
/// answered with a refusal and logged.
pub(crate) fn accept(sock: OwnedFd, config: &Config) -> Result<Connection, Error> {
    config.validate()?;
    inline_out_of_band(sock.as_fd())?;
    let creds = peer_credentials(sock.as_fd())?;
    let wire = Wire::new(sock.as_fd(), config.handshake_timeout);
    let (terms, name) = match read_hello(&wire, &creds, config) {
        Ok(r) => r,
        Err(e) => {
            if let Error::Handshake(h) = &e
                && let Some((status, detail)) = Refusal::for_error(h)
            {
                // A courtesy, sent once without waiting: the deadline may have passed already,
                // and the peer may have gone.
                let _ = wire.send_once(refusal(status, detail).as_bytes());
            }
            if is_probe(&e) {
                tracing::debug!("pid {} closed its connection without a hello", creds.pid);
            } else {
                tracing::warn!(
                    "refused a connection from pid {} uid {}: {e}",
                    creds.pid,
                    creds.uid
                );
            }
            return Err(e);
        }
    };
    let reply = Reply {
        magic: REPLY_MAGIC,
        version: PROTOCOL_VERSION.into(),
        status: status::ACCEPTED.into(),
        detail: 0.into(),
        to_acceptor: (terms.to_acceptor as u64).into(),
        to_initiator: (terms.to_initiator as u64).into(),
        pid: std::process::id().into(),
        reserved: 0.into(),
        name: encode_name(&config.name),
    };
    wire.write_all(reply.as_bytes())?;
    let peer = PeerInfo::new(creds.pid, creds.uid, name);
    let deadline = wire.deadline;
    establish(sock, Role::Acceptor, terms, config, peer, deadline)
}

/// Refuses a client without reading its hello because the acceptor is at its connection
/// limit: one reply (status 8, the limit as detail), sent without waiting, and the socket is
/// closed. The initiator reads the reply even if its hello found the socket closed.
pub(crate) fn refuse_too_many(sock: OwnedFd, limit: u64) {
    let creds = peer_credentials(sock.as_fd());
    let _ = Wire::new(sock.as_fd(), Duration::ZERO)
        .send_once(refusal(status::TOO_MANY_CONNECTIONS, limit).as_bytes());
    // Closed before the log line, so whoever reads the log finds the descriptor gone.
    drop(sock);
    match creds {
        Ok(c) => tracing::warn!(
            "refused a connection from pid {} uid {}: at the limit of {limit} connections",
            c.pid,
            c.uid
        ),
        Err(_) => tracing::warn!("refused a connection: at the limit of {limit} connections"),
    }
}

/// Whether a failed accept was a client that connected and left without a byte: what a
/// process checking whether the socket is live (see `Listener::bind`) does.
pub(crate) fn is_probe(e: &Error) -> bool {
    matches!(
        e,
        Error::Handshake(HandshakeError::Truncated {
            what: "hello",
            received: 0,
            ..
        })
    )
}

fn refusal(status: u32, detail: u64) -> Reply {
    let mut reply = Reply::new_zeroed();
    reply.magic = REPLY_MAGIC;
    reply.version = PROTOCOL_VERSION.into();
    reply.status = status.into();
    reply.detail = detail.into();
    reply.pid = std::process::id().into();
    reply
}

/// Reads and checks a hello, in stages so that garbage and a wrong version are recognised
/// from their first bytes.
fn read_hello(
    wire: &Wire<'_>,
    creds: &PeerCredentials,
    config: &Config,
) -> Result<(Terms, String), Error> {
    check_uid(
        creds.uid,
        nix::unistd::geteuid().as_raw(),
        config.allow_other_uids,
    )?;
    let mut hello = Hello::new_zeroed();
    let bytes = hello.as_mut_bytes();
    wire.read_part(bytes, 0..8, "hello")?;
    if bytes[..8] != HELLO_MAGIC {
        return Err(HandshakeError::BadMagic {
            what: "hello",
            found: first8(bytes),
        }
        .into());
    }
    wire.read_part(bytes, 8..12, "hello")?;
    // Checked before reading on: another version's hello may have another length.
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::UnsupportedVersion {
            found: version,
            supported: PROTOCOL_VERSION,
        }
        .into());
    }
    let len = bytes.len();
    wire.read_part(bytes, 12..len, "hello")?;
    let code = hello.transport.get();
    let transport =
        Transport::from_code(code).ok_or(HandshakeError::BadTransport { found: code.into() })?;
    let terms = Terms {
        transport,
        to_acceptor: agree(hello.to_acceptor.get(), config.ring_capacity)?,
        to_initiator: agree(hello.to_initiator.get(), config.ring_capacity)?,
    };
    Ok((terms, decode_name(&hello.name)))
}

/// Accepts a peer running as our own user, or as anyone when `allow_other_uids` is set.
fn check_uid(peer: u32, ours: u32, allow_other_uids: bool) -> Result<(), HandshakeError> {
    if peer == ours || allow_other_uids {
        return Ok(());
    }
    Err(HandshakeError::PeerUid { peer, ours })
}

/// The capacity of one direction: the smaller of the proposal and our own setting.
fn agree(proposed: u64, ours: usize) -> Result<usize, HandshakeError> {
    usize::try_from(proposed)
        .ok()
        .filter(|&c| valid_capacity(c))
        .map(|c| c.min(ours))
        .ok_or(HandshakeError::BadRingSize { capacity: proposed })
}

fn read_reply(
    wire: &Wire<'_>,
    proposed: u64,
    transport: Transport,
) -> Result<(Terms, String), Error> {
    let mut reply = Reply::new_zeroed();
    let bytes = reply.as_mut_bytes();
    wire.read_part(bytes, 0..8, "reply")?;
    if bytes[..8] != REPLY_MAGIC {
        return Err(HandshakeError::BadMagic {
            what: "reply",
            found: first8(bytes),
        }
        .into());
    }
    // Magic, version, status and detail: the part every version of a refusal shares.
    wire.read_part(bytes, 8..24, "reply")?;
    let (status, detail) = (reply.status.get(), reply.detail.get());
    if status != status::ACCEPTED {
        return Err(HandshakeError::Refused(Refusal::from_wire(status, detail)).into());
    }
    let version = reply.version.get();
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::UnsupportedVersion {
            found: version,
            supported: PROTOCOL_VERSION,
        }
        .into());
    }
    let bytes = reply.as_mut_bytes();
    let len = bytes.len();
    wire.read_part(bytes, 24..len, "reply")?;
    let agreed = |capacity: u64| {
        usize::try_from(capacity)
            .ok()
            .filter(|&c| valid_capacity(c) && capacity <= proposed)
            .ok_or(HandshakeError::BadRingSize { capacity })
    };
    // The transport is the one we proposed: an acceptor that does not speak it refuses.
    let terms = Terms {
        transport,
        to_acceptor: agreed(reply.to_acceptor.get())?,
        to_initiator: agreed(reply.to_initiator.get())?,
    };
    Ok((terms, decode_name(&reply.name)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiator,
    Acceptor,
}

/// Sets up the agreed transport: for shared memory, the ring exchange of step 3, within
/// what is left of the handshake's `deadline`.
fn establish(
    sock: OwnedFd,
    role: Role,
    terms: Terms,
    config: &Config,
    peer: PeerInfo,
    deadline: Instant,
) -> Result<Connection, Error> {
    let (tx_capacity, rx_capacity) = match role {
        Role::Initiator => (terms.to_acceptor, terms.to_initiator),
        Role::Acceptor => (terms.to_initiator, terms.to_acceptor),
    };
    let connection = match terms.transport {
        Transport::Socket => {
            Connection::over_socket(Arc::new(sock), tx_capacity, rx_capacity, peer)
        }
        Transport::Shm => {
            let (prepared, ours) = PreparedRings::new(tx_capacity)?;
            let wire = Wire {
                sock: sock.as_fd(),
                deadline,
                timeout: config.handshake_timeout,
            };
            let theirs = match role {
                Role::Initiator => wire.send_fds(&ours).and_then(|()| wire.recv_fds()),
                Role::Acceptor => wire
                    .recv_fds()
                    .and_then(|t| wire.send_fds(&ours).map(|()| t)),
            };
            let theirs = theirs.inspect_err(|e| {
                tracing::warn!(
                    "ring exchange with {} (pid {}) failed: {e}",
                    peer.name(),
                    peer.pid()
                );
            })?;
            // Our copies of the descriptors we sent are no longer needed.
            drop(ours);
            let (producer, consumer) = prepared
                .connect(theirs, rx_capacity, Arc::new(sock), config.wait)
                .inspect_err(|e| {
                    tracing::warn!(
                        "rings of {} (pid {}) rejected: {e}",
                        peer.name(),
                        peer.pid()
                    );
                })?;
            Connection::over_shm(producer, consumer, peer)
        }
    };
    let peer = connection.peer();
    tracing::info!(
        "connected to {} (pid {}, uid {}) over {}, rings {tx_capacity}/{rx_capacity} bytes out/in",
        peer.name(),
        peer.pid(),
        peer.uid(),
        terms.transport
    );
    Ok(connection)
}

/// The role name as sent: UTF-8, cut at a character boundary to fit, zero-padded.
fn encode_name(name: &str) -> [u8; NAME_LEN] {
    let mut end = name.len().min(NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = [0; NAME_LEN];
    out[..end].copy_from_slice(&name.as_bytes()[..end]);
    out
}

/// The role name as received: up to the first zero byte, invalid UTF-8 replaced.
fn decode_name(raw: &[u8; NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn first8(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// Bounded I/O on the socket during the handshake: every call waits with `poll` for at
/// most the time left before the deadline, so a silent or slow peer cannot stall us.
#[derive(Debug)]
struct Wire<'a> {
    sock: BorrowedFd<'a>,
    deadline: Instant,
    timeout: Duration,
}

impl<'a> Wire<'a> {
    fn new(sock: BorrowedFd<'a>, timeout: Duration) -> Self {
        Wire {
            sock,
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    fn wait(&self, events: PollFlags) -> Result<(), Error> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HandshakeError::Timeout {
                    after: self.timeout,
                }
                .into());
            }
            // Rounded up, so that we never wake just before the deadline and spin.
            let ms = PollTimeout::try_from(left.as_millis() + 1).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.sock, events)];
            match poll(&mut fds, ms) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fills `buf[range]`; `buf.len()` is the message's full length, for the error.
    fn read_part(
        &self,
        buf: &mut [u8],
        range: Range<usize>,
        what: &'static str,
    ) -> Result<(), Error> {
        let expected = buf.len();
        let mut at = range.start;
        while at < range.end {
            self.wait(PollFlags::POLLIN)?;
            match recv(
                self.sock.as_raw_fd(),
                &mut buf[at..range.end],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) | Err(Errno::ECONNRESET) => {
                    return Err(HandshakeError::Truncated {
                        what,
                        received: at,
                        expected,
                    }
                    .into());
                }
                Ok(n) => at += n,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn write_all(&self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            self.wait(PollFlags::POLLOUT)?;
            match send(
                self.sock.as_raw_fd(),
                bytes,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(socket_error(e)),
            }
        }
        Ok(())
    }

    /// Sends what the socket takes right now, without waiting.
    fn send_once(&self, bytes: &[u8]) -> Result<usize, Errno> {
        send(
            self.sock.as_raw_fd(),
            bytes,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        )
    }

    /// Sends the ring message: its magic with our three descriptors attached.
    fn send_fds(&self, fds: &RingFds) -> Result<(), Error> {
        let attached = [
            fds.memfd.as_fd(),
            fds.space_bell.as_fd(),
            fds.data_bell.as_fd(),
        ];
        loop {
            self.wait(PollFlags::POLLOUT)?;
            match send_with_fds(self.sock, &FDS_MAGIC, &attached) {
                Ok(n) => return self.write_all(&FDS_MAGIC[n..]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(socket_error(e)),
            }
        }
    }

    /// Receives the peer's ring message. Descriptors beyond the three a ring needs are
    /// closed as they arrive; any count other than three is an error.
    fn recv_fds(&self) -> Result<RingFds, Error> {
        let what = "ring descriptors";
        let mut magic = [0u8; 8];
        let mut fds = Vec::with_capacity(RING_FDS);
        let mut dropped = 0;
        let mut at = 0;
        while at < magic.len() {
            self.wait(PollFlags::POLLIN)?;
            match recv_with_fds(
                self.sock,
                &mut magic[at..],
                RING_FDS,
                &mut fds,
                &mut dropped,
            ) {
                Ok(0) | Err(Errno::ECONNRESET) => {
                    return Err(HandshakeError::Truncated {
                        what,
                        received: at,
                        expected: magic.len(),
                    }
                    .into());
                }
                Ok(n) => at += n,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if magic != FDS_MAGIC {
            return Err(HandshakeError::BadMagic { what, found: magic }.into());
        }
        let received = fds.len() + dropped;
        let mut fds = fds.into_iter();
        match (fds.next(), fds.next(), fds.next()) {
            (Some(memfd), Some(space_bell), Some(data_bell)) if dropped == 0 => Ok(RingFds {
                memfd,
                space_bell,
                data_bell,
            }),
            _ => Err(HandshakeError::BadFds {
                expected: RING_FDS,
                received,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Arbitrary bytes, or arbitrary bytes after a valid magic and version, so that the cases
    /// also reach the checks past the first gate.
    fn wire_bytes(magic: [u8; 8]) -> impl Strategy<Value = Vec<u8>> {
        let mut prefix = magic.to_vec();
        prefix.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(any::<u8>(), 0..200).prop_map(move |rest| {
                let mut bytes = prefix.clone();
                bytes.extend(rest);
                bytes
            }),
        ]
    }

    /// A socket pair whose `peer` end has sent `bytes` and shut its writing side.
    fn fed(bytes: &[u8]) -> (OwnedFd, UnixStream) {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        peer.write_all(bytes).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        (OwnedFd::from(ours), peer)
    }

    fn fuzz_config() -> Config {
        let mut config = Config::new("fuzz");
        config.handshake_timeout = std::time::Duration::from_secs(5);
        config
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]

        /// Whatever a client sends as its hello, the acceptor answers with an error, never a
        /// panic or a hang (the bytes end; a complete hello then lacks its ring message).
        #[test]
        fn arbitrary_hellos_are_refused_without_panicking(bytes in wire_bytes(HELLO_MAGIC)) {
            let (ours, _peer) = fed(&bytes);
            prop_assert!(accept(ours, &fuzz_config()).is_err());
        }

        /// Whatever an acceptor sends as its reply, the initiator reports an error.
        #[test]
        fn arbitrary_replies_are_refused_without_panicking(bytes in wire_bytes(REPLY_MAGIC)) {
            let (ours, _peer) = fed(&bytes);
            prop_assert!(initiate(ours, &fuzz_config(), None).is_err());
        }
    }

    #[test]
    fn messages_have_their_documented_sizes() {
        assert_eq!(size_of::<Hello>(), 72);
        assert_eq!(size_of::<Reply>(), 80);
    }

    #[test]
    fn names_are_cut_at_a_character_boundary_and_decoded_lossily() {
        let long = "é".repeat(20); // 40 bytes
        let enc = encode_name(&long);
        assert_eq!(decode_name(&enc), "é".repeat(16));
        assert_eq!(
            decode_name(&encode_name("bitcoin-wallet")),
            "bitcoin-wallet"
        );
        let mut raw = [0xff; NAME_LEN];
        raw[3] = 0;
        assert_eq!(decode_name(&raw), "\u{fffd}\u{fffd}\u{fffd}");
    }

    #[test]
    fn only_our_own_uid_is_accepted_unless_others_are_allowed() {
        assert_eq!(check_uid(1000, 1000, false), Ok(()));
        assert_eq!(
            check_uid(65534, 1000, false),
            Err(HandshakeError::PeerUid {
                peer: 65534,
                ours: 1000
            })
        );
        assert_eq!(
            check_uid(0, 1000, false),
            Err(HandshakeError::PeerUid {
                peer: 0,
                ours: 1000
            })
        );
        assert_eq!(check_uid(65534, 1000, true), Ok(()));
    }

    #[test]
    fn capacities_agree_on_the_smaller_valid_value() {
        assert_eq!(agree(1 << 20, 1 << 22), Ok(1 << 20));
        assert_eq!(agree(1 << 22, 1 << 20), Ok(1 << 20));
        assert_eq!(
            agree(12345, 1 << 20),
            Err(HandshakeError::BadRingSize { capacity: 12345 })
        );
        assert_eq!(
            agree(1 << 40, 1 << 20),
            Err(HandshakeError::BadRingSize { capacity: 1 << 40 })
        );
        assert_eq!(
            agree(0, 1 << 20),
            Err(HandshakeError::BadRingSize { capacity: 0 })
        );
    }

    #[test]
    fn every_refusal_round_trips_through_the_wire_code() {
        let cases = [
            (
                HandshakeError::BadMagic {
                    what: "hello",
                    found: *b"GET / HT",
                },
                Refusal::BadMagic,
            ),
            (
                HandshakeError::Truncated {
                    what: "hello",
                    received: 3,
                    expected: 72,
                },
                Refusal::Truncated,
            ),
            (
                HandshakeError::UnsupportedVersion {
                    found: 9,
                    supported: PROTOCOL_VERSION,
                },
                Refusal::UnsupportedVersion {
                    supported: PROTOCOL_VERSION,
                },
            ),
            (
                HandshakeError::PeerUid {
                    peer: 65534,
                    ours: 0,
                },
                Refusal::PeerUid { uid: 65534 },
            ),
            (
                HandshakeError::BadRingSize { capacity: 77 },
                Refusal::BadRingSize { capacity: 77 },
            ),
            (
                HandshakeError::BadTransport { found: 5 },
                Refusal::BadTransport { found: 5 },
            ),
            (
                HandshakeError::Timeout {
                    after: Duration::from_millis(250),
                },
                Refusal::Timeout { after_ms: 250 },
            ),
        ];
        for (error, refusal) in cases {
            let (status, detail) = Refusal::for_error(&error).expect("refusable");
            assert_eq!(Refusal::from_wire(status, detail), refusal, "{error}");
        }
        assert_eq!(
            Refusal::from_wire(8, 64),
            Refusal::TooManyConnections { limit: 64 }
        );
        assert_eq!(
            Refusal::from_wire(99, 1),
            Refusal::Other {
                status: 99,
                detail: 1
            }
        );
    }
}
