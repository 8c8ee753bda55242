//! Consensus rules of regtest, each failure a typed error whose [`BlockError::reason`] /
//! [`TxError::reason`] is Bitcoin Core's reject reason.
//!
//! The checks are split as in Core's `validation.cpp`: context-free ([`check_transaction`],
//! [`check_block`]), against the parent ([`contextual_check_header`],
//! [`contextual_check_block`]), and against the coins being spent ([`check_tx_inputs`],
//! [`verify_scripts`]). Connecting a block, which needs the UTXO set, lives in
//! [`crate::chainstate`].

use std::collections::HashSet;
use std::fmt;

use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::{
    Amount, Block, Network, OutPoint, ScriptBuf, Target, Transaction, TxMerkleNode, TxOut, Txid,
    Weight, WitnessCommitment,
};

use crate::store::Coin;

/// Blocks a coinbase output must wait before it can be spent.
pub const COINBASE_MATURITY: u32 = 100;
/// Regtest halves the block subsidy every 150 blocks.
pub const SUBSIDY_HALVING_INTERVAL: u32 = 150;
/// BIP141 block weight limit.
pub const MAX_BLOCK_WEIGHT: Weight = Weight::MAX_BLOCK;
/// Largest signature-operation cost of a block (BIP141).
pub const MAX_BLOCK_SIGOPS_COST: usize = 80_000;
/// Core's `MAX_SCRIPT_SIZE`: longer output scripts can never be spent.
pub const MAX_SCRIPT_SIZE: usize = 10_000;
/// A block's time may be at most this far ahead of the node's clock.
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Number of previous blocks whose median time a block's time must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Core's `LOCKTIME_THRESHOLD`: lock times below it are heights, above it Unix times.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Proof-of-work target bits of every regtest block (regtest never retargets).
pub fn regtest_bits() -> CompactTarget {
    bitcoin::constants::genesis_block(Network::Regtest)
        .header
        .bits
}

/// Subsidy of the block at `height`: 50 BTC halved every [`SUBSIDY_HALVING_INTERVAL`] blocks.
pub fn block_subsidy(height: u32) -> Amount {
    let halvings = height / SUBSIDY_HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(Amount::from_int_btc(50).to_sat() >> halvings)
}

/// Median of the given block times (Core's `GetMedianTimePast` over the last 11 blocks).
pub fn median_time(times: &mut [u32]) -> u32 {
    if times.is_empty() {
        return 0;
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// The script a BIP34 coinbase input must start with at `height`.
pub fn bip34_prefix(height: u32) -> ScriptBuf {
    Builder::new().push_int(i64::from(height)).into_script()
}

/// Core's `CScript::IsUnspendable`: outputs that never enter the UTXO set.
pub fn is_unspendable(script: &bitcoin::Script) -> bool {
    script.is_op_return() || script.len() > MAX_SCRIPT_SIZE
}

/// Core's `GetLegacySigOpCount`: signature operations of the input and output scripts,
/// counted the old, inaccurate way.
fn legacy_sigops(tx: &Transaction) -> usize {
    let inputs = tx.input.iter().map(|i| i.script_sig.count_sigops_legacy());
    let outputs = tx
        .output
        .iter()
        .map(|o| o.script_pubkey.count_sigops_legacy());
    inputs.chain(outputs).fold(0usize, usize::saturating_add)
}

/// Core's `GetTransactionSigOpCost`: legacy, P2SH and witness signature operations of `tx`,
/// which spends `spent` (one output per input, in order; empty for a coinbase).
pub fn sigop_cost(tx: &Transaction, spent: &[TxOut]) -> usize {
    let by_outpoint: std::collections::HashMap<OutPoint, &TxOut> = tx
        .input
        .iter()
        .map(|i| i.previous_output)
        .zip(spent)
        .collect();
    tx.total_sigop_cost(|op| by_outpoint.get(op).map(|o| (*o).clone()))
}

/// Core's `IsFinalTx`.
pub fn is_final_tx(tx: &Transaction, height: u32, time: u32) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let limit = if lock < LOCKTIME_THRESHOLD {
        height
    } else {
        time
    };
    lock < limit
        || tx
            .input
            .iter()
            .all(|i| i.sequence == bitcoin::Sequence::MAX)
}

/// BIP68 relative lock times (Core's `CalculateSequenceLocks` + `EvaluateSequenceLocks`):
/// whether `tx`, spending coins created at `coin_heights` (one per input), may be in a block at
/// `height` whose parent has median time past `prev_mtp`. `mtp_at(h)` is the median time past
/// of the block at height `h` on the same chain.
pub fn sequence_locks_satisfied(
    tx: &Transaction,
    coin_heights: &[u32],
    height: u32,
    prev_mtp: u32,
    mtp_at: &dyn Fn(u32) -> u32,
) -> bool {
    const DISABLE: u32 = 1 << 31;
    const TYPE_TIME: u32 = 1 << 22;
    const MASK: u32 = 0x0000_ffff;
    const GRANULARITY: u32 = 9;
    if tx.version.0 < 2 {
        return true;
    }
    // Core's "-1" initial values, shifted by one to stay unsigned: a lock is met when
    // `min + 1 <= limit` i.e. `min < limit`.
    let (mut min_height, mut min_time): (i64, i64) = (-1, -1);
    for (input, coin_height) in tx.input.iter().zip(coin_heights) {
        let seq = input.sequence.to_consensus_u32();
        if seq & DISABLE != 0 {
            continue;
        }
        let value = i64::from(seq & MASK);
        if seq & TYPE_TIME != 0 {
            let coin_time = i64::from(mtp_at(coin_height.saturating_sub(1)));
            min_time = min_time.max(coin_time + (value << GRANULARITY) - 1);
        } else {
            min_height = min_height.max(i64::from(*coin_height) + value - 1);
        }
    }
    min_height < i64::from(height) && min_time < i64::from(prev_mtp)
}

/// A transaction broke a consensus rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxError {
    /// No inputs.
    VinEmpty,
    /// No outputs.
    VoutEmpty,
    /// Stripped size times 4 above the block weight limit.
    Oversize,
    /// An output value above 21 million BTC.
    VoutTooLarge,
    /// The sum of the outputs above 21 million BTC.
    TxoutTotalTooLarge,
    /// The same outpoint spent twice.
    InputsDuplicate,
    /// Coinbase script length outside 2..=100.
    CoinbaseLength(usize),
    /// A non-coinbase input with a null previous output.
    PrevoutNull,
    /// Lock time not reached.
    NonFinal,
    /// A BIP68 relative lock time not reached.
    SequenceLocks,
    /// An input's coin does not exist or is spent.
    InputsMissingOrSpent(OutPoint),
    /// A coinbase output spent before maturity.
    PrematureCoinbaseSpend {
        /// Confirmations the coinbase has.
        depth: u32,
    },
    /// The input values overflow the money range.
    InputValuesOutOfRange,
    /// Inputs worth less than outputs.
    InBelowOut {
        /// Sum of the inputs.
        value_in: Amount,
        /// Sum of the outputs.
        value_out: Amount,
    },
    /// An input script failed (Core: `mandatory-script-verify-flag-failed`).
    Script {
        /// Index of the failing input.
        input: usize,
        /// What failed.
        detail: String,
    },
}

impl TxError {
    /// Bitcoin Core's reject reason.
    pub fn reason(&self) -> String {
        match self {
            Self::VinEmpty => "bad-txns-vin-empty".into(),
            Self::VoutEmpty => "bad-txns-vout-empty".into(),
            Self::Oversize => "bad-txns-oversize".into(),
            Self::VoutTooLarge => "bad-txns-vout-toolarge".into(),
            Self::TxoutTotalTooLarge => "bad-txns-txouttotal-toolarge".into(),
            Self::InputsDuplicate => "bad-txns-inputs-duplicate".into(),
            Self::CoinbaseLength(_) => "bad-cb-length".into(),
            Self::PrevoutNull => "bad-txns-prevout-null".into(),
            Self::NonFinal | Self::SequenceLocks => "bad-txns-nonfinal".into(),
            Self::InputsMissingOrSpent(_) => "bad-txns-inputs-missingorspent".into(),
            Self::PrematureCoinbaseSpend { .. } => "bad-txns-premature-spend-of-coinbase".into(),
            Self::InputValuesOutOfRange => "bad-txns-inputvalues-outofrange".into(),
            Self::InBelowOut { .. } => "bad-txns-in-belowout".into(),
            Self::Script { detail, .. } => {
                format!("mandatory-script-verify-flag-failed ({detail})")
            }
        }
    }
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())?;
        match self {
            Self::CoinbaseLength(n) => write!(f, ": coinbase script of {n} bytes"),
            Self::SequenceLocks => f.write_str(": contains a non-BIP68-final transaction"),
            Self::InputsMissingOrSpent(op) => write!(f, ": {op}"),
            Self::PrematureCoinbaseSpend { depth } => {
                write!(f, ": tried to spend coinbase at depth {depth}")
            }
            Self::InBelowOut {
                value_in,
                value_out,
            } => {
                write!(
                    f,
                    ": value in {} < value out {}",
                    value_in.to_sat(),
                    value_out.to_sat()
                )
            }
            Self::Script { input, .. } => write!(f, " on input {input}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for TxError {}

/// A block broke a consensus rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockError {
    /// The parent block is unknown.
    PrevBlockNotFound,
    /// The parent block is known to be invalid.
    BadPrevBlock,
    /// The header hash does not meet its target, or the target is above the limit.
    HighHash,
    /// The target bits differ from what regtest requires.
    BadDiffBits,
    /// Time not above the median time of the previous 11 blocks.
    TimeTooOld,
    /// Time more than two hours ahead of the node's clock.
    TimeTooNew,
    /// Header merkle root does not match the transactions.
    BadMerkleRoot,
    /// The transaction list repeats a transaction (CVE-2012-2459 mutation).
    DuplicateTx,
    /// No transactions, or too large.
    BadLength,
    /// The first transaction is not a coinbase.
    CoinbaseMissing,
    /// A coinbase other than the first transaction.
    CoinbaseMultiple,
    /// Weight above 4,000,000.
    BadWeight(Weight),
    /// Signature-operation cost above 80,000.
    BadSigops,
    /// The coinbase does not start with the block height (BIP34).
    BadCoinbaseHeight,
    /// The coinbase claims more than subsidy plus fees.
    BadCoinbaseAmount {
        /// What the coinbase pays.
        paid: Amount,
        /// Subsidy plus fees.
        limit: Amount,
    },
    /// The coinbase witness is not a single 32-byte reserved value.
    WitnessNonceSize,
    /// The witness commitment does not match the transactions.
    WitnessMerkleMatch,
    /// Witness data without a witness commitment.
    UnexpectedWitness,
    /// A transaction broke a rule.
    Tx {
        /// The offending transaction.
        txid: Txid,
        /// The rule it broke.
        error: TxError,
    },
    /// The block is already known and valid (or pending).
    Duplicate,
    /// The block is already known to be invalid.
    DuplicateInvalid,
}

impl BlockError {
    /// Bitcoin Core's reject reason.
    pub fn reason(&self) -> String {
        match self {
            Self::PrevBlockNotFound => "prev-blk-not-found".into(),
            Self::BadPrevBlock => "bad-prevblk".into(),
            Self::HighHash => "high-hash".into(),
            Self::BadDiffBits => "bad-diffbits".into(),
            Self::TimeTooOld => "time-too-old".into(),
            Self::TimeTooNew => "time-too-new".into(),
            Self::BadMerkleRoot => "bad-txnmrklroot".into(),
            Self::DuplicateTx => "bad-txns-duplicate".into(),
            Self::BadLength => "bad-blk-length".into(),
            Self::CoinbaseMissing => "bad-cb-missing".into(),
            Self::CoinbaseMultiple => "bad-cb-multiple".into(),
            Self::BadWeight(_) => "bad-blk-weight".into(),
            Self::BadSigops => "bad-blk-sigops".into(),
            Self::BadCoinbaseHeight => "bad-cb-height".into(),
            Self::BadCoinbaseAmount { .. } => "bad-cb-amount".into(),
            Self::WitnessNonceSize => "bad-witness-nonce-size".into(),
            Self::WitnessMerkleMatch => "bad-witness-merkle-match".into(),
            Self::UnexpectedWitness => "unexpected-witness".into(),
            Self::Tx { error, .. } => error.reason(),
            Self::Duplicate => "duplicate".into(),
            Self::DuplicateInvalid => "duplicate-invalid".into(),
        }
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadWeight(w) => write!(f, "bad-blk-weight: weight {}", w.to_wu()),
            Self::BadCoinbaseAmount { paid, limit } => {
                write!(
                    f,
                    "bad-cb-amount: coinbase pays {} > limit {}",
                    paid.to_sat(),
                    limit.to_sat()
                )
            }
            Self::Tx { txid, error } => write!(f, "{error} (tx {txid})"),
            other => f.write_str(&other.reason()),
        }
    }
}

impl std::error::Error for BlockError {}

/// Core's `CheckTransaction`: rules that need no context.
pub fn check_transaction(tx: &Transaction) -> Result<(), TxError> {
    if tx.input.is_empty() {
        return Err(TxError::VinEmpty);
    }
    if tx.output.is_empty() {
        return Err(TxError::VoutEmpty);
    }
    if tx.base_size() * 4 > MAX_BLOCK_WEIGHT.to_wu() as usize {
        return Err(TxError::Oversize);
    }
    let mut total = Amount::ZERO;
    for out in &tx.output {
        if out.value > Amount::MAX_MONEY {
            return Err(TxError::VoutTooLarge);
        }
        total = total
            .checked_add(out.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(TxError::TxoutTotalTooLarge)?;
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err(TxError::InputsDuplicate);
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err(TxError::CoinbaseLength(len));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(TxError::PrevoutNull);
    }
    Ok(())
}

/// Checks the header's proof of work against its own target and the regtest limit.
pub fn check_proof_of_work(header: &bitcoin::block::Header) -> Result<(), BlockError> {
    // Core's `DeriveTarget`: a negative or overflowing compact target is invalid.
    let bits = header.bits.to_consensus();
    let (exponent, mantissa) = (bits >> 24, bits & 0x007f_ffff);
    let negative = mantissa != 0 && bits & 0x0080_0000 != 0;
    let overflow = mantissa != 0
        && (exponent > 34
            || (mantissa > 0xff && exponent > 33)
            || (mantissa > 0xffff && exponent > 32));
    if negative || overflow {
        return Err(BlockError::HighHash);
    }
    let target = header.target();
    if target > Target::MAX_ATTAINABLE_REGTEST || target == Target::ZERO {
        return Err(BlockError::HighHash);
    }
    header
        .validate_pow(target)
        .map(|_| ())
        .map_err(|_| BlockError::HighHash)
}

/// Core's `CheckBlock`: proof of work, merkle root, sizes, coinbase placement, and
/// [`check_transaction`] for every transaction.
pub fn check_block(block: &Block) -> Result<(), BlockError> {
    check_proof_of_work(&block.header)?;
    check_merkle_root(block)?;
    if block.txdata.is_empty() || block.txdata.len() * 4 > MAX_BLOCK_WEIGHT.to_wu() as usize {
        return Err(BlockError::BadLength);
    }
    if !block.txdata[0].is_coinbase() {
        return Err(BlockError::CoinbaseMissing);
    }
    if block.txdata[1..].iter().any(Transaction::is_coinbase) {
        return Err(BlockError::CoinbaseMultiple);
    }
    for tx in &block.txdata {
        check_transaction(tx).map_err(|error| BlockError::Tx {
            txid: tx.compute_txid(),
            error,
        })?;
    }
    let legacy = block
        .txdata
        .iter()
        .map(legacy_sigops)
        .fold(0usize, usize::saturating_add);
    if legacy.saturating_mul(4) > MAX_BLOCK_SIGOPS_COST {
        return Err(BlockError::BadSigops);
    }
    Ok(())
}

/// Computes the merkle root of `txids` and whether the tree was mutated (two identical
/// siblings, CVE-2012-2459), as Core's `BlockMerkleRoot`.
fn merkle_root_and_mutation(mut level: Vec<[u8; 32]>) -> Option<([u8; 32], bool)> {
    if level.is_empty() {
        return None;
    }
    let mut mutated = false;
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            mutated |= pair[0] == pair[1];
        }
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        level = level
            .chunks_exact(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
    }
    Some((level[0], mutated))
}

fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    bitcoin::hashes::sha256d::Hash::hash(&buf).to_byte_array()
}

/// Checks the header's merkle root against the transactions and rejects mutated lists.
pub fn check_merkle_root(block: &Block) -> Result<(), BlockError> {
    let txids = block
        .txdata
        .iter()
        .map(|tx| tx.compute_txid().to_byte_array())
        .collect();
    let (root, mutated) = merkle_root_and_mutation(txids).ok_or(BlockError::BadLength)?;
    if TxMerkleNode::from_byte_array(root) != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot);
    }
    if mutated {
        return Err(BlockError::DuplicateTx);
    }
    Ok(())
}

/// The merkle branch proving the coinbase (leaf 0) under the block's merkle root: the
/// sibling hash at each level, bottom up (what `BlockTemplate::get_coinbase_merkle_path`
/// returns).
pub fn coinbase_merkle_path(block: &Block) -> Vec<TxMerkleNode> {
    let mut level: Vec<[u8; 32]> = block
        .txdata
        .iter()
        .map(|tx| tx.compute_txid().to_byte_array())
        .collect();
    let mut path = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        path.push(TxMerkleNode::from_byte_array(level[1]));
        level = level
            .chunks_exact(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
    }
    path
}

/// Folds a coinbase txid up a [`coinbase_merkle_path`] to the merkle root.
pub fn merkle_root_from_path(coinbase: Txid, path: &[TxMerkleNode]) -> TxMerkleNode {
    let root = path.iter().fold(coinbase.to_byte_array(), |acc, sibling| {
        hash_pair(&acc, sibling.as_byte_array())
    });
    TxMerkleNode::from_byte_array(root)
}

/// Prefix of the coinbase output carrying the witness commitment (BIP141).
const WITNESS_COMMITMENT_MAGIC: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// The `OP_RETURN` output script committing to `commitment`.
pub fn witness_commitment_script(commitment: WitnessCommitment) -> ScriptBuf {
    let mut bytes = WITNESS_COMMITMENT_MAGIC.to_vec();
    bytes.extend_from_slice(commitment.as_byte_array());
    ScriptBuf::from(bytes)
}

/// Index of the coinbase output holding the witness commitment (the last matching one).
fn witness_commitment_index(coinbase: &Transaction) -> Option<usize> {
    coinbase.output.iter().rposition(|o| {
        let s = o.script_pubkey.as_bytes();
        s.len() >= 38 && s[..6] == WITNESS_COMMITMENT_MAGIC
    })
}

/// BIP141 witness commitment check, with Core's reasons: a block with a commitment needs a
/// 32-byte reserved value and a matching commitment; a block without one may carry no witness.
pub fn check_witness_commitment(block: &Block) -> Result<(), BlockError> {
    let coinbase = block.txdata.first().ok_or(BlockError::BadLength)?;
    match witness_commitment_index(coinbase) {
        Some(pos) => {
            let witness = &coinbase.input[0].witness;
            let reserved = match (witness.len(), witness.nth(0)) {
                (1, Some(v)) if v.len() == 32 => v,
                _ => return Err(BlockError::WitnessNonceSize),
            };
            let root = block.witness_root().ok_or(BlockError::BadLength)?;
            let expected = Block::compute_witness_commitment(&root, reserved);
            if coinbase.output[pos].script_pubkey.as_bytes()[6..38] != expected.as_byte_array()[..]
            {
                return Err(BlockError::WitnessMerkleMatch);
            }
            Ok(())
        }
        None if block
            .txdata
            .iter()
            .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty())) =>
        {
            Err(BlockError::UnexpectedWitness)
        }
        None => Ok(()),
    }
}

/// Rules of a header against its parent: fixed regtest difficulty, time above the median
/// time past `mtp` and at most two hours ahead of `now`.
pub fn contextual_check_header(
    header: &bitcoin::block::Header,
    mtp: u32,
    now: u32,
) -> Result<(), BlockError> {
    if header.bits != regtest_bits() {
        return Err(BlockError::BadDiffBits);
    }
    if header.time <= mtp {
        return Err(BlockError::TimeTooOld);
    }
    if header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
        return Err(BlockError::TimeTooNew);
    }
    Ok(())
}

/// Core's `ContextualCheckBlock` at `height` with the parent's median time past `mtp`:
/// finality (BIP113), BIP34 height, witness commitment, weight.
pub fn contextual_check_block(block: &Block, height: u32, mtp: u32) -> Result<(), BlockError> {
    for tx in &block.txdata {
        if !is_final_tx(tx, height, mtp) {
            return Err(BlockError::Tx {
                txid: tx.compute_txid(),
                error: TxError::NonFinal,
            });
        }
    }
    let coinbase = block.txdata.first().ok_or(BlockError::BadLength)?;
    if !coinbase.input[0]
        .script_sig
        .as_bytes()
        .starts_with(bip34_prefix(height).as_bytes())
    {
        return Err(BlockError::BadCoinbaseHeight);
    }
    check_witness_commitment(block)?;
    let weight = block.weight();
    if weight > MAX_BLOCK_WEIGHT {
        return Err(BlockError::BadWeight(weight));
    }
    Ok(())
}

/// Core's `Consensus::CheckTxInputs`: maturity and value rules for a transaction spending
/// `coins` (one per input, in order) in a block at `spend_height`. Returns the fee.
pub fn check_tx_inputs(
    tx: &Transaction,
    coins: &[Coin],
    spend_height: u32,
) -> Result<Amount, TxError> {
    let mut value_in = Amount::ZERO;
    for coin in coins {
        if coin.is_coinbase && spend_height.saturating_sub(coin.height) < COINBASE_MATURITY {
            return Err(TxError::PrematureCoinbaseSpend {
                depth: spend_height.saturating_sub(coin.height),
            });
        }
        value_in = value_in
            .checked_add(coin.output.value)
            .filter(|v| *v <= Amount::MAX_MONEY)
            .ok_or(TxError::InputValuesOutOfRange)?;
    }
    let value_out = tx.output.iter().map(|o| o.value).sum::<Amount>();
    if value_in < value_out {
        return Err(TxError::InBelowOut {
            value_in,
            value_out,
        });
    }
    Ok(value_in - value_out)
}

/// Verifies every input script of `tx` against the outputs it spends (`spent`, one per input,
/// in order) with libbitcoinconsensus, Taproot included ([`interfaces::script`]).
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), TxError> {
    interfaces::script::verify_scripts(tx, spent).map_err(|e| TxError::Script {
        input: e.input,
        detail: format!("libbitcoinconsensus {:?}", e.code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(block_subsidy(0), Amount::from_int_btc(50));
        assert_eq!(block_subsidy(149), Amount::from_int_btc(50));
        assert_eq!(block_subsidy(150), Amount::from_int_btc(25));
        assert_eq!(block_subsidy(300), Amount::from_sat(1_250_000_000));
        assert_eq!(block_subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn merkle_path_folds_to_the_root() {
        for n in 1..=9u8 {
            let mut block = bitcoin::constants::genesis_block(Network::Regtest);
            let tx = block.txdata[0].clone();
            for i in 1..n {
                let mut t = tx.clone();
                t.lock_time = bitcoin::absolute::LockTime::from_consensus(u32::from(i));
                block.txdata.push(t);
            }
            let root = block.compute_merkle_root().unwrap();
            let path = coinbase_merkle_path(&block);
            assert_eq!(
                merkle_root_from_path(block.txdata[0].compute_txid(), &path),
                root,
                "{n} txs"
            );
            block.header.merkle_root = root;
            assert_eq!(check_merkle_root(&block), Ok(()));
        }
    }

    #[test]
    fn median_time_is_the_middle_value() {
        assert_eq!(median_time(&mut [5, 1, 3]), 3);
        assert_eq!(median_time(&mut [4, 1, 3, 2]), 3);
        assert_eq!(median_time(&mut []), 0);
    }
}
