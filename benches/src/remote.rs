//! An interface served by a peer process through a call session: the client holds a proxy
//! to the peer's bootstrap object, the peer serves one `Dispatch` until the client hangs up.

use std::sync::Arc;

use ipc_shm::SpawnedChild;
use ipc_shm::call::{Dispatch, RemoteObject, Session, SessionConfig};

use crate::conn::{self, Mode, Setup};
use crate::peer::CallWatchdog;

/// A proxy `P` to the object a spawned peer serves, with the session and the child it lives
/// on.
pub struct Remote<P> {
    // Dropped in this order: the watchdog (it never kills a reaped child's pid), the proxy,
    // then the session (closing the connection), then the child, which exits once the
    // connection closes and is reaped.
    watchdog: CallWatchdog,
    proxy: P,
    _session: Session,
    child: SpawnedChild,
}

impl<P> std::fmt::Debug for Remote<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("peer", &self.child.pid())
            .finish_non_exhaustive()
    }
}

impl<P> Remote<P> {
    /// Starts the peer `role` with `args`, connects to it as `setup` says (its mode is
    /// ignored) and wraps the peer's bootstrap object with `proxy`.
    pub fn spawn(
        role: &str,
        setup: Setup,
        args: &[String],
        proxy: impl FnOnce(RemoteObject) -> P,
    ) -> anyhow::Result<Remote<P>> {
        let (child, connection) = conn::spawn(
            role,
            Setup {
                mode: Mode::Echo,
                ..setup
            },
            args,
        )?;
        let session = Session::new(connection, None, &SessionConfig::default());
        let proxy = proxy(session.bootstrap());
        Ok(Remote {
            watchdog: CallWatchdog::arm(child.pid())?,
            proxy,
            _session: session,
            child,
        })
    }

    /// The proxy to the peer's object. Calls made through it directly are not watched: see
    /// [`Remote::call`].
    #[inline]
    pub fn proxy(&self) -> &P {
        &self.proxy
    }

    /// Runs `f` on the proxy as a call that must come back within
    /// [`HANG_LIMIT`](crate::peer::HANG_LIMIT), or the peer is killed.
    #[inline]
    pub fn call<T>(&self, f: impl FnOnce(&P) -> T) -> T {
        let _watch = self.watchdog.watch();
        f(&self.proxy)
    }

    /// The watchdog of the calls to the peer, for calls made through [`Remote::proxy`] by
    /// code that takes any `Chain` (guard them with [`CallWatchdog::watch`]).
    pub fn watchdog(&self) -> &CallWatchdog {
        &self.watchdog
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> u32 {
        self.child.pid()
    }
}

/// The peer's side of [`Remote::spawn`]: serves `server` as the session's bootstrap object
/// until the client hangs up.
pub(crate) fn serve(server: Arc<dyn Dispatch>) -> anyhow::Result<()> {
    let connection = conn::accept(Mode::Echo)?;
    let session = Session::new(connection, Some(server), &SessionConfig::default());
    session.wait_closed();
    Ok(())
}
