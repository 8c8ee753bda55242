//! `kill -9` of a process using the wallet, at arbitrary moments while it hands out
//! addresses and sends: after every restart the wallet loads, no address is handed out
//! twice, no sent transaction is lost, and the transactions still form a valid chain of
//! spends (no coin spent twice) that confirms in a real block.

mod util;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use bitcoin::{Amount, Transaction, Txid};
use util::{MIN_RELAY, TestChain, btc, confirm, mine_to_wallet, store};

/// Set in the child: the data directory to work in.
const CHILD_ENV: &str = "BITCOIN_SHM_WALLET_CRASH_CHILD";
const ROUNDS: usize = 8;

#[test]
fn kill_9_while_sending_loses_and_reuses_nothing() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(dir.as_ref());
    }
    // A hang (child never printing) must fail the test, not block it forever.
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(120));
        // Straight to stderr: libtest captures eprintln! in test threads, and the abort
        // below would throw the capture away.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "watchdog: crash test did not finish in 120 s"
        );
        std::process::abort();
    });

    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new();
    {
        let store = store(dir.path());
        let alice = store.create_wallet("alice").unwrap();
        mine_to_wallet(&mut chain, &alice, 101);
    }

    let mut addresses = HashSet::new();
    let mut sent = HashSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_while_sending_loses_and_reuses_nothing",
                "--nocapture",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a varying number of completed operations, mid-way through the next.
        let kill_after = 3 + (round * 7) % 11;
        let mut seen = 0;
        for line in lines {
            let line = line.unwrap();
            if let Some(address) = line.strip_prefix("ADDR ") {
                assert!(
                    addresses.insert(address.to_owned()),
                    "address {address} handed out twice"
                );
            } else if let Some(txid) = line.strip_prefix("SENT ") {
                sent.insert(txid.parse::<Txid>().unwrap());
            } else {
                continue;
            }
            seen += 1;
            if seen == kill_after {
                break;
            }
        }
        assert_eq!(seen, kill_after, "child stopped early in round {round}");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(sent.len() >= ROUNDS, "too few sends: {}", sent.len());

    let store = store(dir.path());
    let alice = store.load_wallet("alice").unwrap();
    let next = alice.get_new_address().unwrap().to_string();
    assert!(
        !addresses.contains(&next),
        "address {next} reused after the crashes"
    );

    // Every send the child reported is in the wallet; together with any it completed but
    // could not report, they must all fit in one valid block.
    let txs = alice.get_wallet_txs().unwrap();
    let unconfirmed: Vec<_> = txs.iter().filter(|t| t.block.is_none()).collect();
    let known: HashSet<Txid> = unconfirmed.iter().map(|t| t.tx.compute_txid()).collect();
    assert!(sent.is_subset(&known), "a reported send was lost");
    let fees: Amount = unconfirmed
        .iter()
        .map(|t| t.fee.expect("own transaction"))
        .sum();
    let block_txs = spends_first(unconfirmed.iter().map(|t| t.tx.clone()).collect());
    confirm(&mut chain, &[&alice], block_txs);
    let balances = alice.get_balances().unwrap();
    // All outputs were the wallet's own: 50 BTC of block 1, 50 matured at 102, minus fees.
    assert_eq!(balances.trusted, btc(100) - fees);
    assert_eq!(balances.untrusted_pending, Amount::ZERO);
}

/// The child: load the wallet and hand out addresses and payments to itself until killed.
fn child(dir: &std::path::Path) -> ! {
    let store = store(dir);
    let alice = store.load_wallet("alice").unwrap();
    loop {
        let address = alice.get_new_address().unwrap();
        println!("ADDR {address}");
        let tx = alice
            .send_to_address(address.as_unchecked(), btc(1), MIN_RELAY, MIN_RELAY)
            .unwrap();
        println!("SENT {}", tx.compute_txid());
    }
}

/// Orders transactions so that each comes after those whose outputs it spends.
fn spends_first(mut pending: Vec<Transaction>) -> Vec<Transaction> {
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let waiting: HashSet<Txid> = pending.iter().map(Transaction::compute_txid).collect();
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|tx| {
            tx.input
                .iter()
                .all(|i| !waiting.contains(&i.previous_output.txid))
        });
        assert!(
            !ready.is_empty(),
            "transactions spend each other in a cycle"
        );
        ordered.extend(ready);
        pending = rest;
    }
    ordered
}
