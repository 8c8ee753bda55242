//! [`EncodedBlock`]: a block kept in its consensus encoding, its framing checked when first
//! needed.

use std::fmt;
use std::sync::{Arc, OnceLock};

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
/// store or forward. So the receiver keeps the bytes and decodes only the header; the rest
/// of the framing (where each transaction starts) is walked, in one pass that allocates
/// nothing per item, the first time something needs it ([`EncodedBlock::check`],
/// [`tx_count`](EncodedBlock::tx_count), [`tx_bytes`](EncodedBlock::tx_bytes),
/// [`transaction`](EncodedBlock::transaction)), and its outcome is kept. That walk costs
/// more than the copy; a receiver that only stores or forwards the bytes never pays it.
/// Whoever wants a [`Block`] asks [`EncodedBlock::to_block`] for it, whose decoding checks
/// everything anyway.
///
/// **Invariant:** the bytes start with an 80-byte header and, from a peer, are at most
/// [`MAX_BLOCK_BYTES`] long; construction enforces that much. Whether the rest is a block
/// encoding that rust-bitcoin's decoder accepts (a minimal compact-size transaction count,
/// that many transactions, BIP 144 witness encoding allowed, nothing after them) is what
/// the walk decides: every accessor past the header fails with the walk's error if not,
/// and [`to_block`](EncodedBlock::to_block) and [`transaction`](EncodedBlock::transaction)
/// fail on blocks the walk accepts only if the two parsers disagree, which the tests rule
/// out for every rule they share. (rust-bitcoin's own limit on a witness, `MAX_VEC_SIZE`,
/// is never reached within `MAX_BLOCK_BYTES`; on a 32-bit target it truncates compact sizes
/// of 2³² and more, which the walk refuses.) Nothing here checks consensus rules (merkle
/// root, proof of work, scripts).
///
/// The bytes are immutable and shared: a clone is a reference count, as Bitcoin Core
/// passes blocks around as `shared_ptr<const CBlock>`.
#[derive(Clone)]
pub struct EncodedBlock {
    inner: Arc<Framed>,
}

struct Framed {
    /// The encoding, from `start` on. Before it: what preceded the block in the buffer a
    /// message was gathered into, kept rather than copying the block out of it.
    bytes: Vec<u8>,
    start: usize,
    /// The header, decoded from the first 80 bytes.
    header: Header,
    /// Once walked: where each transaction starts (offsets into the encoding, ascending;
    /// each ends where the next starts, the last at the end), or why the framing is broken.
    starts: OnceLock<Result<Vec<usize>, FrameError>>,
}

impl EncodedBlock {
    /// Keeps `bytes` as a block's encoding: checks its length and decodes its header (see
    /// the type's invariant); the rest is checked when first needed.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        EncodedBlock::from_parts(bytes, 0)
    }

    /// As [`EncodedBlock::from_bytes`], for the encoding that fills `bytes` from `start` on
    /// (what [`Input::take_tail`](crate::codec::Input::take_tail) returns).
    pub(crate) fn from_parts(bytes: Vec<u8>, start: usize) -> Result<Self, DecodeError> {
        let encoding = bytes.get(start..).unwrap_or_default();
        if encoding.len() > MAX_BLOCK_BYTES as usize {
            return Err(DecodeError::TooLong {
                what: "block",
                len: encoding.len() as u64,
                max: MAX_BLOCK_BYTES.into(),
            });
        }
        let header = Walk {
            bytes: encoding,
            at: 0,
            tx: None,
        }
        .header()
        .map_err(|e| e.to_decode_error())?;
        Ok(EncodedBlock::new(Framed {
            bytes,
            start,
            header,
            starts: OnceLock::new(),
        }))
    }

    fn new(framed: Framed) -> Self {
        EncodedBlock {
            inner: Arc::new(framed),
        }
    }

    /// The block's encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.bytes[self.inner.start..]
    }

    /// The block's encoding, given back (copied if the block is shared).
    pub fn into_bytes(self) -> Vec<u8> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut own) => {
                // Kept in the buffer of the message it came in: moved to its front.
                own.bytes.drain(..own.start);
                own.bytes
            }
            Err(shared) => shared.bytes[shared.start..].to_vec(),
        }
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
        self.as_bytes().len()
    }

    /// Always false: an encoded block holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Walks the framing now, if that has not been done: `Ok` when the bytes are a block
    /// encoding that rust-bitcoin's decoder accepts (see the type's invariant).
    pub fn check(&self) -> Result<(), DecodeError> {
        self.starts().map(drop)
    }

    /// How many transactions the block holds.
    pub fn tx_count(&self) -> Result<usize, DecodeError> {
        self.starts().map(<[usize]>::len)
    }

    /// The encoding of each transaction, in block order.
    pub fn tx_bytes(&self) -> Result<impl ExactSizeIterator<Item = &[u8]> + '_, DecodeError> {
        let starts = self.starts()?;
        let bytes = self.as_bytes();
        Ok((0..starts.len()).map(move |i| &bytes[tx_range(starts, bytes.len(), i)]))
    }

    /// Transaction `index`, decoded; `None` past the last one, and the walk's error when
    /// the framing is broken.
    pub fn transaction(&self, index: usize) -> Option<Result<Transaction, DecodeError>> {
        let starts = match self.starts() {
            Ok(starts) => starts,
            Err(e) => return Some(Err(e)),
        };
        let bytes = self.as_bytes();
        (index < starts.len())
            .then(|| consensus_decode(&bytes[tx_range(starts, bytes.len(), index)], "transaction"))
    }

    /// The whole block, decoded. The framing is walked first (see [`check`](Self::check)):
    /// rust-bitcoin sizes some allocations by counts it reads, and the walk has checked
    /// that every count is backed by bytes.
    pub fn to_block(&self) -> Result<Block, DecodeError> {
        self.check()?;
        consensus_decode(self.as_bytes(), "block")
    }

    /// Where each transaction starts, the framing walked on first use.
    fn starts(&self) -> Result<&[usize], DecodeError> {
        let walked = self.inner.starts.get_or_init(|| frame(self.as_bytes()));
        match walked {
            Ok(starts) => Ok(starts),
            Err(e) => Err(e.to_decode_error()),
        }
    }
}

/// The bytes of transaction `index` (below `starts.len()`) of an encoding `len` bytes long.
fn tx_range(starts: &[usize], len: usize, index: usize) -> std::ops::Range<usize> {
    let end = starts.get(index + 1).copied().unwrap_or(len);
    starts[index]..end
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
            start: 0,
            header: block.header,
            starts: OnceLock::from(Ok(starts)),
        })
    }
}

impl PartialEq for EncodedBlock {
    /// Blocks are equal when their encodings are (the rest follows from the bytes).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EncodedBlock {}

impl fmt::Debug for EncodedBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedBlock")
            .field("hash", &self.block_hash())
            .field("bytes", &self.len())
            // Not the transactions: whether the framing has been walked yet must not show.
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

impl FrameError {
    fn to_decode_error(&self) -> DecodeError {
        self.decode_error("block")
    }

    fn decode_error(&self, what: &'static str) -> DecodeError {
        match self.reason {
            ENDS_EARLY => DecodeError::UnexpectedEnd { what },
            _ => DecodeError::Consensus {
                what,
                reason: self.to_string(),
            },
        }
    }
}

/// Checks, without allocating, that `bytes` are exactly one transaction encoding that
/// rust-bitcoin's decoder accepts, before it decodes them.
///
/// rust-bitcoin sizes a witness's buffer by the item count it reads (four bytes an item):
/// a 58-byte transaction claiming four million witness items made it allocate 16 MB, and
/// 71 bytes made it 32 MB, before it found the items missing. The walk takes a byte or
/// more for every item it counts, so once it has passed, every count is backed by bytes.
pub(crate) fn walk_transaction(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut walk = Walk {
        bytes,
        at: 0,
        tx: None,
    };
    walk.transaction()
        .map_err(|e| e.decode_error("transaction"))?;
    match bytes.len() - walk.at {
        0 => Ok(()),
        left => Err(DecodeError::TrailingBytes { len: left as u64 }),
    }
}

/// As [`walk_transaction`], for a whole block (header included). Allocates nothing: the
/// block's decoder, which runs next, keeps no use for where each transaction starts.
pub(crate) fn walk_block(bytes: &[u8]) -> Result<(), DecodeError> {
    walk_framing(bytes, |_, _| ()).map_err(|e| e.to_decode_error())
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

/// Walks a block's encoding past its header (decoded on construction): where each
/// transaction starts.
fn frame(bytes: &[u8]) -> Result<Vec<usize>, FrameError> {
    let mut starts = Vec::new();
    walk_framing(bytes, |at, count| {
        if starts.is_empty() {
            // Reserve only what the bytes could hold, not what the count claims.
            let room = bytes.len() / MIN_TX_BYTES;
            starts.reserve_exact(usize::try_from(count).map_or(room, |n| n.min(room)));
        }
        starts.push(at);
    })?;
    Ok(starts)
}

/// Checks a block's framing, header included: calls `at_tx` with where each transaction
/// starts and the count the block claims, before walking that transaction.
fn walk_framing(bytes: &[u8], mut at_tx: impl FnMut(usize, u64)) -> Result<(), FrameError> {
    let mut walk = Walk {
        bytes,
        at: 0,
        tx: None,
    };
    walk.skip(Header::SIZE as u64)?;
    let count = walk.compact_size()?;
    for i in 0..count {
        walk.tx = usize::try_from(i).ok();
        at_tx(walk.at, count);
        walk.transaction()?;
    }
    walk.tx = None;
    if walk.at != bytes.len() {
        return Err(walk.error("bytes left after the last transaction"));
    }
    Ok(())
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
        match self
            .bytes
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
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
