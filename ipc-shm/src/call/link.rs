//! The seam between the call layer and the transport: one sending and one receiving end,
//! and a way to hang up.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::ring::{self, PreparedRings};
use crate::wait::WaitPolicy;

pub(crate) type Sender = ring::Producer;
pub(crate) type Receiver = ring::Consumer;
pub(crate) type RxGrant<'a> = ring::ReadGrant<'a>;

/// The two ends of a connection as the session uses them.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) tx: Sender,
    pub(crate) rx: Receiver,
    socket: Arc<OwnedFd>,
}

impl Link {
    /// Shuts the connection socket down: the peer and our own parked threads see a hang-up.
    pub(crate) fn hang_up(socket: &OwnedFd) {
        // ENOTCONN when the peer already went: nothing left to do.
        let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }

    pub(crate) fn socket(&self) -> Arc<OwnedFd> {
        self.socket.clone()
    }

    /// Two links connected to each other in this process, over real shared-memory rings.
    pub(crate) fn pair(capacity: usize, policy: WaitPolicy) -> Result<(Link, Link), crate::Error> {
        let (a, a_fds) = PreparedRings::new(capacity)?;
        let (b, b_fds) = PreparedRings::new(capacity)?;
        let (sa, sb) = std::os::unix::net::UnixStream::pair()?;
        let (sa, sb) = (Arc::new(OwnedFd::from(sa)), Arc::new(OwnedFd::from(sb)));
        let (atx, arx) = a.connect(b_fds, capacity, sa.clone(), policy)?;
        let (btx, brx) = b.connect(a_fds, capacity, sb.clone(), policy)?;
        Ok((Link { tx: atx, rx: arx, socket: sa }, Link { tx: btx, rx: brx, socket: sb }))
    }
}
