//! Large blocks for tests and benchmarks: the real mainnet block of `shared/data` when it is
//! present, otherwise a large regtest-shaped block built here.

use std::path::PathBuf;

use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    absolute, transaction,
};

use crate::mining::grind;
use crate::validation;

/// Environment variable naming the raw mainnet block file.
pub const BLOCK_ENV: &str = "BITCOIN_SHM_BLOCK";
/// File name of the mainnet block in `shared/data/`.
pub const MAINNET_BLOCK_FILE: &str =
    "mainnet_block_000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae.raw";

/// Where the mainnet block is: `$BITCOIN_SHM_BLOCK`, else `shared/data/<file>` in the
/// workspace's parent directory or any directory above it (the project keeps `shared/`
/// beside its checkout).
pub fn mainnet_block_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BLOCK_ENV) {
        return Some(PathBuf::from(p));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_owned();
    workspace
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared").join("data").join(MAINNET_BLOCK_FILE))
        .find(|p| p.is_file())
}

/// The real 1.38 MB mainnet block (2,500 transactions), if its file is present and decodes.
pub fn load_mainnet_block() -> Option<Block> {
    let bytes = std::fs::read(mainnet_block_path()?).ok()?;
    bitcoin::consensus::deserialize(&bytes).ok()
}

/// A regtest block on the genesis block with `txs` segwit transactions (two inputs, two
/// outputs, P2WPKH-shaped witnesses) plus the coinbase, with a correct merkle root, witness
/// commitment and proof of work. Its inputs do not exist: it is for decoding, hashing and
/// commitment checks, not for connecting.
pub fn large_regtest_block(txs: u32) -> Block {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let script = ScriptBuf::from(vec![0x00; 22]);
    let mut block = Block {
        header: genesis.header,
        txdata: Vec::with_capacity(txs as usize + 1),
    };
    block.header.prev_blockhash = genesis.block_hash();
    block.header.time = genesis.header.time + 1;
    let mut coinbase_sig = validation::bip34_prefix(1).into_bytes();
    coinbase_sig.push(0);
    block.txdata.push(Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from(coinbase_sig),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut {
            value: validation::block_subsidy(1),
            script_pubkey: script.clone(),
        }],
    });
    for i in 0..txs {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let input = |vout| TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array(seed),
                vout,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x30; 71], vec![0x02; 33]]),
        };
        block.txdata.push(Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![input(0), input(1)],
            output: vec![
                TxOut {
                    value: Amount::from_sat(10_000),
                    script_pubkey: script.clone(),
                },
                TxOut {
                    value: Amount::from_sat(20_000),
                    script_pubkey: script.clone(),
                },
            ],
        });
    }
    if let Some(root) = block.witness_root() {
        let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
        block.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: validation::witness_commitment_script(commitment),
        });
    }
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    grind(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mainnet block (or, without its file, a large regtest block) passes our merkle
    /// and witness commitment checks, and fails them once tampered with.
    #[test]
    fn large_block_merkle_root_and_witness_commitment_check() {
        let block = match load_mainnet_block() {
            Some(b) => {
                assert_eq!(
                    b.block_hash().to_string(),
                    "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae"
                );
                b
            }
            None => {
                eprintln!(
                    "mainnet block not found (set {BLOCK_ENV}); checking a large regtest block"
                );
                large_regtest_block(2_500)
            }
        };
        assert!(block.txdata.len() > 2_000);
        assert_eq!(validation::check_merkle_root(&block), Ok(()));
        assert_eq!(validation::check_witness_commitment(&block), Ok(()));

        let mut tampered = block.clone();
        tampered.txdata[1].output[0].value += Amount::from_sat(1);
        assert_eq!(
            validation::check_merkle_root(&tampered).map_err(|e| e.reason()),
            Err("bad-txnmrklroot".into())
        );
        let mut tampered = block;
        let last = tampered.txdata.len() - 1;
        tampered.txdata[last].input[0].witness.push([1u8]);
        assert_eq!(
            validation::check_witness_commitment(&tampered).map_err(|e| e.reason()),
            Err("bad-witness-merkle-match".into())
        );
    }

    #[test]
    fn large_regtest_block_checks_without_the_file() {
        let block = large_regtest_block(100);
        assert_eq!(validation::check_block(&block), Ok(()));
        assert_eq!(validation::check_witness_commitment(&block), Ok(()));
    }
}
