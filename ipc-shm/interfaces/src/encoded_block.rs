//! [`EncodedBlock`]: a block kept in its consensus encoding, its framing checked once.

use std::fmt;
use std::sync::Arc;

use bitcoin::block::{Header, Version};
use bitcoin::consensus::{Decodable, encode};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, CompactTarget, Transaction, TxMerkleNode, VarInt};

use crate::codec::{DecodeError, MAX_BLOCK_BYTES};

/// A block in Bitcoin consensus encoding, held as its bytes.
///
/// This is how [`FoundBlock`](crate::FoundBlock) carries a block across a connection.
/// Decoding a 1.4 MB mainnet block into a [`Block`] (2,500 transactions, tens of thousands
/// of vectors) costs some twenty times the copy that brings it across, and many receivers
/// want less than all of it: the header, a few transactions, or the bytes themselves, to
/// store or forward. So the receiver checks the encoding's framing in one pass that
/// allocates nothing per item, notes where each transaction starts, and keeps the bytes;
/// whoever wants a [`Block`] asks [`EncodedBlock::to_block`] for it.
///
/// **Invariant:** the bytes are a block encoding that rust-bitcoin's decoder accepts: an
/// 80-byte header, a minimal compact-size transaction count, that many transactions (BIP 144
/// witness encoding allowed), and nothing after them; from a peer, at most
/// [`MAX_BLOCK_BYTES`] in all. Construction enforces it,
/// so [`to_block`](EncodedBlock::to_block) and [`transaction`](EncodedBlock::transaction)
/// fail only if the two parsers disagree, which the tests rule out for every rule they
/// share. (rust-bitcoin's own limit on a witness, `MAX_VEC_SIZE`, is never reached within
/// `MAX_BLOCK_BYTES`; on a 32-bit target it truncates compact sizes of 2³² and more, which
/// the walk refuses.) Nothing here checks consensus rules (merkle root, proof of work,
/// scripts).
///
/// The bytes are immutable and shared: a clone is a reference count, as Bitcoin Core
/// passes blocks around as `shared_ptr<const CBlock>`.
#[derive(Clone)]
pub struct EncodedBlock {
    inner: Arc<Framed>,
}

struct Framed {
    bytes: Vec<u8>,
    /// The header, decoded from the first 80 bytes.
    header: Header,
    /// Where each transaction starts, ascending; each ends where the next starts, the last
    /// at the end of `bytes`.
    starts: Vec<usize>,
}

impl EncodedBlock {
    /// Checks that `bytes` frame a block (see the type's invariant) and keeps them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES as usize {
            return Err(DecodeError::TooLong {
                what: "block",
                len: bytes.len() as u64,
                max: MAX_BLOCK_BYTES.into(),
            });
        }
        let (header, starts) = frame(&bytes).map_err(|e| match e.reason {
            ENDS_EARLY => DecodeError::UnexpectedEnd { what: "block" },
            _ => DecodeError::Consensus {
                what: "block",
                reason: e.to_string(),
            },
        })?;
        Ok(EncodedBlock::new(Framed {
            bytes,
            header,
            starts,
        }))
    }

    fn new(framed: Framed) -> Self {
        EncodedBlock {
            inner: Arc::new(framed),
        }
    }

    /// The block's encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// The block's encoding, given back (copied if the block is shared).
    pub fn into_bytes(self) -> Vec<u8> {
        Arc::try_unwrap(self.inner).map_or_else(|shared| shared.bytes.clone(), |own| own.bytes)
    }

    /// The block's header.
    pub fn header(&self) -> &Header {
        &self.inner.header
    }

    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        self.inner.header.block_hash()
    }

    /// The length of the encoding in bytes (the block's `total_size`).
    pub fn len(&self) -> usize {
        self.inner.bytes.len()
    }

    /// Always false: an encoded block holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.inner.bytes.is_empty()
    }

    /// How many transactions the block holds.
    pub fn tx_count(&self) -> usize {
        self.inner.starts.len()
    }

    /// The encoding of each transaction, in block order.
    pub fn tx_bytes(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.inner.starts.len()).map(|i| &self.inner.bytes[self.tx_range(i)])
    }

    /// Transaction `index`, decoded; `None` past the last one.
    pub fn transaction(&self, index: usize) -> Option<Result<Transaction, DecodeError>> {
        (index < self.inner.starts.len())
            .then(|| consensus_decode(&self.inner.bytes[self.tx_range(index)], "transaction"))
    }

    /// The whole block, decoded.
    pub fn to_block(&self) -> Result<Block, DecodeError> {
        consensus_decode(&self.inner.bytes, "block")
    }

    /// The bytes of transaction `index`, which must be below `tx_count`.
    fn tx_range(&self, index: usize) -> std::ops::Range<usize> {
        let end = self.inner.starts.get(index + 1).copied().unwrap_or(self.inner.bytes.len());
        self.inner.starts[index]..end
    }
}

impl From<&Block> for EncodedBlock {
    /// Encodes `block`; the transactions' places follow from their sizes.
    fn from(block: &Block) -> Self {
        let bytes = encode::serialize(block);
        let mut start = Header::SIZE + VarInt(block.txdata.len() as u64).size();
        let starts = block
            .txdata
            .iter()
            .map(|tx| {
                let this = start;
                start += tx.total_size();
                this
            })
            .collect();
        EncodedBlock::new(Framed {
            bytes,
            header: block.header,
            starts,
        })
    }
}

impl PartialEq for EncodedBlock {
    /// Blocks are equal when their encodings are (the rest follows from the bytes).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.bytes == other.inner.bytes
    }
}

impl Eq for EncodedBlock {}

impl fmt::Debug for EncodedBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedBlock")
            .field("hash", &self.block_hash())
            .field("bytes", &self.inner.bytes.len())
            .field("transactions", &self.inner.starts.len())
            .finish()
    }
}

/// Decodes `bytes` whole as a `T`.
fn consensus_decode<T: Decodable>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    encode::deserialize(bytes).map_err(|e| DecodeError::Consensus {
        what,
        reason: e.to_string(),
    })
}

/// Where and why a block's framing is broken.
#[derive(Debug)]
struct FrameError {
    /// Offset of the byte at which the walk stopped.
    at: usize,
    /// The transaction it was in, if any.
    tx: Option<usize>,
    reason: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tx {
            Some(tx) => write!(f, "{} in transaction {tx} at byte {}", self.reason, self.at),
            None => write!(f, "{} at byte {}", self.reason, self.at),
        }
    }
}

/// The smallest transaction: version, segwit marker and flag, no inputs, no outputs, lock
/// time. (Without the marker, an empty input list would read as one.)
const MIN_TX_BYTES: usize = 12;

/// Why a walk stops at the end of the bytes.
const ENDS_EARLY: &str = "the encoding ends early";

// The walk leaves rust-bitcoin's limits on a witness (`MAX_VEC_SIZE` items or bytes) to the
// block limit; were that raised past them, the two would disagree.
const _: () = assert!(MAX_BLOCK_BYTES as usize <= encode::MAX_VEC_SIZE);

/// Walks a block's encoding: its header and where each transaction starts.
fn frame(bytes: &[u8]) -> Result<(Header, Vec<usize>), FrameError> {
    let mut walk = Walk { bytes, at: 0, tx: None };
    let header = walk.header()?;
    let count = walk.compact_size()?;
    // Reserve only what the remaining bytes could hold.
    let room = (bytes.len() - walk.at) / MIN_TX_BYTES;
    let mut starts = Vec::with_capacity(usize::try_from(count).map_or(room, |n| n.min(room)));
    for i in 0..count {
        walk.tx = usize::try_from(i).ok();
        starts.push(walk.at);
        walk.transaction()?;
    }
    walk.tx = None;
    if walk.at != bytes.len() {
        return Err(walk.error("bytes left after the last transaction"));
    }
    Ok((header, starts))
}

/// A cursor over a block's bytes that checks each step (the rules of rust-bitcoin's
/// `Decodable` for `Block`, without building anything).
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    tx: Option<usize>,
}

impl<'a> Walk<'a> {
    #[cold]
    #[inline(never)]
    fn error(&self, reason: &'static str) -> FrameError {
        FrameError {
            at: self.at,
            tx: self.tx,
            reason,
        }
    }

    #[cold]
    #[inline(never)]
    fn ends_early(&self) -> FrameError {
        self.error(ENDS_EARLY)
    }

    /// Steps over `n` bytes, `n` as read from the input. (`at` never passes the end.)
    #[inline(always)]
    fn skip(&mut self, n: u64) -> Result<(), FrameError> {
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(self.ends_early());
        }
        self.at += n as usize;
        Ok(())
    }

    /// The next `N` bytes.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        match self.bytes.get(self.at..).and_then(|rest| rest.first_chunk::<N>()) {
            Some(taken) => {
                self.at += N;
                Ok(*taken)
            }
            None => Err(self.ends_early()),
        }
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A compact size, which must be in its shortest form. Nearly all are one byte.
    #[inline(always)]
    fn compact_size(&mut self) -> Result<u64, FrameError> {
        match self.bytes.get(self.at) {
            Some(&small) if small < 0xFD => {
                self.at += 1;
                Ok(u64::from(small))
            }
            _ => self.long_compact_size(),
        }
    }

    #[inline(never)]
    fn long_compact_size(&mut self) -> Result<u64, FrameError> {
        let start = self.at;
        let [first] = self.array()?;
        let (value, min) = match first {
            0xFD => (u64::from(u16::from_le_bytes(self.array()?)), 0xFD),
            0xFE => (u64::from(u32::from_le_bytes(self.array()?)), 0x1_0000),
            0xFF => (u64::from_le_bytes(self.array()?), 0x1_0000_0000),
            small => return Ok(u64::from(small)),
        };
        if value < min {
            self.at = start;
            return Err(self.error("a compact size is not in its shortest form"));
        }
        Ok(value)
    }

    fn header(&mut self) -> Result<Header, FrameError> {
        Ok(Header {
            version: Version::from_consensus(i32::from_le_bytes(self.array()?)),
            prev_blockhash: BlockHash::from_byte_array(self.array()?),
            merkle_root: TxMerkleNode::from_byte_array(self.array()?),
            time: self.u32()?,
            bits: CompactTarget::from_consensus(self.u32()?),
            nonce: self.u32()?,
        })
    }

    /// Steps over a length-prefixed byte string (a script, a witness item).
    #[inline(always)]
    fn byte_string(&mut self) -> Result<(), FrameError> {
        let len = self.compact_size()?;
        self.skip(len)
    }

    /// Steps over one transaction, in legacy or BIP 144 encoding.
    fn transaction(&mut self) -> Result<(), FrameError> {
        self.skip(4)?; // version
        let mut inputs = self.compact_size()?;
        let segwit = inputs == 0;
        if segwit {
            let [flag] = self.array()?;
            if flag != 1 {
                self.at -= 1;
                return Err(self.error("unsupported segwit flag"));
            }
            inputs = self.compact_size()?;
        }
        for _ in 0..inputs {
            self.skip(36)?; // the outpoint
            self.byte_string()?; // script_sig
            self.skip(4)?; // sequence
        }
        let outputs = self.compact_size()?;
        for _ in 0..outputs {
            self.skip(8)?; // value
            self.byte_string()?; // script_pubkey
        }
        if segwit {
            let mut any_witness = false;
            for _ in 0..inputs {
                let items = self.compact_size()?;
                any_witness |= items != 0;
                for _ in 0..items {
                    self.byte_string()?;
                }
            }
            if inputs != 0 && !any_witness {
                return Err(self.error("witness flag set but no witnesses present"));
            }
        }
        self.skip(4) // lock time
    }
}
