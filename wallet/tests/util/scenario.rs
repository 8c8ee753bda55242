//! The end-to-end scenario through the wallet's interfaces, shared by the tests
//! that reach the wallet in-process, over a connection, and in its own process.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bitcoin::{Amount, FeeRate};
use interfaces::{Balances, Chain, ErrorCode, Init};

use super::node::TestNode;
use super::{btc, stranger};

/// The scenario through the interfaces: mine 101 blocks to the default wallet,
/// pay a second wallet, confirm, check both; then a refused broadcast and a reorg.
pub(crate) fn run(init: &Arc<dyn Init>, node: &Arc<TestNode>) {
    // Blocks mined before the wallet starts are caught up on start.
    node.mine(&stranger());
    let chain: Arc<dyn Chain> = node.clone();
    let loader = init.make_wallet_loader(chain).expect("wallet loader");
    assert_eq!(loader.list_wallets().unwrap(), ["default"]);
    let alice = loader.get_default_wallet().unwrap();
    assert_eq!(alice.get_wallet_name().unwrap(), "default");

    for _ in 0..101 {
        let address = alice.get_new_address().unwrap().assume_checked();
        node.mine(&address.script_pubkey());
    }
    assert_eq!(
        alice.get_balances().unwrap(),
        Balances {
            trusted: btc(50),
            untrusted_pending: Amount::ZERO,
            immature: btc(5000)
        }
    );

    let bob = loader.create_wallet("bob").unwrap();
    assert_eq!(loader.list_wallets().unwrap(), ["default", "bob"]);
    let to = bob.get_new_address().unwrap();
    // No fee rate: the node has no estimate, so the regtest fallback of 20 sat/vB.
    let txid = alice.send_to_address(&to, btc(10), None).unwrap();
    let mempool = node.mempool();
    assert_eq!(mempool.len(), 1);
    assert_eq!(mempool[0].compute_txid(), txid);
    let fee = node.with_chain(|c| c.fee(&mempool[0]));
    assert!(
        fee >= FeeRate::from_sat_per_vb(20)
            .unwrap()
            .fee_wu(mempool[0].weight())
            .unwrap()
    );
    // Bob heard of it from the node's mempool notification.
    assert_eq!(bob.get_balances().unwrap().untrusted_pending, btc(10));

    node.mine(&stranger());
    assert_eq!(
        bob.get_balances().unwrap(),
        Balances {
            trusted: btc(10),
            untrusted_pending: Amount::ZERO,
            immature: Amount::ZERO
        }
    );
    let alice_after = alice.get_balances().unwrap();
    assert_eq!(alice_after.trusted, btc(90) - fee);
    let history = bob.list_transactions().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].tx.compute_txid(), txid);
    assert_eq!(history[0].credit, btc(10));
    assert_eq!(history[0].block.map(|b| b.height), Some(103));

    // A node that refuses: the error comes back unchanged and the coins are free again.
    node.refuse.store(true, Ordering::SeqCst);
    let err = alice
        .send_to_address(&to, btc(1), Some(FeeRate::from_sat_per_vb(2).unwrap()))
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::VERIFY_REJECTED), "{err}");
    assert_eq!(alice.get_balances().unwrap(), alice_after);
    node.refuse.store(false, Ordering::SeqCst);

    // Wallet errors arrive with Core's codes.
    let err = alice.send_to_address(&to, btc(1_000), None).unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::WALLET_INSUFFICIENT_FUNDS),
        "{err}"
    );
    let err = alice
        .send_to_address(&to, Amount::from_sat(100), None)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_PARAMETER), "{err}");
    let below = FeeRate::from_sat_per_kwu(100);
    let err = alice.send_to_address(&to, btc(1), Some(below)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_PARAMETER), "{err}");
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        .parse()
        .unwrap();
    let err = alice.send_to_address(&mainnet, btc(1), None).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_ADDRESS_OR_KEY), "{err}");
    assert_eq!(
        loader.create_wallet("bob").err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_ALREADY_EXISTS)
    );
    assert_eq!(
        loader.load_wallet("nobody").err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );
    assert_eq!(
        loader.get_wallet("nobody").err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );

    // The node reorganises the confirming block away: balances move back at once.
    node.disconnect_to(102);
    assert_eq!(
        bob.get_balances().unwrap(),
        Balances {
            trusted: Amount::ZERO,
            untrusted_pending: btc(10),
            immature: Amount::ZERO
        }
    );
    assert_eq!(history_height(&bob), None);

    // Unloading: a handle still held refuses every call, and the database stays locked
    // until the last handle goes; loaded again, the wallet is where it was.
    assert_eq!(
        loader.unload_wallet("nobody").err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );
    loader.unload_wallet("bob").unwrap();
    assert_eq!(loader.list_wallets().unwrap(), ["default"]);
    assert_eq!(
        bob.get_balances().err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );
    assert_eq!(
        loader.load_wallet("bob").err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_ERROR)
    );
    drop(bob);
    // A proxy dropped is released asynchronously: the lock goes soon after, not at once.
    // (The caller's watchdog bounds the wait.)
    let bob = loop {
        match loader.load_wallet("bob") {
            Ok(bob) => break bob,
            Err(e) if e.code() == Some(ErrorCode::WALLET_ERROR) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(bob.get_balances().unwrap().untrusted_pending, btc(10));
}

fn history_height(wallet: &Arc<dyn interfaces::Wallet>) -> Option<u32> {
    wallet.list_transactions().unwrap()[0]
        .block
        .map(|b| b.height)
}
