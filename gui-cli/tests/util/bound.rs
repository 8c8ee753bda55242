//! The real binaries side by side: `bitcoin-node -ipcbind=unix` on a fresh datadir, with a
//! separately started `bitcoin-wallet -ipcconnect=unix` when asked, for the tests that use
//! connect mode as a user does.
//!
//! `bitcoin-node` and `bitcoin-wallet` are other packages' binaries, so `cargo test -p
//! gui-cli` alone may not have built them; `cargo test --workspace` (the README's and CI's
//! command) always has.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{gui, gui_exe};

/// How long a process may take to say it is ready, or to exit once told to.
const READY: Duration = Duration::from_secs(30);

/// `bitcoin-node` beside `bitcoin-gui` (with `bitcoin-wallet`). A test that needs them fails
/// when they are not built: passing without running would prove nothing.
pub(crate) fn node_exe() -> PathBuf {
    let node = gui_exe().with_file_name("bitcoin-node");
    for exe in [&node, &node.with_file_name("bitcoin-wallet")] {
        assert!(
            exe.exists(),
            "{} is not built: run the workspace's tests (cargo test --workspace)",
            exe.display()
        );
    }
    node
}

/// A child process killed and reaped when dropped, however the test ends.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's stderr, read on a thread (so the child never blocks on a full pipe); lines
/// arrive on a channel.
pub(crate) struct Log(mpsc::Receiver<String>);

impl Log {
    pub(crate) fn follow(stderr: ChildStderr) -> Log {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Log(rx)
    }

    /// Waits (at most [`READY`]) for a line containing `needle`.
    pub(crate) fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + READY;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no {needle:?} in the log within {READY:?}"),
            }
        }
    }
}

/// `bitcoin-node -ipcbind=unix -nowallet` on its own temporary datadir, optionally with a
/// `bitcoin-wallet -ipcconnect=unix` attached; both killed when dropped.
pub(crate) struct BoundNode {
    /// `-datadir=…`, `-ipcconnect` and `-transport=…`: what a client passes to reach it.
    options: [String; 3],
    transport: String,
    // Dropped in this order: the wallet, the node, then the datadir.
    _wallet: Option<KillOnDrop>,
    node: KillOnDrop,
    _dir: TempDir,
}

impl BoundNode {
    /// Starts the node over `transport` (`shm` or `socket`) and, with `wallet`, a wallet
    /// process that connects to it; returns once the node says the wallet is attached.
    pub(crate) fn start(transport: &str, wallet: bool) -> BoundNode {
        let node_exe = node_exe();
        let dir = tempfile::tempdir().expect("temporary datadir");
        let datadir = format!("-datadir={}", dir.path().display());
        let transport_opt = format!("-transport={transport}");
        let mut node = KillOnDrop(
            Command::new(&node_exe)
                .args([
                    datadir.as_str(),
                    "-nowallet",
                    "-printtoconsole",
                    "-ipcbind=unix",
                    &transport_opt,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start bitcoin-node"),
        );
        let log = Log::follow(node.0.stderr.take().expect("piped stderr"));
        log.wait_for("bitcoin-node ready");
        let wallet = wallet.then(|| {
            let wallet = Command::new(node_exe.with_file_name("bitcoin-wallet"))
                .args([datadir.as_str(), "-ipcconnect=unix", &transport_opt])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start bitcoin-wallet");
            log.wait_for("bitcoin-wallet attached");
            KillOnDrop(wallet)
        });
        BoundNode {
            options: [datadir, "-ipcconnect".to_owned(), transport_opt],
            transport: transport.to_owned(),
            _wallet: wallet,
            node,
            _dir: dir,
        }
    }

    /// What a client passes to reach this node: `-datadir`, `-ipcconnect`, `-transport`.
    pub(crate) fn options(&self) -> Vec<String> {
        self.options.to_vec()
    }

    /// Runs `bitcoin-gui` in connect mode with `args`; asserts that it succeeds and returns
    /// its trimmed stdout.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = self.options.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let (ok, stdout, stderr) = gui(&all);
        assert!(ok, "{} {args:?}: {stderr}", self.transport);
        stdout.trim_end().to_owned()
    }

    /// Whether the node process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.node
            .0
            .try_wait()
            .expect("query bitcoin-node")
            .is_none()
    }

    /// Waits for the node to exit, e.g. after `stop`; one that takes longer than [`READY`]
    /// is killed and the test fails.
    pub(crate) fn wait_exit(mut self) -> ExitStatus {
        let pid = self.node.0.id().to_string();
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let hung = finished.recv_timeout(READY).is_err();
            if hung {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
            hung
        });
        let status = self.node.0.wait().expect("wait for bitcoin-node");
        let _ = done.send(());
        let hung = watchdog.join().expect("watchdog");
        assert!(!hung, "bitcoin-node did not exit within {READY:?}");
        status
    }
}
