//! Shared set-up for the criterion benchmarks in `benches/benches/`.
//!
//! Every benchmark measures two processes. A bench binary starts its peers by re-executing
//! itself with [`peer::PEER_ARG`]; the first thing each bench's `main` does is
//! [`peer::role`], and a binary started as a peer serves ([`serve`]) instead of running
//! criterion. Peers die with their parent and are killed and reaped on drop.
//!
//! Each client here has the same shape: `spawn` a peer, then `round_trip` a payload (sent to
//! the peer, echoed back, copied out on our side) as often as criterion likes. The interface
//! groups ([`echo`], [`big_block`], [`notifications`], [`regtest`]) hold a proxy to an object
//! the peer serves ([`remote`]) and call it as the processes of the project do.

pub mod big_block;
pub mod by_hand;
pub mod conn;
pub mod cpu;
pub mod echo;
pub mod floor;
pub mod notifications;
pub mod peer;
pub mod regtest;
pub mod remote;
pub mod report;
pub mod socketpair;
pub mod stats;

/// Payload sizes of the round-trip groups: a cache line, a small message, a large message,
/// a block-sized one.
pub const PAYLOAD_SIZES: [usize; 4] = [64, 1024, 64 << 10, 1 << 20];

/// Serves as the peer named `role` (one of the roles this library knows), until the parent
/// closes the connection or dies.
pub fn serve(role: &str) -> anyhow::Result<()> {
    match role {
        big_block::ROLE => big_block::serve(),
        conn::ROLE => conn::serve(),
        echo::ROLE => echo::serve(),
        floor::ROLE => floor::serve(),
        notifications::ROLE => notifications::serve(),
        regtest::ROLE => regtest::serve(),
        socketpair::ROLE => socketpair::serve(),
        _ => anyhow::bail!("unknown bench peer role {role:?}"),
    }
}

/// The payload of `len` bytes used by every round trip: not all zeros, so that nothing can
/// special-case it.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + 7) as u8).collect()
}

/// A zeroed buffer at the same offset within a 4 KiB page as another, for a fair `memcpy`
/// floor: glibc copies long spans with `rep movsb`, which on our AMD EPYC host is 15 to 30
/// times slower when the destination lies a few bytes past the source modulo 4096, and two
/// heap buffers allocated one after the other land at just such a distance. (`ipc-shm`
/// copies such spans in pieces; see `mem::copy_bytes`.)
#[derive(Debug)]
pub struct PageMatched {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageMatched {
    /// `len` zero bytes starting at the page offset of `like`.
    pub fn new(like: &[u8], len: usize) -> PageMatched {
        let buf = vec![0u8; len + 4096];
        let start = (like.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize) % 4096;
        PageMatched { buf, start, len }
    }

    /// The buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// The first error of a timed loop. Criterion's closures cannot return one, so a case notes
/// each result here instead of panicking inside the loop, and fails once the loop is over.
#[derive(Debug, Default)]
pub struct FirstError(Option<anyhow::Error>);

impl FirstError {
    /// The value of `result`, or `None` after keeping its error (the first one only).
    #[inline]
    pub fn note<T>(&mut self, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.get_or_insert(e);
                None
            }
        }
    }

    /// The error kept, if any, with `what` as its context.
    pub fn check(self, what: &str) -> anyhow::Result<()> {
        match self.0 {
            Some(e) => Err(e.context(what.to_owned())),
            None => Ok(()),
        }
    }
}
