//! Block templates from the mempool and their solutions (`Mining`, `BlockTemplate`), and
//! regtest's `generate_to_address` built on the same path.

use bitcoin::block::{Header, Version};
use bitcoin::blockdata::opcodes::all::OP_PUSHBYTES_0;
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Weight, Witness, absolute, transaction,
};

use crate::chainstate::{ChainError, ChainState, unix_now};
use crate::validation::{self, BlockError, MAX_BLOCK_WEIGHT};

/// Weight kept free for the coinbase (Core's default `-blockmaxweight` leaves 4,000).
const COINBASE_RESERVED_WEIGHT: Weight = Weight::from_wu(8_000);
/// Version of the blocks we build (BIP9 top bits, no deployment signalled).
const BLOCK_VERSION: Version = Version::from_consensus(0x2000_0000);

/// A block ready to be mined: header fields to solve, coinbase to replace if wished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    block: Block,
    height: u32,
    fees: Amount,
}

impl BlockTemplate {
    /// The header of the template (nonce 0).
    pub fn header(&self) -> Header {
        self.block.header
    }

    /// The whole template block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Height the block will have.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Fees of the included transactions.
    pub fn fees(&self) -> Amount {
        self.fees
    }

    /// The template's coinbase.
    pub fn coinbase_tx(&self) -> &Transaction {
        &self.block.txdata[0]
    }

    /// Sibling hashes from the coinbase up to the merkle root.
    pub fn coinbase_merkle_path(&self) -> Vec<TxMerkleNode> {
        validation::coinbase_merkle_path(&self.block)
    }

    /// The block with the given solution: header fields and (possibly changed) coinbase.
    /// The witness commitment stays valid because the coinbase's wtxid counts as zero.
    pub fn solved(&self, version: Version, time: u32, nonce: u32, coinbase: Transaction) -> Block {
        let mut block = self.block.clone();
        block.txdata[0] = coinbase;
        block.header.version = version;
        block.header.time = time;
        block.header.nonce = nonce;
        block.header.merkle_root = block
            .compute_merkle_root()
            .unwrap_or_else(|| TxMerkleNode::from_raw_hash(Hash::all_zeros()));
        block
    }
}

/// The coinbase of a block at `height` paying `value` to `script`: BIP34 height and an extra
/// nonce in the input script, a 32-byte zero witness reserved value, and room for the witness
/// commitment output.
fn coinbase(height: u32, script: &Script, value: Amount) -> Transaction {
    let mut script_sig = validation::bip34_prefix(height).into_bytes();
    script_sig.push(OP_PUSHBYTES_0.to_u8()); // extra nonce; keeps the script ≥ 2 bytes
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from(script_sig),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: script.to_owned(),
        }],
    }
}

impl ChainState {
    /// Builds a template on the tip paying subsidy and fees to `script`
    /// (`Mining::create_new_block`).
    pub fn create_new_block(&self, script: &Script) -> BlockTemplate {
        let tip = self.tip();
        let height = tip.height + 1;
        let (txs, fees) = self
            .mempool()
            .select(MAX_BLOCK_WEIGHT - COINBASE_RESERVED_WEIGHT);
        let mut block = Block {
            header: Header {
                version: BLOCK_VERSION,
                prev_blockhash: tip.hash,
                merkle_root: TxMerkleNode::from_raw_hash(Hash::all_zeros()),
                time: unix_now().max(tip.median_time_past + 1),
                bits: validation::regtest_bits(),
                nonce: 0,
            },
            txdata: Vec::with_capacity(txs.len() + 1),
        };
        block.txdata.push(coinbase(
            height,
            script,
            validation::block_subsidy(height) + fees,
        ));
        block.txdata.extend(txs.iter().map(|tx| (**tx).clone()));
        if let Some(root) = block.witness_root() {
            let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
            block.txdata[0].output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: validation::witness_commitment_script(commitment),
            });
        }
        block.header.merkle_root = block
            .compute_merkle_root()
            .unwrap_or_else(|| TxMerkleNode::from_raw_hash(Hash::all_zeros()));
        BlockTemplate {
            block,
            height,
            fees,
        }
    }

    /// Validates and connects a solved template (`BlockTemplate::submit_solution`).
    pub fn submit_solution(
        &mut self,
        template: &BlockTemplate,
        version: Version,
        time: u32,
        nonce: u32,
        coinbase: Transaction,
    ) -> Result<BlockHash, ChainError> {
        // Checked before the block is stored: one that overpays would only be marked invalid,
        // and kept on disk, a template's worth of bytes for each call.
        let paid = coinbase
            .output
            .iter()
            .try_fold(Amount::ZERO, |t, o| t.checked_add(o.value));
        let limit = validation::block_subsidy(template.height) + template.fees;
        match paid {
            Some(paid) if paid <= limit => {}
            paid => {
                return Err(BlockError::BadCoinbaseAmount {
                    paid: paid.unwrap_or(Amount::MAX),
                    limit,
                }
                .into());
            }
        }
        let block = template.solved(version, time, nonce, coinbase);
        let hash = block.block_hash();
        self.process_block(block)?;
        Ok(hash)
    }

    /// Mines `n` blocks paying to `script` on regtest (`generate_to_address`): template,
    /// grind the nonce (regtest's target is met by about half of all hashes), submit.
    pub fn generate_to_script(
        &mut self,
        n: u32,
        script: &Script,
    ) -> Result<Vec<BlockHash>, ChainError> {
        let mut hashes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let template = self.create_new_block(script);
            let block = grind(template.block().clone());
            let hash = block.block_hash();
            self.process_block(block)?;
            hashes.push(hash);
        }
        Ok(hashes)
    }
}

/// Searches nonces (then times) until the header meets its target.
pub fn grind(mut block: Block) -> Block {
    let target = block.header.target();
    loop {
        for nonce in 0..=u32::MAX {
            block.header.nonce = nonce;
            if target.is_met_by(block.block_hash()) {
                return block;
            }
        }
        block.header.time += 1;
    }
}
