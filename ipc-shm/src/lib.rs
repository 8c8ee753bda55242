//! `ipc-shm`: lock-free single-producer/single-consumer rings in shared memory between two
//! processes, set up over a unix socket that also tells each side when the other is gone.
//!
//! A [`Connection`] is one unix socket plus two rings, one per direction. Each ring lives in
//! an anonymous, sealed `memfd` that its producer creates and hands to the consumer with
//! `SCM_RIGHTS`; nothing is ever named in the file system. Records are variable-length and
//! written in place: the producer reserves a region, writes into it and commits; the
//! consumer reads a committed record in place and releases it.
//!
//! Everything the peer can write is untrusted. Positions, lengths and headers are copied
//! out of shared memory and validated before use; a violation is a [`ProtocolError`] that
//! closes the connection, never a panic.
//!
//! This crate knows nothing about Bitcoin.
//!
//! # Example
//!
//! A parent spawns `bitcoin-node` from beside its own executable; the child, started with
//! `-ipcfd=N`, accepts the connection and echoes one record:
//!
//! ```no_run
//! use ipc_shm::{Config, Transport};
//!
//! # fn parent() -> Result<(), ipc_shm::Error> {
//! let mut config = Config::new("bitcoin-gui");
//! config.transport = "shm".parse::<Transport>().expect("a transport");
//! let (_child, connection) = ipc_shm::spawn("bitcoin-node", ["-regtest"], &config)?;
//! let (mut tx, mut rx) = connection.split();
//! tx.send_bytes(b"ping")?;
//! assert_eq!(rx.recv()?.to_vec(), b"ping");
//! # Ok(()) }
//! # fn child(ipcfd: i32) -> Result<(), ipc_shm::Error> {
//! let connection = ipc_shm::accept_ipcfd(ipcfd, &Config::new("bitcoin-node"))?;
//! let (mut tx, mut rx) = connection.split();
//! let request = rx.recv()?.to_vec();
//! tx.send_bytes(&request)?;
//! # Ok(()) }
//! ```

// Under loom only the index protocol is modelled; the system-call layers sit idle.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

// The peer's lengths and positions (`u32` and `u64` on the wire) are turned into `usize`
// and added to before they are checked against the ring's limits, which is sound only where
// `usize` holds any of them with room to spare.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("ipc-shm supports 64-bit targets only");

#[cfg(not(loom))]
pub mod call;
#[cfg(not(loom))]
pub mod connect;
mod error;
#[cfg(not(loom))]
pub mod handshake;
mod mem;
pub mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub mod shared_words;
#[cfg(not(loom))]
mod socket;
mod sync;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
mod transport;
pub mod wait;

/// How many cases a property test runs: `default`, or `PROPTEST_CASES` when set, so that
/// `PROPTEST_CASES=100000 cargo test` is the long fuzzing run (docs/reliability.md).
#[cfg(test)]
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

#[cfg(not(loom))]
pub use connect::{
    ConnectError, Endpoint, Listener, Pending, STDERR_CAPTURE_LIMIT, SpawnOptions, SpawnedChild,
    accept_ipcfd, connect, spawn, spawn_with,
};
pub use error::{Error, ProtocolError};
#[cfg(not(loom))]
pub use shared_words::SharedWords;
#[cfg(not(loom))]
pub use transport::{
    Config, Connection, ParseTransportError, PeerInfo, ReadGrant, Receiver, Sender, Transport,
    WriteGrant,
};
