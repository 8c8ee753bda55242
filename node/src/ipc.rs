//! Serving the node's interfaces over ipc-shm connections: the connection inherited with
//! `-ipcfd` (the node was spawned by a front end) and clients accepted on `-ipcbind`
//! sockets. Every connection gets a call session whose bootstrap object is the node's
//! [`Init`]; a client reaches `Chain`, `Node` and `Mining` through it.
//!
//! Logged under the `node::ipc` target (debug level with `-debug=ipc`): each connection,
//! handshake failure and disconnect.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Chain, Init, InterfaceError, WalletLoader};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::{Config, Connection, Endpoint, Listener, Transport};

use crate::service::{NodeContext, NodeInit};

/// The name this process gives itself in handshakes and logs.
const NAME: &str = "bitcoin-node";
/// The name a wallet process gives in the handshake.
const WALLET: &str = "bitcoin-wallet";

/// An IPC setup failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum IpcError {
    /// `-ipcbind` names an address that is not `unix` or `unix:PATH`.
    Address(String, ipc_shm::ConnectError),
    /// The transport failed (socket, handshake, shared memory).
    Transport(ipc_shm::Error),
    /// A thread could not be started.
    Thread(std::io::Error),
    /// The spawned wallet refused to hand out its wallet loader.
    Wallet(InterfaceError),
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(spec, e) => write!(f, "invalid -ipcbind address {spec:?}: {e}"),
            Self::Transport(e) => write!(f, "ipc: {e}"),
            Self::Thread(e) => write!(f, "cannot start an ipc thread: {e}"),
            Self::Wallet(e) => write!(f, "bitcoin-wallet did not provide a wallet loader: {e}"),
        }
    }
}

impl std::error::Error for IpcError {}

/// `-ipcmaxconnections` when not given.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 64;

/// The node's clients: counts open sessions, so that shutdown can give them a moment to take
/// their last replies (`Node::shutdown`'s own among them) before the process exits, and
/// admits `-ipcbind` clients up to a limit (`-ipcmaxconnections`). A client holds its place
/// from the moment it is accepted, through its handshake, until its session closes, so a
/// flood of connections that never finish their hello cannot take more than the limit.
#[derive(Debug)]
pub struct Clients {
    open: Mutex<usize>,
    changed: Condvar,
    limit: usize,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONNECTIONS)
    }
}

/// One client's place among the [`Clients`]; freed when dropped.
struct Place(Arc<Clients>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

impl Clients {
    /// Clients of which at most `limit` (at least one) are admitted at once.
    pub fn new(limit: u32) -> Self {
        Self {
            open: Mutex::default(),
            changed: Condvar::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
        }
    }

    fn add(&self, delta: isize) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_add_signed(delta);
        self.changed.notify_all();
    }

    /// Takes a place for a new client, unless the limit is reached.
    fn admit(self: &Arc<Self>) -> Option<Place> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if *open >= self.limit {
            return None;
        }
        *open += 1;
        Some(Place(Arc::clone(self)))
    }

    /// Waits until every client has disconnected or `grace` has passed; returns how many
    /// are still connected.
    pub fn wait_disconnected(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while *open > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            open = self
                .changed
                .wait_timeout(open, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *open
    }

    /// Runs `session` until it closes, counted as open meanwhile (the `-ipcfd` parent, which
    /// is never refused).
    fn run(&self, session: &Session) {
        self.add(1);
        session.wait_closed();
        self.add(-1);
    }
}

/// The transport settings of the connections the node makes and accepts.
pub fn transport_config(transport: Transport) -> Config {
    let mut config = Config::new(NAME);
    config.transport = transport;
    config
}

/// Starts a call session on `connection` offering the node's `Init`.
fn serve(connection: Connection, ctx: &Arc<NodeContext>) -> Session {
    let init: Arc<dyn Init> = Arc::new(NodeInit::new(Arc::clone(ctx)));
    let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(init));
    let config = SessionConfig {
        name: NAME.into(),
        ..SessionConfig::default()
    };
    Session::new(connection, Some(server), &config)
}

/// Serves the connection inherited as descriptor `fd` (`-ipcfd`). When the parent's
/// connection closes, the node shuts down, as Core's does.
pub fn serve_ipcfd(
    fd: i32,
    ctx: &Arc<NodeContext>,
    config: &Config,
    clients: &Arc<Clients>,
) -> Result<(), IpcError> {
    let connection = ipc_shm::accept_ipcfd(fd, config).map_err(IpcError::Transport)?;
    tracing::debug!(target: "node::ipc", fd, "accepted the parent's connection");
    let session = serve(connection, ctx);
    let ctx = Arc::downgrade(ctx);
    let clients = Arc::clone(clients);
    thread::Builder::new()
        .name("ipcfd".into())
        .spawn(move || {
            clients.run(&session);
            tracing::info!(target: "node::ipc", "parent connection closed; shutting down");
            if let Some(ctx) = ctx.upgrade() {
                ctx.request_shutdown();
            }
        })
        .map_err(IpcError::Thread)?;
    Ok(())
}

/// Listens on the `-ipcbind` address `spec` (`unix` is `DATADIR/regtest/node.sock`) and
/// serves every client that completes the handshake, each on its own session, until the
/// process ends. A failed handshake is logged and costs only that client.
pub fn serve_ipcbind(
    spec: &str,
    chain_dir: &Path,
    ctx: &Arc<NodeContext>,
    config: &Config,
    clients: &Arc<Clients>,
) -> Result<(), IpcError> {
    let endpoint = Endpoint::parse(spec, &chain_dir.join("node.sock"))
        .map_err(|e| IpcError::Address(spec.to_owned(), e))?;
    let listener = Listener::bind(&endpoint, config).map_err(IpcError::Transport)?;
    tracing::info!(target: "node::ipc", path = %listener.path().display(), "listening for ipc clients");
    let ctx = Arc::downgrade(ctx);
    let clients = Arc::clone(clients);
    thread::Builder::new()
        .name("ipcbind".into())
        .spawn(move || {
            loop {
                let pending = match listener.accept_pending() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(target: "node::ipc", "accept failed: {e}");
                        continue;
                    }
                };
                let Some(ctx) = ctx.upgrade() else { return };
                let Some(place) = clients.admit() else {
                    pending.refuse_too_many(clients.limit);
                    continue;
                };
                // The handshake runs off the accept loop so a silent client holds up nobody.
                let spawned = thread::Builder::new()
                    .name("ipc-client".into())
                    .spawn(move || match pending.handshake() {
                        Ok(Some(connection)) => {
                            let peer = connection.peer().name().to_owned();
                            tracing::debug!(target: "node::ipc", %peer, "client connected");
                            let session = serve(connection, &ctx);
                            // A wallet that connects (bitcoin-wallet -ipcconnect) is attached
                            // like a spawned one, so front ends reach it through the node.
                            let loader = (peer == WALLET)
                                .then(|| attach_wallet(&session, &ctx))
                                .and_then(|attached| {
                                    attached
                                        .inspect(|_| tracing::info!(target: "node::ipc", "bitcoin-wallet attached (connected)"))
                                        .inspect_err(|e| tracing::warn!(target: "node::ipc", "{e}"))
                                        .ok()
                                });
                            let weak = Arc::downgrade(&ctx);
                            drop(ctx);
                            session.wait_closed();
                            drop(place);
                            if let (Some(loader), Some(ctx)) = (loader, weak.upgrade()) {
                                ctx.unset_wallet_loader(&loader);
                                tracing::info!(target: "node::ipc", "bitcoin-wallet detached (disconnected)");
                            }
                            tracing::debug!(target: "node::ipc", %peer, "client disconnected");
                        }
                        Ok(None) => {
                            tracing::debug!(target: "node::ipc", "client left before the handshake")
                        }
                        Err(e) => {
                            tracing::warn!(target: "node::ipc", "client handshake failed: {e}")
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(target: "node::ipc", "cannot start a client thread: {e}");
                }
            }
        })
        .map_err(IpcError::Thread)?;
    Ok(())
}

/// Hands the wallet process at the other end of `session` our `Chain` (its
/// `Init::make_wallet_loader`, as in Bitcoin Core) and registers the loader it returns, so
/// that front ends reach its wallets through `Node::wallet_loader`.
fn attach_wallet(
    session: &Session,
    ctx: &Arc<NodeContext>,
) -> Result<Arc<dyn WalletLoader>, IpcError> {
    let chain: Arc<dyn Chain> = Arc::clone(ctx) as Arc<dyn Chain>;
    let loader = InitProxy::new(session.bootstrap())
        .make_wallet_loader(chain)
        .map_err(IpcError::Wallet)?;
    ctx.set_wallet_loader(Some(Arc::clone(&loader)));
    Ok(loader)
}

/// Spawns `bitcoin-wallet` (beside this executable) on the same data directory with
/// `-ipcfd`, gives it the node's `Chain` through its `Init::make_wallet_loader`, and
/// attaches the returned loader to [`NodeContext`] (`Node::wallet_loader`). A thread waits
/// for the wallet's connection to close, then detaches the loader, reaps the child and
/// logs how it ended; the node keeps serving without a wallet. Shutdown stops it with
/// [`WalletChild::stop`].
pub fn spawn_wallet(
    datadir: &Path,
    ctx: &Arc<NodeContext>,
    config: &Config,
) -> Result<WalletChild, IpcError> {
    let args = [format!("-datadir={}", datadir.display())];
    let (mut child, connection) =
        ipc_shm::spawn("bitcoin-wallet", args, config).map_err(IpcError::Transport)?;
    let pid = child.pid();
    let session = Arc::new(serve(connection, ctx));
    let loader = attach_wallet(&session, ctx)?;
    tracing::info!(target: "node::ipc", pid, "bitcoin-wallet attached");
    let stopping = Arc::new(AtomicBool::new(false));
    let reaper = {
        let weak_ctx = Arc::downgrade(ctx);
        let watched = Arc::clone(&session);
        let stopping = Arc::clone(&stopping);
        let attached = Arc::clone(&loader);
        thread::Builder::new()
            .name("wallet-child".into())
            .spawn(move || {
                watched.wait_closed();
                if let Some(ctx) = weak_ctx.upgrade() {
                    ctx.unset_wallet_loader(&attached);
                }
                drop(attached);
                drop(watched);
                // The wallet exits once its connection is closed; one that has not within
                // REAP_GRACE is killed.
                match child.wait_timeout(ipc_shm::connect::REAP_GRACE) {
                    Ok(Some(status)) if stopping.load(Ordering::Relaxed) => {
                        tracing::info!(target: "node::ipc", pid, %status, "bitcoin-wallet stopped")
                    }
                    Ok(Some(status)) => {
                        tracing::warn!(target: "node::ipc", pid, %status, "bitcoin-wallet exited")
                    }
                    Ok(None) => {
                        tracing::warn!(target: "node::ipc", pid, "bitcoin-wallet did not exit within {:?}; killing it", ipc_shm::connect::REAP_GRACE);
                        if let Err(e) = child.kill() {
                            tracing::warn!(target: "node::ipc", pid, "cannot kill bitcoin-wallet: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "node::ipc", pid, "cannot reap bitcoin-wallet: {e}")
                    }
                }
            })
            .map_err(|e| {
                // Nobody would detach the wallet when it goes: detach it now, and hang up so
                // that it exits before its `SpawnedChild` (dropped with the closure) reaps it.
                ctx.unset_wallet_loader(&loader);
                session.close();
                IpcError::Thread(e)
            })?
    };
    Ok(WalletChild {
        session,
        reaper,
        stopping,
    })
}

/// The `bitcoin-wallet` the node spawned, for shutdown to stop.
#[derive(Debug)]
pub struct WalletChild {
    session: Arc<Session>,
    /// Waits for the connection to close, then reaps the child.
    reaper: thread::JoinHandle<()>,
    /// Set by [`WalletChild::stop`]: the exit is expected, not worth a warning.
    stopping: Arc<AtomicBool>,
}

impl WalletChild {
    /// Hangs up on the wallet, which flushes and exits when its connection closes, and
    /// returns once the process has been reaped (killed if it takes longer than
    /// [`ipc_shm::connect::REAP_GRACE`]), so the node never leaves its wallet running behind it.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.session.close();
        if self.reaper.join().is_err() {
            tracing::error!(target: "node::ipc", "the wallet reaper thread panicked");
        }
    }
}
