//! Codecs for `bitcoin` types: hashes and amounts as fixed-width fields, headers, blocks
//! and transactions in consensus encoding, addresses as their string form.

use std::io;

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::{Decodable, Encodable};
use bitcoin::hashes::Hash;
use bitcoin::io::FromStd;
use bitcoin::{
    Address, Amount, Block, BlockHash, FeeRate, OutPoint, Script, ScriptBuf, Transaction,
    TxMerkleNode, TxOut, Txid, Work, block,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

use crate::EncodedBlock;
use crate::encoded_block::{walk_block, walk_transaction};

use super::primitives::{check_len, read_bytes, read_error, read_len, read_wire, write_prefixed};
use super::{
    Decode, DecodeError, Encode, Input, LimitError, MAX_ADDRESS_BYTES, MAX_BLOCK_BYTES,
    MAX_TX_BYTES,
};

/// 32-byte hashes, in their internal byte order.
macro_rules! hash_codec {
    ($ty:ty, $what:literal) => {
        impl Encode for $ty {
            fn encoded_len(&self) -> Result<usize, LimitError> {
                Ok(32)
            }

            fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
                w.write_all(self.as_byte_array())
            }
        }

        impl Decode for $ty {
            fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
                Ok(<$ty>::from_byte_array(read_wire(r, $what)?))
            }
        }
    };
}

hash_codec!(BlockHash, "block hash");
hash_codec!(Txid, "txid");
hash_codec!(TxMerkleNode, "merkle node");

/// An outpoint: txid, then output index.
impl Encode for OutPoint {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(36)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.txid.encode(w)?;
        self.vout.encode(w)
    }
}

impl Decode for OutPoint {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(OutPoint {
            txid: Txid::decode(r)?,
            vout: u32::decode(r)?,
        })
    }
}

/// An amount in satoshis.
impl Encode for Amount {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(8)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(U64::new(self.to_sat()).as_bytes())
    }
}

impl Decode for Amount {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(Amount::from_sat(read_wire::<U64, _>(r, "amount")?.get()))
    }
}

/// A fee rate in satoshis per 1000 weight units (its exact internal unit).
impl Encode for FeeRate {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(8)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(U64::new(self.to_sat_per_kwu()).as_bytes())
    }
}

impl Decode for FeeRate {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(FeeRate::from_sat_per_kwu(
            read_wire::<U64, _>(r, "fee rate")?.get(),
        ))
    }
}

/// Chain work: 32 bytes, big-endian.
impl Encode for Work {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(32)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.to_be_bytes())
    }
}

impl Decode for Work {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(Work::from_be_bytes(read_wire(r, "chain work")?))
    }
}

/// A block version, as the `i32` of the header.
impl Encode for block::Version {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(4)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.to_consensus().encode(w)
    }
}

impl Decode for block::Version {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(block::Version::from_consensus(i32::decode(r)?))
    }
}

/// The most bytes of a consensus encoding gathered before they go to the writer.
const WRITE_BUFFER: usize = 16 * 1024;

/// Writes `value`, whose consensus encoding is `len` bytes, in consensus encoding.
///
/// The encoder makes a write per field (4 bytes of version, 1 byte of count, 32 bytes of
/// hash …), and each write to a message crosses every layer down to the ring; a block is
/// hundreds of thousands of them. They are gathered in a buffer of up to [`WRITE_BUFFER`]
/// bytes instead (a field that size or longer goes straight through).
fn consensus_write<T, W>(value: &T, len: usize, w: &mut W) -> io::Result<()>
where
    T: Encodable + ?Sized,
    W: io::Write + ?Sized,
{
    let mut buffered = io::BufWriter::with_capacity(len.min(WRITE_BUFFER), w);
    if let Err(e) = value.consensus_encode(&mut FromStd::new(&mut buffered)) {
        // Dropped, not flushed: a message the encoding failed for is not sent.
        let _ = buffered.into_parts();
        return Err(e.into());
    }
    // `into_inner` flushes, and reports a failed flush instead of dropping it.
    buffered
        .into_inner()
        .map(drop)
        .map_err(io::IntoInnerError::into_error)
}

/// Decodes a consensus-encoded value from all of `bytes`; bytes it leaves unread are an
/// error.
///
/// Values come out of a message as a copy made in one read ([`read_bytes`], which grows it
/// only by bytes the message really holds), not field by field: the consensus decoder
/// reads a field at a time, and each read of a message would cross every layer down to
/// the ring (a block is hundreds of thousands of reads). A transaction or a block is
/// walked before it is decoded ([`walk_transaction`], [`walk_block`]).
fn consensus_from_slice<T: Decodable>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let mut rest = bytes;
    let value = T::consensus_decode_from_finite_reader(&mut rest).map_err(|e| match e {
        bitcoin::consensus::encode::Error::Io(io) => read_error(&io.into(), what),
        other => DecodeError::Consensus {
            what,
            reason: other.to_string(),
        },
    })?;
    match rest.len() {
        0 => Ok(value),
        left => Err(DecodeError::TrailingBytes { len: left as u64 }),
    }
}

/// A header: its 80 bytes of consensus encoding.
impl Encode for block::Header {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(block::Header::SIZE)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        // Gathered on the stack: six fields, one write.
        let mut bytes = [0; block::Header::SIZE];
        self.consensus_encode(&mut FromStd::new(&mut &mut bytes[..]))
            .map_err(io::Error::from)?;
        w.write_all(&bytes)
    }
}

impl Decode for block::Header {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let bytes: [u8; block::Header::SIZE] = read_wire(r, "block header")?;
        consensus_from_slice(&bytes, "block header")
    }
}

/// A transaction: `u32` length, then its consensus encoding (with witnesses).
impl Encode for Transaction {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(4 + check_len("transaction", self.total_size(), MAX_TX_BYTES)? as usize)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let len = self.total_size();
        w.write_all(U32::new(len as u32).as_bytes())?;
        consensus_write(self, len, w)
    }
}

impl Decode for Transaction {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "transaction", MAX_TX_BYTES)?;
        let bytes = read_bytes(r, len, "transaction")?;
        // Walked first: rust-bitcoin would size allocations by unchecked counts.
        walk_transaction(&bytes)?;
        consensus_from_slice(&bytes, "transaction")
    }
}

/// A block: `u32` length, then its consensus encoding.
impl Encode for Block {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(4 + check_len("block", self.total_size(), MAX_BLOCK_BYTES)? as usize)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let len = self.total_size();
        w.write_all(U32::new(len as u32).as_bytes())?;
        consensus_write(self, len, w)
    }
}

impl Decode for Block {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "block", MAX_BLOCK_BYTES)?;
        let bytes = read_bytes(r, len, "block")?;
        // Walked first, as a transaction is.
        walk_block(&bytes)?;
        consensus_from_slice(&bytes, "block")
    }
}

/// An [`EncodedBlock`]: the same bytes as a [`Block`] (`u32` length, then its consensus
/// encoding), kept as they are (in the buffer they were gathered into, when they end a long
/// message); only the header is decoded.
impl Encode for EncodedBlock {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(4 + check_len("block", self.len(), MAX_BLOCK_BYTES)? as usize)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        write_prefixed(w, self.as_bytes())
    }
}

impl Decode for EncodedBlock {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "block", MAX_BLOCK_BYTES)?;
        let (bytes, start) = match r.take_tail(len as usize) {
            Some(tail) => tail,
            None => (read_bytes(r, len, "block")?, 0),
        };
        EncodedBlock::from_parts(bytes, start)
    }
}

/// A script: `u32` length, then its bytes, no longer than a transaction.
impl Encode for Script {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(4 + check_len("script", self.len(), MAX_TX_BYTES)? as usize)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        write_prefixed(w, self.as_bytes())
    }
}

impl Encode for ScriptBuf {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        self.as_script().encoded_len()
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.as_script().encode(w)
    }
}

impl Decode for ScriptBuf {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "script", MAX_TX_BYTES)?;
        Ok(ScriptBuf::from_bytes(read_bytes(r, len, "script")?))
    }
}

/// An output: value, then script.
impl Encode for TxOut {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(8 + self.script_pubkey.encoded_len()?)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.value.encode(w)?;
        self.script_pubkey.encode(w)
    }
}

impl Decode for TxOut {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(TxOut {
            value: Amount::decode(r)?,
            script_pubkey: ScriptBuf::decode(r)?,
        })
    }
}

/// An address: its string form (which names its network), `u32` length first. The
/// receiver checks the network.
impl Encode for Address<NetworkUnchecked> {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        let len = self.assume_checked_ref().to_string().len();
        Ok(4 + check_len("address", len, MAX_ADDRESS_BYTES)? as usize)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        write_prefixed(w, self.assume_checked_ref().to_string().as_bytes())
    }
}

impl Decode for Address<NetworkUnchecked> {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "address", MAX_ADDRESS_BYTES)?;
        let bytes = read_bytes(r, len, "address")?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| DecodeError::InvalidUtf8 { what: "address" })?;
        text.parse().map_err(
            |e: bitcoin::address::ParseError| DecodeError::InvalidAddress {
                reason: e.to_string(),
            },
        )
    }
}
