//! One invalid block per reject reason, each on a fresh copy of the 110-block fixture: the
//! block is refused with Bitcoin Core's reason and the tip does not move.

mod util;

use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness, absolute,
};
use node::chainstate::{ChainError, ChainState};
use node::mining::grind;
use node::validation::{self, BlockError};
use util::*;

/// Submits `block`, expecting `reason`, and checks that nothing moved.
fn expect_reject(chain: &mut ChainState, block: Block, reason: &str) {
    let tip = chain.tip();
    let utxos = chain.store().all_coins().unwrap().len();
    match chain.process_block(block) {
        Err(ChainError::Invalid(e)) => assert_eq!(e.reason(), reason, "{e}"),
        other => panic!("expected {reason}, got {other:?}"),
    }
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.store().all_coins().unwrap().len(), utxos);
}

/// A valid block on the tip spending the P2WPKH coinbase of block 1 (segwit, so it has a
/// witness commitment).
fn segwit_block(chain: &ChainState, keys: &Keys) -> Block {
    let (op, prev) = coinbase_output(chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)],
    );
    block_with(chain, keys, vec![tx], Amount::from_sat(1_000))
}

fn regrind(mut block: Block) -> Block {
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    grind(block)
}

#[test]
fn valid_segwit_block_is_accepted_and_a_second_submission_is_a_duplicate() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let block = segwit_block(&chain, &keys);
    chain.process_block(block.clone()).unwrap();
    assert_eq!(chain.tip().hash, block.block_hash());
    expect_reject(&mut chain, block, "duplicate");
}

#[test]
fn prev_blk_not_found() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    block.header.prev_blockhash = BlockHash::from_byte_array([7; 32]);
    expect_reject(&mut chain, grind(block), "prev-blk-not-found");
}

#[test]
fn bad_prevblk() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let bad = block_with(&chain, &keys, vec![], Amount::from_sat(1)); // overpays
    expect_reject(&mut chain, bad.clone(), "bad-cb-amount");
    let child = block_on(&chain, &keys, bad.block_hash(), vec![], 1);
    expect_reject(&mut chain, child, "bad-prevblk");
}

#[test]
fn high_hash() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    let target = block.header.target();
    while target.is_met_by(block.block_hash()) {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    expect_reject(&mut chain, block.clone(), "high-hash");
    // A target easier than regtest's limit is high-hash too, whatever the hash.
    block.header.bits = CompactTarget::from_consensus(0x2100_ffff);
    expect_reject(&mut chain, grind(block.clone()), "high-hash");
    // So are negative and overflowing compact targets.
    for bits in [0x20ff_ffff, 0xff00_ffff] {
        block.header.bits = CompactTarget::from_consensus(bits);
        expect_reject(&mut chain, block.clone(), "high-hash");
    }
}

#[test]
fn bad_diffbits() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    block.header.bits = CompactTarget::from_consensus(0x1f7f_ffff); // harder, still valid PoW
    expect_reject(&mut chain, grind(block), "bad-diffbits");
}

#[test]
fn time_too_old() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    block.header.time = chain.tip().median_time_past;
    expect_reject(&mut chain, grind(block), "time-too-old");
}

#[test]
fn time_too_new() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    block.header.time = now + 3 * 60 * 60;
    expect_reject(&mut chain, grind(block), "time-too-new");
}

#[test]
fn bad_txnmrklroot() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = segwit_block(&chain, &keys);
    block.header.merkle_root = bitcoin::TxMerkleNode::from_byte_array([9; 32]);
    expect_reject(&mut chain, grind(block), "bad-txnmrklroot");
}

#[test]
fn bad_txns_duplicate() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op1, prev1) = coinbase_output(&chain, 1);
    let (op3, prev3) = coinbase_output(&chain, 3);
    let a = keys.spend(
        &[(op1, prev1.clone())],
        vec![out(prev1.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let b = keys.spend(
        &[(op3, prev3.clone())],
        vec![out(prev3.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let mut block = block_with(&chain, &keys, vec![a, b.clone()], Amount::from_sat(2_000));
    // [cb, a, b, b] has the merkle root of [cb, a, b] (CVE-2012-2459).
    block.txdata.push(b);
    assert!(block.check_merkle_root());
    expect_reject(&mut chain, block, "bad-txns-duplicate");
}

#[test]
fn bad_witness_merkle_match() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = segwit_block(&chain, &keys);
    let commitment = block.txdata[0].output.last_mut().unwrap();
    let mut bytes = commitment.script_pubkey.to_bytes();
    bytes[10] ^= 1;
    commitment.script_pubkey = ScriptBuf::from(bytes);
    expect_reject(&mut chain, regrind(block), "bad-witness-merkle-match");
}

#[test]
fn bad_witness_nonce_size() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = segwit_block(&chain, &keys);
    block.txdata[0].input[0].witness = Witness::from_slice(&[[0u8; 31]]);
    expect_reject(&mut chain, block, "bad-witness-nonce-size");
}

#[test]
fn unexpected_witness() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = segwit_block(&chain, &keys);
    block.txdata[0].output.pop(); // the commitment
    expect_reject(&mut chain, regrind(block), "unexpected-witness");
}

/// A structurally valid transaction (context-free checks pass) of about `bytes` bytes.
fn filler_tx(tag: u8, bytes: usize) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([tag; 32]),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from(vec![0x6a; bytes]),
        }],
    }
}

#[test]
fn bad_blk_weight() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // Five 210 kB transactions: each fine alone, 4.2 M weight units together.
    let txs = (1..=5).map(|i| filler_tx(i, 210_000)).collect();
    let block = block_with(&chain, &keys, txs, Amount::ZERO);
    assert!(block.weight() > validation::MAX_BLOCK_WEIGHT);
    expect_reject(&mut chain, block, "bad-blk-weight");
}

#[test]
fn bad_cb_height() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    block.txdata[0].input[0].script_sig = Builder::new().push_int(5).push_int(0).into_script();
    expect_reject(&mut chain, regrind(block), "bad-cb-height");
}

#[test]
fn bad_cb_amount() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // Fees of the included transaction count: claiming one satoshi more than them fails.
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let block = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_001));
    expect_reject(&mut chain, block, "bad-cb-amount");
}

#[test]
fn bad_cb_length() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    let mut sig = validation::bip34_prefix(111).into_bytes();
    sig.resize(101, 0x51);
    block.txdata[0].input[0].script_sig = ScriptBuf::from(sig);
    expect_reject(&mut chain, regrind(block), "bad-cb-length");
}

#[test]
fn bad_cb_missing_and_bad_cb_multiple() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let valid = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000));
    let mut swapped = valid.clone();
    swapped.txdata.swap(0, 1);
    expect_reject(&mut chain, regrind(swapped), "bad-cb-missing");
    let mut doubled = valid;
    let cb = doubled.txdata[0].clone();
    doubled.txdata.push(cb);
    expect_reject(&mut chain, regrind(doubled), "bad-cb-multiple");
}

#[test]
fn bad_blk_length() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut block = block_with(&chain, &keys, vec![], Amount::ZERO);
    block.txdata.clear();
    expect_reject(&mut chain, grind(block), "bad-blk-length");
}

#[test]
fn bad_txns_vin_empty() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut tx = filler_tx(1, 10);
    tx.input.clear();
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-vin-empty");
}

#[test]
fn bad_txns_inputs_missingorspent() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (_, prev) = coinbase_output(&chain, 1);
    let missing = OutPoint {
        txid: Txid::from_byte_array([5; 32]),
        vout: 0,
    };
    let tx = keys.spend(&[(missing, prev.clone())], vec![out(1_000, &keys.wpkh)]);
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-inputs-missingorspent");
    // The same coin spent by two transactions of one block.
    let (op, prev) = coinbase_output(&chain, 1);
    let a = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let b = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 2_000, &keys.tr)],
    );
    let block = block_with(&chain, &keys, vec![a, b], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-inputs-missingorspent");
}

#[test]
fn bad_txns_inputs_duplicate() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone()), (op, prev.clone())],
        vec![out(1_000, &keys.wpkh)],
    );
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-inputs-duplicate");
}

#[test]
fn bad_txns_in_belowout() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() + 1, &keys.wpkh)],
    );
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-in-belowout");
}

#[test]
fn bad_txns_premature_spend_of_coinbase() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // Block 12's coinbase has 99 confirmations in block 111.
    let (op, prev) = coinbase_output(&chain, 12);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let block = block_with(&chain, &keys, vec![tx.clone()], Amount::from_sat(1_000));
    expect_reject(&mut chain, block, "bad-txns-premature-spend-of-coinbase");
    // One block later it is mature (depth 100).
    chain.generate_to_script(1, &keys.wpkh).unwrap();
    chain
        .process_block(block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000)))
        .unwrap();
}

#[test]
fn mandatory_script_verify_flag_failed_for_p2wpkh_and_p2tr() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op1, prev1) = coinbase_output(&chain, 1); // P2WPKH
    let (op2, prev2) = coinbase_output(&chain, 2); // P2TR
    // P2WPKH signed by another key.
    let mut other = Keys::new();
    other.sk = SecretKey::from_slice(&[0x33; 32]).unwrap();
    other.pk = bitcoin::key::CompressedPublicKey(other.sk.public_key(&other.secp));
    let mut tx = Keys::unsigned(&[op1], vec![out(prev1.value.to_sat() - 1_000, &keys.wpkh)]);
    other.sign(&mut tx, std::slice::from_ref(&prev1));
    let block = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000));
    expect_reject_prefix(&mut chain, block, "mandatory-script-verify-flag-failed (");
    // P2TR key path with one bit of the signature flipped.
    let mut tx = keys.spend(
        &[(op2, prev2.clone())],
        vec![out(prev2.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let mut sig = tx.input[0].witness.nth(0).unwrap().to_vec();
    sig[5] ^= 1;
    tx.input[0].witness = Witness::from_slice(&[sig]);
    let block = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000));
    expect_reject_prefix(
        &mut chain,
        block,
        "mandatory-script-verify-flag-failed (libbitcoinconsensus ERR_SCRIPT)",
    );
    // P2TR signed for other prevouts (the sighash commits to all spent amounts).
    let mut tx = Keys::unsigned(&[op2], vec![out(prev2.value.to_sat() - 1_000, &keys.wpkh)]);
    let mut lie = prev2.clone();
    lie.value = prev2.value - Amount::from_sat(1);
    keys.sign(&mut tx, &[lie]);
    let block = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000));
    expect_reject_prefix(
        &mut chain,
        block,
        "mandatory-script-verify-flag-failed (libbitcoinconsensus ERR_SCRIPT)",
    );
}

fn expect_reject_prefix(chain: &mut ChainState, block: Block, prefix: &str) {
    let tip = chain.tip();
    match chain.process_block(block) {
        Err(ChainError::Invalid(e)) => assert!(e.reason().starts_with(prefix), "{e}"),
        other => panic!("expected {prefix}…, got {other:?}"),
    }
    assert_eq!(chain.tip(), tip);
}

#[test]
fn bad_txns_nonfinal() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let mut tx = Keys::unsigned(&[op], vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)]);
    tx.lock_time = absolute::LockTime::from_height(111).unwrap(); // final only above 111
    tx.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;
    keys.sign(&mut tx, &[prev]);
    let block = block_with(&chain, &keys, vec![tx], Amount::from_sat(1_000));
    expect_reject(&mut chain, block, "bad-txns-nonfinal");
}

#[test]
fn bad_txns_nonfinal_by_bip68_relative_lock() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let block = block_with(
        &chain,
        &keys,
        vec![relative_spend(&chain, &keys, 11, 101)],
        Amount::from_sat(1_000),
    );
    expect_reject(&mut chain, block, "bad-txns-nonfinal");
    let block = block_with(
        &chain,
        &keys,
        vec![relative_spend(&chain, &keys, 11, 100)],
        Amount::from_sat(1_000),
    );
    chain.process_block(block).unwrap();
}

#[test]
fn reasons_are_cores_strings() {
    assert_eq!(BlockError::BadMerkleRoot.reason(), "bad-txnmrklroot");
    assert_eq!(
        BlockError::PrevBlockNotFound.to_string(),
        "prev-blk-not-found"
    );
}

#[test]
fn bad_blk_sigops() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // 20,001 OP_CHECKSIGs in an (unspendable) output: 80,004 sigop cost, counted legacy-style.
    let mut tx = filler_tx(1, 0);
    tx.output[0].script_pubkey = ScriptBuf::from(vec![0xac; 20_001]);
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-blk-sigops");
    // 19,999 (cost 79,996) pass the count; the block then fails for its made-up input.
    let mut tx = filler_tx(1, 0);
    tx.output[0].script_pubkey = ScriptBuf::from(vec![0xac; 19_999]);
    let block = block_with(&chain, &keys, vec![tx], Amount::ZERO);
    expect_reject(&mut chain, block, "bad-txns-inputs-missingorspent");
}
