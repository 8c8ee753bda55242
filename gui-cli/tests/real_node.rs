//! `bitcoin-gui` with the real `bitcoin-node` binary: spawn mode (`bitcoin-node -ipcfd=N`
//! from beside our executable, on an empty datadir, leaving no node behind) and connect mode
//! (`-ipcconnect` to `bitcoin-node -ipcbind=unix`, leaving the node running).
//!
//! `bitcoin-node` is another package's binary, so `cargo test -p gui-cli` alone may not have
//! built it; `cargo test --workspace` (the README's and CI's command) always has.

mod util;

use std::path::Path;

use util::bound::{BoundNode, node_exe};
use util::{ADDRESS, gui_exe, run};

/// Processes whose command line mentions `needle` (our unique datadir).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some(cmdline)
        })
        .collect()
}

#[test]
fn spawn_mode_from_an_empty_datadir_over_both_transports() {
    node_exe();
    for transport in ["shm", "socket"] {
        let dir = tempfile::tempdir().unwrap();
        let datadir = format!("-datadir={}", dir.path().display());
        let transport_opt = format!("-transport={transport}");
        let spawned = |args: &[&str]| {
            let mut all = vec![datadir.as_str(), transport_opt.as_str()];
            all.extend_from_slice(args);
            let out = run(gui_exe(), &all);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            // Every spawned node (and whatever it spawned) is gone once bitcoin-gui returns.
            assert_eq!(
                processes_mentioning(&dir.path().display().to_string()),
                Vec::<String>::new()
            );
            (out.status.success(), stdout, stderr)
        };
        let (ok, stdout, stderr) = spawned(&["getblockcount"]);
        assert!(ok, "{transport}: {stderr}");
        assert_eq!(stdout, "0\n");
        assert!(
            Path::new(&dir.path().join("regtest")).is_dir(),
            "the node made its datadir"
        );

        let (ok, mined, stderr) = spawned(&["generatetoaddress", "101", ADDRESS]);
        assert!(ok, "{transport}: {stderr}");
        let hashes: Vec<&str> = mined
            .lines()
            .filter(|l| l.trim().starts_with('"'))
            .collect();
        assert_eq!(hashes.len(), 101);
        let last = hashes[100].trim().trim_matches('"');
        assert_eq!(spawned(&["getblockcount"]).1, "101\n");
        assert_eq!(spawned(&["getbestblockhash"]).1, format!("{last}\n"));
        let (ok, block, _) = spawned(&["getblock", last]);
        assert!(ok && block.contains("\n  \"height\": 101,\n"), "{block}");

        let (ok, stdout, _) = spawned(&["stop"]);
        assert!(ok);
        assert_eq!(stdout, "bitcoin-node stopping\n");
    }
}

/// The scenario, in spawn mode with the real node and wallet from an empty datadir:
/// each command starts `bitcoin-node`, which starts `bitcoin-wallet`, and both are gone when
/// it returns.
#[test]
fn wallet_scenario_in_spawn_mode() {
    node_exe();
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let cli = |args: &[&str]| -> String {
        let mut all = vec![datadir.as_str()];
        all.extend_from_slice(args);
        let out = run(gui_exe(), &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(
            processes_mentioning(&dir.path().display().to_string()),
            Vec::<String>::new()
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    wallet_scenario(&cli);
    // Each run starts a new wallet process, which loads only the default wallet: w2 loads
    // on request, with what it received.
    assert_eq!(cli(&["loadwallet", "w2"]), "{\n  \"name\": \"w2\"\n}");
    assert_eq!(cli(&["-rpcwallet=w2", "getbalance"]), "1.50000000");
}

/// The wallet scenario through `cli` (one `bitcoin-gui` run per call, returning its
/// trimmed stdout): mine to the default wallet, mature it, pay a second wallet, confirm.
fn wallet_scenario(cli: &dyn Fn(&[&str]) -> String) {
    let mine = cli(&["getnewaddress"]);
    assert!(mine.starts_with("bcrt1"), "{mine}");
    cli(&["generatetoaddress", "101", &mine]);
    assert_eq!(cli(&["getbalance"]), "50.00000000");

    assert_eq!(cli(&["createwallet", "w2"]), "{\n  \"name\": \"w2\"\n}");
    let theirs = cli(&["-rpcwallet=w2", "getnewaddress"]);
    let txid = cli(&["sendtoaddress", &theirs, "1.5"]);
    assert_eq!(txid.len(), 64, "{txid}");
    cli(&["generatetoaddress", "1", &mine]);
    assert_eq!(cli(&["-rpcwallet=w2", "getbalance"]), "1.50000000");
    // 50 matured at 101 and 50 more at 102, less 1.5 and the fee.
    let ours: f64 = cli(&["getbalance"]).parse().unwrap();
    assert!(ours > 98.49 && ours < 98.5, "{ours}");
    let history = cli(&["-rpcwallet=w2", "listtransactions"]);
    assert!(
        history.contains("\"category\": \"receive\"") && history.contains(&txid),
        "{history}"
    );

    // A payment to one of our own addresses is listed both ways, as in Core; its change
    // is not listed at all.
    let again = cli(&["getnewaddress"]);
    let to_self = cli(&["sendtoaddress", &again, "0.25"]);
    let history = cli(&["listtransactions"]);
    let entries: Vec<&str> = history
        .split("\n  {")
        .filter(|e| e.contains(&to_self))
        .collect();
    assert_eq!(entries.len(), 2, "{history}");
    assert!(
        entries[0].contains("\"category\": \"send\"")
            && entries[0].contains("\"amount\": -0.25000000"),
        "{history}"
    );
    assert!(
        entries[1].contains("\"category\": \"receive\"")
            && entries[1].contains("\"amount\": 0.25000000"),
        "{history}"
    );
}

/// The same scenario against `bitcoin-node -ipcbind=unix` with a separately started
/// `bitcoin-wallet -ipcconnect=unix`, over both transports.
#[test]
fn wallet_scenario_in_connect_mode_over_both_transports() {
    for transport in ["shm", "socket"] {
        let node = BoundNode::start(transport, true);
        wallet_scenario(&|args| node.cli(args));
        assert_eq!(node.cli(&["stop"]), "bitcoin-node stopping");
        assert!(node.wait_exit().success());
    }
}

#[test]
fn connect_mode_to_a_bound_node_over_both_transports() {
    let mut node = BoundNode::start("shm", false);
    for (i, transport) in ["shm", "socket"].iter().enumerate() {
        let t = format!("-transport={transport}");
        let [datadir, connect, _] = &node.options()[..] else {
            unreachable!("three options")
        };
        let client = |args: &[&str]| {
            let mut all = vec![datadir.as_str(), connect.as_str(), t.as_str()];
            all.extend_from_slice(args);
            let (ok, stdout, stderr) = util::gui(&all);
            assert!(ok, "{transport} {args:?}: {stderr}");
            stdout
        };
        let mined = client(&["generatetoaddress", "1", ADDRESS]);
        assert_eq!(mined.lines().count(), 3, "{mined}");
        assert_eq!(client(&["getblockcount"]), format!("{}\n", i + 1));
        // Leaving does not stop the node.
        assert!(node.is_running(), "the node keeps running");
    }
    assert_eq!(node.cli(&["stop"]), "bitcoin-node stopping");
    assert!(node.wait_exit().success());
}

/// `bitcoin-gui` without -ipcconnect on the datadir of a running `bitcoin-node
/// -ipcbind=unix`: one line that says so and how to attach (not the spawned node's refusal
/// followed by a failed handshake), and the running node is left alone.
#[test]
fn spawn_mode_on_a_running_nodes_datadir_says_so_in_one_line() {
    let mut node = BoundNode::start("shm", false);
    let datadir = node.options()[0].clone();
    let dir = datadir.strip_prefix("-datadir=").expect("-datadir=DIR");
    let out = run(gui_exe(), &[&datadir, "getblockcount"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: bitcoin-node is already running on {dir} (use -ipcconnect=unix to attach \
             to it)\n"
        )
    );
    assert!(node.is_running());
    assert_eq!(node.cli(&["getblockcount"]), "0");
    assert_eq!(node.cli(&["stop"]), "bitcoin-node stopping");
    assert!(node.wait_exit().success());
}

/// A spawned node that stops as it starts for a reason bitcoin-gui does not check first
/// (here its database is a directory) has its reason in bitcoin-gui's one line, which points
/// at its log; the node's own line is not printed besides. With `-printtoconsole` its log
/// lines are passed on, and the one error line is still ours, last.
#[test]
fn a_node_that_stops_as_it_starts_gets_one_line_with_its_reason() {
    node_exe();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("regtest").join("chainstate.redb")).unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let ours = |stderr: &str| {
        let prefix = "error: bitcoin-node stopped as it started: ";
        let suffix = format!(
            " (see {})",
            dir.path().join("regtest").join("debug.log").display()
        );
        let line = stderr.lines().last().unwrap_or_default().to_owned();
        let reason = line
            .strip_prefix(prefix)
            .and_then(|l| l.strip_suffix(&suffix))
            .unwrap_or_else(|| panic!("not our line: {stderr}"));
        // The node's own words: the database it could not open is a directory.
        assert!(reason.contains("Is a directory"), "{stderr}");
        assert!(!reason.contains("handshake"), "{stderr}");
    };

    let out = run(gui_exe(), &[&datadir, "getblockcount"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    ours(&stderr);

    let out = run(gui_exe(), &[&datadir, "-printtoconsole", "getblockcount"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    ours(&stderr);
    // The node's log, passed on; but no line of its own for its error.
    assert!(
        stderr.lines().any(|l| l.contains("ERROR bitcoin_node")),
        "{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.to_lowercase().starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
}

/// What a node spawned by bitcoin-gui writes to stderr once it has answered (here its log,
/// with `-printtoconsole`) reaches bitcoin-gui's stderr, down to its last line as it exits.
#[test]
fn a_spawned_nodes_stderr_after_start_reaches_ours() {
    node_exe();
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let out = run(gui_exe(), &[&datadir, "-printtoconsole", "getblockcount"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    for line in [
        "bitcoin_node: bitcoin-node ready",
        "bitcoin_node: shutdown done",
    ] {
        assert!(stderr.contains(line), "no {line:?} in {stderr}");
    }
    assert!(
        processes_mentioning(&dir.path().display().to_string()).is_empty(),
        "the node is gone"
    );
}
