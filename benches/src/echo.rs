//! `Echo::echo` through the call layer: directly in-process, or through an `EchoProxy` to an
//! `EchoServer` in a peer process over either transport.

use std::sync::Arc;

use anyhow::Context;
use interfaces::remote::{EchoProxy, EchoServer};
use interfaces::{Echo, InterfaceError};

use crate::conn::Setup;
use crate::remote::{self, Remote};

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
#[derive(Debug)]
pub struct RemoteEcho(Remote<EchoProxy>);

impl RemoteEcho {
    /// Starts a peer serving `Echo` and connects to it as `setup` says (its mode is ignored).
    pub fn spawn(setup: Setup) -> anyhow::Result<RemoteEcho> {
        Remote::spawn(ROLE, setup, &[], EchoProxy::new).map(RemoteEcho)
    }

    /// One call.
    #[inline]
    pub fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.0.call(|proxy| proxy.echo(data)).context("Echo::echo")
    }
}

/// The peer: serves [`Mirror`] as the session's bootstrap object until the client hangs up.
pub(crate) fn serve() -> anyhow::Result<()> {
    remote::serve(Arc::new(EchoServer::new(Arc::new(Mirror))))
}
