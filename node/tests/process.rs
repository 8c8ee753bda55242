//! Real `bitcoin-node` processes and real `kill -9`: command line errors, the data
//! directory lock, clean shutdown on SIGTERM, and a crash loop that kills a process
//! while it connects blocks and checks the state it leaves.

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bitcoin::BlockHash;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use node::chainstate::ChainState;
use util::*;

/// The peer written by hand from docs/protocol.md that ipc-shm's own tests use.
#[path = "../../ipc-shm/tests/util/hand.rs"]
mod hand;

const NODE: &str = env!("CARGO_BIN_EXE_bitcoin-node");

fn node(datadir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(NODE);
    c.arg(format!("-datadir={}", datadir.display())).args(extra);
    c
}

/// Starts a node and waits for its "ready" log line on stderr.
fn start_node(datadir: &Path) -> Reaped {
    let mut child = node(datadir, &["-nowallet", "-printtoconsole"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("node exited before it was ready")
            .unwrap();
        if line.contains("bitcoin-node ready") {
            break;
        }
    }
    // Keep draining stderr so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Reaped(child)
}

#[test]
fn unsupported_chain_and_bad_options_fail_with_one_line_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("d");
    // A regular file where a socket would go, and a socket path too long for sun_path.
    let regular = dir.path().join("regular");
    std::fs::write(&regular, b"not a socket").unwrap();
    let in_regular = format!("-ipcbind=unix:{}", regular.display());
    let under_regular = format!("-ipcbind=unix:{}/x.sock", regular.display());
    let too_long = format!("-ipcbind=unix:{}", "x".repeat(120));
    for args in [
        &["-chain=main"][..],
        &["-bogus"],
        &["-ipcfd=notanumber"],
        &["-debug=nosuch"],
        &["-transport=tcp"],
        &["-printtoconsole=2"],
        &["help"],
        &["-ipcbind=tcp"],
        &["-ipcbind=unix:"],
        &[&too_long],
        &[&in_regular],
        &[&under_regular],
        &["-ipcbind=unix", "-ipcbind=unix"],
        &["-ipcbind=unix", "-ipcbind=unix:node.sock"],
    ] {
        let out = node(&datadir, args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("Error: "), "{err}");
        assert!(!err.contains("--"), "{args:?}: {err}");
        assert!(!datadir.exists(), "{args:?} created the data directory");
    }
    let error =
        |args: &[&str]| String::from_utf8(node(&datadir, args).output().unwrap().stderr).unwrap();
    assert_eq!(
        error(&["-chain=main"]),
        "Error: chain \"main\" is not supported yet (only regtest)\n"
    );
    assert_eq!(
        error(&["-bogus"]),
        "Error: unknown option -bogus (see -help)\n"
    );
    assert_eq!(
        error(&["help"]),
        "Error: unexpected argument \"help\": bitcoin-node takes no commands, only options (see -help)\n"
    );
    assert_eq!(
        error(&["-ipcbind=unix", "-ipcbind=unix"]),
        format!(
            "Error: -ipcbind=unix and -ipcbind=unix both name the socket {}\n",
            datadir.join("regtest/node.sock").display()
        )
    );
    assert_eq!(
        error(&[&in_regular]),
        format!(
            "Error: cannot listen on {in_regular}: {} exists and is not a socket; not replacing it\n",
            regular.display()
        )
    );
    assert!(error(&[&too_long]).contains("longer than the 107 bytes"));
    assert_eq!(std::fs::read(&regular).unwrap(), b"not a socket");
    assert!(!datadir.exists());
    // A data directory that cannot be created (a file stands in its way).
    let file = dir.path().join("file");
    std::fs::write(&file, b"in the way").unwrap();
    let out = node(&file, &["-nowallet"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "Error: cannot create data directory {}",
            file.join("regtest").display()
        )),
        "{err}"
    );
}

/// A node whose stderr has gone (the gui that spawned it, reading that stderr, was killed)
/// still exits with its error status when it fails, not with a panic's.
#[test]
fn a_failing_node_whose_stderr_is_gone_exits_with_its_error_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    for extra in [&["-bogus"][..], &[]] {
        let datadir = if extra.is_empty() { &file } else { dir.path() };
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = node(datadir, extra)
            .stdout(Stdio::null())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1), "{extra:?}: {status}");
    }
}

#[test]
fn help_and_version_in_every_spelling_print_to_stdout_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("d");
    for spelling in ["-?", "-h", "-help", "--help"] {
        let out = node(&datadir, &[spelling]).output().unwrap();
        assert!(out.status.success(), "{spelling}: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("Usage: bitcoin-node [OPTIONS]"),
            "{spelling}: {help}"
        );
        assert!(help.contains("-ipcbind <ADDRESS>"), "{spelling}: {help}");
        assert!(!help.contains("--"), "{spelling}: {help}");
        assert!(out.stderr.is_empty());
    }
    for spelling in ["-version", "-V", "--version"] {
        let out = node(&datadir, &[spelling]).output().unwrap();
        assert!(out.status.success(), "{spelling}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "bitcoin-node 0.1.0\n"
        );
    }
    assert!(!datadir.exists());
}

/// Starts a node with `args` and waits until it is ready.
fn ready_node(datadir: &Path, args: &[&str]) -> Reaped {
    let (node, lines) = logged_node(datadir, args);
    wait_for_line(&lines, "bitcoin-node ready");
    // Keep draining stderr so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    node
}

#[test]
fn socket_files_go_on_a_clean_exit_and_on_a_refused_start() {
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let sock = a.join("regtest/node.sock");
    let alt = a.join("regtest/alt.sock");
    let nested = a.join("regtest/run/ipc/n.sock");
    let sibling = a.join("regtest/run/ipc/m.sock");

    // SIGTERM: every socket goes, also from a directory binding created for one socket and
    // used by the next.
    let mut node_a = ready_node(
        &a,
        &[
            "-nowallet=1",
            "-printtoconsole=1",
            "-ipcbind=unix",
            "-ipcbind=unix:alt.sock",
            "-ipcbind=unix:run/ipc/n.sock",
            "-ipcbind=unix:run/ipc/m.sock",
        ],
    );
    for path in [&sock, &alt, &nested, &sibling] {
        assert!(path.exists(), "{} missing while serving", path.display());
    }
    kill(Pid::from_raw(node_a.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(node_a.0.wait().unwrap().success());
    for path in [&sock, &alt, &nested, &sibling] {
        assert!(!path.exists(), "{} left after SIGTERM", path.display());
    }
    assert!(
        !a.join("regtest/run").exists(),
        "the directories binding created are left"
    );

    // A refused start: `b` binds its own socket, then finds `a`'s in use. It removes its own
    // (and the directory it made for it) and leaves `a`'s alone.
    let node_a = ready_node(&a, &["-nowallet", "-printtoconsole", "-ipcbind=unix"]);
    let b = dir.path().join("b");
    let theirs = format!("-ipcbind=unix:{}", sock.display());
    let out = node(
        &b,
        &[
            "-nowallet",
            "-ipcbind=unix",
            "-ipcbind=unix:new/b.sock",
            &theirs,
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "Error: ipc: socket {} is already in use by a running process\n",
            sock.display()
        )
    );
    assert!(
        !b.join("regtest/node.sock").exists(),
        "the refused node left its socket"
    );
    assert!(
        !b.join("regtest/new").exists(),
        "the refused node left a directory"
    );
    let (_session, init) = client(
        ipc_shm::connect(
            &ipc_shm::Endpoint::unix(&sock),
            &ipc_shm::Config::new("test"),
        )
        .unwrap(),
    );

    // Node::shutdown, as `bitcoin-gui -ipcconnect=unix stop` sends it.
    let mut node_a = node_a;
    init.make_node().unwrap().shutdown().unwrap();
    assert!(node_a.0.wait().unwrap().success());
    assert!(!sock.exists(), "node.sock left after Node::shutdown");
}

#[test]
fn a_second_node_on_the_same_datadir_fails_and_sigterm_shuts_down_cleanly() {
    let _dog = watchdog(60);
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_node(dir.path());
    let out = node(dir.path(), &["-nowallet"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "Error: cannot obtain a lock on data directory {}; bitcoin-node is probably already running\n",
            dir.path().join("regtest").display()
        )
    );
    kill(Pid::from_raw(first.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(first.0.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("regtest/debug.log")).unwrap();
    assert!(log.contains("shutdown done"), "{log}");
    // The lock is released: the chain state opens again.
    assert_eq!(
        ChainState::open(&dir.path().join("regtest"))
            .unwrap()
            .height(),
        0
    );
}

/// Environment variable that turns [`crash_child`] into the process the crash loop kills.
const CHILD_ENV: &str = "NODE_CRASH_CHILD_DIR";

/// In the crash loop's child process: mines forever, spending a mature coinbase in every
/// block once there is one, and prints `connected HEIGHT HASH` after each block is
/// reported connected. Without the environment variable this test does nothing.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let keys = Keys::new();
    let mut chain = ChainState::open(Path::new(&dir)).unwrap();
    loop {
        let height = chain.height() + 1;
        if height > 101 {
            let (op, prev) = coinbase_output(&chain, height - 101);
            if chain.coins(&[op]).unwrap()[0].is_some() {
                let tx = keys.spend(
                    &[(op, prev.clone())],
                    vec![out(prev.value.to_sat() - 1_000, &keys.tr)],
                );
                let _ = chain.process_transaction(tx);
            }
        }
        let script = if height.is_multiple_of(2) {
            &keys.tr
        } else {
            &keys.wpkh
        };
        let hash = chain.generate_to_script(1, script).unwrap()[0];
        println!("connected {height} {hash}");
    }
}

#[test]
fn kill_9_while_connecting_blocks_leaves_a_consistent_chain_state() {
    let _dog = watchdog(300);
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("regtest");
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut reported: Vec<(u32, BlockHash)> = Vec::new();
    for iteration in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // The first run mines past maturity so later runs spend coinbases.
        let blocks = if iteration == 0 {
            110
        } else {
            1 + (seed % 25) as usize
        };
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &chain_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < blocks {
            let line = lines.next().expect("child exited").unwrap();
            if let Some(rest) = line.strip_prefix("connected ") {
                let (h, hash) = rest.split_once(' ').unwrap();
                reported.push((h.parse().unwrap(), hash.parse().unwrap()));
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL, while the child is busy with the next block
        child.wait().unwrap();

        let chain = ChainState::open(&chain_dir).unwrap();
        let (last_h, _) = *reported.last().unwrap();
        assert!(
            chain.height() >= last_h,
            "iteration {iteration}: lost a reported block"
        );
        for (h, hash) in &reported {
            assert_eq!(
                chain.block_hash(*h),
                Some(*hash),
                "iteration {iteration}: reported block {h} replaced"
            );
        }
        assert_eq!(
            sorted_coins(&chain),
            recompute_utxos(&chain),
            "iteration {iteration}: UTXO set != chain"
        );
    }
}

/// A call session to a node over `connection`, and the node's `Init` through it.
fn client(connection: ipc_shm::Connection) -> (ipc_shm::call::Session, Arc<dyn interfaces::Init>) {
    let config = ipc_shm::call::SessionConfig {
        name: "test-client".into(),
        ..Default::default()
    };
    let session = ipc_shm::call::Session::new(connection, None, &config);
    let init: Arc<dyn interfaces::Init> =
        Arc::new(interfaces::remote::InitProxy::new(session.bootstrap()));
    (session, init)
}

fn regtest_address(keys: &Keys) -> bitcoin::Address<bitcoin::address::NetworkUnchecked> {
    bitcoin::Address::p2wpkh(&keys.pk, bitcoin::Network::Regtest)
        .as_unchecked()
        .clone()
}

#[test]
fn two_clients_at_once_through_ipcbind_shm_and_socket() {
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let (mut node, lines) = logged_node(
        dir.path(),
        &[
            "-nowallet",
            "-printtoconsole",
            "-ipcbind=unix",
            "-debug", // all categories, ipc among them
        ],
    );
    wait_for_line(&lines, "bitcoin-node ready");
    assert_eq!(
        children_named(node.0.id(), "bitcoin-wallet"),
        Vec::<u32>::new(),
        "-nowallet spawns no wallet"
    );

    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let mut socket_config = ipc_shm::Config::new("test-socket-client");
    socket_config.transport = ipc_shm::Transport::Socket;
    let (_s1, gui) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-shm-client")).unwrap());
    let (s2, miner) = client(ipc_shm::connect(&endpoint, &socket_config).unwrap());
    let gui_node = gui.make_node().unwrap();
    let tips = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = Arc::clone(&tips);
    let _handler = gui_node
        .handle_notify_block_tip(Arc::new(move |tip| t.lock().unwrap().push(tip.height)))
        .unwrap();

    // The second client mines; the first sees the tip move and the blocks.
    let keys = Keys::new();
    let hashes = miner
        .make_node()
        .unwrap()
        .generate_to_address(3, &regtest_address(&keys))
        .unwrap();
    let chain = gui.make_chain().unwrap();
    chain.wait_for_notifications().unwrap();
    assert_eq!(*tips.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(gui_node.get_tip_info().unwrap().hash, hashes[2]);
    let found = chain
        .find_block(&hashes[0], interfaces::BlockWhat::Full)
        .unwrap()
        .unwrap();
    assert_eq!(found.block.unwrap().block_hash(), hashes[0]);
    let template = miner
        .make_mining()
        .unwrap()
        .create_new_block(&keys.wpkh)
        .unwrap();
    assert_eq!(
        template.get_block_header().unwrap().prev_blockhash,
        hashes[2]
    );

    // The miner leaves; with -debug=ipc the node logs each client coming and going.
    drop((template, miner, s2));
    let mut log = Vec::new();
    while !log
        .last()
        .is_some_and(|l: &String| l.contains("client disconnected peer=test-socket-client"))
    {
        log.push(lines.recv().expect("the node's log ended early"));
    }
    let connected = log
        .iter()
        .filter(|l| l.contains("client connected"))
        .count();
    assert_eq!(connected, 2, "{log:#?}");

    // Node::shutdown from a client ends the node cleanly.
    gui_node.shutdown().unwrap();
    assert!(node.0.wait().unwrap().success());
}

#[test]
fn a_node_spawned_with_ipcfd_serves_its_parent_and_exits_when_the_parent_goes() {
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    // Spawned, and also listening for other clients, as Core's node can be.
    let (mut child, connection) = ipc_shm::spawn(
        NODE,
        [datadir.as_str(), "-nowallet", "-ipcbind=unix"],
        &ipc_shm::Config::new("test-parent"),
    )
    .unwrap();
    let (session, init) = client(connection);
    let node = init.make_node().unwrap();
    assert_eq!(node.get_tip_info().unwrap().height, 0);
    let keys = Keys::new();
    node.generate_to_address(2, &regtest_address(&keys))
        .unwrap();
    assert_eq!(init.make_chain().unwrap().get_height().unwrap(), Some(2));
    // The node answered the parent, so its -ipcbind socket is up.
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let (_bound, other) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-bound")).unwrap());
    assert_eq!(other.make_chain().unwrap().get_height().unwrap(), Some(2));
    // When the parent goes, the node shuts down, also with a bound client still connected.
    drop((node, init));
    drop(session);
    let status = child
        .wait_timeout(std::time::Duration::from_secs(60))
        .unwrap()
        .expect("node exited");
    assert!(status.success());
    // Its state is on disk, and its socket gone.
    assert_eq!(
        ChainState::open(&dir.path().join("regtest"))
            .unwrap()
            .height(),
        2
    );
    assert!(!dir.path().join("regtest/node.sock").exists());
}

/// Kills and reaps a child process when the test ends, whether it passed or not, so that a
/// failing assertion never leaves a node running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node whose stderr log lines arrive on the returned channel; the node is killed
/// and reaped when the guard drops.
fn logged_node(datadir: &Path, args: &[&str]) -> (Reaped, std::sync::mpsc::Receiver<String>) {
    let mut child = node(datadir, args).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (line_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    (Reaped(child), lines)
}

/// Waits for a log line containing `needle`; panics if the node's log ends first.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv()
            .unwrap_or_else(|_| panic!("the node's log ended before {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// The node's socket in `datadir`, as `-ipcconnect=unix` finds it.
fn endpoint_path(datadir: &Path) -> String {
    datadir.join("regtest/node.sock").display().to_string()
}

/// The children of `pid` named `name`.
fn children_named(pid: u32, name: &str) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .filter(|(_, comm)| comm == name)
        .map(|(child, _)| child)
        .collect()
}

#[test]
fn the_wallet_child_killed_is_reaped_and_the_node_keeps_serving() {
    let _dog = watchdog(120);
    let wallet_binary = Path::new(NODE).with_file_name("bitcoin-wallet");
    assert!(
        wallet_binary.exists(),
        "{} is missing: run the workspace's tests (cargo test --workspace)",
        wallet_binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // No -nowallet: the node spawns bitcoin-wallet with -ipcfd.
    let (node, lines) = logged_node(dir.path(), &["-printtoconsole", "-ipcbind=unix"]);
    wait_for_line(&lines, "bitcoin-wallet attached");
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let (_session, init) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-client")).unwrap());
    let n = init.make_node().unwrap();
    let wallets = n.wallet_loader().unwrap().list_wallets().unwrap();
    assert!(
        !wallets.is_empty(),
        "the spawned wallet loads its default wallet"
    );

    let wallet_pids = children_named(node.0.id(), "bitcoin-wallet");
    let [wallet] = wallet_pids[..] else {
        panic!("one wallet child expected, found {wallet_pids:?}")
    };
    kill(Pid::from_raw(wallet as i32), Signal::SIGKILL).unwrap();

    // The node notices, reaps the child (no zombie), and goes on serving without a wallet.
    wait_for_line(&lines, "bitcoin-wallet exited");
    assert!(
        !Path::new(&format!("/proc/{wallet}")).exists(),
        "bitcoin-wallet {wallet} was not reaped"
    );
    assert_eq!(
        n.wallet_loader().err().unwrap().code(),
        Some(interfaces::ErrorCode::WALLET_NOT_FOUND)
    );
    assert_eq!(n.get_tip_info().unwrap().height, 0);
    let mut node = node;
    kill(Pid::from_raw(node.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(node.0.wait().unwrap().success());
}

/// Shutdown stops the wallet the node spawned before the node exits: once the node's exit
/// status is in, the wallet process is already gone, and the log says it was stopped.
#[test]
fn sigint_stops_and_reaps_the_spawned_wallet_before_the_node_exits() {
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let (mut node, lines) = logged_node(dir.path(), &["-printtoconsole"]);
    wait_for_line(&lines, "bitcoin-wallet attached");
    let wallet_pids = children_named(node.0.id(), "bitcoin-wallet");
    let [wallet] = wallet_pids[..] else {
        panic!("one wallet child expected, found {wallet_pids:?}")
    };
    kill(Pid::from_raw(node.0.id() as i32), Signal::SIGINT).unwrap();
    assert!(node.0.wait().unwrap().success());
    // A wallet left running would now belong to init and still be listed.
    assert!(
        !Path::new(&format!("/proc/{wallet}")).exists(),
        "bitcoin-wallet {wallet} outlived the node"
    );
    let log: Vec<String> = lines.iter().collect();
    assert!(
        log.iter().any(|l| l.contains("bitcoin-wallet stopped")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("shutdown done")), "{log:#?}");
}

/// Over `-ipcmaxconnections`, a client is refused at once with the limit in the error
/// (not left waiting), and a place frees when a client leaves.
#[test]
fn clients_over_ipcmaxconnections_are_refused_clearly_until_one_leaves() {
    use ipc_shm::handshake::{HandshakeError, Refusal};
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let (_node, lines) = bound_node(dir.path(), &["-ipcmaxconnections=2", "-debug=ipc"]);
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let connect = || ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-client"));
    let first = client(connect().unwrap());
    let second = client(connect().unwrap());
    match connect() {
        Err(ipc_shm::Error::Handshake(HandshakeError::Refused(refusal))) => {
            assert_eq!(refusal, Refusal::TooManyConnections { limit: 2 });
            assert_eq!(
                refusal.to_string(),
                "it already has its maximum of 2 connections"
            );
        }
        other => panic!("a third client was not refused: {other:?}"),
    }
    wait_for_line(&lines, "at the limit of 2 connections");
    // The two admitted clients are served as before.
    assert_eq!(
        second.1.make_chain().unwrap().get_height().unwrap(),
        Some(0)
    );

    drop(first);
    wait_for_line(&lines, "client disconnected");
    let third = client(connect().unwrap());
    assert_eq!(third.1.make_chain().unwrap().get_height().unwrap(), Some(0));
}

/// Open file descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (fds, rss)
}

/// A thousand bad handshakes against `-ipcbind` (garbage, half a hello, a wrong version,
/// connect-and-leave) and one that stays silent: the node answers each, keeps serving a real
/// client throughout, and ends with the file descriptors it started with and bounded memory.
#[test]
fn a_thousand_bad_handshakes_leave_the_node_serving_with_its_fds_back() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let _dog = watchdog(180);
    let dir = tempfile::tempdir().unwrap();
    let (node, lines) = bound_node(dir.path(), &["-debug=ipc"]);
    let path = dir.path().join("regtest/node.sock");
    let endpoint = ipc_shm::Endpoint::unix(&path);
    let (_session, init) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-real")).unwrap());
    let chain = init.make_chain().unwrap();
    assert_eq!(chain.get_height().unwrap(), Some(0));
    let pid = node.0.id();
    let (fds_before, rss_before) = fds_and_rss(pid);

    // A hello that stops after its magic and version, and one of another version.
    let mut hello_start = b"BSHMHELO".to_vec();
    hello_start.extend_from_slice(&ipc_shm::handshake::PROTOCOL_VERSION.to_le_bytes());
    let mut other_version = b"BSHMHELO".to_vec();
    other_version.extend_from_slice(&99u32.to_le_bytes());
    let silent = UnixStream::connect(&path).unwrap();
    const BAD: usize = 1000;
    for i in 0..BAD {
        let mut stream = UnixStream::connect(&path).unwrap();
        // The node may already have answered and closed: a failed write is fine.
        let _ = match i % 4 {
            0 => stream.write_all(&[0xa5u8 ^ i as u8; 48]),
            1 => stream.write_all(&hello_start),
            2 => stream.write_all(&other_version),
            _ => Ok(()),
        };
        drop(stream);
        if i % 100 == 0 {
            assert_eq!(
                chain.get_height().unwrap(),
                Some(0),
                "served during the flood"
            );
        }
    }
    // Each bad connection ends in one line once the node has closed the socket: the node's
    // verdict on its handshake (the transport's own "refused a connection" warning comes
    // before it), or, when the flood outran the handshake threads and every place was
    // taken, the refusal at the connection limit. The silent one ends when the handshake
    // deadline (5 s) frees its place.
    let outcomes = [
        "client handshake failed",
        "client left before the handshake",
        "at the limit of",
    ];
    let (mut ended, mut silence_ended) = (0, false);
    while ended < BAD || !silence_ended {
        let line = lines.recv().expect("the node's log ended early");
        if line.contains("did not complete the handshake within") {
            silence_ended = true;
        } else if outcomes.iter().any(|o| line.contains(o)) {
            ended += 1;
        }
    }
    drop(silent);
    assert_eq!(
        chain.get_height().unwrap(),
        Some(0),
        "served after the flood"
    );
    let (fds_after, rss_after) = fds_and_rss(pid);
    eprintln!(
        "after {BAD} bad handshakes: fds {fds_before} -> {fds_after}, rss {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
    // Threads come and go per handshake; their stacks are returned, allocator arenas may stay.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "rss grew from {rss_before} to {rss_after} KiB"
    );
}

/// A node logging to a stderr whose reader has gone (a front end that started it with
/// `-printtoconsole` and died) still shuts down cleanly on SIGTERM: a log line it cannot
/// write must not take down the thread that wrote it.
#[test]
fn sigterm_works_after_the_reader_of_stderr_has_gone() {
    let _dog = watchdog(60);
    let dir = tempfile::tempdir().unwrap();
    let mut node = node(dir.path(), &["-nowallet", "-printtoconsole"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stderr.take().unwrap()).lines();
    while !lines
        .next()
        .expect("node exited early")
        .unwrap()
        .contains("bitcoin-node ready")
    {}
    drop(lines);
    let mut node = Reaped(node);
    kill(Pid::from_raw(node.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(node.0.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("regtest/debug.log")).unwrap();
    assert!(log.contains("shutdown done"), "{log}");
}

/// A call record as docs/protocol.md lays it out: the 32-byte header, then the body.
fn call_record(kind: u8, method: u32, call: u64, object: u64, body: &[u8]) -> Vec<u8> {
    let mut record = vec![kind, 0, 0, 0];
    record.extend_from_slice(&method.to_le_bytes());
    record.extend_from_slice(&call.to_le_bytes());
    record.extend_from_slice(&object.to_le_bytes());
    record.extend_from_slice(&(body.len() as u64).to_le_bytes());
    record.extend_from_slice(body);
    record
}

/// Clients that complete the handshake and then send garbage: a request for an object that
/// does not exist gets an error reply; a record the protocol does not know, or random bytes,
/// make the node hang up on that client alone with a logged reason, while a well-behaved
/// client is served throughout and the node's memory stays bounded.
#[test]
fn clients_sending_garbage_are_dropped_alone_while_others_are_served() {
    let _dog = watchdog(180);
    let dir = tempfile::tempdir().unwrap();
    let (node, lines) = bound_node(dir.path(), &[]);
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let hostile = || {
        ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-hostile"))
            .unwrap()
            .split()
    };
    let (_session, init) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-good")).unwrap());
    let chain = init.make_chain().unwrap();
    let (_, rss_before) = fds_and_rss(node.0.id());
    let mut slowest = std::time::Duration::ZERO;
    let mut served = |chain: &dyn interfaces::Chain| {
        let start = std::time::Instant::now();
        assert_eq!(chain.get_height().unwrap(), Some(0));
        slowest = slowest.max(start.elapsed());
    };

    // A request for an object nobody exported: an error reply, and the connection stays.
    let (mut tx, mut rx) = hostile();
    tx.send_bytes(&call_record(1, 7, 1, 0xdead_beef, b"garbage"))
        .unwrap();
    let reply = rx.recv().unwrap().to_vec();
    assert_eq!(reply[0], 2, "a response");
    assert_ne!(
        u16::from_le_bytes([reply[2], reply[3]]),
        0,
        "an error status"
    );
    served(&*chain);
    // A record of a kind the protocol does not have: the node hangs up on this client.
    tx.send_bytes(&call_record(9, 0, 0, 0, &[])).unwrap();
    assert!(matches!(rx.recv(), Err(ipc_shm::Error::Disconnected)));
    wait_for_line(&lines, "closing the connection: protocol violation");
    served(&*chain);

    // Random records on fresh connections, from a fixed seed: each ends in replies or a
    // hang-up, never a stuck node.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random_byte = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    for round in 0..50 {
        let (mut tx, mut rx) = hostile();
        for _ in 0..4 {
            let len = usize::from(random_byte()) % 96;
            let record: Vec<u8> = (0..len).map(|_| random_byte()).collect();
            if tx.send_bytes(&record).is_err() {
                break;
            }
        }
        // Whatever the random records were, this one is a violation: the round ends.
        let _ = tx.send_bytes(&call_record(9, 0, 0, 0, &[]));
        drop(tx);
        // Replies (to any record that happened to be a request), then the hang-up.
        while rx.recv().is_ok() {}
        if round % 10 == 0 {
            served(&*chain);
        }
    }
    served(&*chain);
    let (_, rss_after) = fds_and_rss(node.0.id());
    eprintln!(
        "garbage from 52 clients: slowest call of the good client {slowest:?}; rss {rss_before} -> {rss_after} KiB"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "rss grew from {rss_before} to {rss_after} KiB"
    );
}

/// A `ChainNotifications` whose `block_connected` never returns until the gate opens: a
/// client that stopped reading.
struct Stuck(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl interfaces::ChainNotifications for Stuck {
    fn block_connected(
        &self,
        _: &bitcoin::Block,
        _: u32,
    ) -> Result<(), interfaces::InterfaceError> {
        let _ = self.0.lock().unwrap().recv();
        Ok(())
    }
}

/// A `ChainNotifications` that reports each connected block's height.
struct Heard(std::sync::Mutex<std::sync::mpsc::Sender<u32>>);

impl interfaces::ChainNotifications for Heard {
    fn block_connected(
        &self,
        _: &bitcoin::Block,
        height: u32,
    ) -> Result<(), interfaces::InterfaceError> {
        let _ = self.0.lock().unwrap().send(height);
        Ok(())
    }
}

/// Over real IPC, a client whose notification handler stops returning holds up nobody:
/// another client mines, and a third hears every block, in order, while the first is stuck
/// (the node queues per subscriber; a subscriber too far behind is dropped, see notify.rs).
#[test]
fn a_subscriber_that_stops_reading_stalls_nobody() {
    let _dog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let (_node, _lines) = bound_node(dir.path(), &[]);
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let connect =
        |name: &str| client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new(name)).unwrap());

    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (_s1, stuck) = connect("test-stuck");
    let _stuck = stuck
        .make_chain()
        .unwrap()
        .handle_notifications(Arc::new(Stuck(std::sync::Mutex::new(gate))))
        .unwrap();
    let (heard_tx, heard) = std::sync::mpsc::channel();
    let (_s2, live) = connect("test-live");
    let _live = live
        .make_chain()
        .unwrap()
        .handle_notifications(Arc::new(Heard(std::sync::Mutex::new(heard_tx))))
        .unwrap();

    let (_s3, miner) = connect("test-miner");
    let mined = miner
        .make_node()
        .unwrap()
        .generate_to_address(20, &regtest_address(&Keys::new()))
        .unwrap();
    assert_eq!(mined.len(), 20);
    for height in 1..=20 {
        let got = heard
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the live subscriber hears every block");
        assert_eq!(got, height);
    }
    // The stuck client is released only now, so the test ends cleanly.
    drop(release);
}

/// Clients that complete a real handshake and then scribble on the ring they write to the
/// node (a record longer than the ring, a position out of range, unknown record flags) are
/// dropped alone: the node hangs up on each with the error logged and keeps serving others.
#[test]
fn clients_scribbling_on_their_ring_are_dropped_alone() {
    use std::io::Read;
    let _dog = watchdog(120);
    const CAP: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let (_node, lines) = bound_node(dir.path(), &[]);
    let path = dir.path().join("regtest/node.sock");
    let (_session, init) = client(
        ipc_shm::connect(
            &ipc_shm::Endpoint::unix(&path),
            &ipc_shm::Config::new("test-good"),
        )
        .unwrap(),
    );
    let chain = init.make_chain().unwrap();
    let scribbles: [(&str, &[(u64, u64)]); 3] = [
        (
            "a record longer than the ring",
            &[(hand::DATA_OFFSET, 5000 | hand::FLAG_RECORD << 32)],
        ),
        (
            "padding around the whole ring",
            &[(
                hand::DATA_OFFSET,
                (CAP - 8) | (hand::FLAG_RECORD | hand::FLAG_PADDING) << 32,
            )],
        ),
        (
            "unknown record flags",
            &[(hand::DATA_OFFSET, 4 | (6 << 32))],
        ),
    ];
    for (what, writes) in scribbles {
        let ring = hand::HandRing::new("hostile", CAP, true);
        let mut stream = hand::hand_hello(&path, CAP, 0);
        ring.send(&stream, &[]);
        let [_node_ring, _node_space_bell, node_data_bell] = hand::take_fds(&stream);
        for &(offset, value) in writes {
            ring.write_u64(offset, value);
        }
        // Wakes the node's reader if it has parked on its bell.
        hand::ring_bell(&node_data_bell);
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        assert_eq!(
            stream.read(&mut [0u8; 1]).unwrap(),
            0,
            "{what}: the node hangs up"
        );
        wait_for_line(&lines, "closing the connection");
        assert_eq!(
            chain.get_height().unwrap(),
            Some(0),
            "{what}: others are served"
        );
    }
}

/// [`logged_node`] with `-nowallet -printtoconsole -ipcbind=unix` and `extra`, once it says
/// it is ready.
fn bound_node(datadir: &Path, extra: &[&str]) -> (Reaped, std::sync::mpsc::Receiver<String>) {
    let mut args = vec!["-nowallet", "-printtoconsole", "-ipcbind=unix"];
    args.extend_from_slice(extra);
    let (node, lines) = logged_node(datadir, &args);
    wait_for_line(&lines, "bitcoin-node ready");
    (node, lines)
}

/// Starts `bitcoin-node -ipcbind=unix` on `datadir` and waits until it is ready.
fn start_bound_node(datadir: &Path) -> Reaped {
    let mut child = node(datadir, &["-nowallet", "-printtoconsole", "-ipcbind=unix"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while !lines
        .next()
        .expect("node exited early")
        .unwrap()
        .contains("bitcoin-node ready")
    {}
    std::thread::spawn(move || for _ in lines {});
    Reaped(child)
}

#[test]
fn kill_9_of_the_real_node_while_a_client_mines_loses_no_reported_block() {
    let _dog = watchdog(300);
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let address = regtest_address(&keys);
    let mut reported: Vec<BlockHash> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut slowest_notice = std::time::Duration::ZERO;
    for iteration in 0..50 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let blocks = 1 + (seed % 20) as usize;
        let mut node = start_bound_node(dir.path());
        let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
        let (session, init) =
            client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-miner")).unwrap());
        let node_if = init.make_node().unwrap();
        // Mine until `blocks` were reported, then kill -9 while the next one is under way.
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = address.clone();
        let miner = std::thread::spawn(move || {
            while let Ok(hashes) = node_if.generate_to_address(1, &addr) {
                if tx.send(hashes[0]).is_err() {
                    break;
                }
            }
        });
        for _ in 0..blocks {
            reported.push(rx.recv().expect("the miner stopped early"));
        }
        node.0.kill().unwrap();
        let killed = std::time::Instant::now();
        node.0.wait().unwrap();
        drop(rx);
        // The miner's call in flight fails with Disconnected, which ends its loop.
        miner.join().unwrap();
        slowest_notice = slowest_notice.max(killed.elapsed());
        drop((init, session));

        let chain = ChainState::open(&dir.path().join("regtest")).unwrap();
        assert!(
            chain.height() as usize >= reported.len(),
            "iteration {iteration}: a reported block is gone"
        );
        for (i, hash) in reported.iter().enumerate() {
            assert_eq!(
                chain.block_hash(i as u32 + 1),
                Some(*hash),
                "iteration {iteration}: block {} differs",
                i + 1
            );
        }
        assert_eq!(
            sorted_coins(&chain),
            recompute_utxos(&chain),
            "iteration {iteration}"
        );
        // Blocks connected after the last report count as reported from here on.
        reported = (1..=chain.height())
            .map(|h| chain.block_hash(h).unwrap())
            .collect();
    }
    eprintln!(
        "50 kills of bitcoin-node: the mining client had its Disconnected within {slowest_notice:?} at worst"
    );
}

#[test]
fn a_wallet_that_connects_is_reached_through_the_node_until_it_goes() {
    let _dog = watchdog(120);
    let wallet_binary = Path::new(NODE).with_file_name("bitcoin-wallet");
    assert!(
        wallet_binary.exists(),
        "{} is missing: run cargo test --workspace",
        wallet_binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut node, lines) = logged_node(
        dir.path(),
        &["-nowallet", "-printtoconsole", "-ipcbind=unix"],
    );
    wait_for_line(&lines, "bitcoin-node ready");
    let mut wallet = Reaped(
        Command::new(&wallet_binary)
            .arg(format!("-datadir={}", dir.path().display()))
            .arg("-ipcconnect=unix")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_line(&lines, "bitcoin-wallet attached (connected)");
    let endpoint = ipc_shm::Endpoint::unix(dir.path().join("regtest/node.sock"));
    let (_session, init) =
        client(ipc_shm::connect(&endpoint, &ipc_shm::Config::new("test-client")).unwrap());
    let n = init.make_node().unwrap();
    let loader = n.wallet_loader().unwrap();
    assert!(
        !loader.list_wallets().unwrap().is_empty(),
        "the connected wallet loads its default wallet"
    );
    let address = loader
        .get_default_wallet()
        .unwrap()
        .get_new_address()
        .unwrap();
    assert!(address.is_valid_for_network(bitcoin::Network::Regtest));

    // A second wallet process, with wallets of its own, connects: it is the one handed out
    // while it stays; when it goes, the first one is handed out again (it used to leave
    // the node with no wallet at all, the first one still running).
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = Reaped(
        Command::new(&wallet_binary)
            .arg(format!("-datadir={}", other_dir.path().display()))
            .arg(format!("-ipcconnect=unix:{}", endpoint_path(dir.path())))
            .arg("-wallet=bee")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_line(&lines, "bitcoin-wallet attached (connected)");
    assert_eq!(n.wallet_loader().unwrap().list_wallets().unwrap(), ["bee"]);
    kill(Pid::from_raw(other.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = other.0.wait();
    wait_for_line(&lines, "bitcoin-wallet detached (disconnected)");
    let first = n.wallet_loader().unwrap().list_wallets().unwrap();
    assert!(
        !first.is_empty() && !first.contains(&"bee".to_owned()),
        "{first:?}"
    );

    kill(Pid::from_raw(wallet.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = wallet.0.wait();
    wait_for_line(&lines, "bitcoin-wallet detached (disconnected)");
    assert_eq!(
        n.wallet_loader().err().unwrap().code(),
        Some(interfaces::ErrorCode::WALLET_NOT_FOUND)
    );
    kill(Pid::from_raw(node.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(node.0.wait().unwrap().success());
}
