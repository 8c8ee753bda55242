//! `send_to_address`: the requests it refuses, with which error, and chained payments.

mod util;

use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, Network};
use util::{MIN_RELAY, TestChain, btc, confirm, mine_to_wallet, store};
use wallet::{Wallet, WalletError, parse_address};

fn funded() -> (
    tempfile::TempDir,
    TestChain,
    Arc<Wallet>,
    Address<NetworkUnchecked>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let alice = store.create_wallet("alice").unwrap();
    let other = store.create_wallet("other").unwrap();
    let mut chain = TestChain::new();
    mine_to_wallet(&mut chain, &alice, 101);
    let to = other.get_new_address().unwrap().into_unchecked();
    (dir, chain, alice, to)
}

/// A payment whose write to the database fails is reported failed and leaves nothing behind:
/// not in memory, where the next successful write would have saved it (and the next start
/// broadcast it), nor on disk.
#[test]
fn a_payment_that_cannot_be_saved_leaves_no_trace() {
    let (dir, _chain, alice, to) = funded();
    let before = alice.get_balances().unwrap();
    alice.refuse_writes(true).unwrap();
    assert!(
        alice
            .send_to_address(&to, btc(1), MIN_RELAY, MIN_RELAY)
            .is_err()
    );
    assert_eq!(alice.get_balances().unwrap(), before, "its coins are free");
    alice.refuse_writes(false).unwrap();
    // The next write saves only its own change.
    alice.get_new_address().unwrap();
    assert_eq!(alice.get_balances().unwrap(), before);
    assert!(
        alice
            .list_transactions()
            .unwrap()
            .iter()
            .all(|t| t.amount.is_positive())
    );
    drop(alice);
    let reopened = store(dir.path()).load_wallet("alice").unwrap();
    assert_eq!(reopened.get_balances().unwrap(), before, "nor on disk");
}

#[test]
fn rejections_name_the_problem() {
    let (_dir, _chain, alice, to) = funded();
    let send = |address: &Address<NetworkUnchecked>, amount, rate| {
        alice.send_to_address(address, amount, rate, MIN_RELAY)
    };

    match parse_address("not-an-address") {
        Err(e @ WalletError::InvalidAddress { .. }) => {
            assert!(
                e.to_string()
                    .starts_with("invalid address \"not-an-address\""),
                "{e}"
            )
        }
        other => panic!("expected InvalidAddress, got {other:?}"),
    }
    // A bech32 address with a broken checksum.
    let text = to.assume_checked_ref().to_string();
    let mut broken = text.clone();
    broken.pop();
    broken.push(if text.ends_with('q') { 'p' } else { 'q' });
    assert!(matches!(
        parse_address(&broken),
        Err(WalletError::InvalidAddress { .. })
    ));

    // Mainnet and testnet addresses on a regtest wallet.
    for foreign in [
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
    ] {
        match send(&parse_address(foreign).unwrap(), btc(1), MIN_RELAY) {
            Err(WalletError::WrongNetwork { address, expected }) => {
                assert_eq!((address.as_str(), expected), (foreign, Network::Regtest))
            }
            other => panic!("{foreign}: expected WrongNetwork, got {other:?}"),
        }
    }

    // P2WPKH's dust threshold is 294 sat at Core's 3 sat/vB dust relay fee.
    match send(&to, Amount::from_sat(293), MIN_RELAY) {
        Err(WalletError::Dust { amount, threshold }) => {
            assert_eq!(
                (amount, threshold),
                (Amount::from_sat(293), Amount::from_sat(294))
            )
        }
        other => panic!("expected Dust, got {other:?}"),
    }
    assert!(matches!(
        send(&to, Amount::ZERO, MIN_RELAY),
        Err(WalletError::Dust { .. })
    ));

    // Values a peer may send that would overflow the builder's sums: refused before the
    // wallet's lock is taken (a panic under it used to disable the wallet until restart).
    assert!(matches!(
        send(&to, Amount::from_sat(u64::MAX), MIN_RELAY),
        Err(WalletError::AmountOutOfRange { .. })
    ));
    assert!(matches!(
        send(&to, Amount::MAX_MONEY + Amount::from_sat(1), MIN_RELAY),
        Err(WalletError::AmountOutOfRange { .. })
    ));
    for rate in [
        FeeRate::from_sat_per_kwu(u64::MAX),
        FeeRate::from_sat_per_kwu(100_000_000 / 4),
    ] {
        match send(&to, btc(1), rate) {
            Err(e @ WalletError::FeeRateTooHigh { .. }) => {
                assert!(e.to_string().contains("1 BTC/kvB"), "{e}")
            }
            other => panic!("expected FeeRateTooHigh, got {other:?}"),
        }
    }
    assert!(alice.get_balances().is_ok(), "the wallet still answers");

    // Below the node's minimum of 1 sat/vB.
    let low = FeeRate::from_sat_per_kwu(249);
    match send(&to, btc(1), low) {
        Err(e @ WalletError::FeeRateTooLow { .. }) => assert_eq!(
            e.to_string(),
            "fee rate 996 sat/kvB is below the minimum relay fee rate 1000 sat/kvB"
        ),
        other => panic!("expected FeeRateTooLow, got {other:?}"),
    }

    // Only block 1's coinbase has 101 confirmations: 50 BTC are spendable, not 100, even
    // though consensus would already allow spending block 2's coinbase.
    match send(&to, btc(60), MIN_RELAY) {
        Err(WalletError::InsufficientFunds { needed, available }) => {
            assert_eq!(available, btc(50));
            assert!(needed > btc(60), "{needed}");
        }
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    // Nor can the fee be paid when the whole balance is asked for.
    assert!(matches!(
        send(&to, btc(50), MIN_RELAY),
        Err(WalletError::InsufficientFunds { .. })
    ));

    // None of the refusals changed anything.
    assert_eq!(alice.get_balances().unwrap().trusted, btc(50));
    assert_eq!(alice.list_transactions().unwrap().len(), 101);
}

#[test]
fn chained_payments_spend_their_own_change() {
    let (_dir, mut chain, alice, to) = funded();
    let first = alice
        .send_to_address(&to, btc(10), MIN_RELAY, MIN_RELAY)
        .unwrap();
    // The only trusted coin now is the unconfirmed change; the second payment spends it.
    let second = alice
        .send_to_address(&to, btc(10), MIN_RELAY, MIN_RELAY)
        .unwrap();
    assert_eq!(second.input.len(), 1);
    assert_eq!(second.input[0].previous_output.txid, first.compute_txid());
    // Both are valid together in one block (the test chain checks every script).
    confirm(&mut chain, &[&alice], vec![first, second]);
    let trusted = alice.get_balances().unwrap().trusted;
    // 30 BTC of change left, plus block 2's matured 50, minus two small fees.
    assert!(
        trusted < btc(80) && trusted > btc(80) - Amount::from_sat(1000),
        "{trusted}"
    );
}

#[test]
fn untrusted_coins_are_not_spent() {
    let (_dir, mut chain, alice, _) = funded();
    let dir = tempfile::tempdir().unwrap();
    let bob = store(dir.path()).create_wallet("bob").unwrap();
    let tx = alice
        .send_to_address(
            bob.get_new_address().unwrap().as_unchecked(),
            btc(5),
            MIN_RELAY,
            MIN_RELAY,
        )
        .unwrap();
    bob.transaction_added_to_mempool(&tx).unwrap();
    let back = alice.get_new_address().unwrap().into_unchecked();
    match bob.send_to_address(&back, btc(1), MIN_RELAY, MIN_RELAY) {
        Err(WalletError::InsufficientFunds { available, .. }) => {
            assert_eq!(available, Amount::ZERO)
        }
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    // Once confirmed the coin is bob's to spend.
    for height in 1..=101 {
        bob.block_connected(chain.block(height), height).unwrap();
    }
    confirm(&mut chain, &[&bob], vec![tx]);
    assert!(
        bob.send_to_address(&back, btc(1), MIN_RELAY, MIN_RELAY)
            .is_ok()
    );
}

/// A payment that needs more inputs than a relayable transaction holds is refused before
/// its scripts are checked: libbitcoinconsensus parses the whole transaction for each input,
/// so checking thousands of them held the wallet's lock for as long as the square of its
/// size, for a transaction the node would not take.
#[test]
fn a_payment_too_large_to_relay_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let alice = store.create_wallet("alice").unwrap();
    let mut chain = TestChain::new();
    let address = alice.get_new_address().unwrap();
    let split = chain.mine_split(&address.script_pubkey(), 1_600);
    alice.block_connected(&split, chain.height()).unwrap();
    for _ in 0..100 {
        let block = chain.mine(&util::stranger(), Vec::new());
        alice.block_connected(&block, chain.height()).unwrap();
    }
    assert_eq!(alice.get_balances().unwrap().trusted, btc(50));
    let to = store
        .create_wallet("bob")
        .unwrap()
        .get_new_address()
        .unwrap()
        .into_unchecked();
    match alice.send_to_address(&to, btc(49), MIN_RELAY, MIN_RELAY) {
        Err(WalletError::CreateTransaction { reason }) => {
            assert!(reason.starts_with("transaction too large"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        alice.get_balances().unwrap().trusted,
        btc(50),
        "nothing spent"
    );
    // A payment a relayable transaction holds still goes.
    alice
        .send_to_address(&to, btc(1), MIN_RELAY, MIN_RELAY)
        .unwrap();
}
