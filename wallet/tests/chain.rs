//! The wallet fed with real regtest blocks: mining to it, paying a second wallet, reorgs,
//! the mempool, restarts and catch-up from the chain.

mod util;

use std::sync::{Arc, Mutex};

use bitcoin::{Amount, FeeRate, SignedAmount, Transaction};
use interfaces::{Balances, ChangeType, RemovalReason};
use util::{MIN_RELAY, TestChain, Watchdog, btc, confirm, mine_to_wallet, store};
use wallet::{Category, Wallet, WalletStore};

/// A funded wallet "alice" (101 blocks mined to her) and an empty "bob".
struct Setup {
    _dir: tempfile::TempDir,
    store: WalletStore,
    chain: TestChain,
    alice: Arc<Wallet>,
    bob: Arc<Wallet>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let alice = store.create_wallet("alice").unwrap();
    let bob = store.create_wallet("bob").unwrap();
    let mut chain = TestChain::new();
    mine_to_wallet(&mut chain, &alice, 101);
    for height in 1..=101 {
        bob.block_connected(chain.block(height), height).unwrap();
    }
    Setup {
        _dir: dir,
        store,
        chain,
        alice,
        bob,
    }
}

fn balances(trusted: Amount, untrusted_pending: Amount, immature: Amount) -> Balances {
    Balances {
        trusted,
        untrusted_pending,
        immature,
    }
}

/// Alice pays bob 10 BTC at 2 sat/vB; returns the transaction and its fee.
fn pay_bob(s: &Setup) -> (Transaction, Amount) {
    let to = s.bob.get_new_address().unwrap();
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let tx = s
        .alice
        .send_to_address(to.as_unchecked(), btc(10), rate, MIN_RELAY)
        .unwrap();
    let fee = s.chain.fee(&tx);
    // The fee pays for the transaction's weight at the rate asked, and not much more.
    let floor = rate.fee_wu(tx.weight()).unwrap();
    assert!(
        fee >= floor && fee <= floor + Amount::from_sat(200),
        "fee {fee}, floor {floor}"
    );
    (tx, fee)
}

#[test]
fn mining_101_blocks_gives_one_mature_coinbase() {
    let s = setup();
    assert_eq!(s.alice.last_block().unwrap().height, 101);
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(btc(50), Amount::ZERO, btc(5000))
    );
    assert_eq!(s.bob.get_balances().unwrap(), Balances::default());

    let history = s.alice.list_transactions().unwrap();
    assert_eq!(history.len(), 101);
    assert_eq!(history[0].category, Category::Generate);
    assert_eq!(history[0].confirmations, 101);
    assert_eq!(history[0].block_height, Some(1));
    assert_eq!(history[0].amount, SignedAmount::from_sat(50_0000_0000));
    assert!(
        history[1..]
            .iter()
            .all(|e| e.category == Category::Immature)
    );
    assert_eq!(history[100].confirmations, 1);
    assert_eq!(
        history[100].txid,
        s.chain.block(101).txdata[0].compute_txid()
    );
}

#[test]
fn paying_a_second_wallet_and_confirming() {
    let mut s = setup();
    let (tx, fee) = pay_bob(&s);
    let change = btc(40) - fee;

    // Unconfirmed: alice's change is trusted (her own transaction), bob's receipt is not.
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(change, Amount::ZERO, btc(5000))
    );
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    assert_eq!(
        s.bob.get_balances().unwrap(),
        balances(Amount::ZERO, btc(10), Amount::ZERO)
    );

    // Confirmed at 102: bob's 10 are trusted; alice's coinbase of block 2 matured.
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx.clone()]);
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(change + btc(50), Amount::ZERO, btc(4950))
    );
    assert_eq!(
        s.bob.get_balances().unwrap(),
        balances(btc(10), Amount::ZERO, Amount::ZERO)
    );

    let txid = tx.compute_txid();
    let sends: Vec<_> = s
        .alice
        .list_transactions()
        .unwrap()
        .into_iter()
        .filter(|e| e.txid == txid)
        .collect();
    assert_eq!(sends.len(), 1, "the change output is not listed: {sends:?}");
    assert_eq!(sends[0].category, Category::Send);
    assert_eq!(sends[0].amount, SignedAmount::from_sat(-10_0000_0000));
    assert_eq!(sends[0].fee, Some(-fee.to_signed().unwrap()));
    assert_eq!(sends[0].confirmations, 1);
    let receipt = s.bob.list_transactions().unwrap();
    assert_eq!(receipt.len(), 1);
    assert_eq!(receipt[0].category, Category::Receive);
    assert_eq!(receipt[0].amount, SignedAmount::from_sat(10_0000_0000));
    assert_eq!(receipt[0].block_height, Some(102));

    // Bob can spend what he received: his own signed transaction confirms in a valid block.
    let back = s.alice.get_new_address().unwrap();
    let tx2 = s
        .bob
        .send_to_address(back.as_unchecked(), btc(3), MIN_RELAY, MIN_RELAY)
        .unwrap();
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx2]);
    let bob = s.bob.get_balances().unwrap();
    assert!(
        bob.trusted < btc(7) && bob.trusted > btc(7) - Amount::from_sat(1000),
        "{bob:?}"
    );
}

#[test]
fn a_reorg_moves_balances_back() {
    let mut s = setup();
    let (tx, fee) = pay_bob(&s);
    let change = btc(40) - fee;
    let before_alice = s.alice.get_balances().unwrap();
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx.clone()]);
    // Block 103 pays alice's coinbase: it must vanish with the reorg.
    mine_to_wallet(&mut s.chain, &s.alice, 1);
    s.bob.block_connected(s.chain.tip(), 103).unwrap();
    assert_eq!(s.bob.get_balances().unwrap().trusted, btc(10));

    // The node disconnects 103 and 102, tip first.
    for (block, height) in s.chain.rewind(101).iter().zip([103, 102]) {
        s.alice.block_disconnected(block, height).unwrap();
        s.bob.block_disconnected(block, height).unwrap();
    }
    assert_eq!(s.alice.last_block().unwrap().height, 101);
    assert_eq!(s.alice.get_balances().unwrap(), before_alice);
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(change, Amount::ZERO, btc(5000))
    );
    assert_eq!(
        s.bob.get_balances().unwrap(),
        balances(Amount::ZERO, btc(10), Amount::ZERO)
    );
    let receipt = &s.bob.list_transactions().unwrap()[0];
    assert_eq!((receipt.confirmations, receipt.block_hash), (0, None));

    // The new branch confirms the payment one block later than the old one did.
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![]);
    assert_eq!(s.bob.get_balances().unwrap().untrusted_pending, btc(10));
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx]);
    assert_eq!(
        s.bob.get_balances().unwrap(),
        balances(btc(10), Amount::ZERO, Amount::ZERO)
    );
    assert_eq!(
        s.bob.list_transactions().unwrap()[0].block_height,
        Some(103)
    );
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(change + btc(100), Amount::ZERO, btc(4900))
    );
}

#[test]
fn a_replacing_block_without_disconnects_also_reorgs() {
    let mut s = setup();
    let (tx, _) = pay_bob(&s);
    confirm(&mut s.chain, &[&s.bob], vec![tx]);
    assert_eq!(s.bob.get_balances().unwrap().trusted, btc(10));
    // Bob misses the disconnect of 102 and only sees the competing 102.
    s.chain.rewind(101);
    confirm(&mut s.chain, &[&s.bob], vec![]);
    assert_eq!(s.bob.last_block().unwrap().hash, s.chain.tip().block_hash());
    assert_eq!(
        s.bob.get_balances().unwrap(),
        balances(Amount::ZERO, btc(10), Amount::ZERO)
    );
}

#[test]
fn a_block_that_does_not_connect_is_refused() {
    let mut s = setup();
    let orphan_parent = s.chain.mine(&util::stranger(), vec![]);
    let orphan = s.chain.mine(&util::stranger(), vec![]);
    match s.alice.block_connected(&orphan, 103) {
        Err(wallet::WalletError::BlockDoesNotConnect {
            height,
            hash,
            prev_blockhash,
        }) => {
            assert_eq!((height, hash), (103, orphan.block_hash()));
            assert_eq!(prev_blockhash, orphan_parent.block_hash());
        }
        other => panic!("expected BlockDoesNotConnect, got {other:?}"),
    }
    // A duplicate is harmless.
    s.alice.block_connected(&orphan_parent, 102).unwrap();
    s.alice.block_connected(&orphan_parent, 102).unwrap();
    s.alice.block_connected(&orphan, 103).unwrap();
    assert_eq!(s.alice.last_block().unwrap().height, 103);
}

#[test]
fn mempool_eviction_and_abandon() {
    let s = setup();
    let (tx, _) = pay_bob(&s);
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    assert_eq!(s.bob.get_balances().unwrap().untrusted_pending, btc(10));
    // Included in a block: the block's notification, not this one, decides.
    s.bob
        .transaction_removed_from_mempool(&tx, RemovalReason::Block)
        .unwrap();
    assert_eq!(s.bob.get_balances().unwrap().untrusted_pending, btc(10));
    s.bob
        .transaction_removed_from_mempool(&tx, RemovalReason::Expiry)
        .unwrap();
    assert_eq!(s.bob.get_balances().unwrap(), Balances::default());
    assert!(s.bob.list_transactions().unwrap().is_empty());
    // Seen again later (re-broadcast): back in.
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    assert_eq!(s.bob.get_balances().unwrap().untrusted_pending, btc(10));

    // The sender gives up on it: its coin is spendable again.
    s.alice.abandon_transaction(tx.compute_txid()).unwrap();
    assert_eq!(
        s.alice.get_balances().unwrap(),
        balances(btc(50), Amount::ZERO, btc(5000))
    );
    let again = s.alice.send_to_address(
        s.bob.get_new_address().unwrap().as_unchecked(),
        btc(49),
        MIN_RELAY,
        MIN_RELAY,
    );
    assert!(again.is_ok(), "{again:?}");
    // A confirmed transaction cannot be abandoned.
    let coinbase = s.chain.block(1).txdata[0].compute_txid();
    assert!(matches!(
        s.alice.abandon_transaction(coinbase),
        Err(wallet::WalletError::UnknownTransaction { txid }) if txid == coinbase
    ));
}

#[test]
fn restart_keeps_balances_history_and_addresses() {
    let mut s = setup();
    let (tx, _) = pay_bob(&s);
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx]);
    let (tx2, _) = pay_bob(&s); // left unconfirmed
    s.bob.transaction_added_to_mempool(&tx2).unwrap();
    let before = [&s.alice, &s.bob].map(|w| {
        (
            w.get_balances().unwrap(),
            w.list_transactions().unwrap(),
            w.last_block().unwrap(),
        )
    });
    let given: Vec<_> = (0..3).map(|_| s.alice.get_new_address().unwrap()).collect();

    let Setup {
        _dir,
        store,
        alice,
        bob,
        ..
    } = s;
    drop((store, alice, bob));
    let store = util::store(_dir.path());
    let after = ["alice", "bob"].map(|name| {
        let w = store.load_wallet(name).unwrap();
        (
            w.get_balances().unwrap(),
            w.list_transactions().unwrap(),
            w.last_block().unwrap(),
        )
    });
    assert_eq!(before, after);
    let next = store
        .get_wallet("alice")
        .unwrap()
        .get_new_address()
        .unwrap();
    assert!(
        !given.contains(&next),
        "address {next} reused after restart"
    );
}

#[test]
fn catch_up_from_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let alice = store.create_wallet("alice").unwrap();
    let mut chain = TestChain::new();
    // Blocks mined while the wallet was not listening.
    for _ in 0..101 {
        let address = alice.get_new_address().unwrap();
        chain.mine_to(&address, vec![]);
    }
    assert_eq!(alice.get_balances().unwrap(), Balances::default());
    assert_eq!(alice.sync_with_chain(&chain).unwrap(), 101);
    assert_eq!(
        alice.get_balances().unwrap(),
        balances(btc(50), Amount::ZERO, btc(5000))
    );
    // Nothing to do the second time.
    assert_eq!(alice.sync_with_chain(&chain).unwrap(), 101);
    assert_eq!(alice.list_transactions().unwrap().len(), 101);

    // While the wallet is down the chain reorganises: 95..101 are replaced by a longer
    // branch paying nobody. On start the wallet rewinds to the fork and follows the branch.
    drop((alice, store));
    chain.rewind(94);
    for _ in 0..10 {
        chain.mine(&util::stranger(), vec![]);
    }
    let store = util::store(dir.path());
    let alice = store.load_wallet("alice").unwrap();
    assert_eq!(alice.last_block().unwrap().height, 101);
    assert_eq!(alice.sync_with_chain(&chain).unwrap(), 104);
    assert_eq!(alice.last_block().unwrap().hash, chain.tip().block_hash());
    // 94 coinbases left; those of 1..=4 have 101+ confirmations at 104.
    assert_eq!(
        alice.get_balances().unwrap(),
        balances(btc(200), Amount::ZERO, btc(4500))
    );
    assert_eq!(alice.list_transactions().unwrap().len(), 94);
}

#[test]
fn locator_is_dense_then_sparse_and_ends_at_genesis() {
    let s = setup();
    let locator = s.alice.locator().unwrap();
    let height_of = |hash| {
        (0..=101)
            .find(|h| s.chain.block(*h).block_hash() == hash)
            .unwrap()
    };
    let heights: Vec<u32> = locator.iter().map(|h| height_of(*h)).collect();
    assert_eq!(&heights[..10], &[101, 100, 99, 98, 97, 96, 95, 94, 93, 92]);
    assert_eq!(&heights[10..], &[90, 86, 78, 62, 30, 0]);
}

#[test]
fn subscribers_hear_about_changes() {
    let mut s = setup();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    let bob = Arc::clone(&s.bob);
    let handler = s
        .bob
        .handle_transaction_changed(Arc::new(move |txid, change| {
            // A callback may call back into the wallet.
            let balance = bob.get_balances().unwrap();
            sink.lock().unwrap().push((*txid, change, balance.trusted));
        }))
        .unwrap();
    let (tx, _) = pay_bob(&s);
    let txid = tx.compute_txid();
    // Callbacks run on the subscriber's own thread: each step waits for them, so that the
    // balance each one reads is the wallet's right after its change.
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    s.bob.wait_for_notifications();
    let block = confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx.clone()]);
    s.bob.wait_for_notifications();
    s.bob.block_disconnected(&block, 102).unwrap();
    s.bob.wait_for_notifications();
    s.bob
        .transaction_removed_from_mempool(&tx, RemovalReason::Conflict)
        .unwrap();
    s.bob.wait_for_notifications();
    assert_eq!(
        *heard.lock().unwrap(),
        [
            (txid, ChangeType::New, Amount::ZERO),
            (txid, ChangeType::Updated, btc(10)),
            (txid, ChangeType::Updated, Amount::ZERO),
            (txid, ChangeType::Deleted, Amount::ZERO),
        ]
    );
    drop(handler);
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    s.bob.wait_for_notifications();
    assert_eq!(
        heard.lock().unwrap().len(),
        4,
        "a dropped handler still hears"
    );
}

/// A front end that is paused, or slow, in its callback used to hold up the thread that
/// changed the wallet: the node's notification thread, which then fell behind until the
/// node dropped the wallet. Now it delays only itself.
#[test]
fn a_stuck_subscriber_holds_up_neither_the_wallet_nor_other_subscribers() {
    let _watchdog = Watchdog::new(std::time::Duration::from_secs(120));
    let mut s = setup();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let stuck = s
        .bob
        .handle_transaction_changed(Arc::new(move |_, _| {
            // Blocks until the test lets go (or hangs up).
            let _ = released.lock().unwrap().recv();
        }))
        .unwrap();
    let (heard, hear) = std::sync::mpsc::channel();
    let _other = s
        .bob
        .handle_transaction_changed(Arc::new(move |txid, change| {
            let _ = heard.send((*txid, change));
        }))
        .unwrap();
    let wait = std::time::Duration::from_secs(30);
    let (tx, _) = pay_bob(&s);
    let txid = tx.compute_txid();
    // Each change returns although the first subscriber is stuck, and the other hears it.
    s.bob.transaction_added_to_mempool(&tx).unwrap();
    assert_eq!(hear.recv_timeout(wait).unwrap(), (txid, ChangeType::New));
    confirm(&mut s.chain, &[&s.alice, &s.bob], vec![tx.clone()]);
    assert_eq!(
        hear.recv_timeout(wait).unwrap(),
        (txid, ChangeType::Updated)
    );
    assert_eq!(s.bob.get_balances().unwrap().trusted, btc(10));
    // Unsubscribing does not wait for the callback it is stuck in.
    stuck.disconnect();
    drop(release);
    s.bob.wait_for_notifications();
}

#[test]
fn a_payment_to_an_own_address_is_a_send_and_a_receive_and_its_change_neither() {
    let s = setup();
    let to = s.alice.get_new_address().unwrap();
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let tx = s
        .alice
        .send_to_address(to.as_unchecked(), btc(3), rate, MIN_RELAY)
        .unwrap();
    let txid = tx.compute_txid();
    let entries: Vec<_> = s
        .alice
        .list_transactions()
        .unwrap()
        .into_iter()
        .filter(|e| e.txid == txid)
        .map(|e| (e.category, e.amount))
        .collect();
    assert_eq!(
        entries,
        [
            (Category::Send, SignedAmount::from_sat(-3_0000_0000)),
            (Category::Receive, SignedAmount::from_sat(3_0000_0000)),
        ]
    );
    // What crosses to front ends says the same: the payment is ours, the change ours and change.
    let wtx = s
        .alice
        .get_wallet_txs()
        .unwrap()
        .into_iter()
        .find(|w| w.tx.compute_txid() == txid)
        .unwrap();
    let paid = tx.output.iter().position(|o| o.value == btc(3)).unwrap();
    assert!(wtx.txout_is_mine.iter().all(|&mine| mine));
    let change: Vec<bool> = (0..tx.output.len()).map(|i| i != paid).collect();
    assert_eq!(wtx.txout_is_change, change);
}

/// A node that sends the wallet impossible amounts (outputs above 21 million BTC, or adding
/// up past it) is refused: bdk's sums would overflow, and a panic under the wallet's lock
/// disabled the wallet until a restart.
#[test]
fn impossible_amounts_from_the_chain_are_refused() {
    let s = setup();
    let to = s.bob.get_new_address().unwrap();
    let (tx, _) = pay_bob(&s);
    for values in [
        vec![Amount::MAX_MONEY + Amount::from_sat(1)],
        vec![Amount::MAX_MONEY, Amount::MAX_MONEY],
        vec![Amount::from_sat(u64::MAX), Amount::from_sat(u64::MAX)],
    ] {
        let mut forged = tx.clone();
        forged.output = values
            .iter()
            .map(|v| bitcoin::TxOut {
                value: *v,
                script_pubkey: to.script_pubkey(),
            })
            .collect();
        let refused = s.bob.transaction_added_to_mempool(&forged).unwrap_err();
        assert!(refused.to_string().contains("out of range"), "{refused}");
        // The wallet is untouched and still works.
        assert_eq!(s.bob.get_balances().unwrap(), Balances::default());
    }
    // A block whose transactions are not the ones its header commits to is refused too.
    let mut s = s;
    let mut block = s.chain.mine(&to.script_pubkey(), vec![tx.clone()]);
    block.txdata.swap(0, 1);
    let refused = s.bob.block_connected(&block, s.chain.height()).unwrap_err();
    assert!(refused.to_string().contains("merkle root"), "{refused}");
    assert_eq!(s.bob.get_balances().unwrap(), Balances::default());
    // So is a height where lock times turn into dates (bdk panics building a payment there).
    let refused = s
        .bob
        .block_connected(s.chain.tip(), 500_000_000)
        .unwrap_err();
    assert!(
        refused.to_string().contains("heights stay below"),
        "{refused}"
    );
    // Transactions each within the limit may not add up past it either: 8,785 of them
    // paying 21 million BTC each used to overflow the balances.
    let pay_all = |n: u32| {
        let mut all = tx.clone();
        all.input[0].previous_output.vout = 1_000 + n;
        all.output = vec![bitcoin::TxOut {
            value: Amount::MAX_MONEY,
            script_pubkey: to.script_pubkey(),
        }];
        all
    };
    s.bob.transaction_added_to_mempool(&pay_all(0)).unwrap();
    let refused = s.bob.transaction_added_to_mempool(&pay_all(1)).unwrap_err();
    assert!(
        refused.to_string().contains("more than 21 million BTC"),
        "{refused}"
    );
    assert_eq!(
        s.bob.get_balances().unwrap().untrusted_pending,
        Amount::MAX_MONEY
    );
}
