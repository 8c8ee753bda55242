//! A connection's two ends, over either transport.
//!
//! [`Sender`] and [`Receiver`] have the methods of [`ring::Producer`] and [`ring::Consumer`]
//! under the same names, so code written against a ring runs over a [`Connection`] of either
//! transport. Each dispatches on a two-variant enum: on the shared-memory path a call is one
//! predictable branch away from the ring's own method.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Error, ProtocolError};
use crate::ring::{self, MAX_CAPACITY, MIN_CAPACITY, valid_capacity};
use crate::socket::{self, Fetch, FrameGrant, FrameReceiver, FrameSender, FrameView};
use crate::wait::WaitPolicy;

/// How a connection's records travel, chosen by the initiating side in the handshake
/// (Bitcoin Core style option: `-transport=shm|socket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// Two rings in shared memory, one per direction; the socket only tells liveness.
    #[default]
    Shm,
    /// Frames over the unix socket itself (a baseline and a fallback).
    Socket,
}

impl Transport {
    /// The code of this transport in a hello.
    pub(crate) fn code(self) -> u32 {
        match self {
            Transport::Shm => 0,
            Transport::Socket => 1,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Transport> {
        match code {
            0 => Some(Transport::Shm),
            1 => Some(Transport::Socket),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Shm => "shm",
            Transport::Socket => "socket",
        })
    }
}

/// A `-transport` value that is neither `shm` nor `socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTransportError {
    value: String,
}

impl fmt::Display for ParseTransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown transport \"{}\", expected \"shm\" or \"socket\"",
            self.value.escape_debug()
        )
    }
}

impl std::error::Error for ParseTransportError {}

impl FromStr for Transport {
    type Err = ParseTransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shm" => Ok(Transport::Shm),
            "socket" => Ok(Transport::Socket),
            _ => Err(ParseTransportError {
                value: s.to_owned(),
            }),
        }
    }
}

/// How to set up a connection. Start from [`Config::new`] and set the fields that differ.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The transport proposed when this side initiates; an acceptor follows its initiator.
    pub transport: Transport,
    /// Bytes of each ring (a power of two, 4 KiB..=1 GiB). Each direction uses the smaller
    /// of the two sides' values; the longest record is `ring_capacity / 2 - 8` bytes.
    pub ring_capacity: usize,
    /// How long a waiter spins before it parks (shared memory only).
    pub wait: WaitPolicy,
    /// The deadline for the whole handshake.
    pub handshake_timeout: Duration,
    /// This process's role (e.g. `"bitcoin-wallet"`), sent to and logged by the peer. At most
    /// [`crate::handshake::NAME_LEN`] bytes travel.
    pub name: String,
    /// Whether an acceptor takes connections from processes of other users (`SO_PEERCRED`).
    pub allow_other_uids: bool,
}

impl Config {
    /// The defaults, for a process playing `name`.
    pub fn new(name: impl Into<String>) -> Config {
        Config {
            transport: Transport::Shm,
            ring_capacity: 4 << 20,
            wait: WaitPolicy::default(),
            handshake_timeout: Duration::from_secs(5),
            name: name.into(),
            allow_other_uids: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if valid_capacity(self.ring_capacity) {
            return Ok(());
        }
        Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "ring capacity {} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}",
                self.ring_capacity
            ),
        )))
    }
}

impl Default for Config {
    /// The defaults, named after the current executable.
    fn default() -> Self {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "ipc-shm".to_owned());
        Config::new(name)
    }
}

/// Who is at the other end. The pid and uid come from the kernel (`SO_PEERCRED`); the name
/// is what the peer announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pid: u32,
    uid: u32,
    name: String,
}

impl PeerInfo {
    pub(crate) fn new(pid: u32, uid: u32, name: String) -> Self {
        PeerInfo { pid, uid, name }
    }

    /// The peer's process id (as seen from this process's pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The peer's user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The role the peer announced, e.g. `"bitcoin-node"`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An established connection: split it into its sending and receiving ends, which may live
/// on different threads. The connection closes when both ends are dropped.
#[derive(Debug)]
pub struct Connection {
    sender: Sender,
    receiver: Receiver,
    transport: Transport,
    peer: Arc<PeerInfo>,
}

impl Connection {
    pub(crate) fn over_shm(
        producer: ring::Producer,
        consumer: ring::Consumer,
        peer: PeerInfo,
    ) -> Self {
        let peer = Arc::new(peer);
        let socket = producer.socket().clone();
        Connection {
            sender: Sender {
                end: SendEnd::Shm(producer),
                socket: socket.clone(),
            },
            receiver: Receiver {
                end: RecvEnd::Shm(consumer),
                socket,
                peer: peer.clone(),
                logged: false,
            },
            transport: Transport::Shm,
            peer,
        }
    }

    pub(crate) fn over_socket(
        sock: Arc<OwnedFd>,
        tx_capacity: usize,
        rx_capacity: usize,
        peer: PeerInfo,
    ) -> Self {
        let peer = Arc::new(peer);
        let tx = FrameSender::new(sock.clone(), tx_capacity);
        let rx = FrameReceiver::new(sock.clone(), rx_capacity);
        Connection {
            sender: Sender {
                end: SendEnd::Socket(tx),
                socket: sock.clone(),
            },
            receiver: Receiver {
                end: RecvEnd::Socket(rx),
                socket: sock,
                peer: peer.clone(),
                logged: false,
            },
            transport: Transport::Socket,
            peer,
        }
    }

    /// The two ends.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// The transport the handshake chose.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The process at the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

/// The sending end of a connection.
#[derive(Debug)]
pub struct Sender {
    end: SendEnd,
    /// The connection socket, shut down on a protocol violation ([`close_on_violation`]).
    socket: Arc<OwnedFd>,
}

#[derive(Debug)]
enum SendEnd {
    Shm(ring::Producer),
    Socket(FrameSender),
}

impl Sender {
    /// The connection socket, over either transport (the call layer shuts it down to hang
    /// up, which wakes every thread waiting on either end, here and in the peer).
    pub(crate) fn socket(&self) -> &Arc<OwnedFd> {
        &self.socket
    }

    /// The longest payload one record can carry.
    #[inline]
    pub fn max_record_len(&self) -> usize {
        match &self.end {
            SendEnd::Shm(p) => p.max_record_len(),
            SendEnd::Socket(s) => s.max_record_len(),
        }
    }

    /// Tells the peer, if it waits for our next record, that the record is coming soon
    /// (advice: over shm its waiter spins on instead of parking, for a while; the socket
    /// has no such hint). See [`ring::Producer::expect_to_publish`].
    pub fn expect_to_send(&mut self) {
        if let SendEnd::Shm(p) = &mut self.end {
            p.expect_to_publish();
        }
    }

    /// Reserves a record of `len` bytes, waiting for room (for a full ring; on the socket
    /// transport the wait happens at commit). Write through the grant, then commit it.
    #[inline(always)]
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, Error> {
        let grant = match &mut self.end {
            SendEnd::Shm(p) => p.reserve(len).map(Grant::Shm),
            SendEnd::Socket(s) => s.reserve(len).map(Grant::Socket),
        };
        let socket = &self.socket;
        grant
            .map(|grant| WriteGrant { grant, socket })
            .map_err(|e| close_on_violation(socket, e))
    }

    /// Reserves a record of `len` bytes if there is room now.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<WriteGrant<'_>>, Error> {
        let grant = match &mut self.end {
            SendEnd::Shm(p) => p.try_reserve(len).map(|g| g.map(Grant::Shm)),
            SendEnd::Socket(s) => s.try_reserve(len).map(|g| g.map(Grant::Socket)),
        };
        let socket = &self.socket;
        grant
            .map(|g| g.map(|grant| WriteGrant { grant, socket }))
            .map_err(|e| close_on_violation(socket, e))
    }

    /// Sends `bytes` as one record.
    #[inline(always)]
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let sent = match &mut self.end {
            SendEnd::Shm(p) => p.send_bytes(bytes),
            SendEnd::Socket(s) => s.send_bytes(bytes),
        };
        sent.map_err(|e| close_on_violation(&self.socket, e))
    }

    /// Sends a fixed-layout value as one record.
    #[inline]
    pub fn send<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.send_bytes(value.as_bytes())
    }

    /// Sends a copy of the received record `src` (from any connection, over either
    /// transport) as one record: a relay or an echo without a buffer of its own. Between
    /// two shared-memory connections the payload is copied once, from ring to ring.
    #[inline(always)]
    pub fn forward(&mut self, src: &ReadGrant<'_>) -> Result<(), Error> {
        let mut grant = self.reserve(src.len())?;
        grant.write_from(0, src);
        grant.commit();
        Ok(())
    }

    /// Sends each of `records` as one record, as [`Self::send_bytes`] would, but over shared
    /// memory checks only once per batch whether the receiver sleeps: a record is visible to
    /// a spinning receiver at once, and a receiver that parked meanwhile is woken at the end
    /// of the batch (or before the sender waits for room). Where the receiver does not park
    /// with a process-wide barrier (see `docs/protocol.md` §5), that check is a full memory
    /// fence, the largest cost of a small record; where it does, the check is cheap and a
    /// batch saves little. Returns how many records were sent; on an error, the records
    /// before it were sent.
    pub fn send_batch<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<usize, Error> {
        let sent = match &mut self.end {
            SendEnd::Shm(p) => p.send_batch(records),
            SendEnd::Socket(s) => {
                let mut sent = 0;
                records
                    .into_iter()
                    .try_for_each(|r| s.send_bytes(r).map(|()| sent += 1))
                    .map(|()| sent)
            }
        };
        sent.map_err(|e| close_on_violation(&self.socket, e))
    }
}

/// A reserved record. Writes past the reserved length panic, as slice indexing does.
/// `commit` sends it; dropping it sends nothing. Committing never fails: records sent after
/// the peer has gone are lost silently, and a later reservation reports
/// [`Error::Disconnected`] (over a socket the next one; over shared memory the first that
/// has to wait for room). A peer's death always shows at once on the [`Receiver`].
#[derive(Debug)]
pub struct WriteGrant<'a> {
    grant: Grant<'a>,
    socket: &'a Arc<OwnedFd>,
}

#[derive(Debug)]
enum Grant<'a> {
    Shm(ring::WriteGrant<'a>),
    Socket(FrameGrant<'a>),
}

impl WriteGrant<'_> {
    /// Bytes reserved.
    #[inline(always)]
    pub fn len(&self) -> usize {
        match &self.grant {
            Grant::Shm(g) => g.len(),
            Grant::Socket(g) => g.len(),
        }
    }

    /// Whether zero bytes were reserved.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `bytes` to `offset` within the record.
    #[inline(always)]
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        match &mut self.grant {
            Grant::Shm(g) => g.write_at(offset, bytes),
            Grant::Socket(g) => g.write_at(offset, bytes),
        }
    }

    /// Writes a fixed-layout value at `offset` within the record.
    #[inline]
    pub fn write_obj<T: IntoBytes + Immutable + ?Sized>(&mut self, offset: usize, value: &T) {
        self.write_at(offset, value.as_bytes());
    }

    /// Copies the whole payload of the received record `src` to `offset` within this record,
    /// with no buffer in between: from ring to ring when both are shared memory. Panics as
    /// [`Self::write_at`] does when it does not fit.
    #[inline(always)]
    pub fn write_from(&mut self, offset: usize, src: &ReadGrant<'_>) {
        match (&mut self.grant, &src.view) {
            (Grant::Shm(g), View::Shm(r)) => g.write_from(offset, r),
            (Grant::Shm(g), View::Socket(v)) => g.write_at(offset, v.bytes()),
            (Grant::Socket(g), View::Socket(v)) => g.write_at(offset, v.bytes()),
            (Grant::Socket(g), View::Shm(r)) => {
                let copied = r.read_at(0, g.slice_mut(offset, r.len()));
                debug_assert!(copied, "the range is the whole source record");
            }
        }
    }

    /// Sends the whole reservation.
    #[inline(always)]
    pub fn commit(self) {
        let len = self.len();
        self.commit_len(len);
    }

    /// Sends the first `len` bytes (for writers that reserve an upper bound).
    #[inline(always)]
    pub fn commit_len(self, len: usize) {
        match self.grant {
            Grant::Shm(g) => g.commit_len(len),
            Grant::Socket(g) => g.commit_len(len),
        }
    }

    /// Bytes written so far through `io::Write`.
    pub fn position(&self) -> usize {
        match &self.grant {
            Grant::Shm(g) => g.position(),
            Grant::Socket(g) => g.position(),
        }
    }
}

impl<'a> WriteGrant<'a> {
    /// Sends the whole reservation and reserves the next record of `len` bytes, waiting for
    /// room as [`Sender::reserve`] does. For writers that send a long message record by
    /// record: the receiver reads this one while the next is written.
    pub fn commit_then_reserve(self, len: usize) -> Result<WriteGrant<'a>, Error> {
        let WriteGrant { grant, socket } = self;
        let next = match grant {
            Grant::Shm(g) => g.commit_then_reserve(len).map(Grant::Shm),
            Grant::Socket(g) => g.commit_then_reserve(len).map(Grant::Socket),
        };
        next.map(|grant| WriteGrant { grant, socket })
            .map_err(|e| close_on_violation(socket, e))
    }
}

/// Sequential writes into the record; writing past the reservation is a `WriteZero` error.
impl io::Write for WriteGrant<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.grant {
            Grant::Shm(g) => g.write(buf),
            Grant::Socket(g) => g.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The receiving end of a connection.
#[derive(Debug)]
pub struct Receiver {
    end: RecvEnd,
    /// The connection socket, shut down on a protocol violation ([`close_on_violation`]).
    socket: Arc<OwnedFd>,
    peer: Arc<PeerInfo>,
    /// Whether the end of the connection has been logged.
    logged: bool,
}

#[derive(Debug)]
enum RecvEnd {
    Shm(ring::Consumer),
    Socket(FrameReceiver),
}

impl Receiver {
    /// The longest payload one record can carry.
    #[inline]
    pub fn max_record_len(&self) -> usize {
        match &self.end {
            RecvEnd::Shm(c) => c.max_record_len(),
            RecvEnd::Socket(r) => r.max_record_len(),
        }
    }

    /// Waits for the next record. After the peer has gone, the records it sent are still
    /// delivered; then [`Error::Disconnected`].
    #[inline(always)]
    pub fn recv(&mut self) -> Result<ReadGrant<'_>, Error> {
        let result = match &mut self.end {
            RecvEnd::Shm(c) => c.recv().map(|g| ReadGrant { view: View::Shm(g) }),
            RecvEnd::Socket(r) => r.recv().map(|frame| ReadGrant {
                view: View::Socket(FrameView::new(r, frame)),
            }),
        };
        result.map_err(|e| note_end(&self.peer, &self.socket, &mut self.logged, e))
    }

    /// The next record if one is there, without waiting.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<ReadGrant<'_>>, Error> {
        let result = match &mut self.end {
            RecvEnd::Shm(c) => c
                .try_recv()
                .map(|g| g.map(|g| ReadGrant { view: View::Shm(g) })),
            RecvEnd::Socket(r) => r.next(Fetch::NoWait).map(|f| {
                f.map(|f| ReadGrant {
                    view: View::Socket(FrameView::new(r, f)),
                })
            }),
        };
        result.map_err(|e| note_end(&self.peer, &self.socket, &mut self.logged, e))
    }

    /// Waits for at least one record, then hands `f` every record already received, up to
    /// `max`, releasing them together. Returns how many records `f` saw. Over shared memory,
    /// a call that follows a batch of 16 or more records first lets the streaming sender get
    /// ahead for 4 µs (see `docs/ARCHITECTURE.md`, "The ring").
    pub fn recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(ReadGrant<'_>),
    ) -> Result<usize, Error> {
        let result = match &mut self.end {
            RecvEnd::Shm(c) => c.recv_batch(max, |g| f(ReadGrant { view: View::Shm(g) })),
            RecvEnd::Socket(r) => socket_batch(r, max, f),
        };
        result.map_err(|e| note_end(&self.peer, &self.socket, &mut self.logged, e))
    }

    /// Receives a record that must hold exactly one `T`. A record of another length is
    /// consumed and reported as [`ProtocolError::UnexpectedLength`]; the connection stays open.
    pub fn recv_obj<T: FromBytes + IntoBytes>(&mut self) -> Result<T, Error> {
        let grant = self.recv()?;
        let value = grant.read_obj::<T>(0);
        let len = grant.len();
        drop(grant);
        match value {
            Some(v) if len == size_of::<T>() => Ok(v),
            // A well-formed record of another length: the caller's expectation failed, not
            // the transport, so the connection stays open (unlike `close_on_violation`).
            _ => Err(ProtocolError::UnexpectedLength {
                len: len as u64,
                expected: size_of::<T>() as u64,
            }
            .into()),
        }
    }
}

fn socket_batch(
    r: &mut FrameReceiver,
    max: usize,
    mut f: impl FnMut(ReadGrant<'_>),
) -> Result<usize, Error> {
    let mut seen = 0;
    let mut fetch = Fetch::Wait;
    while seen < max.max(1) {
        match r.next(fetch)? {
            Some(frame) => {
                f(ReadGrant {
                    view: View::Socket(FrameView::new(r, frame)),
                });
                seen += 1;
                fetch = Fetch::Buffered;
            }
            None if seen == 0 => continue,
            None => break,
        }
    }
    Ok(seen)
}

/// Closes the connection when `e` says the peer broke the protocol: a peer that scribbled on
/// shared state is not trusted with another record. Shutting the socket down wakes every
/// thread waiting on either end of this connection, here and in the peer, with
/// [`Error::Disconnected`]. Other errors pass through untouched.
#[cold]
fn close_on_violation(socket: &OwnedFd, e: Error) -> Error {
    if matches!(e, Error::Protocol(_)) {
        crate::sys::hang_up(socket.as_fd());
    }
    e
}

/// Logs, once, why the connection ended, and closes it after a protocol violation.
#[cold]
fn note_end(peer: &PeerInfo, socket: &OwnedFd, logged: &mut bool, e: Error) -> Error {
    let e = close_on_violation(socket, e);
    if !*logged {
        *logged = true;
        match &e {
            Error::Disconnected => {
                tracing::info!("{} (pid {}) disconnected", peer.name(), peer.pid());
            }
            e => tracing::warn!(
                "connection to {} (pid {}) failed: {e}",
                peer.name(),
                peer.pid()
            ),
        }
    }
    e
}

/// A received record, read in place (from shared memory or the receive buffer). Dropping
/// it releases the record.
#[derive(Debug)]
pub struct ReadGrant<'a> {
    view: View<'a>,
}

#[derive(Debug)]
enum View<'a> {
    Shm(ring::ReadGrant<'a>),
    Socket(socket::FrameView<'a>),
}

impl ReadGrant<'_> {
    /// Releases the record, as dropping the grant does; over shared memory without telling
    /// the sender yet, which learns of the room when this end next waits for a record (see
    /// [`ring::ReadGrant::release_lazily`]). For a reader that answers the record: the full
    /// fence that publishing takes is then off the way to its answer.
    #[inline(always)]
    pub fn release_lazily(self) {
        match self.view {
            View::Shm(grant) => grant.release_lazily(),
            View::Socket(frame) => drop(frame),
        }
    }

    /// The payload length.
    #[inline(always)]
    pub fn len(&self) -> usize {
        match &self.view {
            View::Shm(g) => g.len(),
            View::Socket(v) => v.bytes().len(),
        }
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `out.len()` bytes from `offset` of the payload. Returns `false` (and copies
    /// nothing) when that range is not inside the payload.
    #[must_use]
    #[inline(always)]
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> bool {
        match &self.view {
            View::Shm(g) => g.read_at(offset, out),
            View::Socket(v) => match v.bytes().get(offset..).and_then(|b| b.get(..out.len())) {
                Some(src) => {
                    crate::mem::copy_slice(out, src);
                    true
                }
                None => false,
            },
        }
    }

    /// Copies a fixed-layout value from `offset` of the payload, if it is inside.
    #[inline]
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, offset: usize) -> Option<T> {
        let mut value = T::new_zeroed();
        self.read_at(offset, value.as_mut_bytes()).then_some(value)
    }

    /// Appends `len` bytes from `offset` of the payload to `out`, without zeroing its room
    /// first. Returns `false` (and appends nothing) when that range is not inside the payload.
    #[must_use]
    #[inline]
    pub fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> bool {
        match &self.view {
            View::Shm(g) => g.append_to(offset, len, out),
            View::Socket(v) => match v.bytes().get(offset..).and_then(|b| b.get(..len)) {
                Some(src) => {
                    crate::mem::append_slice(out, src);
                    true
                }
                None => false,
            },
        }
    }

    /// Copies the whole payload into a new vector.
    #[inline]
    pub fn to_vec(&self) -> Vec<u8> {
        match &self.view {
            View::Shm(g) => g.to_vec(),
            View::Socket(v) => {
                let mut out = Vec::new();
                crate::mem::append_slice(&mut out, v.bytes());
                out
            }
        }
    }
}

/// Sequential reads of the payload, for decoders that take an `io::Read`.
impl io::Read for ReadGrant<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.view {
            View::Shm(g) => g.read(buf),
            View::Socket(v) => v.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_can_move_to_other_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Connection>();
        assert_send::<Sender>();
        assert_send::<Receiver>();
        fn assert_sync<T: Sync>() {}
        assert_sync::<crate::Listener>();
    }

    #[test]
    fn transport_parses_and_prints_its_option_values() {
        for t in [Transport::Shm, Transport::Socket] {
            assert_eq!(t.to_string().parse::<Transport>(), Ok(t));
            assert_eq!(Transport::from_code(t.code()), Some(t));
        }
        assert_eq!(Transport::default(), Transport::Shm);
        let err = "tcp".parse::<Transport>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown transport \"tcp\", expected \"shm\" or \"socket\""
        );
    }

    #[test]
    fn config_rejects_a_ring_capacity_that_is_not_a_power_of_two() {
        let mut config = Config::new("test");
        assert!(config.validate().is_ok());
        config.ring_capacity = 5000;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("ring capacity 5000"), "{err}");
    }
}
