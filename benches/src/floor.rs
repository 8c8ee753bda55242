//! The hardware floor: two processes bouncing a cache line, or a 64-byte record.
//!
//! Two slots on lines of their own in a shared memfd, one per direction. [`Kind::Line`]: the
//! client stores a new sequence number in its slot's first word and spins until the peer
//! has copied it to the other slot; no records, no payload. That is the floor the targets
//! compare against. [`Kind::Record`]: the same, with a 64-byte payload after the sequence
//! number, which the peer copies out and sends back the same way; the least that moving a
//! 64-byte message with any header costs, since the two take two cache lines. Whatever a
//! transport adds on top of these is its overhead.

use std::hint::black_box;
use std::io::stdin;
use std::os::fd::AsFd;

use anyhow::Context;
use ipc_shm::SharedWords;
use std::sync::atomic::Ordering;

use crate::peer::{Peer, arg, spin_until};

/// The peer role that answers pings.
pub const ROLE: &str = "floor";

/// The peer's argument that selects the kind.
const KIND_ARG: &str = "floor-kind";

/// The client's slot (word 0: sequence number, words 1..=8: payload).
const PING: usize = 0;
/// The peer's slot, laid out as `PING`.
const PONG: usize = 1;
/// Payload words of a [`Kind::Record`] message: 64 bytes.
const PAYLOAD_WORDS: usize = 8;
/// Written to `ping` to make the peer exit.
const STOP: u64 = u64::MAX;

/// What bounces between the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sequence number: one cache line each way.
    Line,
    /// A sequence number and 64 bytes of payload: two cache lines each way.
    Record,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Record => "record",
        }
    }
}

/// The client end of a ping-pong.
#[derive(Debug)]
pub struct Floor {
    words: SharedWords,
    kind: Kind,
    seq: u64,
    /// The payload sent with each [`Kind::Record`] ping, and where its echo is copied.
    payload: [u64; PAYLOAD_WORDS],
    echo: [u64; PAYLOAD_WORDS],
    peer: Peer,
}

impl Floor {
    /// Creates the words and starts a peer with the memfd as its standard input.
    pub fn spawn(kind: Kind) -> anyhow::Result<Floor> {
        let words = SharedWords::create(2)?;
        let fd = words.fd().try_clone_to_owned()?;
        let peer = Peer::spawn(ROLE, &[format!("--{KIND_ARG}={}", kind.name())], fd)?;
        let mut payload = [0; PAYLOAD_WORDS];
        for (word, bytes) in payload.iter_mut().zip(crate::payload(64).chunks_exact(8)) {
            *word = u64::from_le_bytes(bytes.try_into().expect("chunks of 8"));
        }
        Ok(Floor { words, kind, seq: 0, payload, echo: [0; PAYLOAD_WORDS], peer })
    }

    /// One round trip: publish the next sequence number (after the payload, for a record)
    /// and spin until it comes back (then copy the echoed payload out).
    #[inline]
    pub fn round_trip(&mut self) -> anyhow::Result<()> {
        self.seq += 1;
        let seq = self.seq;
        if self.kind == Kind::Record {
            for (w, &v) in self.payload.iter().enumerate() {
                // Relaxed: published by the Release store of the sequence number below.
                self.words.slot_word(PING, 1 + w).store(v, Ordering::Relaxed);
            }
        }
        // SYNC: Release pairs with the peer's Acquire load of `ping` in `serve`: the payload
        // is visible before the sequence number that announces it.
        self.words.get(PING).store(seq, Ordering::Release);
        let pong = self.words.get(PONG);
        // SYNC: Acquire pairs with the peer's Release store of `pong`.
        spin_until("floor pong", || (pong.load(Ordering::Acquire) == seq).then_some(()))?;
        if self.kind == Kind::Record {
            for (w, v) in self.echo.iter_mut().enumerate() {
                *v = self.words.slot_word(PONG, 1 + w).load(Ordering::Relaxed);
            }
            black_box(&self.echo);
        }
        Ok(())
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

/// The peer: answers every new `ping` (copying a record's payload) until it reads [`STOP`].
/// It spins for as long as it lives, so the client keeps it only for the duration of one
/// benchmark.
pub(crate) fn serve() -> anyhow::Result<()> {
    let kind = match arg(KIND_ARG).as_deref() {
        Some("line") => Kind::Line,
        Some("record") => Kind::Record,
        other => anyhow::bail!("--{KIND_ARG} must be line or record, not {other:?}"),
    };
    let fd = stdin().as_fd().try_clone_to_owned().context("take the memfd from stdin")?;
    let words = SharedWords::open(fd, 2)?;
    let (ping, pong) = (words.get(PING), words.get(PONG));
    let mut last = 0;
    let mut payload = [0u64; PAYLOAD_WORDS];
    loop {
        // SYNC: Acquire pairs with the client's Release store of `ping`.
        let seq = ping.load(Ordering::Acquire);
        if seq == STOP {
            return Ok(());
        }
        if seq == last {
            std::hint::spin_loop();
            continue;
        }
        last = seq;
        if kind == Kind::Record {
            for (w, v) in payload.iter_mut().enumerate() {
                *v = words.slot_word(PING, 1 + w).load(Ordering::Relaxed);
            }
            for (w, &v) in payload.iter().enumerate() {
                words.slot_word(PONG, 1 + w).store(v, Ordering::Relaxed);
            }
        }
        // SYNC: Release pairs with the client's Acquire load of `pong`: the echoed payload is
        // visible before it.
        pong.store(seq, Ordering::Release);
    }
}
