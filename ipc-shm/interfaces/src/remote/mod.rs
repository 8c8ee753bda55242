//! Proxies and servers: the interfaces carried over an [`ipc_shm::call`] session.
//!
//! For each interface `X` there is an `XProxy`, which implements the trait by calling an
//! object the peer exports, and an `XServer`, which the owning process exports: a
//! [`Dispatch`] that decodes each request, calls an `Arc<dyn X>` and replies. Each
//! interface numbers its methods with an `XMethod` enum; the numbers are the wire ids.
//!
//! # Wire format
//!
//! Arguments are the method's parameters as a tuple in [`codec`](crate::codec) encoding
//! (no parameters: an empty body). An interface argument is an object id written by the
//! call layer ([`Encoder::put_object`]). A reply body is the method's outcome: tag `0` and
//! the result (a value in codec encoding, or an object id), or tag `1` and the
//! [`InterfaceError`] (Core error code and message). The application's errors thus travel
//! inside successful calls, apart from the call layer's own failures (disconnection,
//! unknown object or method, undecodable arguments).
//!
//! # Objects
//!
//! An interface returned by a method (`Init::make_chain`) or passed to one
//! (`Chain::handle_notifications`) is exported as its server and arrives as a proxy. The
//! receiver's proxy holds the only handle; dropping it releases the server on the other
//! side, which drops the implementation it wraps. That is how dropping a [`Handler`]
//! proxy unsubscribes.
//!
//! [`Handler`]: crate::Handler

mod chain;
mod echo;
mod handler;
mod init;
mod mining;
mod node;
mod wallet;

use std::cell::Cell;
use std::io;
use std::sync::Arc;

use ipc_shm::call::{CallError, Decoder, Dispatch, Encoder, Incoming, MethodId, RemoteObject};

use crate::InterfaceError;
use crate::codec::{Decode, DecodeError, Encode, decode_bytes_into};

pub use chain::{
    ChainMethod, ChainNotificationsMethod, ChainNotificationsProxy, ChainNotificationsServer,
    ChainProxy, ChainServer,
};
pub use echo::{EchoMethod, EchoProxy, EchoServer};
pub use handler::{HandlerMethod, HandlerProxy, HandlerServer};
pub use init::{InitMethod, InitProxy, InitServer};
pub use mining::{
    BlockTemplateMethod, BlockTemplateProxy, BlockTemplateServer, MiningMethod, MiningProxy,
    MiningServer,
};
pub use node::{NodeMethod, NodeProxy, NodeServer, NotifyBlockTipMethod};
pub use wallet::{
    TransactionChangedMethod, WalletLoaderMethod, WalletLoaderProxy, WalletLoaderServer,
    WalletMethod, WalletProxy, WalletServer,
};

/// Declares an interface's method ids: a `#[repr(u32)]` enum with conversions from and to
/// the wire id.
macro_rules! methods {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $id:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $id,)+
        }

        impl $name {
            /// The method with this wire id, if any.
            pub fn from_id(id: ipc_shm::call::MethodId) -> Option<Self> {
                match id {
                    $($id => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The method's wire id.
            pub fn id(self) -> ipc_shm::call::MethodId {
                self as ipc_shm::call::MethodId
            }
        }
    };
}
pub(crate) use methods;

/// Why reading a reply failed: our codec refused the bytes, or the call layer did.
enum ReadError {
    Decode(DecodeError),
    Call(CallError),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        ReadError::Decode(e)
    }
}

impl From<CallError> for ReadError {
    fn from(e: CallError) -> Self {
        ReadError::Call(e)
    }
}

/// Calls `method` on `object` with `args` and decodes a value result.
#[inline(always)]
fn call<A, R>(object: &RemoteObject, method: MethodId, args: &A) -> Result<R, InterfaceError>
where
    A: Encode + ?Sized,
    R: Decode,
{
    call_reading(object, method, args, |dec| Ok(R::decode(dec)?))
}

/// Calls `method` on `object` with `args` and returns the object it replies with.
fn call_object<A>(
    object: &RemoteObject,
    method: MethodId,
    args: &A,
) -> Result<RemoteObject, InterfaceError>
where
    A: Encode + ?Sized,
{
    call_reading(object, method, args, |dec| Ok(dec.get_object()?))
}

/// Calls `method` on `object` with `args`; `read` decodes a successful result.
#[inline(always)]
fn call_reading<A, R>(
    object: &RemoteObject,
    method: MethodId,
    args: &A,
    read: impl FnOnce(&mut Decoder<'_>) -> Result<R, ReadError>,
) -> Result<R, InterfaceError>
where
    A: Encode + ?Sized,
{
    let len = args.encoded_len()?;
    call_with(
        object,
        method,
        len,
        |enc| args.encode(enc).map_err(call_error),
        read,
    )
}

/// Calls `method` on `object`, writing the arguments with `write` (`len` bytes) and
/// decoding a successful result with `read`.
#[inline(always)]
fn call_with<R>(
    object: &RemoteObject,
    method: MethodId,
    len: usize,
    write: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    read: impl FnOnce(&mut Decoder<'_>) -> Result<R, ReadError>,
) -> Result<R, InterfaceError> {
    // The call layer's decode error carries a fixed reason only; keep ours to report it.
    let mut undecodable = None;
    let outcome = object.call_with(method, len, write, |dec| {
        let result = match read_tag(dec) {
            Ok(0) => read(dec).map(Ok),
            Ok(_) => InterfaceError::decode(dec)
                .map(Err)
                .map_err(ReadError::Decode),
            Err(e) => Err(ReadError::Decode(e)),
        };
        result.map_err(|e| match e {
            ReadError::Decode(e) => {
                undecodable = Some(e);
                CallError::decode("reply does not decode")
            }
            ReadError::Call(e) => e,
        })
    });
    // Not matched as a tuple with `undecodable`: building it copied the outcome.
    match outcome {
        Ok(result) => result,
        Err(e) => Err(match undecodable {
            Some(d) => InterfaceError::Decode(d),
            None => e.into(),
        }),
    }
}

/// Reads the outcome tag of a reply: 0 for a result, 1 for an error.
fn read_tag<R: io::Read + ?Sized>(r: &mut R) -> Result<u8, DecodeError> {
    let mut tag = [0];
    r.read_exact(&mut tag)
        .map_err(|_| DecodeError::UnexpectedEnd { what: "result tag" })?;
    match tag[0] {
        t @ (0 | 1) => Ok(t),
        t => Err(DecodeError::InvalidValue {
            what: "result tag",
            value: t.into(),
        }),
    }
}

/// Recovers the call layer's error from a write into an [`Encoder`] (which reports it as
/// an `io::Error`).
fn call_error(e: io::Error) -> CallError {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<CallError>() {
            Ok(call) => *call,
            Err(other) => CallError::failed(other),
        },
        None => CallError::failed("write into the message failed"),
    }
}

/// Server side: decodes a request's arguments. Arguments that do not decode are logged
/// and answered as bad arguments.
fn args<A: Decode>(call: &mut Incoming<'_>, interface: &'static str) -> Result<A, CallError> {
    let method = call.method();
    call.args_with(|dec| {
        A::decode(dec).map_err(|e| {
            tracing::warn!(interface, method, error = %e, "arguments do not decode");
            CallError::decode("arguments do not decode")
        })
    })
}

thread_local! {
    /// The buffer [`with_bytes_arg`] decodes into, kept for this thread's next call.
    static BYTES_ARG: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Byte-string arguments up to this long leave their buffer to the thread's next call.
const KEEP_BYTES_ARG: usize = 64 << 10;

/// Server side: decodes a request whose only argument is a byte string, runs `method` on
/// it (once the request is read: the method may take long), and answers with `then`. The
/// bytes go into a buffer the thread keeps for its next call, so that a call costs no
/// allocation for its argument. `then` reads `method`'s outcome where it was written:
/// returned instead, wrapped in a `Result`, or moved into `then`, it was copied with loads
/// wider than the stores that had just written it, which cannot be forwarded and wait for
/// those stores to drain.
#[inline(always)]
fn with_bytes_arg<T>(
    call: &mut Incoming<'_>,
    interface: &'static str,
    method: impl FnOnce(&[u8]) -> T,
    then: impl FnOnce(&mut Incoming<'_>, &T) -> Result<(), CallError>,
) -> Result<(), CallError> {
    // Taken, not borrowed: a method that somehow served another call on this thread
    // meanwhile would find an empty buffer, not a borrow to panic on.
    let mut buf = BYTES_ARG.take();
    let method_id = call.method();
    let decoded = call.args_with(|dec| {
        decode_bytes_into(dec, &mut buf).map_err(|e| {
            tracing::warn!(interface, method = method_id, error = %e, "arguments do not decode");
            CallError::decode("arguments do not decode")
        })
    });
    let keep = |buf: Vec<u8>| {
        if buf.capacity() <= KEEP_BYTES_ARG {
            BYTES_ARG.set(buf);
        }
    };
    if let Err(e) = decoded {
        keep(buf);
        return Err(e);
    }
    let value = method(&buf);
    keep(buf);
    then(call, &value)
}

/// Server side: decodes a request whose only argument is an object.
fn object_arg(call: &mut Incoming<'_>) -> Result<RemoteObject, CallError> {
    call.args_with(|dec| dec.get_object())
}

/// Server side: replies with a method's outcome. A result too large to send is replied
/// as that error instead.
#[inline(always)]
fn reply<T: Encode>(
    call: &mut Incoming<'_>,
    outcome: Result<T, InterfaceError>,
) -> Result<(), CallError> {
    reply_ref(call, &outcome)
}

/// As [`reply`], with the outcome left where it lies.
fn reply_ref<T: Encode>(
    call: &mut Incoming<'_>,
    outcome: &Result<T, InterfaceError>,
) -> Result<(), CallError> {
    match outcome.encoded_len() {
        Ok(len) => call.reply_with(len, |enc| outcome.encode(enc).map_err(call_error)),
        Err(limit) => reply::<()>(call, Err(InterfaceError::TooLarge(limit))),
    }
}

/// Server side: replies with an interface object, exported as `server`, or the error.
fn reply_object(
    call: &mut Incoming<'_>,
    outcome: Result<Arc<dyn Dispatch>, InterfaceError>,
) -> Result<(), CallError> {
    match outcome {
        Ok(server) => call.reply_with(9, |enc| {
            enc.put_raw(&[0])?;
            enc.put_object(server)
        }),
        Err(e) => reply::<()>(call, Err(e)),
    }
}

/// The error for a method id the interface does not have.
fn unknown_method(interface: &'static str, method: MethodId) -> CallError {
    CallError::UnknownMethod { interface, method }
}
