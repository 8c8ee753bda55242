//! The real binaries side by side: `bitcoin-node -ipcbind=unix` on a fresh datadir, with a
//! separately started `bitcoin-wallet -ipcconnect=unix` when asked, for the tests that use
//! connect mode as a user does.
//!
//! `bitcoin-node` and `bitcoin-wallet` are other packages' binaries, so `cargo test -p
//! gui-cli` alone may not have built them; `cargo test --workspace` (the README's and CI's
//! command) always has.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
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
/// arrive on a channel and are kept, so a failing test can show what the child said.
pub(crate) struct Log {
    lines: mpsc::Receiver<String>,
    seen: RefCell<Vec<String>>,
}

impl Log {
    pub(crate) fn follow(stderr: ChildStderr) -> Log {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Log {
            lines: rx,
            seen: RefCell::default(),
        }
    }

    /// Waits (at most [`READY`]) for a line containing `needle`; false when none came.
    pub(crate) fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + READY;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                return false;
            };
            let found = line.contains(needle);
            self.seen.borrow_mut().push(line);
            if found {
                return true;
            }
        }
    }

    /// Every line so far, once the child's stderr has closed (the child was killed), or
    /// what has arrived when it has not.
    fn all(&self) -> String {
        let mut seen = self.seen.borrow_mut();
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = || deadline.saturating_duration_since(Instant::now());
        while let Ok(line) = self.lines.recv_timeout(left()) {
            seen.push(line);
        }
        seen.join("\n")
    }
}

/// Starts `exe args...` with its stderr followed in a [`Log`]; killed when dropped.
fn start_logged(exe: &Path, args: &[&str]) -> (KillOnDrop, Log) {
    let mut child = KillOnDrop(
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display())),
    );
    let log = Log::follow(child.0.stderr.take().expect("piped stderr"));
    (child, log)
}

/// Each thread of process `pid` with its name, state and kernel wait channel, from
/// `/proc`: enough to tell a process stuck in a call from one that never got there.
fn threads(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("process {pid} is gone");
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let read = |file: &str| {
            std::fs::read_to_string(task.path().join(file))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let state = read("stat")
            .rsplit_once(") ")
            .map(|(_, rest)| rest.chars().take(1).collect::<String>());
        out.push(format!(
            "  {} {:?} {} wchan={}",
            task.file_name().to_string_lossy(),
            read("comm"),
            state.unwrap_or_default(),
            read("wchan")
        ));
    }
    out.join("\n")
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
        let (mut node, log) = start_logged(
            &node_exe,
            &[
                datadir.as_str(),
                "-nowallet",
                "-printtoconsole",
                "-ipcbind=unix",
                &transport_opt,
            ],
        );
        assert!(
            log.wait_for("bitcoin-node ready"),
            "bitcoin-node never ready:\n{}",
            log.all()
        );
        let wallet = wallet.then(|| {
            let (mut wallet, wallet_log) = start_logged(
                &node_exe.with_file_name("bitcoin-wallet"),
                &[
                    datadir.as_str(),
                    "-printtoconsole",
                    "-ipcconnect=unix",
                    &transport_opt,
                ],
            );
            if !log.wait_for("bitcoin-wallet attached") {
                // Everything that tells where it stuck, before the processes are killed.
                let stuck = format!(
                    "node threads:\n{}\nwallet threads:\n{}\nwallet status: {:?}",
                    threads(node.0.id()),
                    threads(wallet.0.id()),
                    wallet.0.try_wait()
                );
                let _ = wallet.0.kill();
                let _ = node.0.kill();
                panic!(
                    "no \"bitcoin-wallet attached\" within {READY:?} over {transport}\n{stuck}\n\
                     node log:\n{}\nwallet log:\n{}",
                    log.all(),
                    wallet_log.all()
                );
            }
            wallet
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
