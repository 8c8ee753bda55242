//! Calls between objects across a connection: the layer Bitcoin interfaces are built on.
//!
//! A [`Session`] runs over one connection ([`Session::new`] with a
//! [`Connection`](crate::Connection) from [`spawn`](crate::spawn),
//! [`accept_ipcfd`](crate::accept_ipcfd), [`connect`](fn@crate::connect) or a
//! [`Listener`](crate::Listener); shared memory and socket transport alike). Each side may
//! export objects (anything that implements [`Dispatch`]); the other side calls them through
//! a [`RemoteObject`] handle.
//! Object 0 is each side's *bootstrap* object, given when the session starts
//! ([`Session::bootstrap`]); every other object travels as an argument or a result
//! ([`Encoder::put_object`], [`Decoder::get_object`]) and lives until the last handle to it
//! on the other side is dropped.
//!
//! A call is a request record (call id, object id, method id, arguments) answered by a
//! response record (call id, status, result or error); a third kind releases an object,
//! and a fourth continues a message split over several records. Every record starts with
//! the same fixed 32-byte header (`zerocopy`, explicit widths) that is copied out of the
//! ring and validated before use; a peer that breaks the protocol gets its connection
//! closed, with the reason logged.
//! Arguments and results are written straight into the ring and read straight out of it
//! ([`Encode`], [`Decode`], or `io::Write` / `io::Read` for e.g. Bitcoin consensus
//! encoding); bodies of at most 256 bytes go through one staging copy instead, which
//! costs less than many small accesses to shared memory. This layer knows nothing about
//! Bitcoin.
//!
//! # Example
//!
//! A proxy is a thin wrapper over a [`RemoteObject`]; a server implements [`Dispatch`]:
//!
//! ```
//! use std::sync::Arc;
//!
//! use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject, Session, SessionConfig};
//! use ipc_shm::wait::WaitPolicy;
//!
//! const ADD: u32 = 0;
//!
//! /// The proxy: what the calling process holds.
//! struct AdderProxy(RemoteObject);
//!
//! impl AdderProxy {
//!     fn add(&self, a: u64, b: u64) -> Result<u64, CallError> {
//!         self.0.call(ADD, &(a, b))
//!     }
//! }
//!
//! /// The server: what the owning process exports.
//! #[derive(Debug)]
//! struct AdderServer;
//!
//! impl Dispatch for AdderServer {
//!     fn interface_name(&self) -> &'static str {
//!         "Adder"
//!     }
//!     fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
//!         match call.method() {
//!             ADD => {
//!                 let (a, b): (u64, u64) = call.args()?;
//!                 call.reply(&a.wrapping_add(b))
//!             }
//!             method => Err(CallError::UnknownMethod { interface: "Adder", method }),
//!         }
//!     }
//! }
//!
//! let config = SessionConfig::default();
//! let server: Arc<dyn Dispatch> = Arc::new(AdderServer);
//! let (client, _server) = Session::pair(1 << 16, WaitPolicy::default(), None, Some(server), &config)?;
//! let adder = AdderProxy(client.bootstrap());
//! assert_eq!(adder.add(2, 3)?, 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threading model
//!
//! A session has one sending end and one receiving end. The sending end sits behind a
//! mutex held only while one message is written into the ring (its encoder included), so
//! any number of threads call at once and serialise only for the copy of their record.
//!
//! The receiving end is read by exactly one thread at a time, the **leader**; leadership
//! moves between threads under the session's control lock (leader/followers):
//!
//! - **A caller leads while it waits.** After sending its request, a caller that finds
//!   nobody reading becomes the leader and reads the ring itself: its own reply is decoded
//!   in place, straight out of the ring, by the thread that wants it, with no wake-up of
//!   any other thread. Once its reply is in, it *lends* leadership back (keeps it without
//!   reading) when the peer may send us something: its next call, or any other caller's,
//!   takes over at once, again without waking anyone. A single-threaded caller therefore
//!   never involves a second thread.
//! - **Followers.** A caller that finds another thread leading spins on its call slot,
//!   then sleeps on it. The leader copies any reply it reads for another caller into that
//!   caller's slot (one copy) and wakes it only if it sleeps. When the leader is done, it
//!   hands leadership to a waiting follower first, so a caller is never left without a
//!   reader.
//! - **Requests** from the peer run on **worker threads**. When the peer can send us
//!   requests at all (we export an object) and no caller is waiting, an idle worker leads.
//!   A worker leader that reads a request decodes its arguments in place and runs the
//!   method itself, *keeping* leadership while it runs (unless a caller is waiting for a
//!   reply, who then gets it): a quick request costs no thread switch and no system call,
//!   and the same hot thread goes back to reading. A caller leader that reads a request
//!   copies it out and queues it for a worker, since it must go back to waiting.
//! - **Lent leadership does not stall the connection.** While leadership is lent (its
//!   holder runs a request, or went back to its own work after a call), the ring is free:
//!   any caller of this process takes over at once (this is also how a method that calls
//!   back into the peer reads its own reply), and an idle worker stands by, looking every
//!   500 µs; when the same loan is still out at two looks, it takes over reading. So a
//!   method that blocks (say, waiting for a new tip) delays other requests by at most about
//!   a millisecond, and so does a caller that went off to do something else. The standby
//!   stops looking after a quiet tick, so an idle session costs no CPU.
//! - **The pool** starts with one worker when the session exports a bootstrap object and
//!   grows only when work (a queued request, vacant leadership that is needed, a missing
//!   standby) finds no idle worker, up to [`SessionConfig::max_workers`]. This is what makes
//!   callbacks safe: a method that calls back into the peer (which may call us again, to any
//!   depth) blocks only its own thread, and the peer's nested request is read by the next
//!   leader and run by another worker. Workers that are not needed sleep on a condition
//!   variable.
//! - **Never block while reading.** A thread never waits for the send lock while it reads
//!   (it only tries it, to hint that a reply is coming: see `reply_coming`): a
//!   release of a handle dropped meanwhile is queued and sent later, and a released export
//!   is dropped on a worker (its `Drop` is user code). A leader that runs a request (and so
//!   may send its reply into a full ring) is not reading, and anyone may take over. So a
//!   full ring in one direction never stops the reading of the other, and two sessions
//!   writing to each other cannot deadlock. A call made from inside an encoder or decoder
//!   fails as [`CallError::Reentrant`] instead of deadlocking. (The one way to stall is to
//!   have all [`SessionConfig::max_workers`] blocked at once: then nobody is left to read
//!   until one returns.)
//! - **Disconnect.** When the peer hangs up or breaks the protocol, the leader (or a sender)
//!   closes the session: every waiting call slot is failed with
//!   [`CallError::Disconnected`], sleeping threads are woken, the connection is shut down
//!   (which also wakes threads parked in the transport), workers exit and our exports are
//!   dropped. Later calls fail at once.
//!
//! # Large values
//!
//! A message body that does not fit one record (the ring's record limit less the 32-byte
//! header) is split. When the sender's length hint says so (it exceeds 256 KiB or one
//! record, and not the session's limit) the body is *streamed*: encoded straight into
//! records of up to 64 KiB, each sent as soon as it is full, so the reader copies one out
//! while the next is written (a body one record could hold is streamed too from 256 KiB
//! on, so that the two copies overlap); a body that then fails to encode, comes out at
//! another length, or whose encoder panics is ended early and voided (the reader drops it).
//! A body longer than its hint is split as before: its first part goes into the first
//! record and the rest into a reusable spill buffer sent as continuation records. The
//! sender holds the send lock for all parts, so they are adjacent in the ring. The thread
//! that reads a split message decodes it while its parts arrive when it is the message's
//! consumer (a caller leader its own reply, a worker leader the arguments of the request it
//! runs): a long value goes from its records straight into its own buffer, one copy, and
//! the parts a decoder leaves are read past before anything else is. Any other split
//! message (a reply for another caller, a request a caller leader queues for a worker) is
//! gathered into a buffer bounded by [`SessionConfig::max_message_len`] and decoded from
//! it; a value of 64 KiB or more that ends it can take that buffer over instead of being
//! copied out of it ([`Decoder::take_raw`]). Messages that are not split are decoded where
//! they lie in the ring (a caller waiting while another thread reads decodes its reply
//! from a copy).
//!
//! # Objects
//!
//! An exported object sits in the exporting side's table with the number of references the
//! peer was sent; the peer keeps one [`RemoteObject`] per id with the number of references
//! it received, and when its last handle drops it sends one release carrying that count.
//! Because the exporter subtracts only what the importer had received, an id sent again
//! while the importer is releasing it stays alive. Id 0 (the bootstrap) is never released.
//! A callee that answers a request without having decoded any object id from it (it refused
//! the call first) says so in its response, and the caller drops the objects it sent in that
//! request rather than keep them until the connection closes.

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
