//! The connection to `bitcoin-node`: spawned beside this executable (`-ipcfd`) or reached
//! with `-ipcconnect`, then the call layer and the node's `Init` over it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use interfaces::Init;
use interfaces::remote::InitProxy;
use ipc_shm::call::{Session, SessionConfig};
use ipc_shm::handshake::HandshakeError;
use ipc_shm::{Config, ConnectError, Endpoint, SpawnedChild, Transport};

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
    // Declared after `session`, so dropped after it (fields drop in declaration order).
    _child: Option<SpawnedChild>,
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
                let (child, connection) = ipc_shm::spawn(NODE_EXE, &args, &config)
                    .map_err(|e| spawn_error(opts.datadir, e))?;
                (connection, Mode::Spawned { pid: child.pid() }, Some(child))
            }
        };
        let session = Arc::new(Session::new(connection, None, &session_config()));
        let init: Arc<dyn Init> = Arc::new(InitProxy::new(session.bootstrap()));
        Ok(NodeLink {
            init,
            mode,
            transport: opts.transport,
            session,
            _child: child,
        })
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
    /// connection gone and exits before `_child` is reaped.
    fn drop(&mut self) {
        self.session.close();
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
/// handshake has printed its own error: ours then points at it and at its log.
fn spawn_error(datadir: &Path, e: ipc_shm::Error) -> anyhow::Error {
    match e {
        // It hung up before reading our hello (our write failed) or before answering it.
        ipc_shm::Error::Disconnected
        | ipc_shm::Error::Handshake(HandshakeError::Truncated { received: 0, .. }) => anyhow!(
            "{NODE_EXE} stopped as it started (see its error above, or {})",
            chain_dir(datadir).join("debug.log").display()
        ),
        e => anyhow!(e).context(format!(
            "cannot start {NODE_EXE} with -ipcfd (it must sit beside bitcoin-gui and serve IPC)"
        )),
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
