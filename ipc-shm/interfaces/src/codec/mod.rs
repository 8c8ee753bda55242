//! Encoding of interface arguments and results.
//!
//! A value is written with [`Encode`] to any [`io::Write`] (on the shared-memory path, the
//! ring region reserved for the message) and read back with [`Decode`] from any
//! [`Input`] (the ring view, or a slice). [`Encode::encoded_len`] gives the exact length first, so
//! the caller can reserve it before encoding.
//!
//! # Format
//!
//! Fixed-size parts are zerocopy structs of explicit-width little-endian fields, written
//! and read as their bytes. Variable parts are a `u32` length or count followed by the
//! items. Blocks, headers and transactions are Bitcoin consensus encoding; blocks and
//! transactions are preceded by their `u32` length. `Option<T>` is a tag byte (0 or 1)
//! then `T`; `bool` is one byte, 0 or 1. Method arguments are tuples, encoded as their
//! fields in order.
//!
//! # Trust
//!
//! Every byte comes from the peer. Decoders check every length and count against the
//! limits below *before* allocating, reserve at most [`PREALLOC_ITEMS`] items ahead of the
//! data actually read, grow a byte string only with bytes the input holds (an [`Input`]
//! that cannot tell reserves [`PREALLOC_BYTES`] ahead, or as many as it read if that is
//! more; the call layer's decoder counts a split message's announced length, within the
//! session's message limit, as held), copy a block or transaction out whole (never more than its
//! announced length, nor more than the input holds) and decode it from that copy, and
//! reject unknown tags. No input makes a decoder panic.

mod bitcoin_types;
mod error;
mod primitives;
#[cfg(test)]
mod tests;
mod values;

use std::io;

pub use error::{DecodeError, LimitError};
pub(crate) use primitives::{decode_bytes_into, decode_list};

/// Longest transaction accepted: a transaction cannot be larger than a block.
pub const MAX_TX_BYTES: u32 = MAX_BLOCK_BYTES;
/// Longest block accepted: a block's size never exceeds its weight, at most 4,000,000.
pub const MAX_BLOCK_BYTES: u32 = 4_000_000;
/// Longest byte string accepted ([`Echo::echo`](crate::Echo::echo) payloads, scripts).
pub const MAX_BYTES: u32 = 64 << 20;
/// Longest text string accepted (wallet names, error messages), in bytes.
pub const MAX_STRING_BYTES: u32 = 4096;
/// Longest address string accepted; BIP 173 caps a segwit address at 90 characters.
pub const MAX_ADDRESS_BYTES: u32 = 128;
/// Most items accepted in a list.
pub const MAX_ITEMS: u32 = 1 << 20;
/// Most items a decoder reserves space for before it has read them.
pub const PREALLOC_ITEMS: usize = 1024;
/// Most bytes a decoder reserves for a byte string before it has read any of them (later,
/// as many as it has read): a 1 MiB echo arrives without reallocating, and a lying length
/// costs at most this much beyond twice the bytes really sent.
pub const PREALLOC_BYTES: usize = 1 << 20;

/// A value that can be written to the wire.
pub trait Encode {
    /// The exact number of bytes [`encode`](Encode::encode) writes, or the limit the value
    /// exceeds (the peer would refuse it, so it must not be sent).
    fn encoded_len(&self) -> Result<usize, LimitError>;

    /// Writes the value. The caller has checked [`encoded_len`](Encode::encoded_len) first; the
    /// only errors are the writer's.
    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()>;
}

/// What a [`Decode`] reads from: an [`io::Read`] that can also append a run of bytes to a
/// vector. The call layer's [`Decoder`](ipc_shm::call::Decoder) copies such a run straight
/// into the vector's spare room, and a slice extends the vector from itself; neither zeroes
/// the room first only to overwrite it, which for a 1 MiB byte string costs a third of a copy.
pub trait Input: io::Read {
    /// Appends exactly `len` bytes to `out`, or fails (`UnexpectedEof` when the input ends
    /// first) and appends nothing. The default reads into zeroed room, reserving
    /// [`PREALLOC_BYTES`] ahead of the bytes read (later, as many as were read), so that a
    /// lying length costs at most that much beyond twice the bytes really there.
    fn read_vec(&mut self, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let base = out.len();
        let end = base.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        while out.len() < end {
            let start = out.len();
            let next = end.min(start.saturating_add((start - base).max(PREALLOC_BYTES)));
            out.reserve_exact(next - start);
            out.resize(next, 0);
            if let Err(e) = self.read_exact(&mut out[start..]) {
                out.truncate(base);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The next `len` bytes without a copy, where the input can hand over a buffer that
    /// holds them: the buffer and the offset where they start in it (they run to its end).
    /// The call layer's decoder does so with the buffer a long message was gathered into
    /// when they are that message's last bytes (a block at the end of a reply). `None`,
    /// consuming nothing, otherwise (the default): read them with
    /// [`read_vec`](Input::read_vec).
    fn take_tail(&mut self, len: usize) -> Option<(Vec<u8>, usize)> {
        let _ = len;
        None
    }
}

/// A slice appends what it holds; it never allocates beyond that.
impl Input for &[u8] {
    fn read_vec(&mut self, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let Some((head, tail)) = self.split_at_checked(len) else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        out.extend_from_slice(head);
        *self = tail;
        Ok(())
    }
}

/// The call layer's decoder appends from the message body (in the ring, or a copy), and
/// grows the vector only by bytes the body really holds.
impl Input for ipc_shm::call::Decoder<'_> {
    fn read_vec(&mut self, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        self.append_raw(len, out)
            .map_err(|_| io::ErrorKind::UnexpectedEof.into())
    }

    fn take_tail(&mut self, len: usize) -> Option<(Vec<u8>, usize)> {
        self.take_raw(len)
    }
}

/// A value that can be read from bytes the peer wrote.
pub trait Decode: Sized {
    /// Reads one value, consuming exactly the bytes its encoding occupies.
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError>;
}

/// Encodes `value` into a new vector.
pub fn encode_to_vec<T: Encode + ?Sized>(value: &T) -> Result<Vec<u8>, LimitError> {
    let len = value.encoded_len()?;
    let mut out = Vec::with_capacity(len);
    value
        .encode(&mut out)
        .expect("writing to a Vec does not fail");
    debug_assert_eq!(out.len(), len, "encoded_len disagrees with encode");
    Ok(out)
}

/// Decodes one `T` that must occupy all of `bytes`.
pub fn decode_from_slice<T: Decode>(mut bytes: &[u8]) -> Result<T, DecodeError> {
    let value = T::decode(&mut bytes)?;
    if bytes.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes {
            len: bytes.len() as u64,
        })
    }
}
