//! The seam between the call layer and the transport: a connection's two ends, and the
//! socket to shut down to hang up.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use crate::ring::PreparedRings;
use crate::transport::{Connection, PeerInfo};
use crate::wait::WaitPolicy;

pub(crate) type Sender = crate::transport::Sender;
pub(crate) type Receiver = crate::transport::Receiver;
pub(crate) type RxGrant<'a> = crate::transport::ReadGrant<'a>;
pub(crate) type TxGrant<'a> = crate::transport::WriteGrant<'a>;

/// The two ends of a connection as the session uses them.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) tx: Sender,
    pub(crate) rx: Receiver,
    socket: Arc<OwnedFd>,
}

impl Link {
    pub(crate) fn new(connection: Connection) -> Link {
        let (tx, rx) = connection.split();
        let socket = tx.socket().clone();
        Link { tx, rx, socket }
    }

    /// Shuts the connection socket down: the peer and our own threads waiting on either
    /// end (parked on a ring, or blocked on the socket transport) see a hang-up.
    pub(crate) fn hang_up(socket: &OwnedFd) {
        crate::sys::hang_up(socket.as_fd());
    }

    pub(crate) fn socket(&self) -> Arc<OwnedFd> {
        self.socket.clone()
    }

    /// Two links connected to each other in this process over a socket pair, with records
    /// of up to `max_record_len(capacity)` bytes.
    pub(crate) fn pair_socket(capacity: usize) -> Result<(Link, Link), crate::Error> {
        let (sa, sb) = std::os::unix::net::UnixStream::pair()?;
        Ok((
            Link::new(Connection::over_socket(
                Arc::new(OwnedFd::from(sa)),
                capacity,
                capacity,
                me(),
            )),
            Link::new(Connection::over_socket(
                Arc::new(OwnedFd::from(sb)),
                capacity,
                capacity,
                me(),
            )),
        ))
    }

    /// Two links connected to each other in this process, over real shared-memory rings.
    pub(crate) fn pair(capacity: usize, policy: WaitPolicy) -> Result<(Link, Link), crate::Error> {
        let (a, a_fds) = PreparedRings::new(capacity)?;
        let (b, b_fds) = PreparedRings::new(capacity)?;
        let (sa, sb) = std::os::unix::net::UnixStream::pair()?;
        let (sa, sb) = (Arc::new(OwnedFd::from(sa)), Arc::new(OwnedFd::from(sb)));
        let (atx, arx) = a.connect(b_fds, capacity, sa, policy)?;
        let (btx, brx) = b.connect(a_fds, capacity, sb, policy)?;
        Ok((
            Link::new(Connection::over_shm(atx, arx, me())),
            Link::new(Connection::over_shm(btx, brx, me())),
        ))
    }
}

/// This process, as the peer of an in-process link.
fn me() -> PeerInfo {
    PeerInfo::new(
        std::process::id(),
        nix::unistd::getuid().as_raw(),
        "in-process".into(),
    )
}
