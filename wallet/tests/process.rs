//! `bitcoin-wallet` in its own process, reached the two ways Bitcoin Core's multiprocess
//! wallet is: spawned by the node with `-ipcfd`, and connecting to a listening node with
//! `-ipcconnect`, over real shared-memory connections.

mod util;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Chain, Init};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::{Config, Endpoint, Listener};
use util::node::{TestNode, TestNodeInit};
use util::{Watchdog, scenario};

const WALLET: &str = env!("CARGO_BIN_EXE_bitcoin-wallet");

/// The wallet's `Init` on the far side of `session`.
fn init_of(session: &Session) -> Arc<dyn Init> {
    Arc::new(InitProxy::new(session.bootstrap()))
}

fn serve_node(connection: ipc_shm::Connection) -> Session {
    serve_node_with(connection, None)
}

/// A session for the node's side, serving `init` as its bootstrap object if given.
fn serve_node_with(connection: ipc_shm::Connection, init: Option<Arc<dyn Init>>) -> Session {
    let config = SessionConfig {
        name: String::from("test-node"),
        ..SessionConfig::default()
    };
    let bootstrap = init.map(|init| Arc::new(InitServer::new(init)) as Arc<dyn Dispatch>);
    Session::new(connection, bootstrap, &config)
}

#[test]
fn spawned_with_ipcfd_serves_the_node_and_exits_with_it() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let node = TestNode::new();
    let chain: Arc<dyn Chain> = node.clone();

    let (mut child, connection) =
        ipc_shm::spawn(WALLET, [datadir.as_str()], &Config::new("test-node")).unwrap();
    let session = serve_node(connection);
    let init = init_of(&session);
    scenario::run(&init, &node);
    let before = init
        .make_wallet_loader(Arc::clone(&chain))
        .unwrap()
        .get_default_wallet()
        .unwrap()
        .get_balances()
        .unwrap();

    // The node goes away: the wallet process exits on its own, promptly.
    drop(init);
    session.close();
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the wallet exits when its node goes away");
    assert!(status.success(), "{status}");

    // A new wallet process over the same datadir has the same balances.
    let (mut child, connection) =
        ipc_shm::spawn(WALLET, [datadir.as_str()], &Config::new("test-node")).unwrap();
    let session = serve_node(connection);
    let loader = init_of(&session).make_wallet_loader(chain).unwrap();
    assert_eq!(
        loader.get_default_wallet().unwrap().get_balances().unwrap(),
        before
    );
    session.close();
    assert!(
        child
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .is_some()
    );
}

#[test]
fn connecting_with_ipcconnect_survives_a_node_restart() {
    reconnects_over("shm");
}

#[test]
fn connecting_over_the_socket_transport() {
    reconnects_over("socket");
}

/// A child process, killed and reaped on drop unless the test took it back.
struct Reaped(Option<std::process::Child>);

impl Reaped {
    fn take(&mut self) -> std::process::Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A wallet started with `-ipcconnect` and `-transport`: served, dropped, reconnected.
fn reconnects_over(transport: &str) {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::new();
    let chain: Arc<dyn Chain> = node.clone();
    let socket = dir.path().join("node.sock");
    let listener = Listener::bind(&Endpoint::unix(&socket), &Config::new("test-node")).unwrap();

    // Killed and reaped if the test fails first: a wallet in its reconnect loop never exits.
    let mut child = Reaped(Some(
        Command::new(WALLET)
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-ipcconnect=unix:{}", socket.display()))
            .arg(format!("-transport={transport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));

    let (subscribed, wallet_subscribed) = mpsc::channel();
    *node.on_subscribe.lock().unwrap() = Some(subscribed);
    let node_init: Arc<dyn Init> = Arc::new(TestNodeInit(node.clone()));
    let connection = listener.accept().unwrap();
    assert_eq!(connection.transport().to_string(), transport);
    let first = serve_node_with(connection, Some(Arc::clone(&node_init)));
    // The wallet asks for the node's chain and subscribes to it by itself.
    wallet_subscribed
        .recv_timeout(Duration::from_secs(30))
        .unwrap();
    let wallet = init_of(&first)
        .make_wallet_loader(Arc::clone(&chain))
        .unwrap()
        .get_default_wallet()
        .unwrap();
    let address = wallet.get_new_address().unwrap().assume_checked();
    node.mine(&address.script_pubkey());
    assert_eq!(wallet.get_balances().unwrap().immature, util::btc(50));

    // The node "restarts": the connection drops, the wallet comes back by itself.
    while wallet_subscribed.try_recv().is_ok() {} // our own loader's subscription
    drop(wallet);
    first.close();
    node.mine(&address.script_pubkey()); // missed while away
    let second = serve_node_with(listener.accept().unwrap(), Some(node_init));
    wallet_subscribed
        .recv_timeout(Duration::from_secs(30))
        .unwrap();
    let wallet = init_of(&second)
        .make_wallet_loader(chain)
        .unwrap()
        .get_default_wallet()
        .unwrap();
    assert_eq!(wallet.get_balances().unwrap().immature, util::btc(100));
    assert_ne!(wallet.get_new_address().unwrap().assume_checked(), address);

    drop(wallet);
    let mut child = child.take();
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("went away; reconnecting"), "{stderr}");
}

/// What the paying thread saw before the wallet process died.
enum Seen {
    Address(String),
    Paid(bitcoin::Txid),
}

#[test]
fn kill_9_while_paying_over_ipc_loses_and_reuses_nothing() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let node = TestNode::new();
    let chain: Arc<dyn Chain> = node.clone();
    let start = || {
        let (child, connection) =
            ipc_shm::spawn(WALLET, [datadir.as_str()], &Config::new("test-node")).unwrap();
        let session = serve_node(connection);
        let wallet = init_of(&session)
            .make_wallet_loader(Arc::clone(&chain))
            .unwrap()
            .get_default_wallet()
            .unwrap();
        (child, session, wallet)
    };

    let (mut child, session, wallet) = start();
    for _ in 0..101 {
        let address = wallet.get_new_address().unwrap().assume_checked();
        node.mine(&address.script_pubkey());
    }
    drop(wallet);
    session.close();
    child
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("wallet exits");

    let mut addresses = std::collections::HashSet::new();
    let mut paid = Vec::new();
    for round in 0..4 {
        let (mut child, session, wallet) = start();
        let (events, seen) = mpsc::channel();
        let payer = std::thread::spawn(move || {
            while let Ok(address) = wallet.get_new_address() {
                let _ = events.send(Seen::Address(address.assume_checked_ref().to_string()));
                match wallet.send_to_address(&address, util::btc(1), None) {
                    Ok(txid) => {
                        let _ = events.send(Seen::Paid(txid));
                    }
                    Err(_) => return,
                }
            }
        });
        // SIGKILL after a few payments, in the middle of the next one.
        let mut payments = 0;
        while payments < 2 + round {
            match seen.recv().unwrap() {
                Seen::Address(a) => assert!(addresses.insert(a), "address handed out twice"),
                Seen::Paid(txid) => {
                    paid.push(txid);
                    payments += 1;
                }
            }
        }
        let status = Command::new("kill")
            .args(["-9", &child.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        payer.join().unwrap();
        for event in seen.try_iter() {
            match event {
                Seen::Address(a) => assert!(addresses.insert(a), "address handed out twice"),
                Seen::Paid(txid) => paid.push(txid),
            }
        }
        child
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("killed");
        drop(session);
    }

    // Restarted, the wallet knows every payment it reported; the node has them all (any
    // committed but not broadcast before the kill was resubmitted on start), and they
    // confirm together in one block whose every script and input is checked.
    let (mut child, session, wallet) = start();
    let known: std::collections::HashSet<_> = wallet
        .list_transactions()
        .unwrap()
        .iter()
        .map(|t| t.tx.compute_txid())
        .collect();
    assert!(
        paid.iter().all(|txid| known.contains(txid)),
        "a reported payment was lost"
    );
    let in_mempool = node.mempool().len();
    assert!(
        in_mempool >= paid.len(),
        "{in_mempool} in mempool, {} reported",
        paid.len()
    );
    node.mine(&util::stranger());
    let balances = wallet.get_balances().unwrap();
    assert_eq!(balances.untrusted_pending, bitcoin::Amount::ZERO);
    assert!(
        wallet
            .list_transactions()
            .unwrap()
            .iter()
            .all(|t| t.block.is_some())
    );
    // Every payment went to the wallet itself: only fees left it. 50 BTC of block 1,
    // plus 50 matured at 102.
    let fees: bitcoin::Amount = wallet
        .list_transactions()
        .unwrap()
        .iter()
        .filter_map(|t| t.fee)
        .sum();
    assert_eq!(balances.trusted, util::btc(100) - fees);
    drop(wallet);
    session.close();
    child
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("wallet exits");
}
