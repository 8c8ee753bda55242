//! `Echo::echo` through the call layer: directly in-process, or through an `EchoProxy` to an
//! `EchoServer` in a peer process over either transport.

use anyhow::Context;
use interfaces::remote::EchoProxy;
use interfaces::{Echo, InterfaceError};

use crate::by_hand;
use crate::conn::Setup;
use crate::peer;
use crate::remote::Remote;

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

    /// As [`RemoteEcho::spawn`], with a peer that serves `Echo` as `server` says.
    pub fn spawn_serving(setup: Setup, server: by_hand::EchoPeer) -> anyhow::Result<RemoteEcho> {
        Remote::spawn(ROLE, setup, &[server.as_arg()], EchoProxy::new).map(RemoteEcho)
    }

    /// One call.
    #[inline]
    pub fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.0.call(|proxy| proxy.echo(data)).context("Echo::echo")
    }
}

/// The peer: serves [`Mirror`] as the session's bootstrap object until the client hangs up,
/// or `Echo` otherwise as its `--server=` argument says ([`by_hand::EchoPeer`]).
pub(crate) fn serve() -> anyhow::Result<()> {
    by_hand::serve_echo(by_hand::EchoPeer::from_arg(peer::arg("server").as_deref())?)
}
