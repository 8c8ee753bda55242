//! The connection to `bitcoin-node`: spawned beside this executable (`-ipcfd`) or reached
//! with `-ipcconnect`, then the call layer and the node's `Init` over it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow};
use interfaces::Init;
use interfaces::remote::InitProxy;
use ipc_shm::call::{Session, SessionConfig};
use ipc_shm::handshake::HandshakeError;
use ipc_shm::{Config, ConnectError, Endpoint, SpawnOptions, SpawnedChild, Transport};

/// The node executable started in spawn mode, looked up beside our own.
const NODE_EXE: &str = "bitcoin-node";

/// How we reached the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// We started it; it exits when we close the connection.
    Spawned { pid: u32 },
    /// It was running already and keeps running after we leave.
    Connected(Endpoint),
}

/// A live connection to a node. Dropping it closes the session, so that a spawned node sees
/// the hang-up and shuts down, then reaps that node.
pub(crate) struct NodeLink {
    /// The node's bootstrap object, from which every other interface comes.
    pub(crate) init: Arc<dyn Init>,
    pub(crate) mode: Mode,
    pub(crate) transport: Transport,
    session: Arc<Session>,
    /// The node we spawned, until it is reaped: by a watcher as soon as the connection is
    /// gone (a node that died must not stay a zombie while the UI stays open to say so),
    /// else when the link is dropped.
    child: Arc<Mutex<Option<SpawnedChild>>>,
}

/// Where and how to reach the node, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct LinkOptions<'a> {
    pub(crate) datadir: &'a Path,
    pub(crate) ipcconnect: Option<&'a str>,
    pub(crate) transport: Transport,
    pub(crate) printtoconsole: bool,
}

impl NodeLink {
    /// Spawns or connects to the node and opens the call session.
    pub(crate) fn open(opts: &LinkOptions<'_>) -> anyhow::Result<NodeLink> {
        let mut config = Config::new("bitcoin-gui");
        config.transport = opts.transport;
        let (connection, mode, child) = match opts.ipcconnect {
            Some(spec) => {
                let default = opts.datadir.join("regtest").join("node.sock");
                let endpoint = Endpoint::parse(spec, &default)
                    .with_context(|| format!("invalid -ipcconnect={spec}"))?;
                let connection = ipc_shm::connect(&endpoint, &config)
                    .map_err(|e| connect_error(&endpoint, e))?;
                (connection, Mode::Connected(endpoint), None)
            }
            None => {
                check_datadir(opts.datadir)?;
                // The datadir's bytes as given: `display()` would turn bytes that are not
                // UTF-8 into U+FFFD, and the node would use another directory.
                let mut datadir = std::ffi::OsString::from("-datadir=");
                datadir.push(opts.datadir);
                let mut args = vec![datadir, format!("-transport={}", opts.transport).into()];
                if opts.printtoconsole {
                    args.push("-printtoconsole".into());
                }
                // The node's stderr is ours to read until it has answered: a node that stops
                // as it starts gets its reason into our one line instead of a line of its own.
                let mut spawn = SpawnOptions::default();
                spawn.capture_stderr = true;
                let (child, connection) = ipc_shm::spawn_with(NODE_EXE, &args, &config, &spawn)
                    .map_err(|e| spawn_error(opts, e))?;
                (connection, Mode::Spawned { pid: child.pid() }, Some(child))
            }
        };
        let session = Arc::new(Session::new(connection, None, &session_config()));
        let init: Arc<dyn Init> = Arc::new(InitProxy::new(session.bootstrap()));
        let spawned = child.is_some();
        let link = NodeLink {
            init,
            mode,
            transport: opts.transport,
            session,
            child: Arc::new(Mutex::new(child)),
        };
        if spawned {
            let child = Arc::clone(&link.child);
            link.on_disconnect(move || {
                // Reaped under the lock, so that dropping the link waits for it too.
                let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
                drop(child.take());
            })
            .context("cannot start the thread that reaps the node")?;
        }
        Ok(link)
    }

    /// Calls `f` on a new thread once the connection to the node is gone (the node exited
    /// or hung up, or this link was dropped).
    pub(crate) fn on_disconnect(&self, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let session = Arc::clone(&self.session);
        std::thread::Builder::new()
            .name("node-watch".into())
            .spawn(move || {
                session.wait_closed();
                f();
            })?;
        Ok(())
    }
}

impl Drop for NodeLink {
    /// Hangs up even while a watcher still holds the session, so a spawned node sees the
    /// connection gone and exits, then reaps it (or waits while the watcher does).
    fn drop(&mut self) {
        self.session.close();
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        drop(child.take());
    }
}

impl fmt::Debug for NodeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLink")
            .field("mode", &self.mode)
            .field("transport", &self.transport)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The chain directory of `datadir`, as the node names it.
fn chain_dir(datadir: &Path) -> std::path::PathBuf {
    datadir.join("regtest")
}

/// Checks, before a node is spawned on `datadir`, what would make it fail at once, so that
/// the failure is our one line instead of the node's line and ours: the chain directory
/// cannot be made, or another node holds the data directory lock. The node takes that lock
/// as `flock(LOCK_EX | LOCK_NB)` on `DIR/regtest/.lock`, which `File::try_lock` is; our
/// probe lets go of it at once. A node starting meanwhile is benign: the lock still stops
/// one of the two.
fn check_datadir(datadir: &Path) -> anyhow::Result<()> {
    let chain_dir = chain_dir(datadir);
    std::fs::create_dir_all(&chain_dir)
        .with_context(|| format!("cannot create data directory {}", chain_dir.display()))?;
    let lock_path = chain_dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    match File::try_lock(&lock) {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            // Suggest attaching only where a node answers: a socket file may be stale, and
            // a node may listen elsewhere (`-ipcbind=unix:PATH`).
            let listening =
                std::os::unix::net::UnixStream::connect(chain_dir.join("node.sock")).is_ok();
            let how = if listening {
                "use -ipcconnect=unix to attach to it"
            } else {
                "attach to it with -ipcconnect=unix[:PATH] if it serves -ipcbind"
            };
            Err(anyhow!(
                "bitcoin-node is already running on {} ({how})",
                datadir.display()
            ))
        }
        Err(TryLockError::Error(e)) => {
            Err(anyhow!(e).context(format!("cannot lock {}", lock_path.display())))
        }
    }
}

/// The error of a node that could not be spawned. One that stopped before it answered the
/// handshake has written why to its stderr, which we captured: our line gives its reason and
/// points at its log. (With `-printtoconsole` the lines before its reason, its log, are
/// passed on first.)
fn spawn_error(opts: &LinkOptions<'_>, e: ipc_shm::Error) -> anyhow::Error {
    let log = chain_dir(opts.datadir).join("debug.log");
    match e {
        ipc_shm::Error::Connect(ConnectError::ChildExited {
            status,
            stderr,
            error,
            ..
        }) => {
            let text = String::from_utf8_lossy(&stderr);
            match node_reason(&text) {
                Some((index, reason)) => {
                    if opts.printtoconsole {
                        echo_lines_but(&text, index);
                    }
                    anyhow!(
                        "{NODE_EXE} stopped as it started: {reason} (see {})",
                        log.display()
                    )
                }
                // Nothing said: a signal, or a handshake it refused without a word.
                None if stopped_as_it_started(&error) => anyhow!(
                    "{NODE_EXE} stopped as it started ({status}; see {})",
                    log.display()
                ),
                None => anyhow!(*error).context(format!(
                    "{NODE_EXE} stopped as it started ({status}; see {})",
                    log.display()
                )),
            }
        }
        // It hung up without exiting (it was then killed, and its stderr passed on).
        e if stopped_as_it_started(&e) => anyhow!(
            "{NODE_EXE} stopped as it started (see its error above, or {})",
            log.display()
        ),
        e => anyhow!(e).context(format!(
            "cannot start {NODE_EXE} with -ipcfd (it must sit beside bitcoin-gui and serve IPC)"
        )),
    }
}

/// Whether the handshake failed because the node hung up before reading our hello (our write
/// failed) or before answering it.
fn stopped_as_it_started(e: &ipc_shm::Error) -> bool {
    matches!(
        e,
        ipc_shm::Error::Disconnected
            | ipc_shm::Error::Handshake(HandshakeError::Truncated { received: 0, .. })
    )
}

/// The node's reason in what it wrote to stderr, and the index of its line: the last line
/// that starts with `Error: ` (the node's one line, after its log when it logs to the
/// console), without that prefix; else the last line that is neither blank nor a `note: `
/// (the hint after a panic's message).
fn node_reason(stderr: &str) -> Option<(usize, &str)> {
    // Each line that says something: its index, its words, whether they follow `Error:`.
    let said: Vec<(usize, &str, bool)> = stderr
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.trim();
            let (words, error) = match line.strip_prefix("Error:") {
                Some(reason) => (reason.trim(), true),
                None => (line, false),
            };
            (!words.is_empty()).then_some((i, words, error))
        })
        .collect();
    said.iter()
        .rev()
        .find(|(_, _, error)| *error)
        .or_else(|| {
            said.iter()
                .rev()
                .find(|(_, words, _)| !words.starts_with("note: "))
        })
        .map(|&(i, words, _)| (i, words))
}

/// Writes every line of `text` but the one at `skip` to our stderr (the node's log, when it
/// logs to the console); a stderr that cannot be written to loses them.
fn echo_lines_but(text: &str, skip: usize) {
    let mut err = std::io::stderr().lock();
    for (i, line) in text.lines().enumerate() {
        if i != skip {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// The error of a failed `-ipcconnect`, naming the socket once.
fn connect_error(endpoint: &Endpoint, e: ipc_shm::Error) -> anyhow::Error {
    match e {
        ipc_shm::Error::Connect(ConnectError::NoListener { path }) => anyhow!(
            "no bitcoin-node is listening at {} (is it running with -ipcbind?)",
            path.display()
        ),
        // These name the socket themselves.
        ipc_shm::Error::Connect(e) => anyhow!(e).context("cannot connect to bitcoin-node"),
        e => anyhow!(e).context(format!("cannot connect to bitcoin-node at {endpoint}")),
    }
}

fn session_config() -> SessionConfig {
    SessionConfig {
        name: "bitcoin-gui".to_owned(),
        ..SessionConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::node_reason;

    #[test]
    fn the_nodes_reason_is_its_error_line_else_its_last_words() {
        assert_eq!(
            node_reason("Error: database error: corrupt\n"),
            Some((0, "database error: corrupt"))
        );
        // After its log, with -printtoconsole.
        assert_eq!(
            node_reason("2026 INFO starting\n2026 ERROR bad\nError: bad\n\n"),
            Some((2, "bad"))
        );
        // A panic: its message, not the hint after it.
        assert_eq!(
            node_reason(
                "thread 'main' panicked at src/main.rs:1:1:\nboom\nnote: run with \
                 `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
            ),
            Some((1, "boom"))
        );
        assert_eq!(node_reason(""), None);
        assert_eq!(node_reason("\n  \nError: \n"), None);
    }
}
