//! Mempool acceptance and rejection per rule, with real signed transactions, and block
//! templates built from it.

mod util;

use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Weight, absolute};
use node::chainstate::ChainState;
use node::mempool::MempoolError;
use util::*;

fn reject(chain: &mut ChainState, tx: Transaction) -> MempoolError {
    let size = chain.mempool().info().size;
    let err = chain.process_transaction(tx).unwrap_err();
    assert_eq!(
        chain.mempool().info().size,
        size,
        "a rejected transaction must not enter"
    );
    err
}

/// A transaction spending the coinbase of block `h` to one output paying `fee`.
fn simple(chain: &ChainState, keys: &Keys, h: u32, fee: u64) -> Transaction {
    let (op, prev) = coinbase_output(chain, h);
    keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - fee, &keys.wpkh)],
    )
}

#[test]
fn accepts_a_valid_transaction_once() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let tx = simple(&chain, &keys, 1, 1_000);
    chain.process_transaction(tx.clone()).unwrap();
    let info = chain.mempool().info();
    assert_eq!((info.size, info.total_fee), (1, Amount::from_sat(1_000)));
    assert_eq!(reject(&mut chain, tx).reason(), "txn-already-in-mempool");
}

#[test]
fn txn_mempool_conflict() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    chain
        .process_transaction(simple(&chain, &keys, 1, 1_000))
        .unwrap();
    let double_spend = simple(&chain, &keys, 1, 5_000);
    assert_eq!(
        reject(&mut chain, double_spend).reason(),
        "txn-mempool-conflict"
    );
}

#[test]
fn bad_txns_inputs_missingorspent_and_txn_already_known() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (_, prev) = coinbase_output(&chain, 1);
    let missing = OutPoint {
        txid: bitcoin::Txid::from_byte_array([8; 32]),
        vout: 1,
    };
    let tx = keys.spend(&[(missing, prev)], vec![out(10_000, &keys.wpkh)]);
    assert_eq!(
        reject(&mut chain, tx).reason(),
        "bad-txns-inputs-missingorspent"
    );
    // Once confirmed, resubmitting is "already known".
    let tx = simple(&chain, &keys, 1, 1_000);
    chain.process_transaction(tx.clone()).unwrap();
    chain.generate_to_script(1, &keys.wpkh).unwrap();
    assert_eq!(
        chain.mempool().info().size,
        0,
        "confirmed transactions leave the mempool"
    );
    assert_eq!(reject(&mut chain, tx).reason(), "txn-already-known");
}

use bitcoin::hashes::Hash;

#[test]
fn scriptpubkey_non_standard_output() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let anyone = ScriptBuf::from(vec![0x51, 0x51, 0x87]); // OP_1 OP_1 OP_EQUAL
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &anyone)],
    );
    assert_eq!(reject(&mut chain, tx).reason(), "scriptpubkey");
}

#[test]
fn min_relay_fee_not_met() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let tx = simple(&chain, &keys, 1, 0);
    let vsize = tx.vsize();
    let err = reject(&mut chain, tx);
    assert_eq!(err.reason(), "min relay fee not met");
    assert_eq!(
        err.to_string(),
        format!("min relay fee not met, 0 < {vsize}")
    );
    // Exactly 1 sat/vB is enough.
    let tx = simple(&chain, &keys, 1, vsize as u64);
    chain.process_transaction(tx).unwrap();
}

#[test]
fn dust() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![
            out(293, &keys.wpkh),
            out(prev.value.to_sat() - 10_000, &keys.wpkh),
        ],
    );
    assert_eq!(reject(&mut chain, tx).reason(), "dust");
    // 294 sats is the P2WPKH dust threshold at 3 sat/vB.
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![
            out(294, &keys.wpkh),
            out(prev.value.to_sat() - 10_000, &keys.wpkh),
        ],
    );
    chain.process_transaction(tx).unwrap();
}

#[test]
fn tx_size() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let outputs: Vec<TxOut> = (0..3_300).map(|_| out(1_000, &keys.wpkh)).collect();
    let tx = keys.spend(&[(op, prev)], outputs);
    assert!(tx.weight() > Weight::from_wu(400_000));
    assert_eq!(reject(&mut chain, tx).reason(), "tx-size");
}

#[test]
fn mandatory_script_verify_flag_failed() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut tx = simple(&chain, &keys, 2, 1_000); // P2TR
    let mut sig = tx.input[0].witness.nth(0).unwrap().to_vec();
    sig[0] ^= 0x80;
    tx.input[0].witness = bitcoin::Witness::from_slice(&[sig]);
    assert_eq!(
        reject(&mut chain, tx).reason(),
        "mandatory-script-verify-flag-failed (libbitcoinconsensus ERR_SCRIPT)"
    );
    let mut tx = simple(&chain, &keys, 1, 1_000); // P2WPKH, witness dropped
    tx.input[0].witness = bitcoin::Witness::new();
    let reason = reject(&mut chain, tx).reason();
    assert!(
        reason.starts_with("mandatory-script-verify-flag-failed ("),
        "{reason}"
    );
}

#[test]
fn bad_txns_premature_spend_of_coinbase() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let tx = simple(&chain, &keys, 12, 1_000);
    assert_eq!(
        reject(&mut chain, tx.clone()).reason(),
        "bad-txns-premature-spend-of-coinbase"
    );
    chain.generate_to_script(1, &keys.wpkh).unwrap();
    chain.process_transaction(tx).unwrap();
}

#[test]
fn coinbase_in_belowout_and_non_final() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let cb = chain.block(&chain.tip().hash).unwrap().unwrap().txdata[0].clone();
    assert_eq!(reject(&mut chain, cb).reason(), "coinbase");
    let (op, prev) = coinbase_output(&chain, 1);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() + 1, &keys.wpkh)],
    );
    assert_eq!(reject(&mut chain, tx).reason(), "bad-txns-in-belowout");
    let mut tx = Keys::unsigned(&[op], vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)]);
    tx.lock_time = absolute::LockTime::from_height(112).unwrap();
    tx.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;
    keys.sign(&mut tx, &[prev]);
    assert_eq!(reject(&mut chain, tx).reason(), "non-final");
}

#[test]
fn template_orders_by_fee_rate_puts_parents_first_and_respects_weight() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let low = simple(&chain, &keys, 1, 200);
    let high = simple(&chain, &keys, 2, 5_000);
    let mid = simple(&chain, &keys, 3, 1_000);
    for tx in [&low, &high, &mid] {
        chain.process_transaction(tx.clone()).unwrap();
    }
    // A high-fee child pays for the low-fee parent (ancestor package fee rate).
    let child = keys.spend(
        &[(
            OutPoint {
                txid: txid(&low),
                vout: 0,
            },
            low.output[0].clone(),
        )],
        vec![out(low.output[0].value.to_sat() - 20_000, &keys.tr)],
    );
    chain.process_transaction(child.clone()).unwrap();
    let template = chain.create_new_block(&keys.wpkh);
    let order: Vec<_> = template.block().txdata[1..].iter().map(txid).collect();
    assert_eq!(
        order,
        vec![txid(&low), txid(&child), txid(&high), txid(&mid)]
    );
    assert_eq!(
        template.fees(),
        Amount::from_sat(200 + 20_000 + 5_000 + 1_000)
    );
    // Only what fits: a budget for one package takes the best one.
    let (picked, fees) = chain.mempool().select(low.weight() + child.weight());
    assert_eq!(
        picked.iter().map(|t| txid(t)).collect::<Vec<_>>(),
        vec![txid(&low), txid(&child)]
    );
    assert_eq!(fees, Amount::from_sat(20_200));
    // Mining it empties the mempool and pays the fees to the coinbase.
    let hashes = chain.generate_to_script(1, &keys.wpkh).unwrap();
    let block = chain.block(&hashes[0]).unwrap().unwrap();
    assert_eq!(block.txdata.len(), 5);
    assert_eq!(chain.mempool().info().size, 0);
}

#[test]
fn non_bip68_final_by_height_and_by_time() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // The coin of block 11 has 100 confirmations in block 111: a 101-block lock is not met.
    let by_height = relative_spend(&chain, &keys, 11, 101);
    assert_eq!(reject(&mut chain, by_height).reason(), "non-BIP68-final");
    // 10 × 512 s after the median time of block 10 has not passed either.
    let by_time = relative_spend(&chain, &keys, 11, (1 << 22) | 10);
    assert_eq!(reject(&mut chain, by_time).reason(), "non-BIP68-final");
    // Version 1 or the disable bit (31): no relative lock; a met lock passes.
    let mut v1 = relative_spend(&chain, &keys, 11, 101);
    v1.version = bitcoin::transaction::Version::ONE;
    let (_, prev) = coinbase_output(&chain, 11);
    keys.sign(&mut v1, &[prev]);
    chain.process_transaction(v1).unwrap();
    let met = relative_spend(&chain, &keys, 3, 100);
    chain.process_transaction(met).unwrap();
    let disabled = relative_spend(&chain, &keys, 4, (1 << 31) | 500);
    chain.process_transaction(disabled).unwrap();
}

#[test]
fn broadcast_accepts_a_known_transaction_again_and_enforces_the_max_fee_rate() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let tx = simple(&chain, &keys, 1, 50_000); // about 450 sat/vB
    let rate = |sat_vb| bitcoin::FeeRate::from_sat_per_vb(sat_vb).unwrap();
    let err = chain
        .broadcast_transaction(tx.clone(), rate(100))
        .unwrap_err();
    assert_eq!(err.reason(), "max-fee-exceeded");
    chain
        .broadcast_transaction(tx.clone(), rate(1_000))
        .unwrap();
    chain.broadcast_transaction(tx.clone(), rate(1)).unwrap(); // already there: fine
    chain
        .broadcast_transaction(simple(&chain, &keys, 3, 50_000), bitcoin::FeeRate::ZERO)
        .unwrap();
    assert_eq!(chain.mempool().info().size, 2);
}

#[test]
fn bad_txns_too_many_sigops() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // Bare 1-of-1 multisig outputs are standard, but each counts 20 legacy sigops (cost 80).
    let multisig = bitcoin::blockdata::script::Builder::new()
        .push_int(1)
        .push_key(&bitcoin::PublicKey::new(keys.pk.0))
        .push_int(1)
        .push_opcode(bitcoin::opcodes::all::OP_CHECKMULTISIG)
        .into_script();
    let (op, prev) = coinbase_output(&chain, 1);
    let outputs = |n: u64| -> Vec<TxOut> {
        let mut v: Vec<TxOut> = (0..n).map(|_| out(10_000, &multisig)).collect();
        v.push(out(prev.value.to_sat() - n * 10_000 - 100_000, &keys.wpkh));
        v
    };
    let tx = keys.spend(&[(op, prev.clone())], outputs(201)); // cost 16,080
    assert_eq!(reject(&mut chain, tx).reason(), "bad-txns-too-many-sigops");
    let tx = keys.spend(&[(op, prev.clone())], outputs(199)); // cost 15,920 + 1 for the input
    chain.process_transaction(tx).unwrap();
}

#[test]
fn script_failures_name_the_interpreter_error() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let mut tx = simple(&chain, &keys, 1, 1_000);
    tx.input[0].witness = bitcoin::Witness::new();
    assert_eq!(
        reject(&mut chain, tx).reason(),
        "mandatory-script-verify-flag-failed (libbitcoinconsensus ERR_SCRIPT)"
    );
}

/// Spends output `vout` of `parent` to one output, paying `fee`.
fn child_of(keys: &Keys, parent: &Transaction, vout: u32, fee: u64) -> Transaction {
    let prev = parent.output[vout as usize].clone();
    keys.spend(
        &[(
            OutPoint {
                txid: txid(parent),
                vout,
            },
            prev.clone(),
        )],
        vec![out(prev.value.to_sat() - fee, &keys.wpkh)],
    )
}

#[test]
fn too_long_mempool_chain_by_ancestors() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    // A chain of MAX_ANCESTORS transactions, each spending the one before: the last has
    // MAX_ANCESTORS - 1 unconfirmed ancestors, which is allowed.
    let mut last = simple(&chain, &keys, 1, 1_000);
    chain.process_transaction(last.clone()).unwrap();
    for _ in 1..node::mempool::MAX_ANCESTORS {
        last = child_of(&keys, &last, 0, 1_000);
        chain.process_transaction(last.clone()).unwrap();
    }
    let one_more = child_of(&keys, &last, 0, 1_000);
    let err = reject(&mut chain, one_more.clone());
    assert_eq!(err.reason(), "too-long-mempool-chain");
    assert!(
        err.to_string()
            .contains("too many unconfirmed ancestors [limit: 25]"),
        "{err}"
    );
    // Once the chain is mined, it goes on.
    chain.generate_to_script(1, &keys.wpkh).unwrap();
    assert_eq!(chain.mempool().info().size, 0);
    chain.process_transaction(one_more).unwrap();
}

#[test]
fn too_long_mempool_chain_by_descendants() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let share = (prev.value.to_sat() - 10_000) / 30;
    let fan = keys.spend(
        &[(op, prev)],
        (0..30).map(|_| out(share, &keys.wpkh)).collect(),
    );
    chain.process_transaction(fan.clone()).unwrap();
    // The parent and MAX_DESCENDANTS - 1 children: the limit, reached.
    for vout in 0..node::mempool::MAX_DESCENDANTS as u32 - 1 {
        chain
            .process_transaction(child_of(&keys, &fan, vout, 1_000))
            .unwrap();
    }
    let err = reject(&mut chain, child_of(&keys, &fan, 29, 1_000));
    assert_eq!(err.reason(), "too-long-mempool-chain");
    assert!(
        err.to_string()
            .contains(&format!("too many descendants for tx {}", txid(&fan))),
        "{err}"
    );
}

/// Blocks skip the script checks of transactions the mempool checked already, but only for
/// the very same transaction: one with the mempool's txid and another witness is checked.
#[test]
fn a_block_with_a_mempool_transaction_under_another_witness_is_checked() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let tx = simple(&chain, &keys, 1, 1_000);
    chain.process_transaction(tx.clone()).unwrap();
    let mut forged = tx.clone();
    let mut witness: Vec<Vec<u8>> = forged.input[0].witness.to_vec();
    witness[0][10] ^= 1; // the signature no longer verifies
    forged.input[0].witness = bitcoin::Witness::from_slice(&witness);
    assert_eq!(txid(&forged), txid(&tx));
    let fees = bitcoin::Amount::from_sat(1_000);
    let err = chain
        .process_block(block_with(&chain, &keys, vec![forged], fees))
        .unwrap_err();
    assert!(err.to_string().contains("script"), "{err}");
    // The mempool's own transaction goes through.
    chain
        .process_block(block_with(&chain, &keys, vec![tx], fees))
        .unwrap();
}
