//! A session: the call layer over one connection.

use std::sync::Arc;

use super::codec::{Decoder, Encoder};
use super::error::CallError;
use super::object::{Dispatch, MethodId, ObjectId, RemoteObject};
use crate::wait::WaitPolicy;

/// Limits and names of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The most worker threads serving the peer's calls at once. More are started only
    /// while all existing ones are busy; a request that finds the pool exhausted waits.
    pub max_workers: usize,
    /// The longest message body (arguments or result) accepted or sent, in bytes. Bounds
    /// what a peer can make us allocate for a message split over several records.
    pub max_message_len: usize,
    /// A name for this side in logs (e.g. the process role).
    pub name: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { max_workers: 64, max_message_len: 64 << 20, name: String::from("ipc-shm") }
    }
}

/// The call layer over one connection: calls the peer's objects and serves ours.
///
/// Dropping the session closes the connection: the peer sees it gone, and every handle to
/// a peer object still held here fails its calls with [`CallError::Disconnected`].
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Two sessions connected to each other inside this process, over a pair of real
    /// shared-memory rings of `ring_capacity` bytes. `a_bootstrap` is what `b` gets from
    /// [`Session::bootstrap`] and the other way round. For tests and in-process benchmarks.
    pub fn pair(
        ring_capacity: usize,
        wait: WaitPolicy,
        a_bootstrap: Option<Arc<dyn Dispatch>>,
        b_bootstrap: Option<Arc<dyn Dispatch>>,
        config: &SessionConfig,
    ) -> Result<(Session, Session), crate::Error> {
        let _ = (ring_capacity, wait, a_bootstrap, b_bootstrap, config);
        todo!()
    }

    /// A handle to the peer's bootstrap object (id 0). Calls on it fail with
    /// [`RemoteErrorKind::UnknownObject`](super::RemoteErrorKind::UnknownObject) when the peer
    /// exports none.
    pub fn bootstrap(&self) -> RemoteObject {
        todo!()
    }

    /// Hangs up: the peer sees the connection gone, and every pending and later call on
    /// either side fails with [`CallError::Disconnected`]. Idempotent.
    pub fn close(&self) {
        self.shared.close()
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        todo!()
    }

    /// Blocks until the connection is gone (the peer hung up or exited, or [`close`](Self::close)).
    pub fn wait_closed(&self) {
        todo!()
    }

    /// Objects this side exports that the peer still holds (the bootstrap object included).
    pub fn exported_objects(&self) -> usize {
        todo!()
    }

    /// Peer objects this side holds handles to (the bootstrap object is not counted).
    pub fn imported_objects(&self) -> usize {
        todo!()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// The state of a session shared by its handles, its callers and its workers.
#[derive(Debug)]
pub(crate) struct Shared {}

impl Shared {
    pub(crate) fn close(&self) {
        todo!()
    }

    /// Adds a reference to `object` in our export table and returns its id.
    pub(crate) fn export(&self, object: Arc<dyn Dispatch>) -> ObjectId {
        let _ = object;
        todo!()
    }

    /// A handle for an object id the peer sent us.
    pub(crate) fn import(self: &Arc<Self>, id: ObjectId) -> Result<RemoteObject, CallError> {
        let _ = id;
        todo!()
    }
}

/// The state behind a [`RemoteObject`]: the peer's object id and how many references to it
/// we received; released in one record when dropped.
#[derive(Debug)]
pub(crate) struct Imported {}

impl Imported {
    pub(crate) fn id(&self) -> ObjectId {
        todo!()
    }

    pub(crate) fn is_connected(&self) -> bool {
        todo!()
    }

    pub(crate) fn call<R>(
        &self,
        method: MethodId,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let _ = (method, len_hint, encode, decode);
        todo!()
    }
}

/// The server's side of one call.
#[derive(Debug)]
pub(crate) struct ServerCall<'a> {
    _marker: std::marker::PhantomData<&'a ()>,
}

impl ServerCall<'_> {
    pub(crate) fn method(&self) -> MethodId {
        todo!()
    }

    pub(crate) fn args_with<A>(
        &mut self,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<A, CallError>,
    ) -> Result<A, CallError> {
        let _ = decode;
        todo!()
    }

    pub(crate) fn reply_with(
        &mut self,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        let _ = (len_hint, encode);
        todo!()
    }
}
