//! Codecs for the interfaces' own value types and for errors.

use std::io;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, FeeRate, ScriptBuf, Transaction, TxOut, Work, block};
use zerocopy::little_endian::{I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::primitives::{flag, read_tag, read_wire};
use super::{Decode, DecodeError, Encode, Input, LimitError, MAX_STRING_BYTES};
use crate::{
    Balances, BlockRef, BlockWhat, ChangeType, Coin, EncodedBlock, ErrorCode, FoundBlock,
    FoundTransaction, InterfaceError, MempoolInfo, RemovalReason, TipInfo, WalletTx,
};

/// Implements `Encode`/`Decode` for a type through a fixed-layout wire struct: `to_wire`
/// builds the wire struct, `from_wire` checks it and builds the value.
macro_rules! fixed_codec {
    ($ty:ty, $wire:ty, $what:literal) => {
        impl Encode for $ty {
            fn encoded_len(&self) -> Result<usize, LimitError> {
                Ok(size_of::<$wire>())
            }

            fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
                w.write_all(to_wire(self).as_bytes())
            }
        }

        impl Decode for $ty {
            fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
                from_wire(read_wire::<$wire, _>(r, $what)?)
            }
        }
    };
}

/// Fieldless enums as a one-byte tag, their index in `$variants`.
macro_rules! tag_codec {
    ($ty:ty, $what:literal, [$($variant:path),+ $(,)?]) => {
        impl Encode for $ty {
            fn encoded_len(&self) -> Result<usize, LimitError> {
                Ok(1)
            }

            fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
                const VARIANTS: &[$ty] = &[$($variant),+];
                let tag = VARIANTS.iter().position(|v| v == self).unwrap_or_default();
                w.write_all(&[tag as u8])
            }
        }

        impl Decode for $ty {
            fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
                const VARIANTS: &[$ty] = &[$($variant),+];
                let tag = read_tag(r, $what, VARIANTS.len() as u8)?;
                Ok(VARIANTS[usize::from(tag)])
            }
        }

    };
}

tag_codec!(
    BlockWhat,
    "block what",
    [BlockWhat::Header, BlockWhat::Full]
);
tag_codec!(
    ChangeType,
    "change type",
    [ChangeType::New, ChangeType::Updated, ChangeType::Deleted]
);
tag_codec!(
    RemovalReason,
    "removal reason",
    [
        RemovalReason::Expiry,
        RemovalReason::SizeLimit,
        RemovalReason::Reorg,
        RemovalReason::Block,
        RemovalReason::Conflict,
        RemovalReason::Replaced,
    ]
);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BlockRefWire {
    hash: [u8; 32],
    height: U32,
}

mod block_ref {
    use super::*;

    pub(super) fn to_wire(v: &BlockRef) -> BlockRefWire {
        BlockRefWire {
            hash: v.hash.to_byte_array(),
            height: U32::new(v.height),
        }
    }

    pub(super) fn from_wire(w: BlockRefWire) -> Result<BlockRef, DecodeError> {
        Ok(BlockRef {
            hash: BlockHash::from_byte_array(w.hash),
            height: w.height.get(),
        })
    }

    fixed_codec!(BlockRef, BlockRefWire, "block ref");
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TipInfoWire {
    height: U32,
    hash: [u8; 32],
    time: U32,
    median_time_past: U32,
    /// Big-endian, as `Work::to_be_bytes`.
    chain_work: [u8; 32],
}

mod tip_info {
    use super::*;

    pub(super) fn to_wire(v: &TipInfo) -> TipInfoWire {
        TipInfoWire {
            height: U32::new(v.height),
            hash: v.hash.to_byte_array(),
            time: U32::new(v.time),
            median_time_past: U32::new(v.median_time_past),
            chain_work: v.chain_work.to_be_bytes(),
        }
    }

    pub(super) fn from_wire(w: TipInfoWire) -> Result<TipInfo, DecodeError> {
        Ok(TipInfo {
            height: w.height.get(),
            hash: BlockHash::from_byte_array(w.hash),
            time: w.time.get(),
            median_time_past: w.median_time_past.get(),
            chain_work: Work::from_be_bytes(w.chain_work),
        })
    }

    fixed_codec!(TipInfo, TipInfoWire, "tip info");
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MempoolInfoWire {
    size: U64,
    bytes: U64,
    usage: U64,
    total_fee_sat: U64,
    mempool_min_fee_sat_kwu: U64,
    min_relay_tx_fee_sat_kwu: U64,
}

mod mempool_info {
    use super::*;

    pub(super) fn to_wire(v: &MempoolInfo) -> MempoolInfoWire {
        MempoolInfoWire {
            size: U64::new(v.size),
            bytes: U64::new(v.bytes),
            usage: U64::new(v.usage),
            total_fee_sat: U64::new(v.total_fee.to_sat()),
            mempool_min_fee_sat_kwu: U64::new(v.mempool_min_fee.to_sat_per_kwu()),
            min_relay_tx_fee_sat_kwu: U64::new(v.min_relay_tx_fee.to_sat_per_kwu()),
        }
    }

    pub(super) fn from_wire(w: MempoolInfoWire) -> Result<MempoolInfo, DecodeError> {
        Ok(MempoolInfo {
            size: w.size.get(),
            bytes: w.bytes.get(),
            usage: w.usage.get(),
            total_fee: Amount::from_sat(w.total_fee_sat.get()),
            mempool_min_fee: FeeRate::from_sat_per_kwu(w.mempool_min_fee_sat_kwu.get()),
            min_relay_tx_fee: FeeRate::from_sat_per_kwu(w.min_relay_tx_fee_sat_kwu.get()),
        })
    }

    fixed_codec!(MempoolInfo, MempoolInfoWire, "mempool info");
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BalancesWire {
    trusted_sat: U64,
    untrusted_pending_sat: U64,
    immature_sat: U64,
}

mod balances {
    use super::*;

    pub(super) fn to_wire(v: &Balances) -> BalancesWire {
        BalancesWire {
            trusted_sat: U64::new(v.trusted.to_sat()),
            untrusted_pending_sat: U64::new(v.untrusted_pending.to_sat()),
            immature_sat: U64::new(v.immature.to_sat()),
        }
    }

    pub(super) fn from_wire(w: BalancesWire) -> Result<Balances, DecodeError> {
        Ok(Balances {
            trusted: Amount::from_sat(w.trusted_sat.get()),
            untrusted_pending: Amount::from_sat(w.untrusted_pending_sat.get()),
            immature: Amount::from_sat(w.immature_sat.get()),
        })
    }

    fixed_codec!(Balances, BalancesWire, "balances");
}

/// A found block: this fixed part, then `Option<EncodedBlock>`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FoundBlockWire {
    /// Consensus encoding of the header.
    header: [u8; 80],
    height: U32,
    median_time_past: U32,
    in_active_chain: u8,
}

impl FoundBlock {
    /// The fixed part of the encoding.
    fn wire(&self) -> io::Result<FoundBlockWire> {
        let mut wire = FoundBlockWire {
            header: [0; 80],
            height: U32::new(self.height),
            median_time_past: U32::new(self.median_time_past),
            in_active_chain: self.in_active_chain.into(),
        };
        self.header.encode(&mut &mut wire.header[..])?;
        Ok(wire)
    }
}

impl Encode for FoundBlock {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(size_of::<FoundBlockWire>() + self.block.encoded_len()?)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(self.wire()?.as_bytes())?;
        self.block.encode(w)
    }
}

impl Decode for FoundBlock {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let wire: FoundBlockWire = read_wire(r, "found block")?;
        let header = block::Header::decode(&mut &wire.header[..])?;
        let block = Option::<EncodedBlock>::decode(r)?;
        if let Some(b) = &block
            && *b.header() != header
        {
            return Err(DecodeError::InvalidValue {
                what: "found block's block header",
                value: 0,
            });
        }
        Ok(FoundBlock {
            header,
            height: wire.height.get(),
            median_time_past: wire.median_time_past.get(),
            in_active_chain: flag(wire.in_active_chain, "in_active_chain")?,
            block,
        })
    }
}

const COIN_HAS_HEIGHT: u8 = 1;
const COIN_IS_COINBASE: u8 = 2;

/// A coin: this fixed part, then the output's script.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CoinWire {
    value_sat: U64,
    /// Zero when the coin has no height.
    height: U32,
    /// [`COIN_HAS_HEIGHT`] | [`COIN_IS_COINBASE`].
    flags: u8,
}

impl Encode for Coin {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(size_of::<CoinWire>() + self.txout.script_pubkey.encoded_len()?)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let mut flags = 0;
        if self.height.is_some() {
            flags |= COIN_HAS_HEIGHT;
        }
        if self.is_coinbase {
            flags |= COIN_IS_COINBASE;
        }
        let wire = CoinWire {
            value_sat: U64::new(self.txout.value.to_sat()),
            height: U32::new(self.height.unwrap_or(0)),
            flags,
        };
        w.write_all(wire.as_bytes())?;
        self.txout.script_pubkey.encode(w)
    }
}

impl Decode for Coin {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let wire: CoinWire = read_wire(r, "coin")?;
        let has_height = wire.flags & COIN_HAS_HEIGHT != 0;
        if wire.flags & !(COIN_HAS_HEIGHT | COIN_IS_COINBASE) != 0
            || (!has_height && wire.height.get() != 0)
        {
            return Err(DecodeError::InvalidValue {
                what: "coin flags",
                value: wire.flags.into(),
            });
        }
        Ok(Coin {
            txout: TxOut {
                value: Amount::from_sat(wire.value_sat.get()),
                script_pubkey: ScriptBuf::decode(r)?,
            },
            height: has_height.then(|| wire.height.get()),
            is_coinbase: wire.flags & COIN_IS_COINBASE != 0,
        })
    }
}

/// A found transaction: the transaction, then `Option<BlockRef>`.
impl Encode for FoundTransaction {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(self.tx.encoded_len()? + self.block.encoded_len()?)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.tx.encode(w)?;
        self.block.encode(w)
    }
}

impl Decode for FoundTransaction {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        Ok(FoundTransaction {
            tx: Transaction::decode(r)?,
            block: Option::decode(r)?,
        })
    }
}

const WALLET_TX_HAS_FEE: u8 = 1;
const WALLET_TX_HAS_BLOCK: u8 = 2;

/// A wallet transaction's output is paid to the wallet (`txout_is_mine`).
const TXOUT_MINE: u8 = 1;
/// A wallet transaction's output is change (`txout_is_change`), which is only ever mine.
const TXOUT_CHANGE: u8 = 2;

/// A wallet transaction: this fixed part, the transaction, then one byte per output of the
/// transaction: [`TXOUT_MINE`], with [`TXOUT_CHANGE`] for change, or 0.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct WalletTxWire {
    credit_sat: U64,
    debit_sat: U64,
    /// Zero when there is no fee.
    fee_sat: U64,
    /// Zero when there is no block.
    block_hash: [u8; 32],
    block_height: U32,
    time: U64,
    /// [`WALLET_TX_HAS_FEE`] | [`WALLET_TX_HAS_BLOCK`].
    flags: u8,
}

impl Encode for WalletTx {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        // One byte per output; outputs are bounded by the transaction.
        Ok(size_of::<WalletTxWire>() + self.tx.encoded_len()? + self.tx.output.len())
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let mut flags = 0;
        if self.fee.is_some() {
            flags |= WALLET_TX_HAS_FEE;
        }
        if self.block.is_some() {
            flags |= WALLET_TX_HAS_BLOCK;
        }
        let wire = WalletTxWire {
            credit_sat: U64::new(self.credit.to_sat()),
            debit_sat: U64::new(self.debit.to_sat()),
            fee_sat: U64::new(self.fee.map_or(0, Amount::to_sat)),
            block_hash: self.block.map_or([0; 32], |b| b.hash.to_byte_array()),
            block_height: U32::new(self.block.map_or(0, |b| b.height)),
            time: U64::new(self.time),
            flags,
        };
        w.write_all(wire.as_bytes())?;
        self.tx.encode(w)?;
        // One byte per output, whatever the vectors hold, so the length is the one
        // `encoded_len` promised; missing entries are `false`, and change that is not mine
        // is not change.
        let flag = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
        let outputs: Vec<u8> = (0..self.tx.output.len())
            .map(
                |i| match (flag(&self.txout_is_mine, i), flag(&self.txout_is_change, i)) {
                    (false, _) => 0,
                    (true, false) => TXOUT_MINE,
                    (true, true) => TXOUT_MINE | TXOUT_CHANGE,
                },
            )
            .collect();
        w.write_all(&outputs)
    }
}

impl Decode for WalletTx {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let wire: WalletTxWire = read_wire(r, "wallet transaction")?;
        if wire.flags & !(WALLET_TX_HAS_FEE | WALLET_TX_HAS_BLOCK) != 0 {
            return Err(DecodeError::InvalidValue {
                what: "wallet transaction flags",
                value: wire.flags.into(),
            });
        }
        let tx = Transaction::decode(r)?;
        let mut txout_is_mine = Vec::with_capacity(tx.output.len());
        let mut txout_is_change = Vec::with_capacity(tx.output.len());
        for _ in 0..tx.output.len() {
            let [byte] = read_wire::<[u8; 1], _>(r, "wallet transaction output")?;
            if byte != 0 && byte != TXOUT_MINE && byte != TXOUT_MINE | TXOUT_CHANGE {
                return Err(DecodeError::InvalidValue {
                    what: "wallet transaction output flags",
                    value: byte.into(),
                });
            }
            txout_is_mine.push(byte & TXOUT_MINE != 0);
            txout_is_change.push(byte & TXOUT_CHANGE != 0);
        }
        let has_fee = wire.flags & WALLET_TX_HAS_FEE != 0;
        let has_block = wire.flags & WALLET_TX_HAS_BLOCK != 0;
        Ok(WalletTx {
            tx,
            credit: Amount::from_sat(wire.credit_sat.get()),
            debit: Amount::from_sat(wire.debit_sat.get()),
            fee: has_fee.then(|| Amount::from_sat(wire.fee_sat.get())),
            txout_is_mine,
            txout_is_change,
            block: has_block.then(|| BlockRef {
                hash: BlockHash::from_byte_array(wire.block_hash),
                height: wire.block_height.get(),
            }),
            time: wire.time.get(),
        })
    }
}

/// An error as it crosses the connection: Core's error code, then the message, cut to
/// [`MAX_STRING_BYTES`] at a character boundary. Errors other than
/// [`InterfaceError::Remote`] (the callee's own call to a third process failed) cross as
/// [`ErrorCode::MISC_ERROR`] with their description, so the caller does not mistake them
/// for a failure of its own connection. Decoding always gives `Remote`.
impl Encode for InterfaceError {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        let (_, message) = wire_error(self);
        Ok(4 + 4 + message.len())
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let (code, message) = wire_error(self);
        w.write_all(I32::new(code.0).as_bytes())?;
        message.as_str().encode(w)
    }
}

impl Decode for InterfaceError {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let code = ErrorCode(i32::decode(r)?);
        let message = String::decode(r)?;
        Ok(InterfaceError::Remote { code, message })
    }
}

/// The code and message an error crosses the connection with.
fn wire_error(e: &InterfaceError) -> (ErrorCode, String) {
    let (code, mut message) = match e {
        InterfaceError::Remote { code, message } => (*code, message.clone()),
        other => (ErrorCode::MISC_ERROR, other.to_string()),
    };
    let max = MAX_STRING_BYTES as usize;
    if message.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        message.truncate(cut);
    }
    (code, message)
}

/// A method's outcome as the server sends it: tag 0 then the value, or tag 1 then the
/// error. An application error thus travels in the body of a successful call, apart from
/// the call layer's own failures.
impl<T: Encode> Encode for Result<T, InterfaceError> {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(1 + match self {
            Ok(v) => v.encoded_len()?,
            Err(e) => e.encoded_len()?,
        })
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        match self {
            Ok(v) => {
                w.write_all(&[0])?;
                v.encode(w)
            }
            Err(e) => {
                w.write_all(&[1])?;
                e.encode(w)
            }
        }
    }
}

impl<T: Decode> Decode for Result<T, InterfaceError> {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        match read_tag(r, "result tag", 2)? {
            0 => T::decode(r).map(Ok),
            _ => InterfaceError::decode(r).map(Err),
        }
    }
}
