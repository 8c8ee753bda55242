//! The wallet process's interfaces (`Init`, `WalletLoader`, `Wallet`, and the
//! `ChainNotifications` it subscribes) against a chain of real blocks, used in-process and
//! through proxies over a real shared-memory connection.

mod util;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Chain, Init, InterfaceError};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;
use util::node::TestNode;
use util::{Watchdog, btc, scenario, stranger};
use wallet::{WalletInit, WalletLoaderImpl};

fn wallet_init(dir: &std::path::Path) -> Arc<dyn Init> {
    Arc::new(WalletInit::new(util::store(dir), "default".to_owned()))
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

#[test]
fn in_process() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    scenario::run(&wallet_init(dir.path()), &node);
}

#[test]
fn over_shared_memory() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let (proxy, _wallet_side, _node_side) = over_shm(wallet_init(dir.path()));
    scenario::run(&proxy, &node);
}

#[test]
fn transaction_changes_reach_a_subscriber_across_the_connection() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
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
    let _watchdog = Watchdog::new(Duration::from_secs(120));
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
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    for _ in 0..20 {
        node.mine(&stranger());
    }
    let loader =
        WalletLoaderImpl::start(Arc::new(util::store(dir.path())), node.clone(), "default")
            .unwrap();
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
    let loader =
        WalletLoaderImpl::start(Arc::new(util::store(dir.path())), node.clone(), "default")
            .unwrap();
    let wallet = loader.store().get_wallet("default").unwrap();
    assert_eq!(node.blocks_served(), 1);
    assert_eq!(wallet.get_balances().unwrap().immature, btc(200));
}

#[test]
fn payments_the_node_lacks_are_resubmitted_on_start() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let store = Arc::new(util::store(dir.path()));
    let loader = WalletLoaderImpl::start(Arc::clone(&store), node.clone(), "default").unwrap();
    let wallet = loader.store().get_wallet("default").unwrap();
    for _ in 0..101 {
        node.mine(&wallet.get_new_address().unwrap().script_pubkey());
    }
    let before = wallet.get_balances().unwrap();

    // Committed but never broadcast, as when the process dies between the two.
    let to = wallet.get_new_address().unwrap();
    let first = wallet
        .send_to_address(to.as_unchecked(), btc(1), util::MIN_RELAY, util::MIN_RELAY)
        .unwrap();
    let second = wallet
        .send_to_address(to.as_unchecked(), btc(1), util::MIN_RELAY, util::MIN_RELAY)
        .unwrap();
    assert!(node.mempool().is_empty());
    WalletLoaderImpl::start(Arc::clone(&store), node.clone(), "default").unwrap();
    let mempool: Vec<_> = node.mempool().iter().map(|tx| tx.compute_txid()).collect();
    assert_eq!(mempool, [first.compute_txid(), second.compute_txid()]);

    // One the node refuses is abandoned: its coins come back.
    node.mine(&stranger());
    let confirmed = wallet.get_balances().unwrap();
    assert!(
        confirmed.trusted > before.trusted,
        "block 2's coinbase matured"
    );
    let third = wallet
        .send_to_address(to.as_unchecked(), btc(1), util::MIN_RELAY, util::MIN_RELAY)
        .unwrap();
    node.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    WalletLoaderImpl::start(store, node.clone(), "default").unwrap();
    assert!(node.mempool().is_empty());
    assert_eq!(wallet.get_balances().unwrap(), confirmed);
    assert!(
        wallet
            .get_wallet_txs()
            .unwrap()
            .iter()
            .all(|t| t.tx.compute_txid() != third.compute_txid()),
        "the refused payment is gone"
    );
}

/// In connect mode the wallet binds a loader to the node's chain itself while the node asks
/// for one too, on a fresh datadir: loaders made at once must all come up, over the one
/// default wallet, not fail because another just created it.
#[test]
fn loaders_made_at_once_share_one_default_wallet() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let init = wallet_init(dir.path());
    let start = Arc::new(std::sync::Barrier::new(8));
    let loaders: Vec<_> = (0..8)
        .map(|_| {
            let (init, start) = (Arc::clone(&init), Arc::clone(&start));
            let chain: Arc<dyn Chain> = node.clone();
            std::thread::spawn(move || {
                start.wait();
                init.make_wallet_loader(chain)
            })
        })
        .collect();
    let mut names = Vec::new();
    for loader in loaders {
        let loader = loader.join().unwrap().expect("every loader comes up");
        names.push(loader.list_wallets().unwrap());
    }
    assert!(names.iter().all(|n| *n == ["default"]), "{names:?}");
}

/// A second loader takes the chain's notifications over from the first, which keeps serving
/// calls: every block reaches the wallets once, not once per loader.
#[test]
fn a_new_loader_takes_the_notifications_over() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let init = wallet_init(dir.path());
    let first = init.make_wallet_loader(node.clone()).unwrap();
    assert_eq!(node.subscriber_count(), 1);
    let _second = init.make_wallet_loader(node.clone()).unwrap();
    assert_eq!(
        node.subscriber_count(),
        1,
        "the first loader stopped listening"
    );
    let wallet = first.get_default_wallet().unwrap();
    let address = wallet.get_new_address().unwrap().assume_checked();
    node.mine(&address.script_pubkey());
    assert_eq!(wallet.get_balances().unwrap().immature, btc(50));
}
