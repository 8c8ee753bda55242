//! Setting connections up the way Bitcoin Core's multiprocess binaries do.
//!
//! - *Spawn*: [`spawn`] makes a socketpair, starts the executable found beside our own
//!   with `-ipcfd=N` appended, and initiates the handshake; the child calls
//!   [`accept_ipcfd`] with that `N`. [`SpawnedChild`] reaps the child. [`spawn_with`] can
//!   also capture the child's stderr while the handshake runs, so that the caller reports a
//!   child that failed at start in one line of its own.
//! - *Bind*: [`Listener::bind`] listens on a unix socket (`-ipcbind=unix[:PATH]`), mode 0600
//!   in a directory created 0700 if missing. A socket file left by a dead process is
//!   replaced; a live listener is an error. A lock in the abstract namespace makes binding one
//!   path exclusive, so two listeners binding it at once cannot both "replace" it.
//! - *Connect*: [`connect`] to a listener (`-ipcconnect=unix[:PATH]`).
//!
//! The initiating side (spawner, connector) proposes the transport and ring sizes; the
//! accepting side (child, listener) checks the peer and answers (see [`crate::handshake`]).

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket, socketpair,
};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

pub use crate::error::ConnectError;

use crate::error::Error;
use crate::handshake;
use crate::sys;
use crate::transport::{Config, Connection};

mod bind_lock;
mod child_stderr;

use bind_lock::BindLock;
pub use child_stderr::STDERR_CAPTURE_LIMIT;
use child_stderr::{STDERR_DRAIN, StderrPipe};

/// The longest socket path: `sun_path` holds 108 bytes including the terminating zero.
pub const MAX_SOCKET_PATH: usize = 107;

/// How long a dropped [`SpawnedChild`] is given to exit on its own before it is killed.
pub const REAP_GRACE: Duration = Duration::from_secs(5);

/// Where a listener listens or a client connects: a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    path: PathBuf,
}

impl Endpoint {
    /// Parses Bitcoin Core's `-ipcbind`/`-ipcconnect` forms: `unix` is `default_path`
    /// (normally `<datadir>/<chain>/node.sock`); `unix:PATH` is `PATH`, taken relative to
    /// the directory of `default_path` when relative, as Core takes it relative to the
    /// chain's data directory.
    pub fn parse(spec: &str, default_path: &Path) -> Result<Endpoint, ConnectError> {
        let path = match spec.strip_prefix("unix") {
            Some("") => default_path.to_owned(),
            Some(rest) => match rest.strip_prefix(':') {
                Some(p) if !p.is_empty() => default_path.parent().unwrap_or(Path::new("")).join(p),
                _ => {
                    return Err(ConnectError::Unsupported {
                        spec: spec.to_owned(),
                    });
                }
            },
            None => {
                return Err(ConnectError::Unsupported {
                    spec: spec.to_owned(),
                });
            }
        };
        Ok(Endpoint { path })
    }

    /// The endpoint of the socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Endpoint {
        Endpoint { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_len(&self) -> Result<(), ConnectError> {
        let len = self.path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(ConnectError::PathTooLong {
                path: self.path.clone(),
                len,
                max: MAX_SOCKET_PATH,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix:{}", self.path.display())
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ConnectError {
    let path = path.to_owned();
    move |source| ConnectError::Io {
        action,
        path,
        source,
    }
}

/// A listening unix socket that hands out handshaken connections. Holds its path's bind
/// lock while it lives; removes its socket file when dropped (unless a process that does not
/// take the lock has replaced it since), then releases the lock.
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we created, to recognise it at drop.
    file_id: (u64, u64),
    config: Config,
    /// Makes the path ours (see [`Listener::bind`]). Declared last, so released last: after
    /// `Drop::drop` has removed the socket file and the listening socket has closed.
    _lock: BindLock,
}

impl Listener {
    /// Listens on `endpoint`. The socket file is mode 0600 before the first client can
    /// connect; its directory is created mode 0700 if missing. A socket file nobody listens
    /// on any more is replaced; a live one is [`ConnectError::InUse`].
    ///
    /// Binding one path is exclusive: before it probes, replaces or binds the file, `bind`
    /// takes a lock that the listener holds until it is dropped, and a listener in this or
    /// another process that holds it makes `bind` fail with [`ConnectError::InUse`] at once.
    /// So of several listeners binding one path at the same moment exactly one succeeds, and
    /// none removes a file another has bound. The lock is a socket in Linux's abstract
    /// namespace named after the directory's device and inode and the file name: it leaves
    /// nothing on disk and goes with its process, `kill -9` included. It does not reach
    /// across network namespaces (see `docs/ARCHITECTURE.md`, "Connections").
    pub fn bind(endpoint: &Endpoint, config: &Config) -> Result<Listener, Error> {
        config.validate()?;
        endpoint.check_len()?;
        let path = endpoint.path();
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error("create the directory", dir))?;
        }
        // Taken before the probe, so that no other listener can bind, or replace, the file
        // between our probe and our bind; released only after the file is gone (at drop).
        let Some(lock) = BindLock::acquire(path)? else {
            return Err(ConnectError::InUse {
                path: path.to_owned(),
            }
            .into());
        };
        remove_stale(path)?;
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io_error("create a socket for", path)(e.into()))?;
        let addr =
            UnixAddr::new(path).map_err(|e| io_error("make an address of", path)(e.into()))?;
        match bind(sock.as_raw_fd(), &addr) {
            Ok(()) => {}
            // Bound since our probe by a process that does not take the lock (another
            // network namespace, or not ipc-shm).
            Err(nix::errno::Errno::EADDRINUSE) => {
                return Err(ConnectError::InUse {
                    path: path.to_owned(),
                }
                .into());
            }
            Err(e) => return Err(io_error("bind", path)(e.into()).into()),
        }
        // No client can connect before `listen`, so nobody can slip in before the mode is set.
        let finish = || -> Result<(u64, u64), ConnectError> {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .map_err(io_error("set the mode of", path))?;
            let meta = fs::symlink_metadata(path).map_err(io_error("inspect", path))?;
            listen(&sock, Backlog::new(64).unwrap_or(Backlog::MAXCONN))
                .map_err(|e| io_error("listen on", path)(e.into()))?;
            Ok((meta.dev(), meta.ino()))
        };
        let file_id = finish().inspect_err(|_| {
            // No `Listener` exists to remove the file `bind` made. We hold the lock, so it is
            // ours unless a process that does not take the lock replaced it; it goes only if
            // nobody listens on it (ours never listened). The lock goes after it.
            let _ = remove_stale(path);
        })?;
        tracing::info!("listening on {endpoint}");
        Ok(Listener {
            listener: UnixListener::from(sock),
            path: path.to_owned(),
            file_id,
            config: config.clone(),
            _lock: lock,
        })
    }

    /// Waits for a client and runs the handshake with it (within the configured deadline).
    /// An error concerns that client only (except an `Error::Io` from `accept(2)` itself,
    /// such as running out of descriptors): the listener keeps serving. Clients that hang up
    /// without a byte, as another process checking whether we are alive does, are skipped.
    ///
    /// A silent client holds this call up until its deadline; a server that must keep
    /// serving others uses [`Listener::accept_pending`] and runs each handshake on its own
    /// thread (several threads may also call `accept` at once).
    pub fn accept(&self) -> Result<Connection, Error> {
        loop {
            if let Some(connection) = self.accept_pending()?.handshake()? {
                return Ok(connection);
            }
        }
    }

    /// Takes the next client off the queue without running its handshake, so that a
    /// server can run [`Pending::handshake`] on another thread: a slow or silent client then
    /// holds up only itself (for at most [`Config::handshake_timeout`]), never the clients
    /// queued behind it.
    pub fn accept_pending(&self) -> Result<Pending, Error> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    return Ok(Pending {
                        socket: OwnedFd::from(stream),
                        config: self.config.clone(),
                    });
                }
                // The client left while queued: nothing to report.
                Err(e) if e.raw_os_error() == Some(nix::libc::ECONNABORTED) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A client taken off a [`Listener`]'s queue whose handshake has not run yet.
#[derive(Debug)]
pub struct Pending {
    socket: OwnedFd,
    config: Config,
}

impl Pending {
    /// Runs the acceptor's side of the handshake, within the listener's deadline. `None`
    /// means the client was only probing whether anybody listens (it connected and left
    /// without a byte): nothing to report.
    pub fn handshake(self) -> Result<Option<Connection>, Error> {
        match handshake::accept(self.socket, &self.config) {
            Err(e) if handshake::is_probe(&e) => Ok(None),
            result => result.map(Some),
        }
    }

    /// Turns the client away because the server already has `limit` connections: it gets
    /// [`Refusal::TooManyConnections`](crate::handshake::Refusal::TooManyConnections) at
    /// once instead of waiting, and the refusal is logged.
    pub fn refuse_too_many(self, limit: usize) {
        handshake::refuse_too_many(self.socket, limit as u64);
    }
}

impl AsFd for Listener {
    /// The listening socket, to `poll` for incoming clients.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file_id);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!("cannot remove socket {}: {e}", self.path.display());
        }
    }
}

/// Removes a socket file at `path` if no process listens on it any more.
fn remove_stale(path: &Path) -> Result<(), ConnectError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ConnectError::NotASocket {
            path: path.to_owned(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ConnectError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("replacing stale socket {}", path.display());
            fs::remove_file(path).map_err(io_error("remove the stale socket", path))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("probe", path)(e)),
    }
}

/// Connects to a listener and runs the handshake as initiator.
pub fn connect(endpoint: &Endpoint, config: &Config) -> Result<Connection, Error> {
    endpoint.check_len()?;
    let path = endpoint.path();
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ConnectError::NoListener {
            path: path.to_owned(),
        },
        _ => io_error("connect to", path)(e),
    })?;
    handshake::initiate(OwnedFd::from(stream), config, None)
}

/// Starts `exe_name` (looked up beside the current executable; an absolute path is used as
/// is) with `args` and `-ipcfd=N`, and initiates the handshake over a socketpair. The child
/// is expected to call [`accept_ipcfd`] and to exit when the connection closes. It inherits
/// our stdin, stdout and stderr; [`spawn_with`] can capture its stderr.
pub fn spawn<S: AsRef<std::ffi::OsStr>>(
    exe_name: impl AsRef<Path>,
    args: impl IntoIterator<Item = S>,
    config: &Config,
) -> Result<(SpawnedChild, Connection), Error> {
    spawn_with(exe_name, args, config, &SpawnOptions::default())
}

/// How [`spawn_with`] starts the child. The default is what [`spawn`] does.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// Capture the child's stderr while the handshake runs, so that the caller can report in
    /// its own words why a child that failed at start did.
    ///
    /// The child's stderr becomes a pipe that a thread of ours reads to its end, so the child
    /// never blocks on it. If the handshake succeeds, what the child wrote so far and
    /// everything it (or a process it starts) writes later goes to our stderr, in order, and
    /// [`SpawnedChild`] waits (at most 1 s) for the last of it when it reaps the child. If
    /// the handshake fails and the child exits within [`REAP_GRACE`], the error is
    /// [`ConnectError::ChildExited`], with the end of what it wrote (at most
    /// [`STDERR_CAPTURE_LIMIT`] bytes; anything older has gone to our stderr); a child that
    /// has to be killed instead has its output passed on to our stderr and the handshake's
    /// error returned. Should we die first, the child's writes to stderr fail (`EPIPE`, or
    /// `SIGPIPE` unless it ignores that, as Rust programs do), where an inherited stderr would
    /// have stayed writable.
    pub capture_stderr: bool,
}

/// [`spawn`], with `options`.
pub fn spawn_with<S: AsRef<std::ffi::OsStr>>(
    exe_name: impl AsRef<Path>,
    args: impl IntoIterator<Item = S>,
    config: &Config,
    options: &SpawnOptions,
) -> Result<(SpawnedChild, Connection), Error> {
    config.validate()?;
    let dir = std::env::current_exe()?
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let exe = dir.join(exe_name);
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Both ends close-on-exec (`io::pipe`): only the child gets the write end, as its
    // descriptor 2; the reader runs before the child does, so no write of its can block.
    let (stderr, stderr_writer) = if options.capture_stderr {
        let (reader, writer) = io::pipe()?;
        (Some(StderrPipe::start(reader)?), Some(writer))
    } else {
        (None, None)
    };
    let child = {
        let mut cmd = Command::new(&exe);
        cmd.args(args).arg(format!("-ipcfd={}", theirs.as_raw_fd()));
        sys::inherit_in_child(&mut cmd, theirs.as_fd());
        if let Some(writer) = stderr_writer {
            cmd.stderr(writer);
        }
        // `cmd` goes at the end of this block, and with it our copy of the write end: the
        // reader sees end of file once the child (and what it started) has closed its own.
        cmd.spawn()
    }
    .map_err(|source| ConnectError::Spawn {
        exe: exe.clone(),
        source,
    })?;
    // The child has its copy; ours must go so that the child's death hangs up `ours`.
    drop(theirs);
    tracing::info!("spawned {} (pid {})", exe.display(), child.id());
    // Built before the handshake, so that a failed handshake still reaps the child.
    let pid = child.id();
    let child = SpawnedChild { child, stderr };
    match handshake::initiate(ours, config, Some(pid)) {
        Ok(connection) => {
            if let Some(stderr) = &child.stderr {
                stderr.forward();
            }
            Ok((child, connection))
        }
        Err(error) => Err(child.failed_handshake(exe, error)),
    }
}

/// The child's side of [`spawn`]: takes over the descriptor numbered `fd` (from `-ipcfd=N`)
/// and runs the handshake as acceptor.
pub fn accept_ipcfd(fd: i32, config: &Config) -> Result<Connection, Error> {
    let sock = sys::adopt_inherited_socket(fd)?;
    handshake::accept(sock, config)
}

/// A child started by [`spawn`]. Dropping it reaps the child: it is given [`REAP_GRACE`] to
/// exit (it should, once the connection is closed), then killed.
///
/// With [`SpawnOptions::capture_stderr`], each way of reaping it below also waits (at most
/// 1 s) until the child's stderr, forwarded to ours, has reached its end.
#[derive(Debug)]
pub struct SpawnedChild {
    child: Child,
    /// The child's stderr, when captured.
    stderr: Option<StderrPipe>,
}

impl SpawnedChild {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit and reaps it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.drain_stderr();
        Ok(status)
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.wait()
    }

    /// Waits at most `timeout` for the child to exit; reaps it if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let status = self.wait_timeout_inner(timeout)?;
        if status.is_some() {
            self.drain_stderr();
        }
        Ok(status)
    }

    /// Passes the rest of a reaped child's captured stderr on before we go on. Waits once: a
    /// process the child started may hold the pipe for ever; what it writes is still forwarded.
    fn drain_stderr(&mut self) {
        if let Some(stderr) = self.stderr.take()
            && !stderr.drain(STDERR_DRAIN)
        {
            tracing::debug!(
                "stderr of child {} still open {STDERR_DRAIN:?} after it exited (held by a process it started?)",
                self.child.id()
            );
        }
    }

    /// The handshake with this child failed with `error`: reaps the child, and turns the error
    /// into [`ConnectError::ChildExited`] when its stderr was captured and it exited by itself.
    fn failed_handshake(mut self, exe: PathBuf, error: Error) -> Error {
        // Without a capture, dropping `self` reaps the child.
        let Some(stderr) = self.stderr.take() else {
            return error;
        };
        match self.wait_timeout_inner(REAP_GRACE) {
            Ok(Some(status)) => ConnectError::ChildExited {
                exe,
                status,
                stderr: stderr.take(STDERR_DRAIN),
                error: Box::new(error),
            }
            .into(),
            // Still running (or it cannot be waited for): killed; what it wrote is passed on
            // rather than lost.
            _ => {
                tracing::warn!(
                    "child {} still running {REAP_GRACE:?} after its handshake failed; killing it",
                    self.pid()
                );
                let _ = self.kill();
                child_stderr::write_stderr(&stderr.take(STDERR_DRAIN));
                error
            }
        }
    }

    fn wait_timeout_inner(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        // A helper thread blocks in `waitid(WNOWAIT)`, which reports the exit without
        // reaping: only `self.child` ever reaps, so the pid cannot be reused under us.
        let pid = Pid::from_raw(self.child.id() as i32);
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            let _ = tx.send(());
        });
        let exited = rx.recv_timeout(timeout).is_ok();
        if exited {
            let _ = waiter.join();
            return self.child.wait().map(Some);
        }
        // Still running: the waiter stays blocked until the child exits (our caller decides
        // whether to kill it); detach it.
        drop(waiter);
        Ok(None)
    }
}

impl Drop for SpawnedChild {
    fn drop(&mut self) {
        let pid = self.child.id();
        match self.wait_timeout(REAP_GRACE) {
            Ok(Some(status)) => tracing::debug!("child {pid} exited: {status}"),
            Ok(None) => {
                tracing::warn!(
                    "child {pid} still running {REAP_GRACE:?} after the connection closed; killing it"
                );
                let _ = self.kill();
            }
            Err(e) => tracing::warn!("cannot wait for child {pid}: {e}"),
        }
    }
}
