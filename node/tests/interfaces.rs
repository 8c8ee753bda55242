//! The node's `Init`, `Chain`, `Node`, `Mining` and `BlockTemplate` implementations, used
//! in-process through the trait objects the IPC layer will serve, on a real chain.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Amount, Block, BlockHash, FeeRate, Network, OutPoint, Transaction};
use interfaces::remote::{InitProxy, InitServer};
use interfaces::{
    BlockWhat, Chain, ChainNotifications, ErrorCode, FoundBlock, Init, InterfaceError, Mining,
    Node, RemovalReason, TipInfo,
};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;
use node::service::{
    MAX_SUBSCRIPTIONS_PER_CLIENT, MAX_TEMPLATES, MAX_TEMPLATES_PER_CLIENT, NodeContext, NodeInit,
};
use util::*;

struct World {
    _dir: tempfile::TempDir,
    ctx: Arc<NodeContext>,
    init: Arc<dyn Init>,
    chain: Arc<dyn Chain>,
    node: Arc<dyn Node>,
    mining: Arc<dyn Mining>,
    keys: Keys,
    /// Both ends of the connection when the interfaces are reached over shared memory.
    _sessions: Option<(Session, Session)>,
}

/// How the test reaches the node's interfaces.
#[derive(Clone, Copy)]
enum Via {
    InProcess,
    /// Proxies over a real shared-memory connection (rings smaller than the largest
    /// messages, so those are split).
    Shm,
}

fn world(via: Via) -> World {
    let (dir, state) = fixture();
    let ctx = NodeContext::new(state).unwrap();
    let node_init: Arc<dyn Init> = Arc::new(NodeInit::new(Arc::clone(&ctx)));
    let (init, sessions) = match via {
        Via::InProcess => (node_init, None),
        Via::Shm => {
            let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(node_init));
            let config = SessionConfig {
                name: "node-interfaces".into(),
                ..SessionConfig::default()
            };
            let (server, client) =
                Session::pair(1 << 18, WaitPolicy::default(), Some(server), None, &config).unwrap();
            let proxy: Arc<dyn Init> = Arc::new(InitProxy::new(client.bootstrap()));
            (proxy, Some((server, client)))
        }
    };
    World {
        _dir: dir,
        chain: init.make_chain().unwrap(),
        node: init.make_node().unwrap(),
        mining: init.make_mining().unwrap(),
        init,
        ctx,
        keys: Keys::new(),
        _sessions: sessions,
    }
}

fn code(e: InterfaceError) -> (i32, String) {
    match e {
        InterfaceError::Remote { code, message } => (code.0, message),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A spend of the coinbase of block `h` paying `fee`.
fn spend(w: &World, h: u32, fee: u64) -> Transaction {
    let state = w.ctx.lock_chain().unwrap();
    let (op, prev) = coinbase_output(&state, h);
    w.keys.spend(
        &[(op, prev.clone())],
        vec![out(prev.value.to_sat() - fee, &w.keys.wpkh)],
    )
}

fn init_hands_out_echo_and_refuses_the_wallet_loader(w: World) {
    let init = &w.init;
    assert_eq!(init.make_echo().unwrap().echo(b"ping").unwrap(), b"ping");
    let err = init.make_wallet_loader(Arc::clone(&w.chain)).err().unwrap();
    assert_eq!(err.code(), Some(ErrorCode::METHOD_NOT_FOUND));
    assert_eq!(
        w.node.wallet_loader().err().unwrap().code(),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );
}

fn chain_queries_answer_from_the_active_chain_and_side_branches(w: World) {
    let c = &w.chain;
    assert_eq!(c.get_height().unwrap(), Some(FIXTURE_HEIGHT));
    let tip = c.get_block_hash(FIXTURE_HEIGHT).unwrap().unwrap();
    assert_eq!(c.get_block_hash(FIXTURE_HEIGHT + 1).unwrap(), None);
    assert!(c.have_block_on_disk(FIXTURE_HEIGHT).unwrap());
    assert!(!c.have_block_on_disk(FIXTURE_HEIGHT + 1).unwrap());

    let header_only = c.find_block(&tip, BlockWhat::Header).unwrap().unwrap();
    assert_eq!(
        (
            header_only.height,
            header_only.in_active_chain,
            header_only.block.clone()
        ),
        (FIXTURE_HEIGHT, true, None)
    );
    assert_eq!(header_only.header.block_hash(), tip);
    // The block as the node stores it, in consensus encoding: the very block, in process
    // and over a connection.
    let full = c.find_block(&tip, BlockWhat::Full).unwrap().unwrap();
    let stored = w.ctx.lock_chain().unwrap().block(&tip).unwrap();
    assert!(stored.is_some());
    assert_eq!(full.block.as_ref().map(|b| b.to_block().unwrap()), stored);
    assert_eq!(
        FoundBlock {
            block: None,
            ..full.clone()
        },
        header_only
    );
    assert_eq!(
        full.median_time_past,
        w.ctx.lock_chain().unwrap().median_time_past(&tip)
    );
    let full_ancestor = c
        .find_ancestor_by_height(&tip, FIXTURE_HEIGHT, BlockWhat::Full)
        .unwrap()
        .unwrap();
    assert_eq!(full_ancestor, full);
    assert_eq!(
        c.find_block(&BlockHash::all_zeros(), BlockWhat::Full)
            .unwrap(),
        None
    );

    let anc = c
        .find_ancestor_by_height(&tip, 50, BlockWhat::Header)
        .unwrap()
        .unwrap();
    assert_eq!(Some(anc.header.block_hash()), c.get_block_hash(50).unwrap());
    assert_eq!(
        c.find_ancestor_by_height(&tip, FIXTURE_HEIGHT + 1, BlockWhat::Header)
            .unwrap(),
        None
    );

    // A side block is found but not active; a locator starting with it forks below it.
    let side = {
        let mut state = w.ctx.lock_chain().unwrap();
        let parent = state.block_hash(FIXTURE_HEIGHT - 1).unwrap();
        let b = block_on(&state, &w.keys, parent, vec![], 9);
        state.process_block(b.clone()).unwrap();
        b.block_hash()
    };
    assert!(
        !c.find_block(&side, BlockWhat::Header)
            .unwrap()
            .unwrap()
            .in_active_chain
    );
    let h100 = c.get_block_hash(100).unwrap().unwrap();
    let fork = c.find_locator_fork(&[side, h100]).unwrap().unwrap();
    assert_eq!((fork.hash, fork.height), (h100, 100));
    assert_eq!(c.find_locator_fork(&[side]).unwrap(), None);

    assert_eq!(c.estimate_fee_rate(6).unwrap(), None);
    assert_eq!(
        c.relay_min_fee().unwrap(),
        FeeRate::from_sat_per_vb(1).unwrap()
    );
    assert!(!c.is_initial_block_download().unwrap());
    // A locator longer than Core allows is refused before any lookup.
    let genesis = w.chain.get_block_hash(0).unwrap().unwrap();
    let long = vec![genesis; node::service::MAX_LOCATOR + 1];
    assert_eq!(
        w.chain.find_locator_fork(&long).unwrap_err().code(),
        Some(ErrorCode::INVALID_PARAMETER)
    );
}

fn find_coins_sees_the_utxo_set_and_mempool_outputs(w: World) {
    let tx = spend(&w, 1, 1_000);
    let (cb_op, cb_out) = coinbase_output(&w.ctx.lock_chain().unwrap(), 2);
    w.chain.broadcast_transaction(&tx, FeeRate::ZERO).unwrap();
    let mem_op = OutPoint {
        txid: tx.compute_txid(),
        vout: 0,
    };
    let unknown = OutPoint {
        txid: bitcoin::Txid::all_zeros(),
        vout: 0,
    };
    let coins = w.chain.find_coins(&[cb_op, mem_op, unknown]).unwrap();
    let cb = coins[0].as_ref().unwrap();
    assert_eq!(
        (cb.txout.clone(), cb.height, cb.is_coinbase),
        (cb_out, Some(2), true)
    );
    let mem = coins[1].as_ref().unwrap();
    assert_eq!(
        (mem.txout.clone(), mem.height, mem.is_coinbase),
        (tx.output[0].clone(), None, false)
    );
    assert_eq!(coins[2], None);

    // Asking for one large coin many times over is refused before the copies are made.
    let big_script = bitcoin::ScriptBuf::from(vec![0x51; 10_000]);
    let big = {
        let mut chain = w.ctx.lock_chain().unwrap();
        let hash = chain.generate_to_script(1, &big_script).unwrap()[0];
        OutPoint {
            txid: chain.block(&hash).unwrap().unwrap().txdata[0].compute_txid(),
            vout: 0,
        }
    };
    assert_eq!(
        w.chain.find_coins(&vec![big; 100]).unwrap().len(),
        100,
        "a million bytes is fine"
    );
    let copies = node::service::MAX_FIND_COINS_BYTES / 10_000 + 1;
    let refused = w.chain.find_coins(&vec![big; copies]).unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::INVALID_PARAMETER),
        "{refused}"
    );
}

fn broadcast_and_send_raw_transaction_report_cores_codes_and_reasons(w: World) {
    let tx = spend(&w, 1, 1_000);
    let txid = w.node.send_raw_transaction(&tx, FeeRate::ZERO).unwrap();
    assert_eq!(txid, tx.compute_txid());
    assert!(w.chain.is_in_mempool(&txid).unwrap());
    w.chain.broadcast_transaction(&tx, FeeRate::ZERO).unwrap(); // again: fine

    let conflict = spend(&w, 1, 2_000);
    assert_eq!(
        code(
            w.chain
                .broadcast_transaction(&conflict, FeeRate::ZERO)
                .unwrap_err()
        ),
        (-26, "txn-mempool-conflict".into())
    );
    let greedy = spend(&w, 3, 100_000);
    let max = FeeRate::from_sat_per_vb(10).unwrap();
    assert_eq!(
        code(w.node.send_raw_transaction(&greedy, max).unwrap_err()),
        (-26, "max-fee-exceeded".into())
    );

    w.node.generate_to_address(1, &regtest_address(&w)).unwrap();
    assert_eq!(
        code(
            w.chain
                .broadcast_transaction(&tx, FeeRate::ZERO)
                .unwrap_err()
        ),
        (-27, "txn-already-known".into())
    );
    let mut missing = spend(&w, 4, 1_000);
    missing.input[0].previous_output.vout = 7;
    assert_eq!(
        code(
            w.chain
                .broadcast_transaction(&missing, FeeRate::ZERO)
                .unwrap_err()
        ),
        (-25, "bad-txns-inputs-missingorspent".into())
    );
}

fn regtest_address(w: &World) -> Address<bitcoin::address::NetworkUnchecked> {
    Address::p2wpkh(&w.keys.pk, Network::Regtest)
        .as_unchecked()
        .clone()
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    /// Chain to call back into from `block_connected`.
    chain: Mutex<Option<Arc<dyn Chain>>>,
}

impl ChainNotifications for Recorder {
    fn transaction_added_to_mempool(&self, tx: &Transaction) -> Result<(), InterfaceError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("added {}", tx.compute_txid()));
        Ok(())
    }
    fn transaction_removed_from_mempool(
        &self,
        tx: &Transaction,
        reason: RemovalReason,
    ) -> Result<(), InterfaceError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("removed {} {reason:?}", tx.compute_txid()));
        Ok(())
    }
    fn block_connected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        let now = self
            .chain
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.get_height().unwrap().unwrap());
        self.events.lock().unwrap().push(format!(
            "connected {} {height} (tip at least {:?})",
            block.block_hash(),
            now.map(|n| n >= height)
        ));
        Ok(())
    }
    fn block_disconnected(&self, block: &Block, height: u32) -> Result<(), InterfaceError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("disconnected {} {height}", block.block_hash()));
        Ok(())
    }
    fn updated_block_tip(&self) -> Result<(), InterfaceError> {
        self.events.lock().unwrap().push("tip".into());
        Ok(())
    }
    fn chain_state_flushed(&self, locator: &[BlockHash]) -> Result<(), InterfaceError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("flushed {}", locator[0]));
        Ok(())
    }
}

fn chain_notifications_arrive_in_order_may_call_back_and_stop_at_disconnect(w: World) {
    let _dog = watchdog(60);
    let rec = Arc::new(Recorder::default());
    *rec.chain.lock().unwrap() = Some(Arc::clone(&w.chain));
    let handler = w.chain.handle_notifications(rec.clone()).unwrap();
    let tx = spend(&w, 1, 1_000);
    w.chain.broadcast_transaction(&tx, FeeRate::ZERO).unwrap();
    let hash = w.node.generate_to_address(1, &regtest_address(&w)).unwrap()[0];
    w.chain.wait_for_notifications().unwrap();
    let id = tx.compute_txid();
    assert_eq!(
        *rec.events.lock().unwrap(),
        vec![
            format!("added {id}"),
            format!("removed {id} Block"),
            format!("connected {hash} 111 (tip at least Some(true))"),
            "tip".to_owned(),
            format!("flushed {hash}"),
        ]
    );
    handler.disconnect().unwrap();
    w.node.generate_to_address(1, &regtest_address(&w)).unwrap();
    w.chain.wait_for_notifications().unwrap();
    assert_eq!(rec.events.lock().unwrap().len(), 5);
    *rec.chain.lock().unwrap() = None; // break the Recorder → Chain cycle
}

fn node_reports_tip_blocks_mempool_and_transactions(w: World) {
    let n = &w.node;
    let tip = n.get_tip_info().unwrap();
    assert_eq!(tip.height, FIXTURE_HEIGHT);
    assert_eq!(Some(tip.hash), n.get_block_hash(FIXTURE_HEIGHT).unwrap());
    let found = n.get_block(&tip.hash).unwrap().unwrap();
    // The block as the node stores it, in consensus encoding.
    let stored = w.ctx.lock_chain().unwrap().block(&tip.hash).unwrap();
    assert!(stored.is_some());
    assert_eq!(found.block.as_ref().map(|b| b.to_block().unwrap()), stored);
    assert_eq!(found.block.unwrap().block_hash(), tip.hash);
    assert_eq!(found.height, FIXTURE_HEIGHT);
    assert_eq!(n.get_block(&BlockHash::all_zeros()).unwrap(), None);

    let tips = Arc::new(Mutex::new(Vec::new()));
    let t = Arc::clone(&tips);
    let _h = n
        .handle_notify_block_tip(Arc::new(move |tip| t.lock().unwrap().push(tip.height)))
        .unwrap();

    let tx = spend(&w, 5, 2_000);
    n.send_raw_transaction(&tx, FeeRate::ZERO).unwrap();
    let info = n.get_mempool_info().unwrap();
    assert_eq!((info.size, info.total_fee), (1, Amount::from_sat(2_000)));
    assert_eq!(info.bytes, tx.vsize() as u64);
    assert!(info.usage >= tx.total_size() as u64);
    let found = n.get_raw_transaction(&tx.compute_txid()).unwrap().unwrap();
    assert_eq!((found.tx, found.block), (tx.clone(), None));

    let hashes = n.generate_to_address(2, &regtest_address(&w)).unwrap();
    let found = n.get_raw_transaction(&tx.compute_txid()).unwrap().unwrap();
    let block = found.block.unwrap();
    assert_eq!((block.hash, block.height), (hashes[0], FIXTURE_HEIGHT + 1));
    assert_eq!(n.get_tip_info().unwrap().hash, hashes[1]);
    w.chain.wait_for_notifications().unwrap();
    assert_eq!(
        *tips.lock().unwrap(),
        vec![FIXTURE_HEIGHT + 1, FIXTURE_HEIGHT + 2]
    );

    let mainnet = Address::p2wpkh(&w.keys.pk, Network::Bitcoin)
        .as_unchecked()
        .clone();
    assert_eq!(
        n.generate_to_address(1, &mainnet).unwrap_err().code(),
        Some(ErrorCode::INVALID_ADDRESS_OR_KEY)
    );
    // More hashes than a reply carries: refused before any block is mined.
    let too_many = interfaces::codec::MAX_ITEMS + 1;
    assert_eq!(
        n.generate_to_address(too_many, &regtest_address(&w))
            .unwrap_err()
            .code(),
        Some(ErrorCode::INVALID_PARAMETER)
    );
    assert_eq!(n.get_tip_info().unwrap().hash, hashes[1]);
}

fn mining_templates_are_solved_and_submitted_and_wait_tip_changed_wakes(w: World) {
    let _dog = watchdog(60);
    let m = &w.mining;
    // A coinbase script longer than any spendable one is refused, not copied into a
    // template (every one a client keeps would hold it).
    let huge = bitcoin::ScriptBuf::from(vec![0x51; 10_001]);
    assert_eq!(
        m.create_new_block(&huge).map(drop).unwrap_err().code(),
        Some(ErrorCode::INVALID_PARAMETER)
    );
    let tip = m.get_tip().unwrap().unwrap();
    assert_eq!(tip.height, FIXTURE_HEIGHT);
    // Nothing changes: returns the same tip once the timeout passes.
    assert_eq!(
        m.wait_tip_changed(&tip.hash, Duration::from_millis(20))
            .unwrap(),
        Some(tip)
    );

    let tx = spend(&w, 6, 3_000);
    w.chain.broadcast_transaction(&tx, FeeRate::ZERO).unwrap();
    let template = m.create_new_block(&w.keys.tr).unwrap();
    let block = template.get_block().unwrap();
    assert_eq!(template.get_block_header().unwrap(), block.header);
    assert_eq!(block.txdata[1], tx);
    let mut coinbase = template.get_coinbase_tx().unwrap();
    assert_eq!(
        coinbase.output[0].value,
        node::validation::block_subsidy(111) + Amount::from_sat(3_000)
    );
    // The miner changes the coinbase (an extra nonce) and recomputes the root from the path.
    let mut sig = coinbase.input[0].script_sig.to_bytes();
    sig.extend_from_slice(&[4, 0xde, 0xad, 0xbe, 0xef]);
    coinbase.input[0].script_sig = sig.into();
    let path = template.get_coinbase_merkle_path().unwrap();
    let mut header = block.header;
    header.merkle_root = node::validation::merkle_root_from_path(coinbase.compute_txid(), &path);
    let target = header.target();
    while !target.is_met_by(header.block_hash()) {
        header.nonce += 1;
    }
    // A wrong nonce is refused, the right one accepted, and a waiter sees the new tip.
    let waiter = {
        let m = Arc::clone(&w.mining);
        std::thread::spawn(move || {
            m.wait_tip_changed(&tip.hash, Duration::from_secs(50))
                .unwrap()
        })
    };
    let mut bad = header.nonce + 1;
    while target.is_met_by({
        let mut h = header;
        h.nonce = bad;
        h.block_hash()
    }) {
        bad += 1;
    }
    assert!(
        !template
            .submit_solution(header.version, header.time, bad, &coinbase)
            .unwrap()
    );
    assert!(
        template
            .submit_solution(header.version, header.time, header.nonce, &coinbase)
            .unwrap()
    );
    let new_tip = waiter.join().unwrap().unwrap();
    assert_eq!(
        (new_tip.hash, new_tip.height),
        (header.block_hash(), FIXTURE_HEIGHT + 1)
    );
    assert!(!w.chain.is_in_mempool(&tx.compute_txid()).unwrap());

    // A template yields one block: another solution of it is refused.
    let mut sibling = header;
    sibling.nonce += 1;
    while !target.is_met_by(sibling.block_hash()) {
        sibling.nonce += 1;
    }
    assert!(
        !template
            .submit_solution(sibling.version, sibling.time, sibling.nonce, &coinbase)
            .unwrap()
    );
    assert!(w.node.get_block(&sibling.block_hash()).unwrap().is_none());
    // A coinbase that pays more than the template allows is refused before the block is
    // stored.
    let greedy_template = m.create_new_block(&w.keys.tr).unwrap();
    let mut greedy = greedy_template.get_coinbase_tx().unwrap();
    greedy.output[0].value += Amount::from_sat(1);
    let mut greedy_header = greedy_template.get_block_header().unwrap();
    greedy_header.merkle_root = node::validation::merkle_root_from_path(
        greedy.compute_txid(),
        &greedy_template.get_coinbase_merkle_path().unwrap(),
    );
    while !greedy_header.target().is_met_by(greedy_header.block_hash()) {
        greedy_header.nonce += 1;
    }
    assert!(
        !greedy_template
            .submit_solution(
                greedy_header.version,
                greedy_header.time,
                greedy_header.nonce,
                &greedy
            )
            .unwrap()
    );
    assert!(
        w.node
            .get_block(&greedy_header.block_hash())
            .unwrap()
            .is_none()
    );
    drop(greedy_template);

    // The templates clients hold are bounded: past the limit a client must release some
    // (every template is a copy of its block, up to 4 MB). One connection may hold a
    // quarter of them, so that it cannot leave the others none.
    let mut held: Vec<_> = (2..MAX_TEMPLATES_PER_CLIENT)
        .map(|_| m.create_new_block(&w.keys.tr).unwrap())
        .collect();
    // The last place may wait for the greedy template's release, which a dropped proxy
    // sends asynchronously.
    held.push(once_released(|| m.create_new_block(&w.keys.tr)));
    let refused = m.create_new_block(&w.keys.tr).map(drop).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::MISC_ERROR));
    assert!(
        refused
            .to_string()
            .contains("this connection holds 256 of 256"),
        "{refused}"
    );
    // Other connections still get theirs, up to the node's limit, which holds for every
    // client (and for in-process users, who have no share).
    let others: Vec<_> = (1..MAX_TEMPLATES / MAX_TEMPLATES_PER_CLIENT)
        .flat_map(|_| {
            let other = NodeInit::new(Arc::clone(&w.ctx)).make_mining().unwrap();
            (0..MAX_TEMPLATES_PER_CLIENT)
                .map(|_| other.create_new_block(&w.keys.tr).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let last = NodeInit::new(Arc::clone(&w.ctx)).make_mining().unwrap();
    for full in [last, Arc::clone(&w.ctx) as Arc<dyn Mining>] {
        let refused = full.create_new_block(&w.keys.tr).map(drop).unwrap_err();
        assert!(
            refused.to_string().contains("the node holds 1024 of 1024"),
            "{refused}"
        );
    }
    // A template released gives its place back to its connection.
    drop((others, template));
    let again = once_released(|| m.create_new_block(&w.keys.tr));
    drop((held, again));
}

fn notification_subscriptions_are_bounded_per_connection(w: World) {
    let _dog = watchdog(60);
    // Each connection may hold a quarter of the node's subscriptions, of both kinds.
    let mut held = Vec::new();
    for i in 0..MAX_SUBSCRIPTIONS_PER_CLIENT {
        held.push(if i % 2 == 0 {
            w.chain
                .handle_notifications(Arc::new(Recorder::default()))
                .unwrap()
        } else {
            w.node
                .handle_notify_block_tip(Arc::new(|_: &TipInfo| {}))
                .unwrap()
        });
    }
    let refused = [
        w.chain
            .handle_notifications(Arc::new(Recorder::default()))
            .map(drop)
            .unwrap_err(),
        w.node
            .handle_notify_block_tip(Arc::new(|_: &TipInfo| {}))
            .map(drop)
            .unwrap_err(),
    ];
    for e in refused {
        assert_eq!(e.code(), Some(ErrorCode::MISC_ERROR));
        assert!(
            e.to_string()
                .contains("this connection holds 32 notification subscriptions"),
            "{e}"
        );
    }
    // Another connection is not held up by this one's.
    let other = NodeInit::new(Arc::clone(&w.ctx)).make_chain().unwrap();
    let theirs = other
        .handle_notifications(Arc::new(Recorder::default()))
        .unwrap();
    // Disconnecting (or dropping) a handler gives its place back.
    held.pop().unwrap().disconnect().unwrap();
    held.push(
        w.node
            .handle_notify_block_tip(Arc::new(|_: &TipInfo| {}))
            .unwrap(),
    );
    // Dropping a proxy releases the handler asynchronously (the node drops released
    // objects off its reading thread): the place comes back soon after, not at once.
    drop(held.pop());
    let again = once_released(|| w.chain.handle_notifications(Arc::new(Recorder::default())));
    drop((held, again, theirs));
}

/// A subscriber that stops in its first `block_connected` until `gate` opens, after
/// telling `stuck`.
struct Stuck {
    stuck: Mutex<std::sync::mpsc::Sender<()>>,
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl ChainNotifications for Stuck {
    fn block_connected(&self, _: &Block, _: u32) -> Result<(), InterfaceError> {
        let _ = self.stuck.lock().unwrap().send(());
        let _ = self.gate.lock().unwrap().recv();
        Ok(())
    }
}

fn wait_for_notifications_waits_for_this_connections_subscribers_only(w: World) {
    let _dog = watchdog(60);
    // Another client's subscriber stops answering.
    let (stuck_tx, stuck) = std::sync::mpsc::channel();
    let (open, gate) = std::sync::mpsc::channel();
    let other = NodeInit::new(Arc::clone(&w.ctx)).make_chain().unwrap();
    let theirs = other
        .handle_notifications(Arc::new(Stuck {
            stuck: Mutex::new(stuck_tx),
            gate: Mutex::new(gate),
        }))
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let ours = w.chain.handle_notifications(rec.clone()).unwrap();
    let hash = w.node.generate_to_address(1, &regtest_address(&w)).unwrap()[0];
    stuck.recv().unwrap();
    // Ours has had everything published before the call; theirs is still in its callback.
    w.chain.wait_for_notifications().unwrap();
    let connected = format!("connected {hash}");
    let events = rec.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e.starts_with(&connected)),
        "{events:?}"
    );
    open.send(()).unwrap();
    other.wait_for_notifications().unwrap();
    drop((ours, theirs));
}

/// Calls `take` until it stops being refused for what this connection holds: a proxy
/// dropped just before is released asynchronously (the node drops released objects off its
/// reading thread), so its place comes back soon after, not at once. (The caller's
/// watchdog bounds the wait.)
fn once_released<T>(mut take: impl FnMut() -> Result<T, InterfaceError>) -> T {
    loop {
        match take() {
            Ok(v) => return v,
            Err(e) if e.to_string().contains("this connection holds") => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn shutdown_wakes_waiters(w: World) {
    let _dog = watchdog(60);
    let tip = w.mining.get_tip().unwrap().unwrap();
    let m = Arc::clone(&w.mining);
    let waiter = std::thread::spawn(move || {
        m.wait_tip_changed(&tip.hash, Duration::from_secs(50))
            .unwrap()
    });
    let ctx = Arc::clone(&w.ctx);
    let main_loop = std::thread::spawn(move || ctx.wait_for_shutdown());
    w.node.shutdown().unwrap();
    main_loop.join().unwrap();
    assert_eq!(waiter.join().unwrap(), None);
    assert!(w.ctx.shutdown_requested());
}

/// Runs each check in-process and over shared memory.
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(#[test] fn $name() { super::$name(super::world(super::Via::InProcess)); })*
        }
        mod over_shm {
            $(#[test] fn $name() { super::$name(super::world(super::Via::Shm)); })*
        }
    };
}

both_ways!(
    init_hands_out_echo_and_refuses_the_wallet_loader,
    chain_queries_answer_from_the_active_chain_and_side_branches,
    find_coins_sees_the_utxo_set_and_mempool_outputs,
    broadcast_and_send_raw_transaction_report_cores_codes_and_reasons,
    chain_notifications_arrive_in_order_may_call_back_and_stop_at_disconnect,
    node_reports_tip_blocks_mempool_and_transactions,
    mining_templates_are_solved_and_submitted_and_wait_tip_changed_wakes,
    notification_subscriptions_are_bounded_per_connection,
    wait_for_notifications_waits_for_this_connections_subscribers_only,
    shutdown_wakes_waiters,
);
