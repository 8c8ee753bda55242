//! Valid chains, reorganisations and restart persistence, with real signed transactions.

mod util;

use std::sync::Arc;

use bitcoin::{Amount, OutPoint};
use node::chainstate::ChainState;
use node::notify::ChainEvent;
use node::validation;
use util::*;

#[test]
fn a_valid_chain_of_110_blocks_connects_and_spends_p2wpkh_and_p2tr_coinbases() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    assert_eq!(chain.height(), 110);
    // 110 spendable coinbase outputs; genesis and the witness commitments are not coins.
    assert_eq!(chain.store().all_coins().unwrap().len(), 110);

    let (op1, out1) = coinbase_output(&chain, 1); // P2WPKH
    let (op2, out2) = coinbase_output(&chain, 2); // P2TR
    assert!(out1.script_pubkey.is_p2wpkh() && out2.script_pubkey.is_p2tr());
    let tx = keys.spend(
        &[(op1, out1), (op2, out2)],
        vec![
            out(60 * 100_000_000, &keys.tr),
            out(3_999_990_000, &keys.wpkh),
        ],
    );
    let fee = Amount::from_sat(10_000);
    chain.process_transaction(tx.clone()).unwrap();
    assert!(chain.mempool().contains(&txid(&tx)));

    let template = chain.create_new_block(&keys.wpkh);
    assert_eq!(template.fees(), fee);
    assert_eq!(template.block().txdata.len(), 2);
    let cb = template.coinbase_tx().clone();
    assert_eq!(cb.output[0].value, validation::block_subsidy(111) + fee);
    // The merkle path proves the coinbase under the header's root.
    assert_eq!(
        validation::merkle_root_from_path(cb.compute_txid(), &template.coinbase_merkle_path()),
        template.header().merkle_root
    );
    let solved = node::mining::grind(template.block().clone());
    let hash = chain
        .submit_solution(
            &template,
            solved.header.version,
            solved.header.time,
            solved.header.nonce,
            cb,
        )
        .unwrap();
    assert_eq!(chain.tip().hash, hash);
    assert_eq!(chain.height(), 111);
    assert!(!chain.mempool().contains(&txid(&tx)));
    let coins = chain
        .coins(&[
            op1,
            op2,
            OutPoint {
                txid: txid(&tx),
                vout: 0,
            },
        ])
        .unwrap();
    assert_eq!(coins[0], None);
    assert_eq!(coins[1], None);
    assert_eq!(
        coins[2].as_ref().map(|c| c.output.value),
        Some(Amount::from_int_btc(60))
    );
}

#[test]
fn an_in_block_chain_of_spends_connects_and_disconnects_to_the_same_utxo_set() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let before = sorted_coins(&chain);
    let (op, prev) = coinbase_output(&chain, 3);
    let a = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 1_000, &keys.tr)],
    );
    let a_out = a.output[0].clone();
    let b = keys.spend(
        &[(
            OutPoint {
                txid: txid(&a),
                vout: 0,
            },
            a_out.clone(),
        )],
        vec![out(a_out.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let block = block_with(&chain, &keys, vec![a, b.clone()], Amount::from_sat(2_000));
    let hash = block.block_hash();
    chain.process_block(block.clone()).unwrap();
    assert_eq!(chain.tip().hash, hash);
    assert!(
        chain
            .coins(&[OutPoint {
                txid: txid(&b),
                vout: 0
            }])
            .unwrap()[0]
            .is_some()
    );

    // A heavier sibling branch forces the block out again: the UTXO set must return exactly.
    let parent = block.header.prev_blockhash;
    let s1 = block_on(&chain, &keys, parent, vec![], 1);
    chain.process_block(s1.clone()).unwrap();
    assert_eq!(
        chain.tip().hash,
        hash,
        "equal work: the first seen stays active"
    );
    let s2 = block_on(&chain, &keys, s1.block_hash(), vec![], 2);
    chain.process_block(s2.clone()).unwrap();
    assert_eq!(chain.tip().hash, s2.block_hash());
    let mut after = sorted_coins(&chain);
    // Only the two new coinbases differ.
    let new_cbs = [s1.txdata[0].compute_txid(), s2.txdata[0].compute_txid()];
    after.retain(|(op, _)| !new_cbs.contains(&op.txid));
    assert_eq!(after, before);
    // Both transactions are back in the mempool, parent first.
    assert_eq!(chain.mempool().info().size, 2);
}

#[test]
fn reorg_to_the_heavier_branch_notifies_in_order_and_returns_transactions_to_the_mempool() {
    let _dog = watchdog(120);
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let fork = chain.tip().hash;
    let (op, prev) = coinbase_output(&chain, 4);
    let tx = keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - 500, &keys.wpkh)],
    );
    chain.process_transaction(tx.clone()).unwrap();
    let (events, _sub) = record(&chain);

    // Branch A: two blocks on the tip, the first confirming `tx`.
    let a1 = block_with(&chain, &keys, vec![tx.clone()], Amount::from_sat(500));
    chain.process_block(a1.clone()).unwrap();
    let a2 = block_with(&chain, &keys, vec![], Amount::ZERO);
    chain.process_block(a2.clone()).unwrap();
    assert!(!chain.mempool().contains(&txid(&tx)));

    // Branch B: three empty blocks on the fork point; it wins with the third.
    let b1 = block_on(&chain, &keys, fork, vec![], 1);
    chain.process_block(b1.clone()).unwrap();
    let b2 = block_on(&chain, &keys, b1.block_hash(), vec![], 2);
    chain.process_block(b2.clone()).unwrap();
    assert_eq!(chain.tip().hash, a2.block_hash(), "B is not heavier yet");
    let b3 = block_on(&chain, &keys, b2.block_hash(), vec![], 3);
    chain.process_block(b3.clone()).unwrap();
    assert_eq!(chain.tip().hash, b3.block_hash());
    assert_eq!(chain.height(), FIXTURE_HEIGHT + 3);
    assert!(
        chain.mempool().contains(&txid(&tx)),
        "the transaction of the disconnected block is back"
    );
    assert!(
        chain.entry(&a1.block_hash()).is_some(),
        "the side branch is kept"
    );

    chain.sync_notifications();
    let got: Vec<String> = events.lock().unwrap().iter().filter_map(describe).collect();
    let h = |b: &bitcoin::Block| b.block_hash().to_string()[..8].to_owned();
    let t = txid(&tx).to_string()[..8].to_owned();
    let n = FIXTURE_HEIGHT;
    let expected = vec![
        format!("removed {t} Block"),
        format!("connected {} {}", h(&a1), n + 1),
        format!("tip {} {}", h(&a1), n + 1),
        format!("connected {} {}", h(&a2), n + 2),
        format!("tip {} {}", h(&a2), n + 2),
        format!("disconnected {} {}", h(&a2), n + 2),
        format!("disconnected {} {}", h(&a1), n + 1),
        format!("connected {} {}", h(&b1), n + 1),
        format!("connected {} {}", h(&b2), n + 2),
        format!("connected {} {}", h(&b3), n + 3),
        format!("added {t}"),
        format!("tip {} {}", h(&b3), n + 3),
    ];
    assert_eq!(got, expected);

    // A transaction in the mempool that conflicts with a block leaves with reason Conflict.
    let (op5, prev5) = coinbase_output(&chain, 5);
    let loser = keys.spend(
        &[(op5, prev5.clone())],
        vec![out(prev5.value.to_sat() - 1_000, &keys.wpkh)],
    );
    let winner = keys.spend(
        &[(op5, prev5.clone())],
        vec![out(prev5.value.to_sat() - 2_000, &keys.tr)],
    );
    chain.process_transaction(loser.clone()).unwrap();
    chain.sync_notifications(); // the "added" event must be delivered before clearing
    events.lock().unwrap().clear();
    chain
        .process_block(block_with(
            &chain,
            &keys,
            vec![tx.clone(), winner],
            Amount::from_sat(2_500),
        ))
        .unwrap();
    chain.sync_notifications();
    let got: Vec<String> = events.lock().unwrap().iter().filter_map(describe).collect();
    assert_eq!(
        got[0],
        format!("removed {} Conflict", &txid(&loser).to_string()[..8])
    );
    assert_eq!(got[1], format!("removed {t} Block"));
    assert_eq!(chain.mempool().info().size, 0);
}

#[test]
fn a_heavier_branch_with_an_invalid_block_is_abandoned_and_the_old_chain_restored() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let fork = chain.tip().hash;
    let a1 = block_with(&chain, &keys, vec![], Amount::ZERO);
    chain.process_block(a1.clone()).unwrap();
    let b1 = block_on(&chain, &keys, fork, vec![], 1);
    chain.process_block(b1.clone()).unwrap();
    // b2 overpays its coinbase: only detectable when connecting.
    let mut b2 = block_on(&chain, &keys, b1.block_hash(), vec![], 2);
    b2.txdata[0].output[0].value += Amount::from_sat(1);
    let b2 = finish(b2);
    let err = chain.process_block(b2.clone()).unwrap_err();
    assert!(
        matches!(err, node::chainstate::ChainError::Invalid(ref e) if e.reason() == "bad-cb-amount"),
        "{err}"
    );
    assert_eq!(chain.tip().hash, a1.block_hash(), "back on the valid chain");
    // Its children are refused, and so is the block itself a second time.
    let b3 = block_on(&chain, &keys, b2.block_hash(), vec![], 3);
    assert_eq!(reason(chain.process_block(b3)), "bad-prevblk");
    assert_eq!(reason(chain.process_block(b2)), "duplicate-invalid");
}

fn reason(r: Result<(), node::chainstate::ChainError>) -> String {
    match r {
        Err(node::chainstate::ChainError::Invalid(e)) => e.reason(),
        other => panic!("expected an invalid block, got {other:?}"),
    }
}

/// A short text for each event; `None` for chain-state-flushed events.
fn describe(ev: &ChainEvent) -> Option<String> {
    let short = |s: String| s[..8].to_owned();
    Some(match ev {
        ChainEvent::TransactionAddedToMempool(tx) => {
            format!("added {}", short(tx.compute_txid().to_string()))
        }
        ChainEvent::TransactionRemovedFromMempool(tx, r) => {
            format!("removed {} {r:?}", short(tx.compute_txid().to_string()))
        }
        ChainEvent::BlockConnected { block, height } => format!(
            "connected {} {height}",
            short(block.block_hash().to_string())
        ),
        ChainEvent::BlockDisconnected { block, height } => {
            format!(
                "disconnected {} {height}",
                short(block.block_hash().to_string())
            )
        }
        ChainEvent::UpdatedBlockTip(tip) => {
            format!("tip {} {}", short(tip.hash.to_string()), tip.height)
        }
        ChainEvent::ChainStateFlushed(_) => return None,
        other => format!("{other:?}"),
    })
}

#[test]
fn restart_keeps_the_tip_the_mempool_and_a_utxo_set_equal_to_a_recomputation_from_the_blocks() {
    let keys = Keys::new();
    let dir;
    let tip;
    let pending;
    {
        let (d, mut chain) = fixture();
        dir = d;
        let (op, prev) = coinbase_output(&chain, 6);
        let tx = keys.spend(
            &[(op, prev.clone())],
            vec![
                out(1_000_000, &keys.tr),
                out(prev.value.to_sat() - 1_100_000, &keys.wpkh),
            ],
        );
        chain.process_transaction(tx).unwrap();
        chain.generate_to_script(2, &keys.tr).unwrap();
        tip = chain.tip();
        // Left unconfirmed: saved at shutdown, reloaded at start.
        pending = keys.spend(
            &[coinbase_output(&chain, 8)],
            vec![out(5_000_000, &keys.wpkh)],
        );
        chain.process_transaction(pending.clone()).unwrap();
    }
    let chain = ChainState::open(dir.path()).unwrap();
    assert_eq!(chain.tip(), tip);
    assert_eq!(sorted_coins(&chain), recompute_utxos(&chain));
    assert!(chain.mempool().contains(&txid(&pending)));
    assert_eq!(chain.mempool().info().size, 1);
}

#[test]
fn notifications_may_call_back_into_the_chain_state() {
    let _dog = watchdog(60);
    let keys = Keys::new();
    let (_dir, chain) = fixture();
    let chain = Arc::new(std::sync::Mutex::new(chain));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (Arc::clone(&chain), Arc::clone(&seen));
    let sub = chain
        .lock()
        .unwrap()
        .subscribe(Arc::new(move |ev: &ChainEvent| {
            if let ChainEvent::BlockConnected { height, .. } = ev {
                // Like a wallet asking get_height from block_connected.
                let now = c.lock().unwrap().height();
                s.lock().unwrap().push((*height, now));
            }
        }))
        .unwrap();
    chain
        .lock()
        .unwrap()
        .generate_to_script(3, &keys.wpkh)
        .unwrap();
    // Wait outside the lock: the callbacks take it.
    let notifier = chain.lock().unwrap().notifier();
    notifier.sync();
    let notifier_sync = chain.lock().unwrap().height();
    drop(sub);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        vec![111, 112, 113]
    );
    assert!(seen.iter().all(|(_, now)| *now <= notifier_sync));
}

#[test]
fn transactions_are_found_in_the_mempool_then_in_their_block_and_ibd_ends_with_a_recent_tip() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    assert!(!chain.is_initial_block_download());
    let tx = keys.spend(
        &[coinbase_output(&chain, 7)],
        vec![out(1_000_000, &keys.wpkh)],
    );
    let id = txid(&tx);
    assert_eq!(chain.transaction(&id).unwrap(), None);
    chain.process_transaction(tx.clone()).unwrap();
    assert_eq!(chain.transaction(&id).unwrap(), Some((tx.clone(), None)));
    let block = chain.generate_to_script(1, &keys.wpkh).unwrap()[0];
    assert_eq!(
        chain.transaction(&id).unwrap(),
        Some((tx.clone(), Some(block)))
    );
    let cb = chain.block(&block).unwrap().unwrap().txdata[0].clone();
    assert_eq!(
        chain.transaction(&cb.compute_txid()).unwrap(),
        Some((cb, Some(block)))
    );
    assert!(chain.have_block(&block));

    // A fresh chain sits at the 2011 genesis block: initial block download until a block.
    let dir = tempfile::tempdir().unwrap();
    let mut fresh = ChainState::open(dir.path()).unwrap();
    assert!(fresh.is_initial_block_download());
    fresh.generate_to_script(1, &keys.wpkh).unwrap();
    assert!(!fresh.is_initial_block_download());
}

#[test]
fn restart_connects_a_block_stored_before_a_crash_and_remembers_invalid_blocks() {
    use node::store::{Batch, BlockStatus, IndexEntry, Store};
    let keys = Keys::new();
    let (dir, mut chain) = fixture();
    let tip = chain.tip();
    // A block that failed, remembered across the restart.
    let bad = block_with(&chain, &keys, vec![], Amount::from_sat(1));
    assert!(chain.process_block(bad.clone()).is_err());
    // A valid child of the tip, stored as the first of process_block's two commits would
    // leave it if the process died before connecting it.
    let good = block_with(&chain, &keys, vec![], Amount::ZERO);
    drop(chain);
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        batch.put_block(&good);
        let entry = IndexEntry {
            header: good.header,
            height: tip.height + 1,
            chain_work: tip.chain_work + good.header.work(),
            status: BlockStatus::Stored,
        };
        batch.put_index(good.block_hash(), entry);
        store.commit(batch).unwrap();
    }
    let mut chain = ChainState::open(dir.path()).unwrap();
    assert_eq!(
        chain.tip().hash,
        good.block_hash(),
        "the stored block is connected on startup"
    );
    assert_eq!(sorted_coins(&chain), recompute_utxos(&chain));
    assert_eq!(
        chain.entry(&bad.block_hash()).unwrap().status,
        BlockStatus::Failed
    );
    let err = chain.process_block(bad).unwrap_err();
    assert!(
        matches!(err, node::chainstate::ChainError::Invalid(ref e) if e.reason() == "duplicate-invalid")
    );
}

/// A damaged database whose block index holds a block without its parent is refused as
/// corrupt when the node starts; walking a side branch to it used to panic.
#[test]
fn an_index_entry_without_its_parent_is_corruption_not_a_panic() {
    use node::store::{Batch, BlockStatus, IndexEntry, Store};
    let keys = Keys::new();
    let (dir, chain) = fixture();
    let tip = chain.tip();
    let mut orphan = block_with(&chain, &keys, vec![], Amount::ZERO);
    orphan.header.prev_blockhash =
        <bitcoin::BlockHash as bitcoin::hashes::Hash>::from_byte_array([7; 32]);
    drop(chain);
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        batch.put_block(&orphan);
        // More work than the tip: the best candidate, whose branch is walked at start.
        let entry = IndexEntry {
            header: orphan.header,
            height: tip.height + 2,
            chain_work: tip.chain_work + orphan.header.work() + orphan.header.work(),
            status: BlockStatus::Stored,
        };
        batch.put_index(orphan.block_hash(), entry);
        store.commit(batch).unwrap();
    }
    match ChainState::open(dir.path()) {
        Err(e) => assert!(e.to_string().contains("without its parent"), "{e}"),
        Ok(_) => panic!("a damaged block index was accepted"),
    }
}

/// A Taproot output committing to one script leaf, `OP_TRUE` (anyone who reveals it may
/// spend), with the witness that spends it through the script path.
fn op_true_leaf(keys: &Keys) -> (bitcoin::ScriptBuf, bitcoin::Witness) {
    use bitcoin::opcodes::OP_TRUE;
    use bitcoin::taproot::{LeafVersion, TaprootBuilder};
    let leaf = bitcoin::ScriptBuf::builder()
        .push_opcode(OP_TRUE)
        .into_script();
    let internal = keys.keypair.x_only_public_key().0;
    let info = TaprootBuilder::new()
        .add_leaf(0, leaf.clone())
        .unwrap()
        .finalize(&keys.secp, internal)
        .unwrap();
    let output = bitcoin::ScriptBuf::new_p2tr(&keys.secp, internal, info.merkle_root());
    let control = info
        .control_block(&(leaf.clone(), LeafVersion::TapScript))
        .unwrap();
    let witness = bitcoin::Witness::from_slice(&[leaf.to_bytes(), control.serialize()]);
    (output, witness)
}

/// Taproot script-path spends are verified by Core's interpreter like any other script: a
/// valid one connects, one whose control block does not commit to the output is refused.
#[test]
fn taproot_script_path_spends_are_verified() {
    let keys = Keys::new();
    let (_dir, mut chain) = fixture();
    let (op, prev) = coinbase_output(&chain, 1);
    let (tr_script, witness) = op_true_leaf(&keys);
    let fund = keys.spend(
        &[(op, prev.clone())],
        vec![
            out(1_000_000_000, &tr_script),
            out(1_000_000_000, &tr_script),
            out(prev.value.to_sat() - 2_000_010_000, &keys.wpkh),
        ],
    );
    let funded = txid(&fund);
    chain
        .process_block(block_with(
            &chain,
            &keys,
            vec![fund],
            Amount::from_sat(10_000),
        ))
        .unwrap();

    let spend = |vout: u32, witness: bitcoin::Witness| {
        let mut tx = Keys::unsigned(
            &[OutPoint { txid: funded, vout }],
            vec![out(999_990_000, &keys.wpkh)],
        );
        tx.input[0].witness = witness;
        tx
    };
    chain
        .process_block(block_with(
            &chain,
            &keys,
            vec![spend(0, witness.clone())],
            Amount::from_sat(10_000),
        ))
        .unwrap();
    assert_eq!(chain.height(), 112);

    // The same leaf with a control block naming another internal key.
    let mut forged = witness.to_vec();
    forged[1][1] ^= 1;
    let tip = chain.tip();
    let block = block_with(
        &chain,
        &keys,
        vec![spend(1, bitcoin::Witness::from_slice(&forged))],
        Amount::from_sat(10_000),
    );
    match chain.process_block(block) {
        Err(node::chainstate::ChainError::Invalid(e)) => {
            assert!(
                e.reason()
                    .starts_with("mandatory-script-verify-flag-failed ("),
                "{e}"
            )
        }
        other => panic!("a forged control block was accepted: {other:?}"),
    }
    assert_eq!(chain.tip(), tip);
}
