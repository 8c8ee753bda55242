//! `Echo` over a session.

use std::fmt;
use std::sync::Arc;

use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{call, methods, reply_ref, unknown_method, with_bytes_arg};
use crate::{Echo, InterfaceError};

methods! {
    /// The methods of [`Echo`].
    EchoMethod {
        /// [`Echo::echo`].
        Echo = 0,
    }
}

/// Calls an [`Echo`] the peer exports.
#[derive(Debug, Clone)]
pub struct EchoProxy {
    object: RemoteObject,
}

impl EchoProxy {
    /// A proxy for the peer's `Echo` object.
    pub fn new(object: RemoteObject) -> Self {
        EchoProxy { object }
    }
}

impl Echo for EchoProxy {
    fn echo(&self, data: &[u8]) -> Result<Vec<u8>, InterfaceError> {
        call(&self.object, EchoMethod::Echo.id(), data)
    }
}

/// Serves an [`Echo`] to the peer.
pub struct EchoServer {
    echo: Arc<dyn Echo>,
}

impl EchoServer {
    /// Serves `echo`.
    pub fn new(echo: Arc<dyn Echo>) -> Self {
        EchoServer { echo }
    }
}

impl fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EchoServer")
    }
}

impl Dispatch for EchoServer {
    fn interface_name(&self) -> &'static str {
        "Echo"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match EchoMethod::from_id(call.method()) {
            Some(EchoMethod::Echo) => {
                with_bytes_arg(call, "Echo", |data| self.echo.echo(data), reply_ref)
            }
            None => Err(unknown_method("Echo", call.method())),
        }
    }
}
