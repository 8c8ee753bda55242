//! The wallet process's interfaces (`Init`, `WalletLoader`, `Wallet`, and the
//! `ChainNotifications` it subscribes) against a chain of real blocks, used in-process and
//! through proxies over a real shared-memory connection.

mod util;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use bitcoin::{Amount, FeeRate, Network};
use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Balances, Chain, ErrorCode, Init, InterfaceError};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;
use util::node::TestNode;
use util::{btc, stranger};
use wallet::{WalletInit, WalletLoaderImpl};

/// Aborts the process if a test hangs (a connection that never answers).
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

impl Watchdog {
    fn new() -> Self {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) =
                wait.recv_timeout(Duration::from_secs(120))
            {
                eprintln!("watchdog: test still running after 120 s; aborting");
                std::process::abort();
            }
        });
        Watchdog(done)
    }
}

fn wallet_init(dir: &std::path::Path) -> Arc<dyn Init> {
    Arc::new(WalletInit::new(
        dir.to_owned(),
        Network::Regtest,
        "default".to_owned(),
    ))
}

/// `init` behind a pair of sessions on real shm rings: returns the proxy the node side
/// uses and both sessions (wallet side first).
fn over_shm(init: Arc<dyn Init>) -> (Arc<dyn Init>, Session, Session) {
    let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(init));
    let config = SessionConfig {
        name: String::from("wallet-test"),
        ..SessionConfig::default()
    };
    let (wallet_side, node_side) =
        Session::pair(1 << 18, WaitPolicy::default(), Some(server), None, &config)
            .expect("session pair");
    let proxy: Arc<dyn Init> = Arc::new(InitProxy::new(node_side.bootstrap()));
    (proxy, wallet_side, node_side)
}

/// The scenario through the interfaces: mine 101 blocks to the default wallet,
/// pay a second wallet, confirm, check both; then a refused broadcast and a reorg.
fn scenario(init: &Arc<dyn Init>, node: &Arc<TestNode>) {
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
}

fn history_height(wallet: &Arc<dyn interfaces::Wallet>) -> Option<u32> {
    wallet.list_transactions().unwrap()[0]
        .block
        .map(|b| b.height)
}

#[test]
fn in_process() {
    let _watchdog = Watchdog::new();
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    scenario(&wallet_init(dir.path()), &node);
}

#[test]
fn over_shared_memory() {
    let _watchdog = Watchdog::new();
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let (proxy, _wallet_side, _node_side) = over_shm(wallet_init(dir.path()));
    scenario(&proxy, &node);
}

#[test]
fn transaction_changes_reach_a_subscriber_across_the_connection() {
    let _watchdog = Watchdog::new();
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let (proxy, _wallet_side, _node_side) = over_shm(wallet_init(dir.path()));
    let chain: Arc<dyn Chain> = node.clone();
    let loader = proxy.make_wallet_loader(chain).unwrap();
    let wallet = loader.get_default_wallet().unwrap();
    let (tx, rx) = mpsc::channel();
    let handler = wallet
        .handle_transaction_changed(Arc::new(move |txid, change| {
            tx.send((*txid, change)).unwrap();
        }))
        .unwrap();
    let address = wallet.get_new_address().unwrap().assume_checked();
    let block = node.mine(&address.script_pubkey());
    let coinbase = block.txdata[0].compute_txid();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        (coinbase, interfaces::ChangeType::New)
    );
    node.disconnect_to(0);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        (coinbase, interfaces::ChangeType::Deleted)
    );
    handler.disconnect().unwrap();
    node.mine(&address.script_pubkey());
    assert_eq!(wallet.get_balances().unwrap().immature, btc(50));
    assert!(rx.try_recv().is_err(), "a disconnected handler still hears");
}

#[test]
fn a_dead_node_is_reported_as_disconnected() {
    let _watchdog = Watchdog::new();
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let (proxy, wallet_side, _node_side) = over_shm(wallet_init(dir.path()));
    let chain: Arc<dyn Chain> = node.clone();
    let loader = proxy.make_wallet_loader(chain).unwrap();
    let wallet = loader.get_default_wallet().unwrap();
    wallet_side.close();
    assert_eq!(wallet.get_balances(), Err(InterfaceError::Disconnected));
}

#[test]
fn a_new_wallet_starts_at_the_chain_tip() {
    let _watchdog = Watchdog::new();
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    for _ in 0..20 {
        node.mine(&stranger());
    }
    let loader = WalletLoaderImpl::start(util::store(dir.path()), node.clone(), "default").unwrap();
    let wallet = loader.store().get_wallet("default").unwrap();
    // Fresh keys cannot be in old blocks: none were fetched.
    assert_eq!(node.blocks_served(), 0);
    assert_eq!(wallet.last_block().unwrap().height, 20);
    assert_eq!(
        wallet.locator().unwrap().len(),
        2,
        "birth block and genesis"
    );

    // The birth block itself is reorganised away; the wallet follows without a rescan.
    node.disconnect_to(18);
    assert_eq!(wallet.last_block().unwrap().height, 18);
    let address = wallet.get_new_address().unwrap();
    for _ in 0..3 {
        node.mine(&address.script_pubkey());
    }
    assert_eq!(wallet.last_block().unwrap().height, 21);
    assert_eq!(wallet.get_balances().unwrap().immature, btc(150));
    assert_eq!(node.blocks_served(), 0);

    // A restart catches up the blocks it missed, from where it was.
    drop((wallet, loader));
    node.mine(&address.script_pubkey());
    let loader = WalletLoaderImpl::start(util::store(dir.path()), node.clone(), "default").unwrap();
    let wallet = loader.store().get_wallet("default").unwrap();
    assert_eq!(node.blocks_served(), 1);
    assert_eq!(wallet.get_balances().unwrap().immature, btc(200));
}
