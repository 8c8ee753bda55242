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

// Under loom only the index protocol is modelled; the system-call layers sit idle.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod error;
pub mod handshake;
mod mem;
pub mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub mod shared_words;
mod sync;
pub mod wait;

pub use error::{Error, ProtocolError};
#[cfg(not(loom))]
pub use shared_words::SharedWords;
