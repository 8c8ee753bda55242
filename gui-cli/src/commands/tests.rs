//! The commands against a regtest node served over a real session.

use std::sync::mpsc;
use std::time::Duration;

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};

use interfaces::{BlockRef, WalletTx};

use ipc_shm::call::Session;

use super::*;
use crate::testnode;

pub(crate) const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// A test node served over a session pair, the client's context, and both sessions.
pub(crate) fn start() -> (testnode::TestNode, Context, (Session, Session)) {
    let node = testnode::TestNode::new();
    let (init, sessions) = node.serve_pair();
    (
        node,
        Context {
            init,
            rpcwallet: None,
            spawned_node: false,
        },
        sessions,
    )
}

fn run(ctx: &Context, line: &[&str]) -> Result<Output, CliError> {
    let args: Vec<String> = line[1..].iter().map(|s| (*s).to_owned()).collect();
    Command::parse(line[0], &args)?.run(ctx)
}

fn plain(ctx: &Context, line: &[&str]) -> String {
    match run(ctx, line) {
        Ok(Output::Plain(s)) => s,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn json(ctx: &Context, line: &[&str]) -> Json {
    match run(ctx, line) {
        Ok(Output::Json(j)) => j,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn rpc_error(result: Result<impl fmt::Debug, CliError>) -> (i32, String) {
    match result {
        Err(CliError::Rpc { code, message }) => (code.0, message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn field<'a>(j: &'a Json, key: &str) -> &'a Json {
    match j {
        Json::Object(fields) => {
            &fields
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap_or_else(|| panic!("no {key} in {j}"))
                .1
        }
        _ => panic!("{j} is not an object"),
    }
}

fn strings(j: &Json) -> Vec<String> {
    match j {
        Json::Array(items) => items
            .iter()
            .map(|i| match i {
                Json::Str(s) => s.clone(),
                other => panic!("{other} is not a string"),
            })
            .collect(),
        _ => panic!("{j} is not an array"),
    }
}

#[test]
fn chain_commands_over_a_session() {
    let (node, ctx, _sessions) = start();
    assert_eq!(plain(&ctx, &["getblockcount"]), "0");

    let hashes = strings(&json(&ctx, &["generatetoaddress", "3", ADDRESS]));
    assert_eq!(hashes.len(), 3);
    assert_eq!(plain(&ctx, &["getblockcount"]), "3");
    assert_eq!(plain(&ctx, &["getbestblockhash"]), hashes[2]);
    assert_eq!(plain(&ctx, &["getblockhash", "3"]), hashes[2]);
    assert_eq!(
        rpc_error(run(&ctx, &["getblockhash", "4"])),
        (-8, "Block height out of range".into())
    );

    let info = json(&ctx, &["getblockchaininfo"]);
    assert_eq!(field(&info, "blocks"), &Json::Int(3));
    assert_eq!(field(&info, "bestblockhash"), &Json::str(hashes[2].clone()));
    assert_eq!(field(&info, "chain"), &Json::str("regtest"));

    let block = json(&ctx, &["getblock", &hashes[1]]);
    assert_eq!(field(&block, "hash"), &Json::str(hashes[1].clone()));
    assert_eq!(field(&block, "height"), &Json::Int(2));
    assert_eq!(field(&block, "confirmations"), &Json::Int(2));
    assert_eq!(
        field(&block, "previousblockhash"),
        &Json::str(hashes[0].clone())
    );
    assert_eq!(
        field(&block, "nextblockhash"),
        &Json::str(hashes[2].clone())
    );
    assert_eq!(field(&block, "nTx"), &Json::Int(1));
    let coinbase_txid = strings(field(&block, "tx")).remove(0);

    // Verbosity 0 is the consensus encoding of a block that meets its target.
    let raw: bitcoin::Block =
        deserialize_hex(&plain(&ctx, &["getblock", &hashes[1], "0"])).unwrap();
    assert_eq!(raw.block_hash().to_string(), hashes[1]);
    assert!(raw.header.validate_pow(raw.header.target()).is_ok());

    let tx = json(&ctx, &["getrawtransaction", &coinbase_txid, "1"]);
    assert_eq!(field(&tx, "confirmations"), &Json::Int(2));
    let Json::Array(vout) = field(&tx, "vout") else {
        panic!("vout")
    };
    assert_eq!(field(&vout[0], "value").to_string(), "50.00000000");
    assert_eq!(
        field(field(&vout[0], "scriptPubKey"), "address"),
        &Json::str(ADDRESS)
    );
    let hex = plain(&ctx, &["getrawtransaction", &coinbase_txid]);
    let decoded: Transaction = deserialize_hex(&hex).unwrap();
    assert_eq!(decoded.compute_txid().to_string(), coinbase_txid);
    assert_eq!(
        rpc_error(run(
            &ctx,
            &["getrawtransaction", &Txid::all_zeros().to_string()]
        )),
        (-5, "No such mempool or blockchain transaction".into())
    );
    assert_eq!(
        rpc_error(run(
            &ctx,
            &["getblock", &BlockHash::all_zeros().to_string()]
        )),
        (-5, "Block not found".into())
    );
    // The node rejects a coinbase outside a block with Core's code and reason.
    assert_eq!(
        rpc_error(run(&ctx, &["sendrawtransaction", &hex])),
        (-26, "coinbase".into())
    );

    let mempool = json(&ctx, &["getmempoolinfo"]);
    assert_eq!(field(&mempool, "size"), &Json::Int(0));
    assert_eq!(field(&mempool, "minrelaytxfee").to_string(), "0.00001000");

    assert_eq!(
        strings(&json(&ctx, &["echo", "a", "b c", ""])),
        ["a", "b c", ""]
    );
    // Wallet commands without a wallet process: the node's error, as bitcoin-cli shows it.
    let err = run(&ctx, &["getnewaddress"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error code: -18: no wallet process is attached"
    );

    assert_eq!(plain(&ctx, &["stop"]), "bitcoin-node stopping");
    assert!(node.shutdown_requested());
}

#[test]
fn wallet_commands_go_to_the_default_wallet_unless_rpcwallet_says_otherwise() {
    let (node, ctx, _sessions) = start();
    let wallets = node.attach_wallets(Amount::from_int_btc(50));
    assert_eq!(strings(&json(&ctx, &["listwallets"])), ["default"]);
    assert_eq!(
        json(&ctx, &["createwallet", "w2"]).to_string(),
        "{\n  \"name\": \"w2\"\n}"
    );
    assert_eq!(rpc_error(run(&ctx, &["createwallet", "w2"])).0, -36);
    assert_eq!(rpc_error(run(&ctx, &["loadwallet", "w2"])).0, -35);
    assert_eq!(strings(&json(&ctx, &["listwallets"])), ["default", "w2"]);

    // Without -rpcwallet: the default wallet, although w2 was loaded after it.
    assert_eq!(plain(&ctx, &["getbalance"]), "50.00000000");
    assert_eq!(
        json(&ctx, &["getbalances"]).to_string(),
        "{\n  \"mine\": {\n    \"trusted\": 50.00000000,\n    \"untrusted_pending\": 0.00000000,\n    \"immature\": 0.00000000\n  }\n}"
    );
    let w2 = Context {
        rpcwallet: Some("w2".into()),
        ..ctx.clone()
    };
    assert_eq!(plain(&w2, &["getbalance"]), "0.00000000");
    let to_w2 = plain(&w2, &["getnewaddress"]);
    assert!(parse_address(&to_w2).is_ok(), "{to_w2}");
    assert_ne!(
        plain(&w2, &["getnewaddress"]),
        to_w2,
        "a fresh address each time"
    );

    let txid = plain(&ctx, &["sendtoaddress", &to_w2, "1.5"]);
    assert_eq!(txid.len(), 64);
    assert_eq!(plain(&ctx, &["getbalance"]), "48.50000000");
    assert_eq!(
        wallets.wallet("default").sent(),
        [(to_w2.clone(), Amount::from_sat(150_000_000), None)]
    );
    assert_eq!(
        rpc_error(run(&w2, &["sendtoaddress", &to_w2, "1"])),
        (-6, "Insufficient funds".into())
    );
    assert_eq!(
        strings(&json(&ctx, &["listtransactions"])),
        Vec::<String>::new()
    );

    let missing = Context {
        rpcwallet: Some("nope".into()),
        ..ctx.clone()
    };
    assert_eq!(
        run(&missing, &["getbalance"]).unwrap_err().to_string(),
        "error code: -18: Requested wallet does not exist or is not loaded"
    );

    // Unloading: the wallet named, else the one -rpcwallet names; then it is gone.
    assert_eq!(rpc_error(run(&ctx, &["unloadwallet"])).0, -8);
    assert_eq!(json(&w2, &["unloadwallet"]).to_string(), "{\n}");
    assert_eq!(strings(&json(&ctx, &["listwallets"])), ["default"]);
    assert_eq!(rpc_error(run(&ctx, &["unloadwallet", "w2"])).0, -18);
    assert_eq!(rpc_error(run(&w2, &["getbalance"])).0, -18);
}

#[test]
fn a_just_spawned_node_s_wallet_is_waited_for() {
    let (node, ctx, _sessions) = start();
    // A node we did not just start answers at once that it has no wallet.
    assert_eq!(
        ctx.wallet().err().and_then(|e| e.code()),
        Some(ErrorCode::WALLET_NOT_FOUND)
    );
    // One we just started attaches its wallet process a moment later; whichever comes first,
    // the wallet is reached.
    let starting = Context {
        spawned_node: true,
        ..ctx.clone()
    };
    std::thread::scope(|s| {
        s.spawn(|| node.attach_wallets(Amount::from_int_btc(1)));
        assert_eq!(plain(&starting, &["getbalance"]), "1.00000000");
    });
}

#[test]
fn mined_blocks_reach_tip_subscribers_across_the_session() {
    let (_node, ctx, _sessions) = start();
    let (tx, rx) = mpsc::channel();
    let _handler = ctx
        .node()
        .unwrap()
        .handle_notify_block_tip(Arc::new(move |tip: &interfaces::TipInfo| {
            let _ = tx.send(tip.height);
        }))
        .unwrap();
    json(&ctx, &["generatetoaddress", "2", ADDRESS]);
    let heights: Vec<u32> = (0..2)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("notification")
        })
        .collect();
    assert_eq!(heights, [1, 2]);
}

#[test]
fn error_chains_print_each_cause_once() {
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("peer closed")
        }
    }
    impl std::error::Error for Inner {}
    /// Prints its source in its own text and returns it as `source()` too.
    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "handshake failed: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let e = anyhow::Error::new(Outer(Inner)).context("cannot start bitcoin-node");
    assert_eq!(
        CliError::Other(e).to_string(),
        "error: cannot start bitcoin-node: handshake failed: peer closed"
    );
}

#[test]
fn a_gone_node_is_one_clear_error() {
    let (_node, ctx, (server, _client)) = start();
    drop(server);
    let err = run(&ctx, &["getblockcount"]).unwrap_err();
    assert!(matches!(err, CliError::Other(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "error: the node closed the connection (it exited or was stopped; see its debug.log)"
    );
}

#[test]
fn argument_errors_come_before_any_call() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["frobnicate"], -32601, "Method not found: frobnicate"),
        (
            &["getblockcount", "1"],
            -1,
            "usage: getblockcount (takes no arguments)",
        ),
        (&["getblockhash"], -1, "usage: getblockhash HEIGHT"),
        (&["getblockhash", "-1"], -8, "Block height out of range"),
        (&["getblockhash", "x"], -8, "invalid height: x"),
        (
            &["getblock", "abc"],
            -8,
            "blockhash must be of length 64 (not 3, for 'abc')",
        ),
        (
            &["getblock", &"z".repeat(64)],
            -8,
            &format!(
                "blockhash must be hexadecimal string (not '{}')",
                "z".repeat(64)
            ),
        ),
        (
            &["getblock", &"0".repeat(64), "2"],
            -8,
            "verbosity must be 0 or 1, not 2",
        ),
        (&["sendrawtransaction", "00"], -22, "TX decode failed"),
        (&["sendtoaddress", "nope", "1"], -5, "Invalid address: nope"),
        (
            &[
                "sendtoaddress",
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                "1",
            ],
            -5,
            "Invalid address: bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (
            &["sendtoaddress", ADDRESS, "0"],
            -3,
            "Invalid amount for send",
        ),
        (
            &["sendtoaddress", ADDRESS, "1.000000001"],
            -3,
            "Invalid amount: 1.000000001",
        ),
        (
            &["sendtoaddress", ADDRESS],
            -1,
            "usage: sendtoaddress ADDRESS AMOUNT",
        ),
        (
            &["generatetoaddress", "x", ADDRESS],
            -8,
            "invalid nblocks: x",
        ),
        (
            &["listtransactions", "label"],
            -4,
            "label \"label\" is not supported; use \"*\"",
        ),
    ];
    for (line, code, message) in cases {
        let args: Vec<String> = line[1..].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            rpc_error(Command::parse(line[0], &args)),
            (*code, (*message).to_owned()),
            "{line:?}"
        );
    }
    assert_eq!(
        Command::parse("sendtoaddress", &[ADDRESS.into(), "0.5".into()]).unwrap(),
        Command::SendToAddress {
            address: ADDRESS.parse().unwrap(),
            amount: Amount::from_sat(50_000_000)
        }
    );
    assert_eq!(
        Command::parse("listtransactions", &["*".into(), "2".into(), "1".into()]).unwrap(),
        Command::ListTransactions { count: 2, skip: 1 }
    );
}

/// Who an output of a test wallet transaction pays.
#[derive(Clone, Copy, PartialEq)]
enum Owner {
    Other,
    Mine,
    /// Mine, as change of the wallet's own transaction.
    Change,
}

fn wallet_tx(
    coinbase: bool,
    outputs: &[(u64, Owner)],
    debit: u64,
    height: Option<u32>,
) -> WalletTx {
    use bitcoin::{OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
    let script = parse_address(ADDRESS).unwrap().script_pubkey();
    let tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: if coinbase {
                OutPoint::null()
            } else {
                OutPoint {
                    txid: Txid::all_zeros(),
                    vout: 7,
                }
            },
            script_sig: ScriptBuf::from_bytes(vec![1, 1]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs
            .iter()
            .map(|(sat, _)| TxOut {
                value: Amount::from_sat(*sat),
                script_pubkey: script.clone(),
            })
            .collect(),
    };
    let credit = outputs
        .iter()
        .filter(|(_, owner)| *owner != Owner::Other)
        .map(|(s, _)| *s)
        .sum();
    let total: u64 = outputs.iter().map(|(s, _)| *s).sum();
    WalletTx {
        tx,
        credit: Amount::from_sat(credit),
        debit: Amount::from_sat(debit),
        fee: (debit > 0).then(|| Amount::from_sat(debit - total)),
        txout_is_mine: outputs
            .iter()
            .map(|(_, owner)| *owner != Owner::Other)
            .collect(),
        txout_is_change: outputs
            .iter()
            .map(|(_, owner)| *owner == Owner::Change)
            .collect(),
        block: height.map(|height| BlockRef {
            hash: BlockHash::all_zeros(),
            height,
        }),
        time: 1_700_000_000,
    }
}

#[test]
fn listtransactions_entries_follow_core() {
    let coinbase = wallet_tx(true, &[(5_000_000_000, Owner::Mine)], 0, Some(1));
    let send = wallet_tx(
        false,
        &[(100_000_000, Owner::Other), (3_899_999_000, Owner::Change)],
        4_000_000_000,
        Some(2),
    );
    let receive = wallet_tx(false, &[(7, Owner::Other), (25_000, Owner::Mine)], 0, None);
    let txs = [coinbase, send, receive];

    let entries = wallet_entries(&txs, 100);
    assert_eq!(entries.len(), 3, "one entry per listed output");
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                field(e, "category").to_string(),
                field(e, "amount").to_string(),
                field(e, "confirmations").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("\"immature\"".into(), "50.00000000".into(), "100".into()),
            ("\"send\"".into(), "-1.00000000".into(), "99".into()),
            ("\"receive\"".into(), "0.00025000".into(), "0".into()),
        ]
    );
    assert_eq!(field(&entries[1], "fee").to_string(), "-0.00001000");
    assert_eq!(field(&entries[1], "vout"), &Json::Int(0));
    assert_eq!(field(&entries[2], "vout"), &Json::Int(1));
    assert_eq!(field(&entries[0], "generated"), &Json::Bool(true));
    assert_eq!(field(&entries[0], "address"), &Json::str(ADDRESS));

    // At 101 confirmations a coinbase is spendable: "generate".
    let mature = wallet_entries(&txs[..1], 101);
    assert_eq!(field(&mature[0], "category"), &Json::str("generate"));
}

#[test]
fn a_payment_to_an_own_address_is_listed_as_send_and_receive() {
    // 1.5 BTC to one of our receiving addresses, the rest back as change.
    let to_self = wallet_tx(
        false,
        &[(150_000_000, Owner::Mine), (3_849_997_190, Owner::Change)],
        4_000_000_000,
        Some(2),
    );
    let entries = wallet_entries(&[to_self], 2);
    let summary: Vec<(String, String, Json)> = entries
        .iter()
        .map(|e| {
            (
                field(e, "category").to_string(),
                field(e, "amount").to_string(),
                field(e, "vout").clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("\"send\"".into(), "-1.50000000".into(), Json::Int(0)),
            ("\"receive\"".into(), "1.50000000".into(), Json::Int(0)),
        ],
        "as in Core: the payment both ways, the change not at all"
    );
    assert_eq!(field(&entries[0], "fee").to_string(), "-0.00002810");
    let Json::Object(receive) = &entries[1] else {
        panic!("an entry is an object")
    };
    assert!(
        receive.iter().all(|(k, _)| *k != "fee"),
        "the fee goes with the send only"
    );
}
