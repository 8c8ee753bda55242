//! Serving the node's interfaces over ipc-shm connections: the connection inherited with
//! `-ipcfd` (the node was spawned by a front end) and clients accepted on `-ipcbind`
//! sockets. Every connection gets a call session whose bootstrap object is the node's
//! [`Init`]; a client reaches `Chain`, `Node` and `Mining` through it.
//!
//! Logged under the `node::ipc` target (debug level with `-debug=ipc`): each connection,
//! handshake failure and disconnect.

use std::fmt;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Chain, Init, InterfaceError, WalletLoader};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::connect::MAX_SOCKET_PATH;
use ipc_shm::{Config, ConnectError, Connection, Endpoint, Listener, Pending, Transport};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::service::{NodeContext, NodeInit};

/// The name this process gives itself in handshakes and logs.
const NAME: &str = "bitcoin-node";
/// The name a wallet process gives in the handshake.
const WALLET: &str = "bitcoin-wallet";

/// An IPC setup failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum IpcError {
    /// `-ipcbind` names an address that is not `unix` or `unix:PATH`, or a path too long.
    Address(String, ConnectError),
    /// Two `-ipcbind` addresses name the same socket.
    Duplicate {
        /// The first address given.
        first: String,
        /// The second.
        second: String,
        /// The socket path both name.
        path: PathBuf,
    },
    /// A `-ipcbind` socket cannot be bound (something else is in the way).
    Bind(String, ConnectError),
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
            Self::Duplicate {
                first,
                second,
                path,
            } => write!(
                f,
                "-ipcbind={first} and -ipcbind={second} both name the socket {}",
                path.display()
            ),
            Self::Bind(spec, e) => write!(f, "cannot listen on -ipcbind={spec}: {e}"),
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

/// Starts a call session on `connection` offering the node's `Init`; returns it with that
/// `Init`, whose objects count against the connection's share of the node's limits.
fn serve(connection: Connection, ctx: &Arc<NodeContext>) -> (Session, NodeInit) {
    let node_init = NodeInit::new(Arc::clone(ctx));
    let init: Arc<dyn Init> = Arc::new(node_init.clone());
    let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(init));
    let config = SessionConfig {
        name: NAME.into(),
        ..SessionConfig::default()
    };
    (Session::new(connection, Some(server), &config), node_init)
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
    let (session, _) = serve(connection, ctx);
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

/// The socket path of the `-ipcbind` address `spec` (`unix` is `CHAIN_DIR/node.sock`,
/// `unix:PATH` is PATH, relative to `chain_dir` when relative), checked to fit in a socket
/// address. Touches nothing on disk.
pub fn ipcbind_path(spec: &str, chain_dir: &Path) -> Result<PathBuf, IpcError> {
    let address = |e| IpcError::Address(spec.to_owned(), e);
    let endpoint = Endpoint::parse(spec, &chain_dir.join("node.sock")).map_err(address)?;
    let path = endpoint.path().to_owned();
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(address(ConnectError::PathTooLong {
            path,
            len,
            max: MAX_SOCKET_PATH,
        }));
    }
    Ok(path)
}

/// Checks every `-ipcbind` address before anything is written to disk: its syntax, its
/// length, that no two bind the same path and that nothing but a socket is in the way. What
/// only binding can tell (a live listener at the path) is left to [`serve_ipcbind`].
pub fn check_ipcbind(specs: &[String], chain_dir: &Path) -> Result<(), IpcError> {
    let mut paths: Vec<(PathBuf, &str)> = Vec::new();
    for spec in specs {
        let path = ipcbind_path(spec, chain_dir)?;
        if let Some((_, first)) = paths.iter().find(|(p, _)| *p == path) {
            return Err(IpcError::Duplicate {
                first: (*first).to_owned(),
                second: spec.clone(),
                path,
            });
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {}
            Ok(_) => {
                return Err(IpcError::Bind(
                    spec.clone(),
                    ConnectError::NotASocket { path },
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IpcError::Bind(
                    spec.clone(),
                    ConnectError::Io {
                        action: "inspect",
                        path,
                        source,
                    },
                ));
            }
        }
        paths.push((path, spec));
    }
    Ok(())
}

/// A `-ipcbind` socket being served. Dropping it (or [`IpcBind::stop`]) stops accepting
/// clients and removes the socket file if it is still ours (and the directories binding
/// created for it, if they are empty); clients already connected keep their sessions.
#[derive(Debug)]
#[must_use = "dropping an IpcBind stops serving its socket"]
pub struct IpcBind {
    path: PathBuf,
    /// The directories binding created (deepest first), removed with the socket if empty.
    created: Vec<PathBuf>,
    /// Dropping our end wakes the accept loop, which then returns and drops the listener.
    stop: Option<UnixStream>,
    thread: Option<thread::JoinHandle<()>>,
}

impl IpcBind {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket file and returns once both are done.
    pub fn stop(self) {}
}

impl Drop for IpcBind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(target: "node::ipc", path = %self.path.display(), "the ipcbind thread panicked");
        }
        remove_empty_dirs(&self.created);
    }
}

/// Removes each of `dirs` (deepest first) that is empty; stops at the first that is not.
fn remove_empty_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// Listens on the `-ipcbind` address `spec` (`unix` is `DATADIR/regtest/node.sock`) and
/// serves every client that completes the handshake, each on its own session, until the
/// returned [`IpcBind`] is dropped. A failed handshake is logged and costs only that client.
/// A bind that fails leaves no directory it created behind.
pub fn serve_ipcbind(
    spec: &str,
    chain_dir: &Path,
    ctx: &Arc<NodeContext>,
    config: &Config,
    clients: &Arc<Clients>,
) -> Result<IpcBind, IpcError> {
    let path = ipcbind_path(spec, chain_dir)?;
    // `Listener::bind` creates missing directories; they go with the socket, and at once if
    // anything below fails (`bound` drops after `listener`, which removes the socket file).
    let created = path
        .ancestors()
        .skip(1)
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(Path::to_owned)
        .collect();
    let mut bound = IpcBind {
        path,
        created,
        stop: None,
        thread: None,
    };
    let listener =
        Listener::bind(&Endpoint::unix(&bound.path), config).map_err(IpcError::Transport)?;
    tracing::info!(target: "node::ipc", path = %listener.path().display(), "listening for ipc clients");
    let (stop, stopped) = UnixStream::pair().map_err(IpcError::Thread)?;
    let ctx = Arc::downgrade(ctx);
    let clients = Arc::clone(clients);
    let thread = thread::Builder::new()
        .name("ipcbind".into())
        .spawn(move || {
            accept_loop(
                listener.as_fd(),
                stopped.as_fd(),
                || listener.accept_pending(),
                |pending| {
                    let Some(ctx) = ctx.upgrade() else {
                        return ControlFlow::Break(());
                    };
                    match clients.admit() {
                        Some(place) => serve_client(pending, ctx, place),
                        None => pending.refuse_too_many(clients.limit),
                    }
                    ControlFlow::Continue(())
                },
            );
            // `listener` drops here, removing the socket file.
        })
        .map_err(IpcError::Thread)?;
    bound.stop = Some(stop);
    bound.thread = Some(thread);
    Ok(bound)
}

/// The first wait after a failed `accept`; it doubles while failures go on.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(1);
/// The longest wait between two `accept` attempts that keep failing.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Why [`wait_readable`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Stop,
    Ready,
    Timeout,
}

/// Waits until `stop` is readable or hung up (the owner wants the loop to end), `listener`
/// (if given) is readable, or `timeout` (if given) has passed.
fn wait_readable(
    stop: BorrowedFd<'_>,
    listener: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> Result<Wake, Errno> {
    let timeout = timeout.map_or(PollTimeout::NONE, |t| {
        PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
    });
    let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
    fds.extend(listener.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
    loop {
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let woke = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        return Ok(if woke(&fds[0]) {
            Wake::Stop
        } else if fds.get(1).is_some_and(woke) {
            Wake::Ready
        } else {
            Wake::Timeout
        });
    }
}

/// Accepts clients on `listener` and hands each to `serve` until `stop` becomes readable (or
/// hangs up) or `serve` breaks. An `accept` that fails (out of descriptors, say) is retried
/// after a pause that doubles from [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`] while the
/// failures go on; a burst of failures is logged once when it starts and once when it ends.
fn accept_loop<C, E: fmt::Display>(
    listener: BorrowedFd<'_>,
    stop: BorrowedFd<'_>,
    mut accept: impl FnMut() -> Result<C, E>,
    mut serve: impl FnMut(C) -> ControlFlow<()>,
) {
    let mut failures: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        if failures > 0 {
            // The retry delay: a burst of failures must not spin. Then wait for a client as
            // always: `accept` on an empty queue would block where stopping cannot reach it.
            if let Ok(Wake::Stop) = wait_readable(stop, None, Some(backoff)) {
                return;
            }
        }
        match wait_readable(stop, Some(listener), None) {
            Ok(Wake::Stop) => return,
            Ok(Wake::Ready) => {}
            Ok(Wake::Timeout) => continue,
            Err(e) => {
                // Not expected of poll(2) on two valid descriptors; pace the retries all the same.
                tracing::warn!(target: "node::ipc", "waiting for ipc clients failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF_MAX);
                continue;
            }
        }
        match accept() {
            Ok(client) => {
                if failures > 0 {
                    tracing::info!(target: "node::ipc", failures, "accepting ipc clients again");
                    failures = 0;
                    backoff = ACCEPT_BACKOFF_MIN;
                }
                if serve(client).is_break() {
                    return;
                }
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(target: "node::ipc", "accept failed: {e}; retrying every {ACCEPT_BACKOFF_MAX:?} at most until it works");
                } else {
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                failures += 1;
            }
        }
    }
}

/// Runs the handshake with `pending` on its own thread, so that a silent client holds up
/// nobody, then serves it until it leaves; `place` is its place among the clients.
fn serve_client(pending: Pending, ctx: Arc<NodeContext>, place: Place) {
    let spawned = thread::Builder::new()
        .name("ipc-client".into())
        .spawn(move || match pending.handshake() {
            Ok(Some(connection)) => {
                let peer = connection.peer().name().to_owned();
                tracing::debug!(target: "node::ipc", %peer, "client connected");
                let (session, init) = serve(connection, &ctx);
                // A wallet that connects (bitcoin-wallet -ipcconnect) is attached like a
                // spawned one, so front ends reach it through the node.
                let loader = (peer == WALLET)
                    .then(|| attach_wallet(&session, &init, &ctx))
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

/// Hands the wallet process at the other end of `session` our `Chain` (its
/// `Init::make_wallet_loader`, as in Bitcoin Core), as that connection's `init` sees it,
/// and registers the loader it returns, so that front ends reach its wallets through
/// `Node::wallet_loader`.
fn attach_wallet(
    session: &Session,
    init: &NodeInit,
    ctx: &Arc<NodeContext>,
) -> Result<Arc<dyn WalletLoader>, IpcError> {
    let chain: Arc<dyn Chain> = init.make_chain().map_err(IpcError::Wallet)?;
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
    // The datadir's bytes as given (`display()` would replace those that are not UTF-8).
    let mut arg = std::ffi::OsString::from("-datadir=");
    arg.push(datadir);
    let args = [arg];
    let (mut child, connection) =
        ipc_shm::spawn("bitcoin-wallet", args, config).map_err(IpcError::Transport)?;
    let pid = child.pid();
    let (session, init) = serve(connection, ctx);
    let session = Arc::new(session);
    let loader = attach_wallet(&session, &init, ctx)?;
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::mpsc;

    use super::*;

    /// A descriptor that is always readable, standing in for a listener with a client queued.
    fn always_readable() -> (UnixStream, UnixStream) {
        let (mut writer, reader) = UnixStream::pair().unwrap();
        writer.write_all(b"x").unwrap();
        (writer, reader)
    }

    #[test]
    fn failing_accepts_are_retried_with_a_growing_pause_not_a_spin() {
        let (_writer, listener) = always_readable();
        let (stop, stopped) = UnixStream::pair().unwrap();
        let mut stop = Some(stop);
        let mut attempts = 0;
        let started = Instant::now();
        accept_loop(
            listener.as_fd(),
            stopped.as_fd(),
            || -> Result<(), &str> {
                attempts += 1;
                if attempts == 8 {
                    drop(stop.take()); // ends the loop at its next wait
                }
                Err("Too many open files (os error 24)")
            },
            |()| unreachable!("nothing is accepted"),
        );
        let elapsed = started.elapsed();
        assert_eq!(attempts, 8);
        // Pauses of 1, 2, 4, ..., 64 ms between the eight attempts; poll never wakes early.
        assert!(elapsed >= Duration::from_millis(127), "{elapsed:?}");
    }

    #[test]
    fn the_pause_is_capped_and_reset_once_accept_works_again() {
        let (_writer, listener) = always_readable();
        let (_stop, stopped) = UnixStream::pair().unwrap();
        let mut attempts = 0;
        let mut served = Vec::new();
        let started = Instant::now();
        accept_loop(
            listener.as_fd(),
            stopped.as_fd(),
            || {
                attempts += 1;
                // Twelve failures (pauses capped at 100 ms), one client, two failures, one client.
                if attempts == 13 || attempts == 16 {
                    Ok(attempts)
                } else {
                    Err("Too many open files (os error 24)")
                }
            },
            |client| {
                served.push(client);
                if served.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        let elapsed = started.elapsed();
        assert_eq!(served, [13, 16]);
        // 1+2+4+...+64 ms, then five pauses of 100 ms (uncapped they would be 128, 256, ...,
        // 2048: 4 s), then 1+2 ms after the reset.
        let least = Duration::from_millis(127 + 500 + 3);
        assert!(elapsed >= least, "{elapsed:?}");
        assert!(elapsed < least + Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn stop_ends_the_loop_while_it_waits_for_a_client() {
        let (_client, listener) = UnixStream::pair().unwrap(); // never readable
        let (stop, stopped) = UnixStream::pair().unwrap();
        let (done_tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            accept_loop(
                listener.as_fd(),
                stopped.as_fd(),
                || -> Result<(), &str> { unreachable!("no client") },
                |()| ControlFlow::Continue(()),
            );
            done_tx.send(()).unwrap();
        });
        drop(stop);
        done.recv_timeout(Duration::from_secs(10))
            .expect("the loop ends when stopped");
        thread.join().unwrap();
    }
}
