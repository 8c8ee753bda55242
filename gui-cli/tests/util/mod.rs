//! Helpers for the tests that drive the `bitcoin-gui` binary: run it with a watchdog, serve
//! a [`testnode::TestNode`] on a unix socket for `-ipcconnect`, or start the real
//! `bitcoin-node` and `bitcoin-wallet` binaries side by side ([`bound::BoundNode`]).

#![allow(dead_code)]

pub(crate) mod bound;
pub(crate) mod testnode;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use interfaces::remote::InitServer;
use ipc_shm::call::{Session, SessionConfig};
use ipc_shm::{Config, Endpoint, Listener};

use self::testnode::TestNode;

/// The longest a single `bitcoin-gui` run may take before the watchdog kills it.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A regtest address (the BIP 173 test vector, on regtest).
pub(crate) const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The binary under test.
pub(crate) fn gui_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bitcoin-gui"))
}

/// Runs `exe args...` without a terminal; a run longer than [`WATCHDOG`] is killed (and
/// then fails on its status).
pub(crate) fn run(exe: &Path, args: &[&str]) -> Output {
    run_with_stdout(exe, args, &Stdio::piped)
}

/// [`run`], with the standard output `stdout` makes (called again when exec is retried).
pub(crate) fn run_with_stdout(exe: &Path, args: &[&str], stdout: &dyn Fn() -> Stdio) -> Output {
    let child = spawn_retrying(|| {
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout())
            .stderr(Stdio::piped())
            .spawn()
    });
    let pid = child.id().to_string();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(WATCHDOG).is_err() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    let output = child.wait_with_output().expect("wait for bitcoin-gui");
    let _ = done.send(());
    watchdog.join().expect("watchdog");
    output
}

/// Starts a process, retrying while exec fails with `ETXTBSY`: an executable this test
/// process just copied can still be open for writing in a child another test thread has
/// forked but not yet exec'd (the file descriptor is close-on-exec, so this passes).
fn spawn_retrying(spawn: impl Fn() -> std::io::Result<Child>) -> Child {
    const ETXTBSY: i32 = 26;
    let mut attempts = 0;
    loop {
        match spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempts < 1000 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("cannot start the process: {e}"),
        }
    }
}

/// Runs `bitcoin-gui args...`; returns (exit success, stdout, stderr).
pub(crate) fn gui(args: &[&str]) -> (bool, String, String) {
    let out = run(gui_exe(), args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real node ([`TestNode`]) listening on `DIR/regtest/node.sock`, as
/// `bitcoin-node -ipcbind=unix` does, serving each client on its own session; unlike the
/// binary, it can hang up on its clients while staying alive (`disconnect_all`).
pub(crate) struct ServedNode {
    pub(crate) node: TestNode,
    sessions: Arc<Mutex<Vec<Arc<Session>>>>,
    pub(crate) socket: PathBuf,
}

impl ServedNode {
    pub(crate) fn start() -> ServedNode {
        let node = TestNode::new();
        let socket = node.datadir().join("regtest").join("node.sock");
        let listener =
            Listener::bind(&Endpoint::unix(&socket), &Config::new("test-node")).expect("bind");
        let init = node.init();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::clone(&sessions);
        // Lives until the test process exits, like a node left running.
        std::thread::spawn(move || {
            while let Ok(connection) = listener.accept() {
                let bootstrap = Arc::new(InitServer::new(Arc::clone(&init)));
                let session = Session::new(connection, Some(bootstrap), &SessionConfig::default());
                open.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arc::new(session));
            }
        });
        ServedNode {
            node,
            sessions,
            socket,
        }
    }

    /// Hangs up on every client, as a node that dies does.
    pub(crate) fn disconnect_all(&self) {
        for session in self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            session.close();
        }
    }

    /// `-datadir`, `-ipcconnect` and `-transport` options for this node.
    pub(crate) fn options(&self, transport: &str) -> Vec<String> {
        vec![
            format!("-datadir={}", self.node.datadir().display()),
            format!("-ipcconnect=unix:{}", self.socket.display()),
            format!("-transport={transport}"),
        ]
    }
}
