//! `Handler` over a session.

use std::fmt;

use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};

use super::{args, call, methods, reply, unknown_method};
use crate::{Handler, InterfaceError};

methods! {
    /// The methods of [`Handler`].
    HandlerMethod {
        /// [`Handler::disconnect`].
        Disconnect = 0,
    }
}

/// A [`Handler`] the peer handed out. Dropping it releases the peer's handler, which
/// unsubscribes.
#[derive(Debug)]
pub struct HandlerProxy {
    object: RemoteObject,
}

impl HandlerProxy {
    /// A proxy for the peer's `Handler` object.
    pub fn new(object: RemoteObject) -> Self {
        HandlerProxy { object }
    }
}

impl Handler for HandlerProxy {
    fn disconnect(&self) -> Result<(), InterfaceError> {
        call(&self.object, HandlerMethod::Disconnect.id(), &())
    }
}

/// Serves a [`Handler`] to the peer; dropped (and so unsubscribed) when the peer releases
/// it or the connection closes.
pub struct HandlerServer {
    handler: Box<dyn Handler>,
}

impl HandlerServer {
    /// Serves `handler`.
    pub fn new(handler: Box<dyn Handler>) -> Self {
        HandlerServer { handler }
    }
}

impl fmt::Debug for HandlerServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerServer")
    }
}

impl Dispatch for HandlerServer {
    fn interface_name(&self) -> &'static str {
        "Handler"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match HandlerMethod::from_id(call.method()) {
            Some(HandlerMethod::Disconnect) => {
                args::<()>(call, "Handler")?;
                reply(call, self.handler.disconnect())
            }
            None => Err(unknown_method("Handler", call.method())),
        }
    }
}
