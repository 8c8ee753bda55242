//! The conformance suite: every method of every interface, called through whatever
//! `Arc<dyn Init>` it is given, written into a transcript. Run in-process and over each
//! transport, the transcripts must be identical: same results, same errors, same
//! callbacks in the same order, interleaved with the calls the same way.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, FeeRate, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid,
};
use interfaces::{
    BlockWhat, Chain, ChainNotifications, ChangeType, ErrorCode, Init, InterfaceError,
    RemovalReason, TipInfo,
};

use super::keys::{Key, signed_tx};
use super::world::{SUBSIDY, merkle_parent, solve};

/// Blocks the world starts with, all paying to `Key::new(1)` (the first wallet's key).
pub(crate) const START_BLOCKS: u32 = 12;

/// What happened, in order: each call's outcome and each notification.
#[derive(Clone, Default)]
pub(crate) struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    pub(crate) fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a call's outcome and returns it.
    fn call<T: Debug>(
        &self,
        what: &str,
        outcome: Result<T, InterfaceError>,
    ) -> Result<T, InterfaceError> {
        self.push(format!("{what} -> {outcome:?}"));
        outcome
    }

    /// Records the outcome of a call that returns an interface.
    fn object<T>(
        &self,
        what: &str,
        outcome: Result<T, InterfaceError>,
    ) -> Result<T, InterfaceError> {
        match &outcome {
            Ok(_) => self.push(format!("{what} -> Ok(object)")),
            Err(e) => self.push(format!("{what} -> Err({e:?})")),
        }
        outcome
    }
}

/// A `ChainNotifications` subscriber that writes what it hears, and on each connected
/// block calls back into the chain it listens to.
struct Recorder {
    log: Transcript,
    chain: OnceLock<Arc<dyn Chain>>,
}

impl ChainNotifications for Recorder {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        self.log.push(format!(
            "  notified: transaction_added_to_mempool {}",
            tx.compute_txid()
        ));
        Ok(())
    }

    fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), InterfaceError> {
        self.log.push(format!(
            "  notified: transaction_removed_from_mempool {} {reason:?}",
            tx.compute_txid()
        ));
        Ok(())
    }

    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.log.push(format!(
            "  notified: block_connected {} {height} txs={}",
            block.block_hash(),
            block.txdata.len()
        ));
        // Re-entrancy: a callback calls back into the peer that is calling it.
        if let Some(chain) = self.chain.get() {
            let height = chain.get_height();
            self.log.push(format!(
                "  notified: (called back) get_height -> {height:?}"
            ));
        }
        Ok(())
    }

    fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.log.push(format!(
            "  notified: block_disconnected {} {height}",
            block.block_hash()
        ));
        Ok(())
    }

    fn updated_block_tip(&self) -> Result<(), InterfaceError> {
        self.log.push(String::from("  notified: updated_block_tip"));
        Ok(())
    }

    fn chain_state_flushed(&self, locator: &[BlockHash]) -> Result<(), InterfaceError> {
        self.log.push(format!(
            "  notified: chain_state_flushed {} hashes, first {:?}",
            locator.len(),
            locator.first()
        ));
        Ok(())
    }
}

fn sum_merkle(
    mut node: bitcoin::TxMerkleNode,
    path: &[bitcoin::TxMerkleNode],
) -> bitcoin::TxMerkleNode {
    for sibling in path {
        node = merkle_parent(&node, sibling);
    }
    node
}

/// The txid of the coinbase of the active chain's block at `height`.
fn coinbase_txid(chain: &Arc<dyn Chain>, height: u32) -> Txid {
    let hash = chain.get_block_hash(height).expect("hash").expect("block");
    let found = chain
        .find_block(&hash, BlockWhat::Full)
        .expect("find")
        .expect("known");
    let block = found.block.expect("full block");
    block
        .transaction(0)
        .expect("a coinbase")
        .expect("decodes")
        .compute_txid()
}

/// Runs every method of every interface through `init`. `reorg` makes the node behind it
/// disconnect its tip (a reorganisation, which no interface method causes).
pub(crate) fn run(init: &Arc<dyn Init>, reorg: &dyn Fn()) -> Vec<String> {
    let log = Transcript::default();
    let miner = Key::new(1);
    let other = Key::new(7);
    let unknown_hash = BlockHash::from_byte_array([0xab; 32]);

    // Echo.
    let echo = log.object("make_echo", init.make_echo()).expect("echo");
    log.call("echo(hello)", echo.echo(b"hello")).expect("echo");
    // A server decodes byte strings into a buffer it keeps between calls: a short one after
    // a longer one must come back with nothing of the longer one's.
    let medium: Vec<u8> = (0..40_000).map(|i| (i % 253) as u8).collect();
    let back = echo.echo(&medium).expect("echo 40,000 bytes");
    assert!(back == medium, "40,000-byte echo came back changed");
    log.call("echo(hi)", echo.echo(b"hi")).expect("echo");
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i * 7 % 251) as u8).collect();
    let back = echo.echo(&big).expect("echo 1 MiB");
    assert!(back == big, "1 MiB echo came back changed");
    log.push(format!("echo(1 MiB + 3) -> {} bytes, equal", back.len()));
    log.call("echo(error)", echo.echo(b"error please"))
        .expect_err("refused");
    log.call("echo(empty)", echo.echo(&[])).expect("empty echo");

    // Chain queries.
    let chain = log.object("make_chain", init.make_chain()).expect("chain");
    let tip = log
        .call("get_height", chain.get_height())
        .expect("height")
        .expect("blocks");
    assert_eq!(tip, START_BLOCKS);
    let genesis = log
        .call("get_block_hash(0)", chain.get_block_hash(0))
        .expect("hash")
        .expect("genesis");
    let tip_hash = log
        .call("get_block_hash(tip)", chain.get_block_hash(tip))
        .expect("hash")
        .expect("tip");
    log.call("get_block_hash(tip+1)", chain.get_block_hash(tip + 1))
        .expect("no such block");
    log.call("have_block_on_disk(5)", chain.have_block_on_disk(5))
        .expect("have");
    log.call("have_block_on_disk(999)", chain.have_block_on_disk(999))
        .expect("have");
    let hash5 = chain.get_block_hash(5).expect("hash").expect("block 5");
    log.call(
        "find_block(5, header)",
        chain.find_block(&hash5, BlockWhat::Header),
    )
    .expect("find");
    let found5 = log
        .call(
            "find_block(5, full)",
            chain.find_block(&hash5, BlockWhat::Full),
        )
        .expect("find")
        .expect("known");
    assert_eq!(found5.block.as_ref().map(|b| b.block_hash()), Some(hash5));
    log.call(
        "find_block(unknown)",
        chain.find_block(&unknown_hash, BlockWhat::Full),
    )
    .expect("find");
    log.call(
        "find_ancestor_by_height(tip, 3)",
        chain.find_ancestor_by_height(&tip_hash, 3, BlockWhat::Full),
    )
    .expect("find");
    log.call(
        "find_ancestor_by_height(tip, tip+1)",
        chain.find_ancestor_by_height(&tip_hash, tip + 1, BlockWhat::Header),
    )
    .expect("find");
    log.call(
        "find_ancestor_by_height(unknown, 0)",
        chain.find_ancestor_by_height(&unknown_hash, 0, BlockWhat::Header),
    )
    .expect("find");
    let hash7 = chain.get_block_hash(7).expect("hash").expect("block 7");
    log.call(
        "find_locator_fork([unknown, 7, 0])",
        chain.find_locator_fork(&[unknown_hash, hash7, genesis]),
    )
    .expect("fork");
    log.call(
        "find_locator_fork([unknown])",
        chain.find_locator_fork(&[unknown_hash]),
    )
    .expect("fork");
    log.call("find_locator_fork([])", chain.find_locator_fork(&[]))
        .expect("fork");
    let coinbase1 = OutPoint {
        txid: coinbase_txid(&chain, 1),
        vout: 0,
    };
    let coinbase2 = OutPoint {
        txid: coinbase_txid(&chain, 2),
        vout: 0,
    };
    let nowhere = OutPoint {
        txid: Txid::from_byte_array([3; 32]),
        vout: 9,
    };
    log.call(
        "find_coins([cb1, nowhere, cb1])",
        chain.find_coins(&[coinbase1, nowhere, coinbase1]),
    )
    .expect("coins");
    log.call("find_coins([])", chain.find_coins(&[]))
        .expect("coins");
    for target in [0, 1, 6, 1000] {
        log.call(
            &format!("estimate_fee_rate({target})"),
            chain.estimate_fee_rate(target),
        )
        .ok();
    }
    log.call("relay_min_fee", chain.relay_min_fee())
        .expect("fee");
    log.call(
        "is_initial_block_download",
        chain.is_initial_block_download(),
    )
    .expect("ibd");

    // Notifications: subscribe, then cause mempool and block events.
    let recorder = Arc::new(Recorder {
        log: log.clone(),
        chain: OnceLock::new(),
    });
    let _ = recorder.chain.set(chain.clone());
    let chain_handler = log
        .object(
            "handle_notifications",
            chain.handle_notifications(recorder.clone()),
        )
        .expect("subscribe");

    let pay = |coin: OutPoint, to: &Key, sat: u64| {
        let outputs = vec![TxOut {
            value: Amount::from_sat(sat),
            script_pubkey: to.script(),
        }];
        signed_tx(&miner, &[(coin, SUBSIDY)], outputs)
    };
    let tx1 = pay(coinbase1, &other, 49 * 100_000_000);
    let no_limit = FeeRate::ZERO;
    log.call(
        "broadcast_transaction(tx1)",
        chain.broadcast_transaction(&tx1, no_limit),
    )
    .expect("accepted");
    log.call(
        "broadcast_transaction(tx1 again)",
        chain.broadcast_transaction(&tx1, no_limit),
    )
    .expect("accepted again");
    let double_spend = pay(coinbase1, &other, 48 * 100_000_000);
    let reject = log.call(
        "broadcast_transaction(double spend)",
        chain.broadcast_transaction(&double_spend, no_limit),
    );
    assert_eq!(
        reject.expect_err("rejected").code(),
        Some(ErrorCode::VERIFY_REJECTED)
    );
    let mut forged = pay(coinbase2, &other, 49 * 100_000_000);
    forged.output[0].value = Amount::from_sat(49 * 100_000_000 + 1);
    log.call(
        "broadcast_transaction(bad signature)",
        chain.broadcast_transaction(&forged, no_limit),
    )
    .expect_err("rejected");
    let orphan = pay(nowhere, &other, 1000);
    log.call(
        "broadcast_transaction(missing inputs)",
        chain.broadcast_transaction(&orphan, no_limit),
    )
    .expect_err("rejected");
    let greedy = pay(coinbase2, &other, 10 * 100_000_000);
    log.call(
        "broadcast_transaction(max fee)",
        chain.broadcast_transaction(&greedy, FeeRate::from_sat_per_kwu(250_000)),
    )
    .expect_err("rejected");
    log.call(
        "is_in_mempool(tx1)",
        chain.is_in_mempool(&tx1.compute_txid()),
    )
    .expect("mempool");
    log.call("is_in_mempool(nowhere)", chain.is_in_mempool(&nowhere.txid))
        .expect("mempool");
    let tx1_out = OutPoint {
        txid: tx1.compute_txid(),
        vout: 0,
    };
    log.call(
        "find_coins([tx1:0, cb1])",
        chain.find_coins(&[tx1_out, coinbase1]),
    )
    .expect("coins");
    log.call("wait_for_notifications", chain.wait_for_notifications())
        .expect("wait");

    // Node.
    let node = log.object("make_node", init.make_node()).expect("node");
    log.call("get_tip_info", node.get_tip_info()).expect("tip");
    log.call("node.get_block_hash(3)", node.get_block_hash(3))
        .expect("hash");
    log.call("node.get_block_hash(999)", node.get_block_hash(999))
        .expect("hash");
    log.call("get_block(5)", node.get_block(&hash5))
        .expect("block");
    log.call("get_block(unknown)", node.get_block(&unknown_hash))
        .expect("block");
    log.call("get_mempool_info", node.get_mempool_info())
        .expect("mempool");
    log.call(
        "get_raw_transaction(tx1)",
        node.get_raw_transaction(&tx1.compute_txid()),
    )
    .expect("tx");
    log.call(
        "get_raw_transaction(cb1)",
        node.get_raw_transaction(&coinbase1.txid),
    )
    .expect("tx");
    log.call(
        "get_raw_transaction(nowhere)",
        node.get_raw_transaction(&nowhere.txid),
    )
    .expect("tx");
    let tx2 = pay(coinbase2, &other, 49 * 100_000_000);
    log.call(
        "send_raw_transaction(tx2)",
        node.send_raw_transaction(&tx2, no_limit),
    )
    .expect("sent");
    log.call(
        "send_raw_transaction(double spend)",
        node.send_raw_transaction(&double_spend, no_limit),
    )
    .expect_err("rejected");
    let tips = Transcript(log.0.clone());
    let tip_callback: interfaces::NotifyBlockTipFn = Arc::new(move |tip: &TipInfo| {
        tips.push(format!("  notified: block tip {} {}", tip.height, tip.hash))
    });
    let tip_handler = log
        .object(
            "handle_notify_block_tip",
            node.handle_notify_block_tip(tip_callback),
        )
        .expect("subscribe");
    let regtest = other.address(Network::Regtest).into_unchecked();
    let mainnet = other.address(Network::Bitcoin).into_unchecked();
    let mined = log
        .call(
            "generate_to_address(2, regtest)",
            node.generate_to_address(2, &regtest),
        )
        .expect("mined");
    assert_eq!(mined.len(), 2);
    log.call(
        "generate_to_address(1, mainnet)",
        node.generate_to_address(1, &mainnet),
    )
    .expect_err("wrong network");
    log.call(
        "get_raw_transaction(tx1 confirmed)",
        node.get_raw_transaction(&tx1.compute_txid()),
    )
    .expect("tx");
    log.call("get_mempool_info (empty)", node.get_mempool_info())
        .expect("mempool");

    // Mining: a template crosses, the proof of work is solved here, the solution goes back.
    let mining = log
        .object("make_mining", init.make_mining())
        .expect("mining");
    let tip_ref = log
        .call("get_tip", mining.get_tip())
        .expect("tip")
        .expect("blocks");
    log.call(
        "wait_tip_changed(genesis, 60 s)",
        mining.wait_tip_changed(&genesis, Duration::from_secs(60)),
    )
    .expect("changed");
    log.call(
        "wait_tip_changed(tip, 1 ms)",
        mining.wait_tip_changed(&tip_ref.hash, Duration::from_millis(1)),
    )
    .expect("timeout");
    let tx3 = pay(
        OutPoint {
            txid: coinbase_txid(&chain, 3),
            vout: 0,
        },
        &other,
        49 * 100_000_000,
    );
    chain
        .broadcast_transaction(&tx3, no_limit)
        .expect("tx3 accepted");
    let template = log
        .object("create_new_block", mining.create_new_block(&miner.script()))
        .expect("template");
    let mut header = log
        .call("get_block_header", template.get_block_header())
        .expect("header");
    let block = log
        .call("template.get_block", template.get_block())
        .map(|b| b.block_hash())
        .expect("block");
    let coinbase = log
        .call("get_coinbase_tx", template.get_coinbase_tx())
        .expect("coinbase");
    let path = log
        .call(
            "get_coinbase_merkle_path",
            template.get_coinbase_merkle_path(),
        )
        .expect("path");
    assert_eq!(path.len(), 1, "coinbase and tx3");
    let root = sum_merkle(
        bitcoin::TxMerkleNode::from_raw_hash(coinbase.compute_txid().to_raw_hash()),
        &path,
    );
    assert_eq!(
        root, header.merkle_root,
        "the merkle path leads to the header's root"
    );
    assert_eq!(block, header.block_hash());
    header.time += 1;
    solve(&mut header);
    log.push(format!("solved nonce {}", header.nonce));
    let submit = template.submit_solution(header.version, header.time, header.nonce, &coinbase);
    assert_eq!(log.call("submit_solution", submit), Ok(true));
    let stale = template.submit_solution(header.version, header.time, header.nonce, &coinbase);
    log.call("submit_solution(again, stale)", stale)
        .expect("answered");
    log.object(
        "create_new_block(empty script)",
        mining.create_new_block(&ScriptBuf::new()),
    )
    .err()
    .expect("refused");
    drop(template);

    // Wallets: the loader gets the client's Chain, and reaches the node through it.
    log.object("node.wallet_loader (none yet)", node.wallet_loader())
        .err()
        .expect("no loader");
    let loader = log
        .object("make_wallet_loader", init.make_wallet_loader(chain.clone()))
        .expect("loader");
    log.object("node.wallet_loader", node.wallet_loader())
        .expect("loader");
    log.call("list_wallets (none)", loader.list_wallets())
        .expect("list");
    let alice = log
        .object("create_wallet(alice)", loader.create_wallet("alice"))
        .expect("alice");
    log.object("create_wallet(alice again)", loader.create_wallet("alice"))
        .err()
        .expect("exists");
    log.object("load_wallet(carol)", loader.load_wallet("carol"))
        .err()
        .expect("not found");
    let bob = log
        .object("load_wallet(bob)", loader.load_wallet("bob"))
        .expect("bob");
    log.object("load_wallet(bob again)", loader.load_wallet("bob"))
        .err()
        .expect("loaded");
    log.call("list_wallets", loader.list_wallets())
        .expect("list");
    let alice_again = log
        .object("get_wallet(alice)", loader.get_wallet("alice"))
        .expect("alice");
    log.object("get_wallet(dave)", loader.get_wallet("dave"))
        .err()
        .expect("not loaded");
    let default = log
        .object("get_default_wallet", loader.get_default_wallet())
        .expect("default");
    log.call("default.get_wallet_name", default.get_wallet_name())
        .expect("name");
    log.call("alice_again.get_wallet_name", alice_again.get_wallet_name())
        .expect("name");
    log.call("bob.get_wallet_name", bob.get_wallet_name())
        .expect("name");
    let bob_address = log
        .call("bob.get_new_address", bob.get_new_address())
        .expect("address");
    let bob_address2 = log
        .call("bob.get_new_address (2)", bob.get_new_address())
        .expect("address");
    assert_ne!(bob_address, bob_address2);
    log.call("alice.get_balances", alice.get_balances())
        .expect("balances");
    log.call(
        "alice.list_transactions",
        alice.list_transactions().map(|txs| txs.len()),
    )
    .expect("list");
    let changes = Transcript(log.0.clone());
    let changed: interfaces::TransactionChangedFn =
        Arc::new(move |txid: &Txid, change: ChangeType| {
            changes.push(format!("  notified: transaction {txid} {change:?}"))
        });
    let change_handler = log
        .object(
            "handle_transaction_changed",
            alice.handle_transaction_changed(changed),
        )
        .expect("subscribe");
    let sent = log
        .call(
            "send_to_address(bob, 1 BTC)",
            alice.send_to_address(&bob_address, Amount::ONE_BTC, None),
        )
        .expect("sent");
    log.call("is_in_mempool(sent)", chain.is_in_mempool(&sent))
        .expect("mempool");
    log.call(
        "send_to_address(mainnet)",
        alice.send_to_address(&mainnet, Amount::ONE_BTC, None),
    )
    .expect_err("network");
    log.call(
        "send_to_address(dust)",
        alice.send_to_address(&bob_address, Amount::from_sat(100), None),
    )
    .expect_err("dust");
    log.call(
        "send_to_address(too much)",
        alice.send_to_address(&bob_address, Amount::from_int_btc(1000), None),
    )
    .expect_err("funds");
    let low = Some(FeeRate::from_sat_per_kwu(1));
    log.call(
        "send_to_address(low fee rate)",
        alice.send_to_address(&bob_address, Amount::ONE_BTC, low),
    )
    .expect_err("fee");
    log.call(
        "generate_to_address(1) confirms the send",
        node.generate_to_address(1, &regtest),
    )
    .expect("mined");
    log.call("alice.get_balances (after)", alice.get_balances())
        .expect("balances");
    log.call("bob.get_balances (after)", bob.get_balances())
        .expect("balances");
    log.call("alice.list_transactions (after)", alice.list_transactions())
        .expect("list");
    log.call("change_handler.disconnect", change_handler.disconnect())
        .expect("disconnect");
    log.call(
        "send_to_address(bob, 2 BTC) unheard",
        alice.send_to_address(&bob_address2, Amount::from_int_btc(2), None),
    )
    .expect("sent");
    log.call("unload_wallet(bob)", loader.unload_wallet("bob"))
        .expect("unloaded");
    log.call("unload_wallet(bob again)", loader.unload_wallet("bob"))
        .expect_err("not loaded");
    log.call("list_wallets (bob unloaded)", loader.list_wallets())
        .expect("list");
    log.call("bob.get_balances (unloaded)", bob.get_balances())
        .expect_err("unloaded");

    // A reorganisation, caused on the node's side: the tip block goes away.
    let old_tip = chain
        .get_block_hash(chain.get_height().expect("h").expect("h"))
        .expect("hash")
        .expect("tip");
    reorg();
    log.push(String::from("(node disconnected its tip)"));
    log.call(
        "find_block(old tip)",
        chain.find_block(&old_tip, BlockWhat::Header),
    )
    .expect("still known");
    log.call("get_tip_info (after reorg)", node.get_tip_info())
        .expect("tip");

    // Unsubscribing is synchronous through `disconnect`.
    log.call("chain_handler.disconnect", chain_handler.disconnect())
        .expect("disconnect");
    log.call(
        "chain_handler.disconnect (again)",
        chain_handler.disconnect(),
    )
    .expect("disconnect");
    log.call(
        "generate_to_address(1) heard by the tip callback only",
        node.generate_to_address(1, &regtest),
    )
    .expect("mined");
    log.call("tip_handler.disconnect", tip_handler.disconnect())
        .expect("disconnect");
    log.call(
        "generate_to_address(1) heard by nobody",
        node.generate_to_address(1, &regtest),
    )
    .expect("mined");

    log.call("shutdown", node.shutdown()).expect("shutdown");
    log.call(
        "wait_tip_changed after shutdown",
        mining.wait_tip_changed(&genesis, Duration::from_secs(60)),
    )
    .expect("none");
    log.lines()
}
