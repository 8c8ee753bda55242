//! A session: the call layer over one connection. The threading model is described in the
//! module documentation of [`call`](super). Here: the session's shared state, starting and
//! closing; the rest by concern:
//!
//! | module | what |
//! | --- | --- |
//! | `send` | writing a message: small ones staged in a buffer, else straight into the ring; long ones streamed; the rest as continuations |
//! | `caller` | a call: send, then wait for the reply as the leader or as a follower |
//! | `reader` | the leader's reading: validate records, hand replies over, route requests |
//! | `workers` | leadership hand-over, the worker pool, the standby, running requests |
//! | `server` | one incoming call as a `Dispatch` implementation sees it |
//! | `objects` | the export table, handles to the peer's objects, releases |
//! | `slots` | call slots, where a waiting caller learns its outcome |
//! | `guards` | threads that must not send or call, and clean-up on unwinding |

mod caller;
mod guards;
mod objects;
mod parts;
mod reader;
mod send;
mod server;
mod slots;
mod workers;

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use zerocopy::IntoBytes;

use super::codec::{Body, Decoder, Encoder};
use super::error::{CallError, MAX_ERROR_MESSAGE, RemoteErrorKind};
use super::link::{Link, Receiver, RxGrant, Sender};
use super::object::{BOOTSTRAP, Dispatch, Incoming, MethodId, ObjectId, RemoteObject};
use super::wire::{FLAG_MORE, FLAG_UNTAKEN, HEADER_LEN, Header, Record, STATUS_OK};
use crate::transport::Connection;
use crate::wait::{Spinner, WaitPolicy};

use guards::*;
pub(crate) use objects::Imported;
use parts::{Ending, Parts};
use reader::*;
use send::{Fate, Unsent};
pub(crate) use server::ServerCall;
use slots::*;

/// Limits and names of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The most worker threads serving the peer's calls at once. More are started only
    /// while all existing ones are busy; a request that finds the pool exhausted waits.
    pub max_workers: usize,
    /// The longest message body (arguments or result) accepted or sent, in bytes. Bounds
    /// what a peer can make us allocate for a message split over several records.
    pub max_message_len: usize,
    /// The most objects this side exports at once (the bootstrap object included). A peer
    /// that keeps asking for objects and never releases them gets errors past this many
    /// (an object can only be sent while fewer are exported), instead of growing our table
    /// until the connection closes.
    pub max_exports: usize,
    /// A name for this side in logs (e.g. the process role).
    pub name: String,
    /// How long a caller waiting for another thread to hand it its reply spins before it
    /// sleeps. (Waiting in the transport follows the connection's policy.)
    pub wait: WaitPolicy,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_workers: 64,
            max_message_len: 64 << 20,
            max_exports: 1 << 16,
            name: String::from("ipc-shm"),
            wait: WaitPolicy::default(),
        }
    }
}

/// Requests read by a thread that cannot run them and not yet picked up by a worker. A peer
/// that has this many outstanding is flooding us; the connection is closed.
pub(crate) const MAX_QUEUED_REQUESTS: usize = 4096;

/// The most argument bytes queued requests may hold, as a multiple of the message limit.
const QUEUED_MESSAGES: usize = 4;

/// Reply and gather buffers larger than this are not kept for reuse.
const KEEP_BUFFER: usize = 1 << 20;

/// How often the standby looks at a leader that runs a request instead of reading; it takes
/// over reading when the same request is still running at two consecutive looks.
const STANDBY_TICK: std::time::Duration = std::time::Duration::from_micros(500);

/// The bit of `Shared::loan` set while leadership is lent.
const LENT: u64 = 1;

/// Reference count of the bootstrap export: it lives as long as the session.
const PERMANENT: u64 = u64::MAX;

/// The call layer over one connection: calls the peer's objects and serves ours.
///
/// Dropping the session closes the connection: the peer sees it gone, and every handle to
/// a peer object still held here fails its calls with [`CallError::Disconnected`].
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Starts the call layer over `connection` (shared memory or socket alike). The peer's
    /// [`Session::bootstrap`] is `bootstrap`; with `None`, calls to it fail as unknown.
    pub fn new(
        connection: Connection,
        bootstrap: Option<Arc<dyn Dispatch>>,
        config: &SessionConfig,
    ) -> Session {
        Session {
            shared: Shared::start(Link::new(connection), bootstrap, config),
        }
    }

    /// Two sessions connected to each other inside this process, over a pair of real
    /// shared-memory rings of `ring_capacity` bytes whose waiters follow `wait`.
    /// `a_bootstrap` is what `b` gets from [`Session::bootstrap`] and the other way round.
    /// For tests and in-process benchmarks.
    pub fn pair(
        ring_capacity: usize,
        wait: WaitPolicy,
        a_bootstrap: Option<Arc<dyn Dispatch>>,
        b_bootstrap: Option<Arc<dyn Dispatch>>,
        config: &SessionConfig,
    ) -> Result<(Session, Session), crate::Error> {
        let (a, b) = Link::pair(ring_capacity, wait)?;
        let a = Shared::start(a, a_bootstrap, config);
        let b = Shared::start(b, b_bootstrap, config);
        Ok((Session { shared: a }, Session { shared: b }))
    }

    /// As [`Session::pair`], over the socket transport (records of up to the same size as
    /// a ring of `ring_capacity` bytes carries): the comparison baseline, in process.
    pub fn pair_socket(
        ring_capacity: usize,
        a_bootstrap: Option<Arc<dyn Dispatch>>,
        b_bootstrap: Option<Arc<dyn Dispatch>>,
        config: &SessionConfig,
    ) -> Result<(Session, Session), crate::Error> {
        let (a, b) = Link::pair_socket(ring_capacity)?;
        let a = Shared::start(a, a_bootstrap, config);
        let b = Shared::start(b, b_bootstrap, config);
        Ok((Session { shared: a }, Session { shared: b }))
    }

    /// A handle to the peer's bootstrap object (id 0). Calls on it fail with
    /// [`RemoteErrorKind::UnknownObject`](super::RemoteErrorKind::UnknownObject) when the peer
    /// exports none.
    pub fn bootstrap(&self) -> RemoteObject {
        RemoteObject {
            inner: self.shared.bootstrap_handle(),
        }
    }

    /// Hangs up: the peer sees the connection gone, and every pending and later call on
    /// either side fails with [`CallError::Disconnected`]. Idempotent.
    pub fn close(&self) {
        self.shared.close("closed locally");
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Blocks until the connection is gone (the peer hung up or exited, or [`close`](Self::close)).
    pub fn wait_closed(&self) {
        self.shared.wait_closed();
    }

    /// Objects this side exports that the peer still holds (the bootstrap object included).
    pub fn exported_objects(&self) -> usize {
        self.shared.export_count.load(Ordering::Acquire)
    }

    /// Peer objects this side holds handles to (the bootstrap object is not counted).
    pub fn imported_objects(&self) -> usize {
        lock(&self.shared.imports)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
impl Session {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Session {
        Session { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.close("session dropped");
    }
}

/// Drops `objects` (ours, whose `Drop` is user code) on this thread, unless it reads or
/// sends (a leader that found the connection gone, say): there every call their `Drop` made
/// would fail as `Reentrant`, and a panic in it during an unwind would abort the process.
/// Then on a thread of their own.
fn drop_where_it_may_call<T: Send + 'static>(session: &str, objects: T) {
    if Busy::active() {
        // Should no thread start, the closure, and with it the objects, is dropped here.
        let _ = std::thread::Builder::new()
            .name(format!("{session}-drop"))
            .spawn(move || drop(objects));
    } else {
        drop(objects);
    }
}

/// Locks `m`, ignoring poisoning: every critical section of this module leaves its data
/// consistent before anything that could panic (user code never runs under these locks).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Shared state.

/// The state of a session shared by its handles, its callers and its workers.
pub(crate) struct Shared {
    name: String,
    max_message: usize,
    max_exports: usize,
    max_workers: usize,
    policy: WaitPolicy,
    socket: Arc<OwnedFd>,
    tx: Mutex<Tx>,
    /// Read only by the leader (see [`RxCell`]).
    rx: RxCell,
    ctl: Mutex<Ctl>,
    /// Leadership lent out (see [`Shared::lend_lead`]): the number of the last loan times
    /// two, plus [`LENT`] while that loan is out. Its holder is not reading (it runs a
    /// request, or went back to its own work after its call); a caller, or the standby
    /// after a tick, may take over. Only the leader lends; the holder taking its loan back
    /// and another thread taking it over both clear [`LENT`] with a compare-and-swap, so
    /// exactly one of them goes on as the leader.
    loan: AtomicU64,
    /// Callers registered as followers (`Slots::followers`), for a lender, which does not
    /// take `ctl`. Written under `ctl` only.
    followers: AtomicUsize,
    /// An idle worker watches lent leadership (`Shared::stand_by`). Written under `ctl`
    /// only.
    standby: AtomicBool,
    /// Idle workers park here.
    work_cv: Condvar,
    /// `wait_closed` parks here.
    closed_cv: Condvar,
    closed: AtomicBool,
    exports: Mutex<Exports>,
    export_count: AtomicUsize,
    /// Exports removed so far: bumped under the `exports` lock at every removal, so that a
    /// worker leader's [`LastTarget`] knows whether it is still exported.
    exports_epoch: AtomicU64,
    imports: Mutex<HashMap<ObjectId, Weak<Imported>>>,
    /// Releases not yet sent (dropped while this thread could not send).
    releases: Mutex<Vec<(ObjectId, u64)>>,
    /// Whether `releases` may be non-empty: spares senders its lock.
    releases_queued: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("closed", &self.closed)
            .finish()
    }
}

/// The sending end and the buffers reused by senders.
struct Tx {
    sender: Sender,
    /// The part of a message that did not fit its first record.
    spill: Vec<u8>,
    /// Objects exported while encoding the current message.
    exported: Vec<u64>,
    /// Releases being written.
    releases: Vec<(ObjectId, u64)>,
    /// Where small messages are staged.
    stage: Box<send::Stage>,
}

/// The receiving end. Whoever is the *leader* (`Ctl::leading`, handed over only under the
/// `ctl` lock) has exclusive use of it; nobody else touches it.
struct RxCell(UnsafeCell<Receiver>);

// SAFETY: the receiver is used by one thread at a time (the leader), and leadership moves
// between threads only through the `ctl` mutex, whose unlock/lock orders the previous
// leader's accesses before the next one's, or through `Shared::loan`, whose lending store
// (SeqCst, so Release) follows the lender's last access and is read by the
// compare-and-swap (SeqCst, so Acquire) that takes the loan over. `Receiver` is `Send`.
unsafe impl Sync for RxCell {}

impl RxCell {
    /// # Safety
    ///
    /// The caller must be the leader, and must end every use of the returned reference
    /// (including grants borrowed from it) before it gives leadership up. A grant must not
    /// be passed by value to a function that is still running when leadership moves on (a
    /// reference passed as an argument is asserted live for the whole call).
    #[allow(
        clippy::mut_from_ref,
        reason = "exclusivity is the leadership invariant"
    )]
    unsafe fn get(&self) -> &mut Receiver {
        // SAFETY: exclusive by the caller's contract; the cell lives as long as `self`.
        unsafe { &mut *self.0.get() }
    }
}

/// Who does what; every field is changed under the `ctl` lock.
struct Ctl {
    closed: bool,
    /// Some thread is (or has been made) the leader.
    leading: bool,
    slots: Slots,
    jobs: VecDeque<Job>,
    /// Requests among `jobs`, at most `MAX_QUEUED_REQUESTS`.
    queued_calls: usize,
    /// Argument bytes held by `jobs`, at most `QUEUED_MESSAGES * max_message`.
    queued_bytes: usize,
    /// Buffers for requests gathered out of the ring.
    buffers: Vec<Vec<u8>>,
    workers: usize,
    /// Workers sleeping on `work_cv` (the standby included).
    idle_parked: usize,
    /// Workers notified or started that have not looked at `Ctl` yet.
    wakeups_pending: usize,
    /// A standby was asked for (lent leadership had none): the next worker that looks
    /// takes the role, even if that loan has come back by then, so that a standby is in
    /// place for the loans that follow (see `Shared::lend_lead`).
    standby_wanted: bool,
    close_waiters: usize,
}

/// Work for a worker that no leader could do in place.
enum Job {
    /// A request whose arguments were copied out of the ring.
    Call {
        call: u64,
        object: ObjectId,
        method: MethodId,
        args: Vec<u8>,
    },
    /// An export the peer released: dropped on a worker, because its `Drop` is user code
    /// that may block or call.
    Drop(Arc<dyn Dispatch>),
}

/// Objects we export: id → object and the references the peer holds.
struct Exports {
    next: ObjectId,
    map: HashMap<ObjectId, Export, BuildHasherDefault<IdHasher>>,
}

/// Hashes the ids of our exports, which we number in sequence, with one multiplication
/// (SipHash cost a tenth of a 64-byte round trip on the serving side). The peer picks only
/// the ids it looks up, never the keys in the map, so it cannot make them collide; maps
/// keyed by ids the peer picks (`imports`) keep the default, keyed hasher.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: odd, so that sequential ids spread over the low bits (the
        // bucket) and the high ones (the tag) alike.
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

struct Export {
    object: Arc<dyn Dispatch>,
    refs: u64,
}

/// The object a worker leader served last, kept across the requests it reads in a row: a
/// request to the same object again skips the export table's lock and a reference count,
/// both on the way from request to reply. Valid while no export has been removed since
/// `epoch` (see `Shared::exports_epoch`); one that has been is looked up again, or dropped
/// on a worker if it is gone (see `Shared::recheck_last`).
struct LastTarget {
    id: ObjectId,
    epoch: u64,
    object: Arc<dyn Dispatch>,
}

enum Fatal {
    Transport(crate::Error),
    Protocol(std::borrow::Cow<'static, str>),
}

impl From<crate::Error> for Fatal {
    fn from(e: crate::Error) -> Self {
        Fatal::Transport(e)
    }
}

fn protocol(reason: impl Into<std::borrow::Cow<'static, str>>) -> Fatal {
    Fatal::Protocol(reason.into())
}

impl Shared {
    pub(crate) fn start(
        link: Link,
        bootstrap: Option<Arc<dyn Dispatch>>,
        config: &SessionConfig,
    ) -> Arc<Shared> {
        let socket = link.socket();
        let mut map = HashMap::default();
        if let Some(object) = bootstrap {
            map.insert(
                BOOTSTRAP,
                Export {
                    object,
                    refs: PERMANENT,
                },
            );
        }
        let export_count = map.len();
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            max_message: config.max_message_len,
            max_exports: config.max_exports,
            max_workers: config.max_workers.max(1),
            policy: config.wait,
            socket,
            tx: Mutex::new(Tx {
                sender: link.tx,
                spill: Vec::new(),
                exported: Vec::new(),
                releases: Vec::new(),
                stage: Box::new([0; HEADER_LEN + send::SMALL_MESSAGE]),
            }),
            rx: RxCell(UnsafeCell::new(link.rx)),
            loan: AtomicU64::new(0),
            followers: AtomicUsize::new(0),
            standby: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                closed: false,
                leading: false,
                slots: Slots::default(),
                jobs: VecDeque::new(),
                queued_calls: 0,
                queued_bytes: 0,
                buffers: Vec::new(),
                workers: 0,
                idle_parked: 0,
                wakeups_pending: 0,
                standby_wanted: false,
                close_waiters: 0,
            }),
            work_cv: Condvar::new(),
            closed_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            exports: Mutex::new(Exports {
                next: BOOTSTRAP + 1,
                map,
            }),
            export_count: AtomicUsize::new(export_count),
            exports_epoch: AtomicU64::new(0),
            imports: Mutex::new(HashMap::new()),
            releases: Mutex::new(Vec::new()),
            releases_queued: AtomicBool::new(false),
        });
        let mut ctl = lock(&shared.ctl);
        shared.hand_on(&mut ctl);
        drop(ctl);
        shared
    }

    fn bootstrap_handle(self: &Arc<Self>) -> Arc<Imported> {
        Arc::new(Imported {
            shared: self.clone(),
            id: BOOTSTRAP,
            receipts: AtomicU64::new(0),
        })
    }

    /// Closes the session because of `why`, logging it; returns `Disconnected` for callers.
    fn fail(&self, why: Fatal) -> CallError {
        match &why {
            Fatal::Transport(crate::Error::Disconnected) => self.close("peer disconnected"),
            Fatal::Transport(e) => {
                tracing::warn!(session = %self.name, "closing the connection: transport error: {e}");
                self.close("transport error");
            }
            Fatal::Protocol(reason) => {
                tracing::warn!(session = %self.name, "closing the connection: protocol violation: {reason}");
                self.close("protocol violation");
            }
        }
        CallError::Disconnected
    }

    /// Closes the session (idempotent): fails every waiting call, stops the workers, hangs
    /// up the connection and drops our exports.
    pub(crate) fn close(&self, why: &str) {
        let jobs;
        {
            let mut ctl = lock(&self.ctl);
            if ctl.closed {
                return;
            }
            ctl.closed = true;
            self.closed.store(true, Ordering::Release);
            for e in ctl.slots.entries.iter().filter(|e| e.busy) {
                e.slot.state.store(CLOSED, Ordering::SeqCst);
                e.slot.cv.notify_one();
            }
            jobs = std::mem::take(&mut ctl.jobs);
            ctl.queued_calls = 0;
            ctl.queued_bytes = 0;
            self.work_cv.notify_all();
            self.closed_cv.notify_all();
        }
        tracing::info!(session = %self.name, "connection closed: {why}");
        Link::hang_up(&self.socket);
        let exports = {
            let mut ex = lock(&self.exports);
            self.exports_epoch.fetch_add(1, Ordering::Release);
            std::mem::take(&mut ex.map)
        };
        self.export_count.store(0, Ordering::Release);
        // User `Drop` code runs outside our locks.
        drop_where_it_may_call(&self.name, (exports, jobs));
    }

    fn wait_closed(self: &Arc<Self>) {
        let mut ctl = lock(&self.ctl);
        ctl.close_waiters += 1;
        self.hand_on(&mut ctl);
        while !ctl.closed {
            ctl = self
                .closed_cv
                .wait(ctl)
                .unwrap_or_else(PoisonError::into_inner);
        }
        ctl.close_waiters -= 1;
    }
}
