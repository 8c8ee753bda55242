//! Objects across the connection: what a side exports ([`Dispatch`]), the handle the other
//! side holds ([`RemoteObject`]), and one incoming call as a server sees it ([`Incoming`]).

use std::sync::Arc;

use super::codec::{Decode, Decoder, Encode, Encoder};
use super::error::CallError;
use super::session::{Imported, ServerCall};

/// The id of an object within the exporting side's table. Id 0 is the bootstrap object.
pub type ObjectId = u64;

/// The id of a method within an interface, assigned by the interface.
pub type MethodId = u32;

/// The id of the bootstrap object each side may export when the session starts.
pub const BOOTSTRAP: ObjectId = 0;

/// An object the peer can call: the server side of an interface.
///
/// An implementation decodes the arguments of the method the call names, runs it, and
/// replies:
///
/// ```
/// use ipc_shm::call::{CallError, Dispatch, Incoming};
///
/// #[derive(Debug)]
/// struct EchoServer;
///
/// impl Dispatch for EchoServer {
///     fn interface_name(&self) -> &'static str {
///         "Echo"
///     }
///     fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
///         match call.method() {
///             0 => {
///                 let data: Vec<u8> = call.args()?; // read in place from the ring
///                 call.reply(&data) // written in place into the ring
///             }
///             method => Err(CallError::UnknownMethod { interface: "Echo", method }),
///         }
///     }
/// }
/// ```
///
/// `dispatch` runs on a worker thread of the session and may itself call into the peer
/// (through any [`RemoteObject`]); several calls may run at once. It must decode its
/// arguments ([`Incoming::args`] or [`Incoming::args_with`]) before doing anything else:
/// until then the thread holds the session's receiving ring.
pub trait Dispatch: Send + Sync + 'static {
    /// The interface's name, for logs and errors.
    fn interface_name(&self) -> &'static str;

    /// Serves one call. Returning `Ok` without replying answers `()`; returning an error
    /// without replying answers the caller with it ([`CallError::UnknownMethod`] as an
    /// unknown method, [`CallError::Decode`] as bad arguments, anything else as a failure).
    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError>;
}

/// A handle to an object the peer exports. Cloning is cheap; when the last clone (of all
/// handles this side holds to that object) is dropped, the peer is told to release it.
#[derive(Clone, Debug)]
pub struct RemoteObject {
    pub(crate) inner: Arc<Imported>,
}

impl RemoteObject {
    /// The object's id in the peer's table.
    pub fn id(&self) -> ObjectId {
        self.inner.id()
    }

    /// Whether the session is still connected (a later call may still find it gone).
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Calls `method` with `args` and decodes its result as `R`.
    pub fn call<A: Encode + ?Sized, R: Decode>(
        &self,
        method: MethodId,
        args: &A,
    ) -> Result<R, CallError> {
        self.call_with(
            method,
            args.encoded_len(),
            |enc| args.encode(enc),
            |dec| dec.get::<R>(),
        )
    }

    /// Calls `method`, writing the arguments with `encode` (into the ring; `len_hint` is the
    /// expected length, and a promise of the exact length when it exceeds 256 KiB or a ring
    /// record, see [`Encode::encoded_len`](super::Encode::encoded_len)) and reading the
    /// result with `decode`.
    ///
    /// `encode` runs with the session's send lock held and `decode` may run with its receive
    /// ring held: neither may call into the session. Trailing bytes after what `decode` reads
    /// are an error.
    #[inline(always)]
    pub fn call_with<R>(
        &self,
        method: MethodId,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.inner.call(method, len_hint, encode, decode)
    }
}

/// One call as the server sees it, handed to [`Dispatch::dispatch`].
#[derive(Debug)]
pub struct Incoming<'a> {
    pub(crate) inner: ServerCall<'a>,
}

impl Incoming<'_> {
    /// The method called.
    pub fn method(&self) -> MethodId {
        self.inner.method()
    }

    /// Decodes the whole argument list as `A` (use a tuple for several arguments) and frees
    /// the receiving ring for other threads.
    pub fn args<A: Decode>(&mut self) -> Result<A, CallError> {
        self.args_with(|dec| dec.get::<A>())
    }

    /// Decodes the arguments with `decode` (which must consume all of them) and frees the
    /// receiving ring for other threads. `decode` must not call into the session. Only the
    /// first call decodes; later ones see no arguments.
    #[inline(always)]
    pub fn args_with<A>(
        &mut self,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<A, CallError>,
    ) -> Result<A, CallError> {
        self.inner.args_with(decode)
    }

    /// Answers the call with `value`.
    pub fn reply<R: Encode + ?Sized>(&mut self, value: &R) -> Result<(), CallError> {
        self.reply_with(value.encoded_len(), |enc| value.encode(enc))
    }

    /// Answers the call with what `encode` writes (straight into the ring; `len_hint` is
    /// the expected length, a promise of the exact length when it exceeds 256 KiB or a ring
    /// record).
    /// `encode` runs with the send lock held and must not call into the session. A call is
    /// answered once; later replies are an error. When `encode` fails before anything was
    /// sent, the call is still open, and is answered with that error unless the method
    /// answers otherwise.
    #[inline(always)]
    pub fn reply_with(
        &mut self,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        self.inner.reply_with(len_hint, encode)
    }
}
