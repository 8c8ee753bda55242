//! `bitcoin-wallet` end to end with the real node: the node's chain state and IPC serving
//! (the code `bitcoin-node` runs, linked into this test so that a test can build a
//! competing branch) listening as `-ipcbind=unix` does, and the real `bitcoin-wallet`
//! binary connected to it with `-ipcconnect`, reached through `Node::wallet_loader` as a
//! front end reaches it. Reorganisation, restart, `kill -9` while paying, and the payments
//! the wallet refuses.

mod util;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bitcoin::address::NetworkUnchecked;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    Address, Amount, Block, BlockHash, FeeRate, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness, absolute, transaction,
};
use interfaces::{ErrorCode, Node, Wallet, WalletLoader};
use node::chainstate::ChainState;
use node::ipc::Clients;
use node::service::NodeContext;
use node::validation;
use util::{Watchdog, btc, stranger};

const WALLET: &str = env!("CARGO_BIN_EXE_bitcoin-wallet");

/// How long the wallet process may take to attach, or to exit once killed.
const ATTACH: Duration = Duration::from_secs(30);

/// The node (in this process) and the wallet process attached to it.
struct Harness {
    /// Serves the socket as long as the harness lives.
    _bound: node::ipc::IpcBind,
    dir: tempfile::TempDir,
    ctx: Arc<NodeContext>,
    wallet: Option<Child>,
}

impl Harness {
    /// A node on a fresh datadir listening on `DIR/regtest/node.sock`, and a wallet process
    /// connected to it.
    fn start() -> Harness {
        let dir = tempfile::tempdir().expect("datadir");
        let chain_dir = dir.path().join("regtest");
        std::fs::create_dir_all(&chain_dir).expect("chain dir");
        let ctx = NodeContext::new(ChainState::open(&chain_dir).expect("chain state"))
            .expect("node context");
        let config = node::ipc::transport_config(ipc_shm::Transport::Shm);
        let bound = node::ipc::serve_ipcbind(
            "unix",
            &chain_dir,
            &ctx,
            &config,
            &Arc::new(Clients::default()),
        )
        .expect("-ipcbind=unix");
        let mut harness = Harness {
            _bound: bound,
            dir,
            ctx,
            wallet: None,
        };
        harness.start_wallet();
        harness
    }

    fn datadir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Starts `bitcoin-wallet -ipcconnect=unix` and waits until the node hands out its
    /// wallets.
    fn start_wallet(&mut self) {
        self.start_wallet_with(&[]);
    }

    /// [`Harness::start_wallet`] with more options.
    fn start_wallet_with(&mut self, options: &[&str]) {
        assert!(self.wallet.is_none(), "a wallet process is running");
        let child = Command::new(WALLET)
            .arg(format!("-datadir={}", self.datadir().display()))
            .arg("-ipcconnect=unix")
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bitcoin-wallet");
        self.wallet = Some(child);
        assert!(
            self.ctx.wait_for_wallet_loader(true, ATTACH).is_some(),
            "bitcoin-wallet did not attach within {ATTACH:?}"
        );
    }

    /// Kills the wallet process with `signal` and waits until it is reaped and the node has
    /// let go of it; returns how long after the kill the node had let go.
    fn kill_wallet(&mut self, signal: &str) -> Duration {
        let mut child = self.wallet.take().expect("a wallet process");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        let killed = std::time::Instant::now();
        assert!(status.success());
        child.wait().expect("reap bitcoin-wallet");
        assert!(
            self.ctx.wait_for_wallet_loader(false, ATTACH).is_none(),
            "the node still hands out the dead wallet"
        );
        killed.elapsed()
    }

    /// Whether the node has the transaction, in its mempool or in a block.
    fn node_has(&self, txid: &Txid) -> bool {
        let chain = self.ctx.lock_chain().expect("chain");
        chain
            .transaction(txid)
            .expect("transaction lookup")
            .is_some()
    }

    fn loader(&self) -> Arc<dyn WalletLoader> {
        self.ctx.wallet_loader().expect("a wallet is attached")
    }

    fn default_wallet(&self) -> Arc<dyn Wallet> {
        self.loader().get_default_wallet().expect("default wallet")
    }

    /// Mines `n` blocks paying `script` through the node's own mining path.
    fn mine(&self, n: u32, script: &ScriptBuf) -> Vec<BlockHash> {
        self.ctx
            .lock_chain()
            .expect("chain")
            .generate_to_script(n, script)
            .expect("mine")
    }

    fn mempool_has(&self, txid: &Txid) -> bool {
        self.ctx
            .lock_chain()
            .expect("chain")
            .mempool()
            .contains(txid)
    }

    /// Builds `n` blocks on the active block at `fork` paying `stranger()`, with no
    /// transactions, and hands them to the node: with more work than the active chain they
    /// make it reorganise.
    fn reorg_from(&self, fork: u32, n: u32) {
        let mut chain = self.ctx.lock_chain().expect("chain");
        let mut parent = chain.block_hash(fork).expect("fork block");
        let mut time = chain.tip().time;
        for height in fork + 1..=fork + n {
            time += 1;
            let block = empty_block(parent, height, time);
            parent = block.block_hash();
            chain
                .process_block(block)
                .expect("a valid side-branch block");
        }
    }

    fn address(wallet: &dyn Wallet) -> Address<NetworkUnchecked> {
        wallet.get_new_address().expect("address")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut child) = self.wallet.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A block on `parent` at `height` holding only a coinbase that pays the subsidy to
/// `stranger()` (tagged with the height, so sibling branches differ), its proof of work
/// ground against the regtest target.
fn empty_block(parent: BlockHash, height: u32, time: u32) -> Block {
    let script_sig = Builder::from(validation::bip34_prefix(height).to_bytes())
        .push_slice(b"side")
        .into_script();
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: validation::block_subsidy(height),
            script_pubkey: stranger(),
        }],
    };
    let mut block = Block {
        header: Header {
            version: Version::TWO,
            prev_blockhash: parent,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: validation::regtest_bits(),
            nonce: 0,
        },
        txdata: vec![coinbase],
    };
    block.header.merkle_root = block.compute_merkle_root().expect("merkle root");
    node::mining::grind(block)
}

fn script_of(address: &Address<NetworkUnchecked>) -> ScriptBuf {
    address.clone().assume_checked().script_pubkey()
}

/// The scenario, then a reorganisation that takes the payment's block away: the
/// payment goes back to the node's mempool and the payee's balance back to pending; the
/// next block confirms it again.
#[test]
fn a_reorg_moves_balances_back_and_the_next_block_confirms_again() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    let h = Harness::start();
    let ours = h.default_wallet();
    h.mine(101, &script_of(&Harness::address(&*ours)));
    assert_eq!(ours.get_balances().unwrap().trusted, btc(50));

    let theirs = h.loader().create_wallet("w2").unwrap();
    let txid = ours
        .send_to_address(&Harness::address(&*theirs), btc(1), None)
        .unwrap();
    assert!(h.mempool_has(&txid));
    h.mine(1, &stranger());
    assert_eq!(theirs.get_balances().unwrap().trusted, btc(1));

    // Two empty blocks on block 101 outweigh block 102, which held the payment.
    h.reorg_from(101, 2);
    assert!(h.mempool_has(&txid), "the payment is back in the mempool");
    let balances = theirs.get_balances().unwrap();
    assert_eq!(balances.trusted, Amount::ZERO);
    assert_eq!(balances.untrusted_pending, btc(1));
    let history = theirs.list_transactions().unwrap();
    let entry = history
        .iter()
        .find(|t| t.tx.compute_txid() == txid)
        .expect("the payment is still listed");
    assert!(
        entry.block.is_none(),
        "listed as unconfirmed after the reorg"
    );

    h.mine(1, &stranger());
    assert!(!h.mempool_has(&txid));
    let balances = theirs.get_balances().unwrap();
    assert_eq!(
        (balances.trusted, balances.untrusted_pending),
        (btc(1), Amount::ZERO)
    );
    // Our coinbases of blocks 1..=4 are mature at height 104: 200 BTC, less what we paid.
    let spent = btc(1)
        + ours
            .list_transactions()
            .unwrap()
            .iter()
            .filter_map(|t| t.fee)
            .sum::<Amount>();
    assert_eq!(ours.get_balances().unwrap().trusted, btc(200) - spent);
}

/// A wallet process stopped and started again has the same balances and history, and
/// never hands out an address twice.
#[test]
fn a_restarted_wallet_has_the_same_balances_history_and_fresh_addresses() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    let mut h = Harness::start();
    let ours = h.default_wallet();
    let mut addresses = HashSet::new();
    let mine_to = Harness::address(&*ours);
    addresses.insert(mine_to.clone());
    h.mine(101, &script_of(&mine_to));
    let theirs = h.loader().create_wallet("w2").unwrap();
    let pay_to = Harness::address(&*theirs);
    addresses.insert(pay_to.clone());
    ours.send_to_address(&pay_to, btc(2), None).unwrap();
    h.mine(1, &stranger());
    let before = (
        ours.get_balances().unwrap(),
        ours.list_transactions().unwrap(),
        theirs.get_balances().unwrap(),
    );
    drop((ours, theirs));

    h.kill_wallet("-TERM");
    h.start_wallet();
    let ours = h.default_wallet();
    // The second wallet is not loaded at start; it comes back as it was.
    let theirs = h.loader().load_wallet("w2").unwrap();
    let after = (
        ours.get_balances().unwrap(),
        ours.list_transactions().unwrap(),
        theirs.get_balances().unwrap(),
    );
    assert_eq!(before.0, after.0, "balances");
    assert_eq!(before.2, after.2, "the second wallet's balances");
    assert_eq!(before.1.len(), after.1.len(), "history length");
    for (b, a) in before.1.iter().zip(&after.1) {
        assert_eq!(b, a, "the history changed across the restart");
    }
    for wallet in [&ours, &theirs] {
        assert!(
            addresses.insert(Harness::address(&**wallet)),
            "an address was handed out twice"
        );
    }
}

/// `-wallet=NAME` chooses the default wallet: created on the first start, loaded on later
/// ones, and the one front ends get without naming a wallet.
#[test]
fn the_wallet_option_chooses_the_default_wallet() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    let mut h = Harness::start();
    let default_address = Harness::address(&*h.default_wallet());
    h.kill_wallet("-TERM");
    for _ in 0..2 {
        h.start_wallet_with(&["-wallet=alice"]);
        let alice = h.default_wallet();
        assert_eq!(alice.get_wallet_name().unwrap(), "alice");
        assert_ne!(Harness::address(&*alice), default_address);
        assert!(
            h.loader()
                .list_wallets()
                .unwrap()
                .contains(&"alice".to_owned())
        );
        h.kill_wallet("-TERM");
    }
}

/// What a payment can be refused for, each with Bitcoin Core's error code, and nothing
/// reaches the node.
#[test]
fn refused_payments_say_why_with_cores_codes() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    let h = Harness::start();
    let ours = h.default_wallet();
    h.mine(101, &script_of(&Harness::address(&*ours)));
    let to = Harness::address(&*ours);
    let code = |result: Result<Txid, interfaces::InterfaceError>| {
        result.expect_err("refused").code().expect("a remote error")
    };
    assert_eq!(
        code(ours.send_to_address(&to, btc(51), None)),
        ErrorCode::WALLET_INSUFFICIENT_FUNDS
    );
    let mainnet: Address<NetworkUnchecked> = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        .parse()
        .unwrap();
    assert_eq!(
        code(ours.send_to_address(&mainnet, btc(1), None)),
        ErrorCode::INVALID_ADDRESS_OR_KEY
    );
    assert_eq!(
        code(ours.send_to_address(&to, Amount::from_sat(100), None)),
        ErrorCode::INVALID_PARAMETER,
        "dust"
    );
    assert_eq!(
        code(ours.send_to_address(&to, btc(1), Some(FeeRate::from_sat_per_kwu(1)))),
        ErrorCode::INVALID_PARAMETER,
        "a fee rate below the node's minimum"
    );
    let info = h.ctx.get_mempool_info().unwrap();
    assert_eq!(info.size, 0, "nothing reached the node");
    assert_eq!(ours.get_balances().unwrap().trusted, btc(50));
}

/// What the payer thread reports.
enum Seen {
    Address(Address<NetworkUnchecked>),
    Paid(Txid),
}

/// `kill -9` of the wallet process in the middle of paying, again and again: after a
/// restart every payment it reported is known, nothing was lost or handed out twice, and
/// once mined the balance is exactly what the fees leave.
#[test]
fn kill_9_while_paying_loses_nothing_and_reuses_no_address() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    let mut h = Harness::start();
    let ours = h.default_wallet();
    let mut addresses = HashSet::new();
    let mine_to = Harness::address(&*ours);
    addresses.insert(mine_to.clone());
    h.mine(101, &script_of(&mine_to));
    drop(ours);

    let mut paid = Vec::new();
    let mut slowest_notice = Duration::ZERO;
    for round in 0..50 {
        let wallet = h.default_wallet();
        let (events, seen) = mpsc::channel();
        let payer = std::thread::spawn(move || {
            while let Ok(address) = wallet.get_new_address() {
                let _ = events.send(Seen::Address(address.clone()));
                match wallet.send_to_address(&address, btc(1), None) {
                    Ok(txid) => {
                        let _ = events.send(Seen::Paid(txid));
                    }
                    Err(_) => return,
                }
            }
        });
        let mut note = |event: Seen, paid: &mut Vec<Txid>| match event {
            Seen::Address(a) => assert!(addresses.insert(a), "address handed out twice"),
            Seen::Paid(txid) => paid.push(txid),
        };
        // SIGKILL after a few payments, in the middle of the next one.
        let target = paid.len() + 1 + round % 3;
        while paid.len() < target {
            note(seen.recv().expect("the payer reports"), &mut paid);
        }
        slowest_notice = slowest_notice.max(h.kill_wallet("-KILL"));
        payer.join().expect("payer");
        for event in seen.try_iter() {
            note(event, &mut paid);
        }
        h.start_wallet();
        // Confirm now and then, so unconfirmed chains stay short and blocks arrive mid-loop.
        if round % 10 == 9 {
            h.mine(1, &stranger());
        }
    }
    eprintln!(
        "50 kills of bitcoin-wallet: {} payments reported; the node let go of the dead wallet \
         within {slowest_notice:?} at worst",
        paid.len()
    );

    // Restarted, the wallet knows every payment it reported, and the node has them all
    // (one committed but not broadcast before a kill was resubmitted at start).
    let wallet = h.default_wallet();
    let known: HashSet<Txid> = wallet
        .list_transactions()
        .unwrap()
        .iter()
        .map(|t| t.tx.compute_txid())
        .collect();
    for txid in &paid {
        assert!(known.contains(txid), "reported payment {txid} was lost");
        assert!(
            h.node_has(txid),
            "reported payment {txid} is not at the node"
        );
    }
    h.mine(1, &stranger());
    let balances = wallet.get_balances().unwrap();
    assert_eq!(balances.untrusted_pending, Amount::ZERO);
    // Every payment went to the wallet itself: only fees left it. Blocks 1..=101 paid the
    // wallet; at height H the first H - 100 of them are mature.
    let tip = h.ctx.lock_chain().expect("chain").height();
    let fees: Amount = wallet
        .list_transactions()
        .unwrap()
        .iter()
        .filter_map(|t| t.fee)
        .sum();
    assert_eq!(balances.trusted, btc(50 * u64::from(tip - 100)) - fees);
}
