//! The hardware floor: two processes bouncing a cache line.
//!
//! Two atomic words on separate cache lines in a shared memfd: the client stores a new
//! sequence number in `ping` and spins until the peer has copied it to `pong`. No ring, no
//! records, no payload: whatever a transport adds on top of this is its overhead.

use std::io::stdin;
use std::os::fd::AsFd;

use anyhow::Context;
use ipc_shm::SharedWords;
use std::sync::atomic::Ordering;

use crate::peer::{Peer, spin_until};

/// The peer role that answers pings.
pub const ROLE: &str = "floor";

const PING: usize = 0;
const PONG: usize = 1;
/// Written to `ping` to make the peer exit.
const STOP: u64 = u64::MAX;

/// The client end of a cache-line ping-pong.
#[derive(Debug)]
pub struct Floor {
    words: SharedWords,
    seq: u64,
    peer: Peer,
}

impl Floor {
    /// Creates the words and starts a peer with the memfd as its standard input.
    pub fn spawn() -> anyhow::Result<Floor> {
        let words = SharedWords::create(2)?;
        let fd = words.fd().try_clone_to_owned()?;
        let peer = Peer::spawn(ROLE, &[], fd)?;
        Ok(Floor {
            words,
            seq: 0,
            peer,
        })
    }

    /// One round trip: publish the next sequence number and spin until it comes back.
    #[inline]
    pub fn round_trip(&mut self) -> anyhow::Result<()> {
        self.seq += 1;
        let seq = self.seq;
        // SYNC: Release pairs with the peer's Acquire load of `ping` in `serve` (nothing is
        // published with it, but it keeps the protocol honest if a payload is ever added).
        self.words.get(PING).store(seq, Ordering::Release);
        let pong = self.words.get(PONG);
        // SYNC: Acquire pairs with the peer's Release store of `pong`.
        spin_until("floor pong", || {
            (pong.load(Ordering::Acquire) == seq).then_some(())
        })
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> u32 {
        self.peer.pid()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.words.get(PING).store(STOP, Ordering::Release);
    }
}

/// The peer: copies every new `ping` to `pong` until it reads [`STOP`]. It spins for as long
/// as it lives, so the client keeps it only for the duration of one benchmark.
pub(crate) fn serve() -> anyhow::Result<()> {
    let fd = stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("take the memfd from stdin")?;
    let words = SharedWords::open(fd, 2)?;
    let (ping, pong) = (words.get(PING), words.get(PONG));
    let mut last = 0;
    loop {
        // SYNC: Acquire pairs with the client's Release store of `ping`.
        let seq = ping.load(Ordering::Acquire);
        if seq == STOP {
            return Ok(());
        }
        if seq != last {
            last = seq;
            // SYNC: Release pairs with the client's Acquire load of `pong`.
            pong.store(seq, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}
