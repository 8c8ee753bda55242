//! A session: the call layer over one connection. The threading model is described in the
//! module documentation of [`call`](super).

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use zerocopy::IntoBytes;

use super::codec::{Decoder, Encoder};
use super::error::{CallError, MAX_ERROR_MESSAGE, RemoteErrorKind};
use super::link::{Link, Receiver, RxGrant, Sender};
use super::object::{BOOTSTRAP, Dispatch, Incoming, MethodId, ObjectId, RemoteObject};
use super::wire::{FLAG_MORE, HEADER_LEN, Header, Record, STATUS_OK};
use crate::wait::{Spinner, WaitPolicy};

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
    /// How long a caller waiting for another thread to hand it its reply spins before it
    /// sleeps. (Waiting in the transport follows the connection's policy.)
    pub wait: WaitPolicy,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_workers: 64,
            max_message_len: 64 << 20,
            name: String::from("ipc-shm"),
            wait: WaitPolicy::default(),
        }
    }
}

/// Requests read by a thread that cannot run them and not yet picked up by a worker. A peer
/// that has this many outstanding is flooding us; the connection is closed.
const MAX_QUEUED_REQUESTS: usize = 4096;

/// The most argument bytes queued requests may hold, as a multiple of the message limit.
const QUEUED_MESSAGES: usize = 4;

/// Reply and gather buffers larger than this are not kept for reuse.
const KEEP_BUFFER: usize = 1 << 20;

/// How often the standby looks at a leader that runs a request instead of reading; it takes
/// over reading when the same request is still running at two consecutive looks.
const STANDBY_TICK: std::time::Duration = std::time::Duration::from_micros(500);

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

    /// A handle to the peer's bootstrap object (id 0). Calls on it fail with
    /// [`RemoteErrorKind::UnknownObject`](super::RemoteErrorKind::UnknownObject) when the peer
    /// exports none.
    pub fn bootstrap(&self) -> RemoteObject {
        RemoteObject { inner: self.shared.bootstrap_handle() }
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
        lock(&self.shared.imports).values().filter(|w| w.strong_count() > 0).count()
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
    max_workers: usize,
    policy: WaitPolicy,
    socket: Arc<OwnedFd>,
    tx: Mutex<Tx>,
    /// Read only by the leader (see [`RxCell`]).
    rx: RxCell,
    ctl: Mutex<Ctl>,
    /// Idle workers park here.
    work_cv: Condvar,
    /// `wait_closed` parks here.
    closed_cv: Condvar,
    closed: AtomicBool,
    exports: Mutex<Exports>,
    export_count: AtomicUsize,
    imports: Mutex<HashMap<ObjectId, Weak<Imported>>>,
    /// Releases not yet sent (dropped while this thread could not send).
    releases: Mutex<Vec<(ObjectId, u64)>>,
    /// Whether `releases` may be non-empty: spares senders its lock.
    releases_queued: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("name", &self.name).field("closed", &self.closed).finish()
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
}

/// The receiving end. Whoever is the *leader* (`Ctl::leading`, handed over only under the
/// `ctl` lock) has exclusive use of it; nobody else touches it.
struct RxCell(UnsafeCell<Receiver>);

// SAFETY: the receiver is used by one thread at a time (the leader), and leadership moves
// between threads only through the `ctl` mutex, whose unlock/lock orders the previous
// leader's accesses before the next one's. `Receiver` is `Send`.
unsafe impl Sync for RxCell {}

impl RxCell {
    /// # Safety
    ///
    /// The caller must be the leader, and must end every use of the returned reference
    /// (including grants borrowed from it) before it gives leadership up.
    #[allow(clippy::mut_from_ref, reason = "exclusivity is the leadership invariant")]
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
    /// Argument bytes held by `jobs`, at most `QUEUED_MESSAGES * max_message`.
    queued_bytes: usize,
    /// Buffers for requests gathered out of the ring.
    buffers: Vec<Vec<u8>>,
    workers: usize,
    /// Workers sleeping on `work_cv` (the standby included).
    idle_parked: usize,
    /// Workers notified or started that have not looked at `Ctl` yet.
    wakeups_pending: usize,
    /// The leader is running request number `Some(n)` instead of reading (see
    /// `Shared::start_executing`); any caller, or the standby after a tick, may take over.
    executing: Option<u64>,
    /// Requests run by a leader so far.
    exec_seq: u64,
    /// An idle worker watches the executing leader (`Shared::stand_by`).
    standby: bool,
    close_waiters: usize,
}

/// Work for a worker that no leader could do in place.
enum Job {
    /// A request whose arguments were copied out of the ring.
    Call { call: u64, object: ObjectId, method: MethodId, args: Vec<u8> },
    /// An export the peer released: dropped on a worker, because its `Drop` is user code
    /// that may block or call.
    Drop(Arc<dyn Dispatch>),
}

impl Job {
    /// The peer-controlled bytes the job holds.
    fn bytes(&self) -> usize {
        match self {
            Job::Call { args, .. } => args.len(),
            Job::Drop(_) => 0,
        }
    }
}

/// Objects we export: id → object and the references the peer holds.
struct Exports {
    next: ObjectId,
    map: HashMap<ObjectId, Export>,
}

struct Export {
    object: Arc<dyn Dispatch>,
    refs: u64,
}

// ---------------------------------------------------------------------------------------
// Call slots.

const PENDING: u8 = 0;
/// The reply is in `Slot::reply`.
const READY: u8 = 1;
/// The waiting caller has been made the leader.
const LEAD: u8 = 2;
/// The session closed.
const CLOSED: u8 = 3;

/// Where a waiting caller learns the outcome of its call. Slots are reused, so a call
/// allocates nothing once the session has warmed up.
struct Slot {
    state: AtomicU8,
    /// The caller sleeps on `cv` (under `ctl`); whoever changes `state` must notify.
    parked: AtomicBool,
    cv: Condvar,
    reply: Mutex<Reply>,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

struct SlotEntry {
    slot: Arc<Slot>,
    generation: u32,
    busy: bool,
    /// The caller waits for another thread to read its reply.
    follower: bool,
}

/// Call ids are `generation << 32 | index`: a stale or forged id does not match a slot.
#[derive(Default)]
struct Slots {
    entries: Vec<SlotEntry>,
    free: Vec<u32>,
}

impl Slots {
    fn alloc(&mut self) -> (u64, Arc<Slot>) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(SlotEntry {
                    slot: Arc::new(Slot {
                        state: AtomicU8::new(PENDING),
                        parked: AtomicBool::new(false),
                        cv: Condvar::new(),
                        reply: Mutex::new(Reply { status: 0, body: Vec::new() }),
                    }),
                    generation: 0,
                    busy: false,
                    follower: false,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.busy = true;
        e.follower = false;
        e.slot.state.store(PENDING, Ordering::Relaxed);
        (u64::from(e.generation) << 32 | u64::from(index), e.slot.clone())
    }

    fn entry(&mut self, call: u64) -> Option<&mut SlotEntry> {
        let e = self.entries.get_mut((call & 0xffff_ffff) as usize)?;
        (e.busy && u64::from(e.generation) == call >> 32).then_some(e)
    }

    fn free(&mut self, call: u64) {
        if let Some(e) = self.entry(call) {
            e.busy = false;
            e.generation = e.generation.wrapping_add(1);
            self.free.push((call & 0xffff_ffff) as u32);
        }
    }

    /// A caller waiting as a follower, taken off the follower list.
    fn take_follower(&mut self) -> Option<Arc<Slot>> {
        let e = self.entries.iter_mut().find(|e| {
            e.busy && e.follower && e.slot.state.load(Ordering::Acquire) == PENDING
        })?;
        e.follower = false;
        Some(e.slot.clone())
    }
}

impl Slot {
    /// Publishes a new state and wakes the caller if it sleeps.
    fn set(&self, state: u8, ctl: &Mutex<Ctl>) {
        // SYNC: SeqCst store then SeqCst load of `parked` pairs with the SeqCst store of
        // `parked` then load of `state` in `Shared::wait_slot`: either the caller sees the
        // new state before sleeping, or we see it parked and notify it (under `ctl`, which
        // it holds from its check until it sleeps).
        self.state.store(state, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            let _ctl = lock(ctl);
            self.cv.notify_one();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Threads that must not send or make calls right now.

thread_local! {
    /// How many send locks or receiving rings this thread holds. While non-zero, dropped
    /// handles queue their release instead of sending it, and calls fail as `Reentrant`.
    static BUSY: Cell<u32> = const { Cell::new(0) };
    /// Sessions with releases queued while this thread was busy.
    static DEFERRED: RefCell<Vec<Arc<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// Gives leadership up when dropped: a panic in a decoder run by a leader must not leave
/// the session without a reader.
struct LeadGuard<'s>(&'s Arc<Shared>);

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        self.0.give_up_lead();
    }
}

/// Frees a call slot when dropped.
struct SlotGuard<'s>(&'s Shared, u64);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.ctl).slots.free(self.1);
    }
}

/// Marks the thread busy while alive; when the outermost one ends, queued releases go out.
struct Busy(());

impl Busy {
    fn enter() -> Busy {
        BUSY.with(|b| b.set(b.get() + 1));
        Busy(())
    }

    fn active() -> bool {
        BUSY.with(Cell::get) != 0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let depth = BUSY.with(|b| {
            b.set(b.get() - 1);
            b.get()
        });
        if depth == 0 {
            let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            for shared in deferred {
                shared.flush_releases();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Why a connection is closed.

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

// ---------------------------------------------------------------------------------------
// Reading a record in place.

/// `io::Read` over a ring record from `pos` on.
struct GrantReader<'g, 'r> {
    grant: &'g RxGrant<'r>,
    pos: usize,
}

impl io::Read for GrantReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.grant.len().saturating_sub(self.pos));
        if !self.grant.read_at(self.pos, &mut buf[..n]) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n;
        Ok(n)
    }
}

/// What the leader found in the next record.
enum Event<'g> {
    /// Dealt with: a reply handed to its caller, a release, a request queued for a worker.
    Done,
    /// The reply to the leader's own call, single-record, still in the ring.
    Own { grant: RxGrant<'g>, status: u16, len: usize },
    /// A request for the leader to run (worker leaders only).
    Request { call: u64, object: ObjectId, method: MethodId, args: Args<'g> },
    /// The first part of a message split over several records, copied into `buf`; the
    /// leader gathers the rest with [`Shared::gather`].
    Partial { call: u64, len: usize, buf: Vec<u8>, then: Then },
}

/// What a gathered message is.
enum Then {
    Reply { slot: Arc<Slot>, status: u16 },
    Request { object: ObjectId, method: MethodId },
}

/// The arguments of a request being served.
pub(crate) enum Args<'g> {
    /// In the ring; this thread leads.
    Ring { grant: RxGrant<'g>, len: usize },
    /// Copied out of the ring.
    Buffer(Vec<u8>),
    /// Already decoded.
    Taken,
}

impl Shared {
    pub(crate) fn start(link: Link, bootstrap: Option<Arc<dyn Dispatch>>, config: &SessionConfig) -> Arc<Shared> {
        let socket = link.socket();
        let mut map = HashMap::new();
        if let Some(object) = bootstrap {
            map.insert(BOOTSTRAP, Export { object, refs: PERMANENT });
        }
        let export_count = map.len();
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            max_message: config.max_message_len,
            max_workers: config.max_workers.max(1),
            policy: config.wait,
            socket,
            tx: Mutex::new(Tx { sender: link.tx, spill: Vec::new(), exported: Vec::new(), releases: Vec::new() }),
            rx: RxCell(UnsafeCell::new(link.rx)),
            ctl: Mutex::new(Ctl {
                closed: false,
                leading: false,
                slots: Slots::default(),
                jobs: VecDeque::new(),
                queued_bytes: 0,
                buffers: Vec::new(),
                workers: 0,
                idle_parked: 0,
                wakeups_pending: 0,
                executing: None,
                exec_seq: 0,
                standby: false,
                close_waiters: 0,
            }),
            work_cv: Condvar::new(),
            closed_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            exports: Mutex::new(Exports { next: BOOTSTRAP + 1, map }),
            export_count: AtomicUsize::new(export_count),
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
        Arc::new(Imported { shared: self.clone(), id: BOOTSTRAP, receipts: AtomicU64::new(0) })
    }

    // --- objects ---------------------------------------------------------------------

    /// Adds a reference to `object` in our export table and returns its id.
    pub(crate) fn export(&self, object: Arc<dyn Dispatch>) -> ObjectId {
        let mut ex = lock(&self.exports);
        let id = ex.next;
        ex.next += 1;
        ex.map.insert(id, Export { object, refs: 1 });
        self.export_count.fetch_add(1, Ordering::AcqRel);
        id
    }

    /// Drops `count` of the peer's references to `object`; the object itself when none are
    /// left.
    fn release_export(&self, object: ObjectId, count: u64) -> Result<Option<Arc<dyn Dispatch>>, Fatal> {
        if object == BOOTSTRAP {
            return Err(protocol("release of the bootstrap object"));
        }
        let mut ex = lock(&self.exports);
        let Some(export) = ex.map.get_mut(&object) else {
            return Err(protocol(format!("release of unknown object {object}")));
        };
        if count > export.refs {
            return Err(protocol(format!(
                "release of {count} references to object {object}, which has {}",
                export.refs
            )));
        }
        export.refs -= count;
        if export.refs != 0 {
            return Ok(None);
        }
        let gone = ex.map.remove(&object).map(|e| e.object);
        self.export_count.fetch_sub(1, Ordering::AcqRel);
        Ok(gone)
    }

    /// A handle for an object id the peer sent us.
    pub(crate) fn import(self: &Arc<Self>, id: ObjectId) -> Result<RemoteObject, CallError> {
        if id == BOOTSTRAP {
            return Ok(RemoteObject { inner: self.bootstrap_handle() });
        }
        let mut map = lock(&self.imports);
        if let Some(existing) = map.get(&id).and_then(Weak::upgrade) {
            existing.receipts.fetch_add(1, Ordering::Relaxed);
            return Ok(RemoteObject { inner: existing });
        }
        let inner = Arc::new(Imported { shared: self.clone(), id, receipts: AtomicU64::new(1) });
        map.insert(id, Arc::downgrade(&inner));
        Ok(RemoteObject { inner })
    }

    fn queue_release(self: &Arc<Self>, id: ObjectId, count: u64) {
        lock(&self.releases).push((id, count));
        self.releases_queued.store(true, Ordering::Release);
        if Busy::active() {
            DEFERRED.with(|d| d.borrow_mut().push(self.clone()));
        } else {
            self.flush_releases();
        }
    }

    fn flush_releases(self: &Arc<Self>) {
        if !self.releases_queued.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return;
        }
        let _busy = Busy::enter();
        let mut tx = lock(&self.tx);
        if let Err(e) = self.write_releases(&mut tx) {
            drop(tx);
            self.fail(e);
        }
    }

    fn write_releases(&self, tx: &mut Tx) -> Result<(), Fatal> {
        // SYNC: Acquire pairs with the Release store in `queue_release`, made after the push
        // under the `releases` lock; a push that races past this check is flushed by its
        // own thread (or its `Busy` guard) right after.
        if !self.releases_queued.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let mut queued = lock(&self.releases);
            self.releases_queued.store(false, Ordering::Relaxed);
            std::mem::swap(&mut *queued, &mut tx.releases);
        }
        for (id, count) in tx.releases.drain(..) {
            tx.sender.send(&Header::release(id, count))?;
        }
        Ok(())
    }

    // --- sending ---------------------------------------------------------------------

    /// Sends one message: `header` (its length and flags are filled in) and a body written
    /// by `encode`, first straight into the ring, the rest as continuation records.
    fn send(
        self: &Arc<Self>,
        mut header: Header,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        let _busy = Busy::enter();
        let mut guard = lock(&self.tx);
        if self.closed.load(Ordering::Acquire) {
            return Err(CallError::Disconnected);
        }
        let tx = &mut *guard;
        let outcome = self.write_releases(tx).and_then(|()| {
            let max_part = tx.sender.max_record_len() - HEADER_LEN;
            let first = len_hint.min(max_part);
            tx.spill.clear();
            tx.exported.clear();
            let mut grant = tx.sender.reserve(HEADER_LEN + first)?;
            // Advance the grant's cursor past the header, written for real below.
            let placeholder = grant.write_all(header.as_bytes());
            debug_assert!(placeholder.is_ok());
            let encoded = {
                let mut enc = Encoder::for_record(
                    &mut grant,
                    first,
                    &mut tx.spill,
                    self.max_message,
                    self,
                    &mut tx.exported,
                );
                encode(&mut enc).map(|()| (enc.len(), enc.direct_len()))
            };
            let (len, direct) = match encoded {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            header.len = len as u64;
            if !tx.spill.is_empty() {
                header.flags |= FLAG_MORE;
            }
            grant.write_obj(0, &header);
            grant.commit_len(HEADER_LEN + direct);
            let mut rest = tx.spill.as_slice();
            while !rest.is_empty() {
                let n = rest.len().min(max_part);
                let mut part = Header::continuation(header.call);
                if n < rest.len() {
                    part.flags = FLAG_MORE;
                }
                let mut grant = tx.sender.reserve(HEADER_LEN + n)?;
                grant.write_obj(0, &part);
                grant.write_at(HEADER_LEN, &rest[..n]);
                grant.commit();
                rest = &rest[n..];
            }
            Ok(Ok(()))
        });
        if tx.spill.capacity() > KEEP_BUFFER {
            tx.spill = Vec::new();
        }
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Nothing was sent: take back what the encoder exported.
                let exported = std::mem::take(&mut tx.exported);
                drop(guard);
                self.unexport(&exported);
                lock(&self.tx).exported = exported;
                Err(e)
            }
            Err(fatal) => {
                drop(guard);
                self.fail(fatal);
                Err(CallError::Disconnected)
            }
        }
    }

    fn unexport(&self, ids: &[u64]) {
        let mut dropped = Vec::new();
        let mut ex = lock(&self.exports);
        for id in ids {
            if let Some(e) = ex.map.remove(id) {
                self.export_count.fetch_sub(1, Ordering::AcqRel);
                dropped.push(e.object);
            }
        }
        drop(ex);
        // User `Drop` code runs outside our locks.
        drop(dropped);
    }

    // --- calling ---------------------------------------------------------------------

    pub(crate) fn call<R>(
        self: &Arc<Self>,
        object: ObjectId,
        method: MethodId,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        if Busy::active() {
            return Err(CallError::Reentrant);
        }
        let (call, slot) = {
            let mut ctl = lock(&self.ctl);
            if ctl.closed {
                return Err(CallError::Disconnected);
            }
            ctl.slots.alloc()
        };
        // Frees the slot even if `encode` or `decode` panics.
        let _slot = SlotGuard(self, call);
        self.send(Header::request(call, object, method, 0), len_hint, encode)
            .and_then(|()| self.await_reply(call, &slot, decode))
    }

    /// Waits for the reply to `call`: as the leader when nobody leads, else as a follower
    /// until the reply is handed over or leadership is.
    fn await_reply<R>(
        self: &Arc<Self>,
        call: u64,
        slot: &Arc<Slot>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        {
            let mut ctl = lock(&self.ctl);
            if ctl.closed {
                return Err(CallError::Disconnected);
            }
            if !ctl.leading || ctl.executing.is_some() {
                // Vacant, or held by a thread running a request (perhaps this one, calling
                // back): either way the ring is free to read.
                ctl.leading = true;
                ctl.executing = None;
                drop(ctl);
                return self.lead_for(call, slot, decode);
            }
            if let Some(e) = ctl.slots.entry(call) {
                e.follower = true;
            }
        }
        match self.wait_slot(slot) {
            READY => self.take_reply(slot, decode),
            LEAD => {
                slot.state.store(PENDING, Ordering::Relaxed);
                self.lead_for(call, slot, decode)
            }
            _ => Err(CallError::Disconnected),
        }
    }

    /// Spins, then sleeps, until `slot` leaves `PENDING`; returns the new state.
    fn wait_slot(&self, slot: &Slot) -> u8 {
        let ready = || {
            let s = slot.state.load(Ordering::Acquire);
            Ok((s != PENDING).then_some(s))
        };
        if let Ok(Some(s)) = Spinner::new(self.policy).spin(ready) {
            return s;
        }
        let mut ctl = lock(&self.ctl);
        // SYNC: pairs with `Slot::set`; see there.
        slot.parked.store(true, Ordering::SeqCst);
        let state = loop {
            let s = slot.state.load(Ordering::SeqCst);
            if s != PENDING {
                break s;
            }
            ctl = slot.cv.wait(ctl).unwrap_or_else(PoisonError::into_inner);
        };
        slot.parked.store(false, Ordering::Relaxed);
        state
    }

    /// Decodes a reply another thread copied into `slot`.
    fn take_reply<R>(
        self: &Arc<Self>,
        slot: &Slot,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut reply = lock(&slot.reply);
        let len = reply.body.len();
        let result = {
            let mut dec = Decoder::from_slice(&reply.body, self);
            finish_reply(reply.status, len, &mut dec, decode)
        };
        if reply.body.capacity() > KEEP_BUFFER {
            reply.body = Vec::new();
        }
        result
    }

    /// Leads until the reply to `call` is in: decodes it in place when it comes as one
    /// record, then hands leadership on.
    fn lead_for<R>(
        self: &Arc<Self>,
        call: u64,
        slot: &Arc<Slot>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let busy = Busy::enter();
        let lead = LeadGuard(self);
        let mut decode = Some(decode);
        // SAFETY: we are the leader (`ctl.leading` was set for us under the lock) and every
        // borrow of `rx` ends inside this loop, before `lead` is dropped below (a panic in
        // `decode` drops the grant first too: it was declared later).
        let rx = unsafe { self.rx.get() };
        let outcome = loop {
            if slot.state.load(Ordering::Acquire) != PENDING {
                break None;
            }
            // The event borrows `rx`; a split message is gathered after it is gone.
            let (part_call, len, buf, then) = match self.next_event(rx, Some(call), false) {
                Ok(Event::Done) => continue,
                Ok(Event::Own { grant, status, len }) => {
                    let mut src = GrantReader { grant: &grant, pos: HEADER_LEN };
                    let mut dec = Decoder::from_reader(&mut src, len, self);
                    let decode = decode.take().expect("the reply is decoded once");
                    break Some(finish_reply(status, len, &mut dec, decode));
                }
                Ok(Event::Partial { call, len, buf, then }) => (call, len, buf, then),
                Ok(Event::Request { .. }) => unreachable!("callers queue requests for workers"),
                Err(f) => break Some(Err(self.fail(f))),
            };
            if let Err(f) = self.finish_partial(rx, part_call, len, buf, then) {
                break Some(Err(self.fail(f)));
            }
        };
        drop(lead);
        drop(busy);
        match outcome {
            Some(result) => result,
            None => match slot.state.load(Ordering::Acquire) {
                READY => self.take_reply(slot, decode.take().expect("the reply is decoded once")),
                _ => Err(CallError::Disconnected),
            },
        }
    }

    // --- the leader's reading ----------------------------------------------------------

    /// Reads and validates the next record, and deals with what the leader need not see.
    fn next_event<'g>(self: &Arc<Self>, rx: &'g mut Receiver, own: Option<u64>, run_requests: bool) -> Result<Event<'g>, Fatal> {
        let grant = rx.recv()?;
        let header = grant.read_obj::<Header>(0).ok_or_else(|| protocol("record shorter than a header"))?;
        let record = header.parse(grant.len(), self.max_message as u64).map_err(|e| protocol(e.0))?;
        match record {
            Record::Response { call, status, len, more } => {
                let len = len as usize;
                if !more && own == Some(call) {
                    return Ok(Event::Own { grant, status, len });
                }
                let slot = if own == Some(call) {
                    None
                } else {
                    let mut ctl = lock(&self.ctl);
                    match ctl.slots.entry(call) {
                        Some(e) => Some(e.slot.clone()),
                        None => return Err(protocol(format!("response to call {call:#x}, which does not exist"))),
                    }
                };
                let slot = match slot {
                    Some(s) => s,
                    // Our own call, split over several records.
                    None => self.own_slot(call)?,
                };
                let mut buf = std::mem::take(&mut lock(&slot.reply).body);
                buf.clear();
                copy_part(&grant, &mut buf);
                drop(grant);
                if more {
                    return Ok(Event::Partial { call, len, buf, then: Then::Reply { slot, status } });
                }
                self.complete(&slot, status, buf);
                Ok(Event::Done)
            }
            Record::Request { call, object, method, len, more } => {
                let len = len as usize;
                if run_requests && !more {
                    return Ok(Event::Request { call, object, method, args: Args::Ring { grant, len } });
                }
                let mut buf = self.take_buffer();
                copy_part(&grant, &mut buf);
                drop(grant);
                if more {
                    return Ok(Event::Partial { call, len, buf, then: Then::Request { object, method } });
                }
                if run_requests {
                    return Ok(Event::Request { call, object, method, args: Args::Buffer(buf) });
                }
                self.queue_job(Job::Call { call, object, method, args: buf })?;
                Ok(Event::Done)
            }
            Record::Release { object, count } => {
                drop(grant);
                if let Some(gone) = self.release_export(object, count)? {
                    self.queue_job(Job::Drop(gone))?;
                }
                Ok(Event::Done)
            }
            Record::Continuation { .. } => Err(protocol("continuation record without a message")),
        }
    }

    fn own_slot(&self, call: u64) -> Result<Arc<Slot>, Fatal> {
        let mut ctl = lock(&self.ctl);
        ctl.slots.entry(call).map(|e| e.slot.clone()).ok_or_else(|| protocol("reply to a finished call"))
    }

    /// Reads the continuation records of `call` into `buf` until it holds `len` bytes.
    fn gather(&self, rx: &mut Receiver, call: u64, len: usize, buf: &mut Vec<u8>) -> Result<(), Fatal> {
        loop {
            let grant = rx.recv()?;
            let header = grant.read_obj::<Header>(0).ok_or_else(|| protocol("record shorter than a header"))?;
            let Record::Continuation { call: c, more } =
                header.parse(grant.len(), self.max_message as u64).map_err(|e| protocol(e.0))?
            else {
                return Err(protocol("message interrupted before its last part"));
            };
            if c != call {
                return Err(protocol("continuation of another call"));
            }
            if buf.len() + (grant.len() - HEADER_LEN) > len {
                return Err(protocol("message longer than announced"));
            }
            copy_part(&grant, buf);
            if !more {
                break;
            }
        }
        if buf.len() != len {
            return Err(protocol("message shorter than announced"));
        }
        Ok(())
    }

    /// Gathers the rest of a split message, then delivers it (caller leaders only: a worker
    /// leader runs a gathered request itself).
    fn finish_partial(self: &Arc<Self>, rx: &mut Receiver, call: u64, len: usize, mut buf: Vec<u8>, then: Then) -> Result<(), Fatal> {
        self.gather(rx, call, len, &mut buf)?;
        match then {
            Then::Reply { slot, status } => {
                self.complete(&slot, status, buf);
                Ok(())
            }
            Then::Request { object, method } => self.queue_job(Job::Call { call, object, method, args: buf }),
        }
    }

    /// Hands a reply to its caller.
    fn complete(&self, slot: &Slot, status: u16, body: Vec<u8>) {
        {
            let mut reply = lock(&slot.reply);
            reply.status = status;
            reply.body = body;
        }
        slot.set(READY, &self.ctl);
    }

    fn take_buffer(&self) -> Vec<u8> {
        lock(&self.ctl).buffers.pop().unwrap_or_default()
    }

    fn recycle_buffer(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= KEEP_BUFFER {
            buf.clear();
            let mut ctl = lock(&self.ctl);
            if ctl.buffers.len() < 16 {
                ctl.buffers.push(buf);
            }
        }
    }

    // --- leadership and workers ------------------------------------------------------

    /// Gives leadership up and hands it on.
    fn give_up_lead(self: &Arc<Self>) {
        let mut ctl = lock(&self.ctl);
        debug_assert!(ctl.leading);
        ctl.leading = false;
        self.hand_on(&mut ctl);
    }

    /// With nobody leading: makes a waiting caller the leader, or, when the peer may send
    /// us requests or releases, an idle worker (a new one if none is idle).
    fn hand_on(self: &Arc<Self>, ctl: &mut Ctl) {
        if ctl.closed || ctl.leading {
            return;
        }
        if let Some(slot) = ctl.slots.take_follower() {
            ctl.leading = true;
            // SYNC: as in `Slot::set`, without re-locking `ctl` (we hold it).
            slot.state.store(LEAD, Ordering::SeqCst);
            if slot.parked.load(Ordering::SeqCst) {
                slot.cv.notify_one();
            }
            return;
        }
        self.recruit(ctl);
    }

    /// Whether someone must read even with no call waiting: the peer may send us requests
    /// and releases while we export anything, and `wait_closed` must see a hang-up.
    fn reader_needed(&self, ctl: &Ctl) -> bool {
        self.export_count.load(Ordering::Acquire) != 0 || ctl.close_waiters != 0
    }

    /// Wakes or starts as many workers as there is work nobody is on its way to do: queued
    /// jobs, vacant leadership that is needed, and a missing standby.
    fn recruit(self: &Arc<Self>, ctl: &mut Ctl) {
        if ctl.closed {
            return;
        }
        let demand = ctl.jobs.len()
            + usize::from(!ctl.leading && self.reader_needed(ctl))
            + usize::from(ctl.executing.is_some() && !ctl.standby);
        while ctl.wakeups_pending < demand && ctl.idle_parked > ctl.wakeups_pending {
            self.work_cv.notify_one();
            ctl.wakeups_pending += 1;
        }
        while ctl.wakeups_pending < demand && ctl.workers < self.max_workers {
            let shared = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-call", self.name))
                .spawn(move || shared.worker());
            match spawned {
                Ok(_) => {
                    ctl.workers += 1;
                    ctl.wakeups_pending += 1;
                }
                Err(e) => {
                    tracing::error!(session = %self.name, "cannot start a call worker: {e}");
                    break;
                }
            }
        }
    }

    fn queue_job(self: &Arc<Self>, job: Job) -> Result<(), Fatal> {
        let mut ctl = lock(&self.ctl);
        if ctl.closed {
            return Ok(());
        }
        let bytes = job.bytes();
        if ctl.jobs.len() >= MAX_QUEUED_REQUESTS
            || ctl.queued_bytes + bytes > QUEUED_MESSAGES.saturating_mul(self.max_message)
        {
            return Err(protocol(format!(
                "peer has {} requests of {} bytes outstanding",
                ctl.jobs.len() + 1,
                ctl.queued_bytes + bytes
            )));
        }
        ctl.queued_bytes += bytes;
        ctl.jobs.push_back(job);
        self.recruit(&mut ctl);
        Ok(())
    }

    /// Called by a worker leader once the arguments of the request it read are decoded.
    /// Hands leadership to a waiting caller if there is one; else keeps it while running the
    /// request, so that a quick request costs no thread switch, and makes sure an idle worker
    /// stands by to take over reading should the request run long. Returns the request's
    /// number while this thread keeps leadership.
    fn start_executing(self: &Arc<Self>) -> Option<u64> {
        let mut ctl = lock(&self.ctl);
        let follower = ctl.slots.entries.iter().any(|e| {
            e.busy && e.follower && e.slot.state.load(Ordering::Acquire) == PENDING
        });
        if ctl.closed || follower {
            ctl.leading = false;
            self.hand_on(&mut ctl);
            return None;
        }
        ctl.exec_seq += 1;
        ctl.executing = Some(ctl.exec_seq);
        self.recruit(&mut ctl);
        ctl.executing
    }

    /// After running request `n` as the leader: whether this thread still leads (nobody
    /// took over meanwhile).
    fn finish_executing(&self, n: u64) -> bool {
        let mut ctl = lock(&self.ctl);
        if ctl.executing == Some(n) {
            ctl.executing = None;
            return true;
        }
        false
    }

    /// A worker thread: runs queued jobs, leads when leadership is vacant and needed, stands
    /// by while a leader runs a request, else sleeps.
    fn worker(self: Arc<Self>) {
        let mut ctl = lock(&self.ctl);
        ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
        loop {
            if ctl.closed {
                ctl.workers -= 1;
                return;
            }
            if let Some(job) = ctl.jobs.pop_front() {
                ctl.queued_bytes -= job.bytes();
                self.recruit(&mut ctl);
                drop(ctl);
                match job {
                    Job::Call { call, object, method, args } => {
                        self.serve(call, object, method, Args::Buffer(args), None);
                    }
                    Job::Drop(object) => drop(object),
                }
            } else if !ctl.leading && self.reader_needed(&ctl) {
                ctl.leading = true;
                drop(ctl);
                self.lead_while_quick();
            } else if ctl.executing.is_some() && !ctl.standby {
                ctl.standby = true;
                let (guard, take_over) = self.stand_by(ctl);
                ctl = guard;
                if !take_over {
                    continue;
                }
                drop(ctl);
                self.lead_while_quick();
            } else {
                ctl.idle_parked += 1;
                ctl = self.work_cv.wait(ctl).unwrap_or_else(PoisonError::into_inner);
                ctl.idle_parked -= 1;
                ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
                continue;
            }
            ctl = lock(&self.ctl);
        }
    }

    /// Watches a leader that runs a request: every [`STANDBY_TICK`], takes over reading if
    /// the same request is still running, and stops watching after a tick in which no
    /// request ran. Returns whether this thread now leads.
    fn stand_by<'c>(&self, mut ctl: MutexGuard<'c, Ctl>) -> (MutexGuard<'c, Ctl>, bool) {
        let mut seen = ctl.exec_seq;
        loop {
            ctl.idle_parked += 1;
            let (guard, timeout) =
                self.work_cv.wait_timeout(ctl, STANDBY_TICK).unwrap_or_else(PoisonError::into_inner);
            ctl = guard;
            ctl.idle_parked -= 1;
            if !timeout.timed_out() {
                ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
            }
            let vacant = !ctl.leading && self.reader_needed(&ctl);
            if ctl.closed || !ctl.jobs.is_empty() || vacant {
                // Other work first; whoever picks it up recruits a new standby if needed.
                ctl.standby = false;
                return (ctl, false);
            }
            match ctl.executing {
                Some(_) if ctl.exec_seq == seen => {
                    ctl.executing = None;
                    ctl.standby = false;
                    return (ctl, true);
                }
                None if ctl.exec_seq == seen => {
                    ctl.standby = false;
                    return (ctl, false);
                }
                _ => seen = ctl.exec_seq,
            }
        }
    }

    /// Leads, running each request read in place, for as long as nobody takes leadership
    /// over while one runs.
    fn lead_while_quick(self: &Arc<Self>) {
        while let Some(n) = self.lead_as_worker() {
            if !self.finish_executing(n) {
                return;
            }
        }
    }

    /// Leads until a request comes in, then runs it. Returns the request's number if this
    /// thread kept leadership while running it (see [`Self::start_executing`]).
    fn lead_as_worker(self: &Arc<Self>) -> Option<u64> {
        let busy = Busy::enter();
        // SAFETY: we are the leader (set under `ctl` in `worker`, or kept through
        // `finish_executing`). Every borrow of `rx` ends before leadership is given up or
        // lent out: `ServerCall::release_ring` drops the request's grant first, else below.
        let rx = unsafe { self.rx.get() };
        loop {
            // The event borrows `rx`; a split message is gathered after it is gone.
            let (call, len, mut buf, then) = match self.next_event(rx, None, true) {
                Ok(Event::Done) => continue,
                Ok(Event::Request { call, object, method, args }) => {
                    return self.serve(call, object, method, args, Some(busy));
                }
                Ok(Event::Partial { call, len, buf, then }) => (call, len, buf, then),
                Ok(Event::Own { .. }) => unreachable!("workers have no call of their own"),
                Err(f) => {
                    self.fail(f);
                    break;
                }
            };
            if let Err(f) = self.gather(rx, call, len, &mut buf) {
                self.fail(f);
                break;
            }
            match then {
                Then::Reply { slot, status } => self.complete(&slot, status, buf),
                Then::Request { object, method } => {
                    return self.serve(call, object, method, Args::Buffer(buf), Some(busy));
                }
            }
        }
        self.give_up_lead();
        None
    }

    /// Runs one request. `lead` is `Some` when this thread read it as the leader; it leads
    /// until the arguments are decoded. Returns the request's number if this thread kept
    /// leadership while running it.
    fn serve(
        self: &Arc<Self>,
        call: u64,
        object: ObjectId,
        method: MethodId,
        args: Args<'_>,
        lead: Option<Busy>,
    ) -> Option<u64> {
        let target = lock(&self.exports).map.get(&object).map(|e| e.object.clone());
        let mut incoming = Incoming {
            inner: ServerCall { shared: self, call, method, args, lead, exec: None, replied: false, interface: "" },
        };
        let result = match &target {
            None => {
                incoming.inner.release_ring();
                incoming.inner.reply_error(RemoteErrorKind::UnknownObject, &format!("no object {object}"));
                return incoming.inner.exec.take();
            }
            Some(target) => {
                incoming.inner.interface = target.interface_name();
                catch_unwind(AssertUnwindSafe(|| target.dispatch(&mut incoming))).unwrap_or_else(|_| {
                    tracing::error!(session = %self.name, interface = incoming.inner.interface, method, "method panicked");
                    Err(CallError::failed("method panicked"))
                })
            }
        };
        incoming.inner.finish(result);
        incoming.inner.exec.take()
    }

    // --- closing ---------------------------------------------------------------------

    /// Closes the session because of `why`, logging it; returns `Disconnected` for callers.
    fn fail(&self, why: Fatal) -> CallError {
        match &why {
            Fatal::Transport(crate::Error::Disconnected) => self.close("peer disconnected"),
            Fatal::Transport(e) => self.close(&format!("transport error: {e}")),
            Fatal::Protocol(reason) => self.close(&format!("protocol violation: {reason}")),
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
            ctl.queued_bytes = 0;
            self.work_cv.notify_all();
            self.closed_cv.notify_all();
        }
        tracing::info!(session = %self.name, "connection closed: {why}");
        Link::hang_up(&self.socket);
        let exports = std::mem::take(&mut lock(&self.exports).map);
        self.export_count.store(0, Ordering::Release);
        // User `Drop` code runs outside our locks.
        drop(exports);
        drop(jobs);
    }

    fn wait_closed(self: &Arc<Self>) {
        let mut ctl = lock(&self.ctl);
        ctl.close_waiters += 1;
        self.hand_on(&mut ctl);
        while !ctl.closed {
            ctl = self.closed_cv.wait(ctl).unwrap_or_else(PoisonError::into_inner);
        }
        ctl.close_waiters -= 1;
    }
}

/// Appends the body part of `grant` (after the header) to `buf`.
fn copy_part(grant: &RxGrant<'_>, buf: &mut Vec<u8>) {
    let part = grant.len() - HEADER_LEN;
    let start = buf.len();
    buf.resize(start + part, 0);
    let copied = grant.read_at(HEADER_LEN, &mut buf[start..]);
    debug_assert!(copied, "the header was parsed against the record length");
}

/// Decodes a reply body: the result when `status` is OK, else the peer's error.
fn finish_reply<R>(
    status: u16,
    len: usize,
    dec: &mut Decoder<'_>,
    decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
) -> Result<R, CallError> {
    if status == STATUS_OK {
        let value = decode(dec)?;
        dec.finish()?;
        return Ok(value);
    }
    let mut message = vec![0; len.min(MAX_ERROR_MESSAGE)];
    dec.get_raw(&mut message)?;
    let message = String::from_utf8_lossy(&message).into_owned();
    match RemoteErrorKind::from_status(status) {
        Some(kind) => Err(CallError::Remote { kind, message }),
        None => Err(CallError::Remote { kind: RemoteErrorKind::Failed, message: format!("unknown status {status}: {message}") }),
    }
}

// ---------------------------------------------------------------------------------------
// Imported objects.

/// The state behind a [`RemoteObject`]: the peer's object id and how many references to it
/// we received; released in one record when dropped.
pub(crate) struct Imported {
    shared: Arc<Shared>,
    id: ObjectId,
    receipts: AtomicU64,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported").field("session", &self.shared.name).field("id", &self.id).finish()
    }
}

impl Imported {
    pub(crate) fn id(&self) -> ObjectId {
        self.id
    }

    pub(crate) fn is_connected(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }

    pub(crate) fn call<R>(
        &self,
        method: MethodId,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.shared.call(self.id, method, len_hint, encode, decode)
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let receipts = *self.receipts.get_mut();
        if receipts == 0 {
            return;
        }
        {
            let mut map = lock(&self.shared.imports);
            if map.get(&self.id).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&self.id);
            }
        }
        if !self.shared.closed.load(Ordering::Acquire) {
            self.shared.queue_release(self.id, receipts);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server's side of a call.

/// The server's side of one call.
pub(crate) struct ServerCall<'a> {
    shared: &'a Arc<Shared>,
    call: u64,
    method: MethodId,
    args: Args<'a>,
    /// Held while this thread leads because the arguments are still in the ring.
    lead: Option<Busy>,
    /// Set when this thread keeps leadership while the method runs.
    exec: Option<u64>,
    replied: bool,
    interface: &'static str,
}

impl std::fmt::Debug for ServerCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCall")
            .field("call", &self.call)
            .field("interface", &self.interface)
            .field("method", &self.method)
            .finish()
    }
}

impl ServerCall<'_> {
    pub(crate) fn method(&self) -> MethodId {
        self.method
    }

    pub(crate) fn args_with<A>(
        &mut self,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<A, CallError>,
    ) -> Result<A, CallError> {
        let shared = self.shared;
        let result = match std::mem::replace(&mut self.args, Args::Taken) {
            Args::Ring { grant, len } => {
                let mut src = GrantReader { grant: &grant, pos: HEADER_LEN };
                let mut dec = Decoder::from_reader(&mut src, len, shared);
                decode(&mut dec).and_then(|v| dec.finish().map(|()| v))
            }
            Args::Buffer(buf) => {
                let result = {
                    let mut dec = Decoder::from_slice(&buf, shared);
                    decode(&mut dec).and_then(|v| dec.finish().map(|()| v))
                };
                shared.recycle_buffer(buf);
                result
            }
            Args::Taken => decode(&mut Decoder::new(&[])),
        };
        self.release_ring();
        result
    }

    /// Drops the request record if it is still in the ring, and stops reading: leadership
    /// goes to a waiting caller, or is kept (not reading) while the method runs.
    fn release_ring(&mut self) {
        if let Args::Buffer(buf) = std::mem::replace(&mut self.args, Args::Taken) {
            self.shared.recycle_buffer(buf);
        }
        if let Some(busy) = self.lead.take() {
            self.exec = self.shared.start_executing();
            drop(busy);
        }
    }

    pub(crate) fn reply_with(
        &mut self,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        self.release_ring();
        if self.replied {
            return Err(CallError::failed("call answered twice"));
        }
        self.replied = true;
        self.shared.send(Header::response(self.call, STATUS_OK, 0), len_hint, encode)
    }

    fn reply_error(&mut self, kind: RemoteErrorKind, message: &str) {
        self.release_ring();
        self.replied = true;
        let mut end = message.len().min(MAX_ERROR_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message.as_bytes()[..end];
        // A failure to send means the connection is gone; the caller learns that itself.
        let _ = self.shared.send(Header::response(self.call, kind.status(), 0), message.len(), |enc| {
            enc.put_raw(message)
        });
    }

    /// Answers the call if `dispatch` did not.
    fn finish(&mut self, result: Result<(), CallError>) {
        self.release_ring();
        match (result, self.replied) {
            (Ok(()), false) => {
                let _ = self.reply_with(0, |_| Ok(()));
            }
            (Ok(()), true) => {}
            (Err(e), false) => {
                let kind = match e {
                    CallError::UnknownMethod { .. } => RemoteErrorKind::UnknownMethod,
                    CallError::Decode { .. } => RemoteErrorKind::BadArguments,
                    _ => RemoteErrorKind::Failed,
                };
                if kind != RemoteErrorKind::Failed {
                    tracing::warn!(session = %self.shared.name, interface = self.interface, method = self.method, "rejected call: {e}");
                }
                let message = match e {
                    CallError::Failed { message } => message,
                    e => e.to_string(),
                };
                self.reply_error(kind, &message);
            }
            (Err(e), true) => {
                tracing::warn!(session = %self.shared.name, interface = self.interface, method = self.method, "error after replying: {e}");
            }
        }
    }
}

impl Drop for ServerCall<'_> {
    fn drop(&mut self) {
        // A panic in `dispatch` unwinds through here with the arguments possibly unread.
        self.release_ring();
    }
}
