//! `Echo::echo` through the call layer: directly in-process, or through an `EchoProxy` to an
//! `EchoServer` in a peer process over either transport.

use std::sync::Arc;

use anyhow::Context;
use interfaces::remote::{EchoProxy, EchoServer};
use interfaces::{Echo, InterfaceError};
use ipc_shm::SpawnedChild;
use ipc_shm::call::{Dispatch, Session, SessionConfig};

use crate::conn::{self, Mode, Setup};

/// The peer role that serves `Echo`.
pub const ROLE: &str = "echo";

/// The `Echo` implementation on the serving side: a copy of the bytes.
#[derive(Debug)]
pub struct Mirror;

impl Echo for Mirror {
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError> {
        Ok(data.to_vec())
    }
}

/// A caller of a peer's `Echo`.
pub struct RemoteEcho {
    proxy: EchoProxy,
    // Dropped in this order: the proxy, then the session (closing the connection), then the
    // child, which exits once the connection closes and is reaped.
    _session: Session,
    _child: SpawnedChild,
}

impl std::fmt::Debug for RemoteEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteEcho")
    }
}

impl RemoteEcho {
    /// Starts a peer serving `Echo` and connects to it as `setup` says (its mode is ignored).
    pub fn spawn(setup: Setup) -> anyhow::Result<RemoteEcho> {
        let (child, connection) = conn::spawn(ROLE, Setup { mode: Mode::Echo, ..setup })?;
        let session = Session::new(connection, None, &SessionConfig::default());
        let proxy = EchoProxy::new(session.bootstrap());
        Ok(RemoteEcho { proxy, _session: session, _child: child })
    }

    /// One call.
    #[inline]
    pub fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.proxy.echo(data).context("Echo::echo")
    }
}

/// The peer: serves [`Mirror`] as the session's bootstrap object until the client hangs up.
pub(crate) fn serve() -> anyhow::Result<()> {
    let connection = conn::accept(Mode::Echo)?;
    let server: Arc<dyn Dispatch> = Arc::new(EchoServer::new(Arc::new(Mirror)));
    let session = Session::new(connection, Some(server), &SessionConfig::default());
    session.wait_closed();
    Ok(())
}
