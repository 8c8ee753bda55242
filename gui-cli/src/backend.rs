//! The connection to `bitcoin-node`: spawned beside this executable (`-ipcfd`) or reached
//! with `-ipcconnect`, then the call layer and the node's `Init` over it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use interfaces::Init;
use interfaces::remote::InitProxy;
use ipc_shm::call::{Session, SessionConfig};
use ipc_shm::{Config, Endpoint, SpawnedChild, Transport};

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
                let connection = ipc_shm::connect(&endpoint, &config).with_context(|| {
                    format!("cannot connect to bitcoin-node at {endpoint} (is it running with -ipcbind?)")
                })?;
                (connection, Mode::Connected(endpoint), None)
            }
            None => {
                let mut args = vec![
                    format!("-datadir={}", opts.datadir.display()),
                    format!("-transport={}", opts.transport),
                ];
                if opts.printtoconsole {
                    args.push("-printtoconsole".to_owned());
                }
                let (child, connection) = ipc_shm::spawn(NODE_EXE, &args, &config)
                    .with_context(|| {
                        format!("cannot start {NODE_EXE} with -ipcfd (it must sit beside bitcoin-gui and serve IPC)")
                    })?;
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

fn session_config() -> SessionConfig {
    SessionConfig {
        name: "bitcoin-gui".to_owned(),
        ..SessionConfig::default()
    }
}
