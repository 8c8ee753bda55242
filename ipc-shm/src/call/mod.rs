//! Calls between objects across a connection: the layer Bitcoin interfaces are built on.
//!
//! A [`Session`] runs over one connection. Each side may export objects (anything that
//! implements [`Dispatch`]); the other side calls them through a [`RemoteObject`] handle.
//! Object 0 is each side's *bootstrap* object, given when the session starts
//! ([`Session::bootstrap`]); every other object travels as an argument or a result
//! ([`Encoder::put_object`], [`Decoder::get_object`]) and lives until the last handle to it
//! on the other side is dropped.
//!
//! A call is a request record (call id, object id, method id, arguments) answered by a
//! response record (call id, status, result or error); see [`wire`](self) for the layout.
//! Arguments and results are written straight into the ring and read straight out of it
//! ([`Encode`], [`Decode`], or `io::Write` / `io::Read` for e.g. Bitcoin consensus
//! encoding). This layer knows nothing about Bitcoin.
//!
//! # Threading model
//!
//! (filled in with the implementation)

mod codec;
mod error;
mod link;
mod object;
mod session;
mod wire;

pub use codec::{Decode, Decoder, Encode, Encoder};
pub use error::{CallError, MAX_ERROR_MESSAGE, RemoteErrorKind};
pub use object::{BOOTSTRAP, Dispatch, Incoming, MethodId, ObjectId, RemoteObject};
pub use session::{Session, SessionConfig};

#[cfg(test)]
mod tests;
