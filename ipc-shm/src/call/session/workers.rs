//! Leadership and the worker pool: who reads next, who runs requests, who stands by.

use std::time::Instant;

use super::*;

impl Shared {
    /// Gives leadership up and hands it on.
    pub(super) fn give_up_lead(self: &Arc<Self>) {
        let mut ctl = lock(&self.ctl);
        debug_assert!(ctl.leading);
        ctl.leading = false;
        self.hand_on(&mut ctl);
    }

    /// With nobody leading: makes a waiting caller the leader, or, when the peer may send
    /// us requests or releases, an idle worker (a new one if none is idle).
    pub(super) fn hand_on(self: &Arc<Self>, ctl: &mut Ctl) {
        if ctl.closed || ctl.leading {
            return;
        }
        if let Some(slot) = ctl.slots.take_follower() {
            self.mirror_followers(ctl);
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
    pub(super) fn reader_needed(&self, ctl: &Ctl) -> bool {
        self.export_count.load(Ordering::Acquire) != 0 || ctl.close_waiters != 0
    }

    /// Wakes or starts as many workers as there is work nobody is on its way to do: queued
    /// jobs, vacant leadership that is needed, and a missing standby.
    #[inline(always)]
    pub(super) fn recruit(self: &Arc<Self>, ctl: &mut Ctl) {
        if ctl.closed {
            return;
        }
        if self.lent() && !self.standby.load(Ordering::SeqCst) {
            ctl.standby_wanted = true;
        }
        let demand = ctl.jobs.len()
            + usize::from(!ctl.leading && self.reader_needed(ctl))
            + usize::from(ctl.standby_wanted);
        // Nearly always nobody is wanted (every call's end passes here): that is decided
        // inline, and only waking or starting workers goes out of line.
        if ctl.wakeups_pending < demand {
            self.wake_workers(ctl, demand);
        }
    }

    /// Wakes idle workers, then starts new ones, until `demand` wake-ups are pending.
    #[inline(never)]
    fn wake_workers(self: &Arc<Self>, ctl: &mut Ctl, demand: usize) {
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

    /// Queues a request that no leader can run in place, for a worker. A peer with more
    /// outstanding than the limits allow is flooding us: the connection is closed.
    pub(super) fn queue_call(
        self: &Arc<Self>,
        call: u64,
        object: ObjectId,
        method: MethodId,
        args: Vec<u8>,
    ) -> Result<(), Fatal> {
        let mut ctl = lock(&self.ctl);
        if ctl.closed {
            return Ok(());
        }
        let bytes = args.len();
        if ctl.queued_calls >= MAX_QUEUED_REQUESTS
            || ctl.queued_bytes + bytes > QUEUED_MESSAGES.saturating_mul(self.max_message)
        {
            return Err(protocol(format!(
                "peer has {} requests of {} bytes outstanding",
                ctl.queued_calls + 1,
                ctl.queued_bytes + bytes
            )));
        }
        ctl.queued_calls += 1;
        ctl.queued_bytes += bytes;
        ctl.jobs.push_back(Job::Call {
            call,
            object,
            method,
            args,
        });
        self.recruit(&mut ctl);
        Ok(())
    }

    /// Hands an object we no longer export to a worker to drop: its `Drop` is user code,
    /// which must not run where this thread reads or holds the send lock. Drops are not
    /// requests, and do not count against the flood limits (`max_exports` bounds them).
    pub(super) fn drop_on_worker(self: &Arc<Self>, object: Arc<dyn Dispatch>) {
        let mut ctl = lock(&self.ctl);
        if ctl.closed {
            // The workers are gone.
            drop(ctl);
            drop_where_it_may_call(&self.name, object);
            return;
        }
        ctl.jobs.push_back(Job::Drop(object));
        self.recruit(&mut ctl);
    }

    /// Stops reading without giving leadership away when that is cheaper: called by a
    /// worker leader once the arguments of the request it read are decoded (it goes on to
    /// run the request), and by a caller leader once its reply is in (it goes back to its
    /// own work). Leadership goes to a waiting caller if there is one, and is given up when
    /// nobody needs to read; else this thread keeps it *lent*, not reading: a quick request
    /// then costs no thread switch, and the next call of this process (perhaps this
    /// thread's) takes leadership over at once without waking anyone. A standby is recruited
    /// to take over reading should nobody do so within a tick or two. Returns the number the
    /// loan goes by, while this thread keeps it.
    ///
    /// When nobody follows, reading is still needed and a standby watches already (a busy
    /// server), the loan is made without `ctl`: taking it here and again when the request
    /// is done cost two locks on the way from each request to its reply, and two more on
    /// the way to reading the next one.
    pub(super) fn lend_lead(self: &Arc<Self>) -> Option<u64> {
        if self.export_count.load(Ordering::Acquire) != 0 && !self.closed.load(Ordering::Acquire) {
            let n = self.lend();
            // SYNC: the loan's SeqCst store (in `lend`), then these SeqCst loads, pair with
            // a follower's SeqCst store of `followers` then load of `loan` (`await_reply`),
            // and with the standby's SeqCst store of `standby` then load of `loan`
            // (`stand_by`): of each pair, one side sees the other's store. So either we see
            // the follower (or the standby gone), or the follower sees the loan and takes it
            // over (or the standby stays).
            if self.followers.load(Ordering::SeqCst) == 0 && self.standby.load(Ordering::SeqCst) {
                return Some(n);
            }
            if !self.reclaim(n) {
                // Taken over meanwhile: this thread no longer leads.
                return None;
            }
        }
        self.lend_lead_freeing(None)
    }

    /// As [`Self::lend_lead`], under `ctl`, for a caller leader that is done with its call
    /// `done`: frees its slot under the same lock.
    pub(super) fn lend_lead_freeing(self: &Arc<Self>, done: Option<u64>) -> Option<u64> {
        let mut ctl = lock(&self.ctl);
        if let Some(call) = done {
            ctl.slots.free(call);
            self.mirror_followers(&ctl);
        }
        if ctl.closed || ctl.slots.follower_waiting() || !self.reader_needed(&ctl) {
            ctl.leading = false;
            self.hand_on(&mut ctl);
            return None;
        }
        let n = self.lend();
        self.recruit(&mut ctl);
        Some(n)
    }

    /// Lends leadership out (this thread leads, and stops reading); returns the loan's
    /// number.
    fn lend(&self) -> u64 {
        // Only the leader makes a new loan; taking one over only clears `LENT`.
        let n = ((self.loan.load(Ordering::Relaxed) >> 1) + 1) & (u64::MAX >> 1);
        self.loan.store(n << 1 | LENT, Ordering::SeqCst);
        n
    }

    /// Whether leadership is lent out.
    pub(super) fn lent(&self) -> bool {
        self.loan.load(Ordering::SeqCst) & LENT != 0
    }

    /// Takes lent leadership over, if it is lent; returns whether this thread now leads.
    pub(super) fn take_loan(&self) -> bool {
        let mut loan = self.loan.load(Ordering::SeqCst);
        while loan & LENT != 0 {
            // SYNC: Acquire (in SeqCst) pairs with the lending store (see `RxCell`).
            match self.loan.compare_exchange_weak(
                loan,
                loan & !LENT,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => loan = now,
            }
        }
        false
    }

    /// Takes loan `n` back; returns whether it was still out (else another thread took it
    /// over, and leads now).
    fn reclaim(&self, n: u64) -> bool {
        let lent = n << 1 | LENT;
        self.loan
            .compare_exchange(lent, lent & !LENT, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// Keeps `followers` equal to the count under `ctl` (called under `ctl` after each
    /// change).
    pub(super) fn mirror_followers(&self, ctl: &Ctl) {
        // Stored only when it changed: a SeqCst store is a full fence, and every call's end
        // passes here (freeing a slot that nearly always had no follower).
        let n = ctl.slots.followers;
        if self.followers.load(Ordering::Relaxed) != n {
            self.followers.store(n, Ordering::SeqCst);
        }
    }

    /// After running request `n` as the leader: whether this thread still leads (nobody
    /// took over meanwhile).
    pub(super) fn finish_executing(&self, n: u64) -> bool {
        self.reclaim(n)
    }

    /// A worker thread: runs queued jobs, leads when leadership is vacant and needed, stands
    /// by while a leader runs a request, else sleeps.
    pub(super) fn worker(self: Arc<Self>) {
        let _exit = WorkerExit(&self);
        let mut ctl = lock(&self.ctl);
        ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
        loop {
            if ctl.closed {
                ctl.workers -= 1;
                return;
            }
            if let Some(job) = ctl.jobs.pop_front() {
                if let Job::Call { args, .. } = &job {
                    ctl.queued_calls -= 1;
                    ctl.queued_bytes -= args.len();
                }
                self.recruit(&mut ctl);
                drop(ctl);
                match job {
                    Job::Call {
                        call,
                        object,
                        method,
                        args,
                    } => {
                        self.serve(
                            object,
                            &mut self.incoming(call, method, Args::Buffer(args), None),
                            &mut None,
                        );
                    }
                    Job::Drop(object) => drop(object),
                }
            } else if !ctl.leading && self.reader_needed(&ctl) {
                ctl.leading = true;
                drop(ctl);
                self.lead_while_quick();
            } else if ctl.standby_wanted || self.lent() && !self.standby.load(Ordering::SeqCst) {
                ctl.standby_wanted = false;
                self.standby.store(true, Ordering::SeqCst);
                let (guard, take_over) = self.stand_by(ctl);
                ctl = guard;
                if !take_over {
                    continue;
                }
                drop(ctl);
                self.lead_while_quick();
            } else {
                ctl.idle_parked += 1;
                ctl = self
                    .work_cv
                    .wait(ctl)
                    .unwrap_or_else(PoisonError::into_inner);
                ctl.idle_parked -= 1;
                ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
                continue;
            }
            ctl = lock(&self.ctl);
        }
    }

    /// Watches lent leadership: every [`STANDBY_TICK`], takes over reading if the same loan
    /// is still out (its holder still runs the same request, say), and stops watching after
    /// a tick in which no loan was made. Returns whether this thread now leads.
    pub(super) fn stand_by<'c>(&self, mut ctl: MutexGuard<'c, Ctl>) -> (MutexGuard<'c, Ctl>, bool) {
        let mut seen = self.loan.load(Ordering::SeqCst) >> 1;
        let mut tick_ends = Instant::now() + STANDBY_TICK;
        loop {
            ctl.idle_parked += 1;
            let (guard, _) = self
                .work_cv
                .wait_timeout(ctl, tick_ends.saturating_duration_since(Instant::now()))
                .unwrap_or_else(PoisonError::into_inner);
            ctl = guard;
            ctl.idle_parked -= 1;
            // Counted as a wake-up even when the tick ran out: a `recruit` that ran between
            // our time-out and our taking `ctl` back saw us parked and notified, and with no
            // other thread asleep on `work_cv` that notification woke nobody. Keeping it
            // pending would leave `wakeups_pending` too high for good, and later work (a
            // vacant leadership, a missing standby) would wait for a thread that never
            // comes. We look at `Ctl` now, which is all a notified thread owes; a count too
            // low only costs a spare wake-up.
            ctl.wakeups_pending = ctl.wakeups_pending.saturating_sub(1);
            let vacant = !ctl.leading && self.reader_needed(&ctl);
            if ctl.closed || !ctl.jobs.is_empty() || vacant {
                // Other work first; whoever picks it up recruits a new standby if needed.
                self.standby.store(false, Ordering::SeqCst);
                return (ctl, false);
            }
            // Woken before the tick ran out (a notification another worker answered, or a
            // spurious wake-up): the request running now may still be quick.
            let now = Instant::now();
            if now < tick_ends {
                continue;
            }
            tick_ends = now + STANDBY_TICK;
            let loan = self.loan.load(Ordering::SeqCst);
            if loan >> 1 != seen {
                // Loans were made since the last look.
                seen = loan >> 1;
                continue;
            }
            if loan & LENT != 0 {
                // The same loan is still out after a whole tick: take it over. (Failing, it
                // was taken back or over meanwhile.)
                // SYNC: Acquire (in SeqCst) pairs with the lending store (see `RxCell`).
                let taken = self.loan.compare_exchange(
                    loan,
                    loan & !LENT,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                if taken.is_ok() {
                    self.standby.store(false, Ordering::SeqCst);
                    return (ctl, true);
                }
                continue;
            }
            // A tick without a loan: stop watching, unless one was made meanwhile by a
            // lender that saw us still watching.
            self.standby.store(false, Ordering::SeqCst);
            // SYNC: this SeqCst store, then the load in `lent`, pair with the lender's (see
            // `lend_lead`).
            if self.lent() {
                self.standby.store(true, Ordering::SeqCst);
                seen = self.loan.load(Ordering::SeqCst) >> 1;
                continue;
            }
            return (ctl, false);
        }
    }

    /// Leads, running each request read in place, for as long as nobody takes leadership
    /// over while one runs.
    pub(super) fn lead_while_quick(self: &Arc<Self>) {
        // Dropped once this thread no longer leads, or only lends its lead: an export it
        // keeps alive may run its `Drop` here (user code), never while reading.
        let mut last = None;
        while let Some(n) = self.lead_as_worker(&mut last) {
            if !self.finish_executing(n) {
                return;
            }
        }
    }

    /// Leads until a request comes in, then runs it. Returns the request's number if this
    /// thread kept leadership while running it (see [`Self::lend_lead`]). `last` is the
    /// object this thread served last while leading, if still exported.
    pub(super) fn lead_as_worker(self: &Arc<Self>, last: &mut Option<LastTarget>) -> Option<u64> {
        let busy = Busy::enter();
        // SAFETY: we are the leader (set under `ctl` in `worker`, or kept through
        // `finish_executing`). Every borrow of `rx` ends before leadership is given up or
        // lent out: `ServerCall::release_ring` drops the request's grant first, else below.
        let rx = unsafe { self.rx.get() };
        loop {
            // The event borrows `rx`; a split message is gathered after it is gone.
            let (call, len, mut buf, then) = match self.next_event(rx, None, true) {
                Ok(Event::Done) => {
                    // Perhaps a release: an export this thread keeps must not outlive the
                    // peer's last handle for as long as the connection is idle.
                    self.recheck_last(last);
                    continue;
                }
                Ok(Event::Delivered) => {
                    // A caller of this process got its reply from us: stop reading, so
                    // that its next call reads for itself (see `lend_lead`).
                    self.lend_lead();
                    drop(busy);
                    return None;
                }
                Ok(Event::Request {
                    call,
                    object,
                    method,
                    args,
                }) => {
                    // Built here, not in `serve`: the request's grant must not be an argument
                    // of a call that is still running when leadership moves on (see `RxCell`).
                    let mut incoming = self.incoming(call, method, args, Some(busy));
                    return self.serve(object, &mut incoming, last);
                }
                Ok(Event::Partial {
                    call,
                    len,
                    buf,
                    then,
                }) => (call, len, buf, then),
                Ok(Event::Own { .. }) => unreachable!("workers have no call of their own"),
                Err(f) => {
                    self.fail(f);
                    break;
                }
            };
            let (slot, status, untaken) = match then {
                Then::Request { object, method } => {
                    // Run as its arguments arrive, decoded straight out of their records.
                    let parts = Parts::new(self, rx, call, len, buf);
                    let args = Args::Parts(Box::new(parts));
                    let mut incoming = self.incoming(call, method, args, Some(busy));
                    return self.serve(object, &mut incoming, last);
                }
                Then::Reply {
                    slot,
                    status,
                    untaken,
                } => (slot, status, untaken),
            };
            match self.gather(rx, call, len, &mut buf) {
                Ok(false) => self.complete(&slot, status, untaken, buf),
                Ok(true) => self.discard(
                    Then::Reply {
                        slot,
                        status,
                        untaken,
                    },
                    buf,
                ),
                Err(f) => {
                    self.fail(f);
                    break;
                }
            }
            self.lend_lead();
            drop(busy);
            return None;
        }
        self.give_up_lead();
        None
    }

    /// One incoming call, as `serve` runs it. `lead` is `Some` when this thread read the
    /// request as the leader; it leads until the arguments are decoded.
    pub(super) fn incoming<'a>(
        self: &'a Arc<Self>,
        call: u64,
        method: MethodId,
        args: Args<'a>,
        lead: Option<Busy>,
    ) -> Incoming<'a> {
        Incoming {
            inner: ServerCall {
                shared: self,
                call,
                method,
                args,
                lead,
                exec: None,
                replied: false,
                took_objects: false,
                voided: false,
                ring_args_read: false,
                unsent_reply: None,
                interface: "",
            },
        }
    }

    /// Runs one request on the object it names. Returns the request's number if this
    /// thread kept leadership while running it. `last` is the object a worker leader served
    /// last (see [`LastTarget`]); a request to it again skips the export table.
    pub(super) fn serve(
        &self,
        object: ObjectId,
        incoming: &mut Incoming<'_>,
        last: &mut Option<LastTarget>,
    ) -> Option<u64> {
        // SYNC: Acquire pairs with the Release bump that follows every removal (under the
        // `exports` lock): a removal that happened before anything this thread has since
        // seen is seen here, as a lookup under the lock would see it. (One racing with this
        // load is ordered after the lookup, as it could be with the lock.)
        let epoch = self.exports_epoch.load(Ordering::Acquire);
        let kept = matches!(last, Some(t) if t.id == object && t.epoch == epoch);
        // What a fresh lookup replaces is dropped after the method has run, where this thread
        // no longer reads (the request's lead is lent or given up), should its `Drop` block.
        let mut replaced = None;
        if !kept {
            let found = lock(&self.exports)
                .map
                .get(&object)
                .map(|e| e.object.clone());
            let Some(found) = found else {
                incoming.inner.release_ring();
                incoming.inner.reply_error(
                    RemoteErrorKind::UnknownObject,
                    &format!("no object {object}"),
                );
                return incoming.inner.exec.take();
            };
            replaced = last.replace(LastTarget {
                id: object,
                epoch,
                object: found,
            });
        }
        let target = &last.as_ref().expect("kept, or just looked up").object;
        incoming.inner.interface = target.interface_name();
        // The outcome goes to `finish` where `dispatch` left it: moved out of the unwinding
        // closure, the whole `Result` was copied with loads wider than the stores that wrote
        // it, which waited for every store before them (the reply's, into the ring) to
        // drain.
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let outcome = target.dispatch(incoming);
            incoming.inner.finish(outcome);
        }));
        if ran.is_err() {
            let method = incoming.inner.method;
            tracing::error!(session = %self.name, interface = incoming.inner.interface, method, "method panicked");
            incoming
                .inner
                .finish(Err(CallError::failed("method panicked")));
        }
        drop(replaced);
        incoming.inner.exec.take()
    }

    /// Checks, after a record that may have removed an export, that the object `last` keeps
    /// is still exported; hands it to a worker to drop if not (its `Drop` is user code, and
    /// this thread reads).
    fn recheck_last(self: &Arc<Self>, last: &mut Option<LastTarget>) {
        let Some(t) = last else { return };
        if t.epoch == self.exports_epoch.load(Ordering::Acquire) {
            return;
        }
        let ex = lock(&self.exports);
        if ex.map.contains_key(&t.id) {
            // Removals happen under this lock: the epoch read now is the table's.
            t.epoch = self.exports_epoch.load(Ordering::Acquire);
            return;
        }
        drop(ex);
        if let Some(gone) = last.take() {
            self.drop_on_worker(gone.object);
        }
    }
}

#[cfg(test)]
impl Shared {
    /// For a regression test: waits until a standby watches lent leadership as the only
    /// worker asleep, then keeps `ctl` locked past its tick, so that its wait runs out while
    /// it cannot take `ctl` back, and queues dropping `object` for a worker (the notification
    /// that wakes nobody). Gives `object` back if the standby took over reading first.
    pub(crate) fn stall_standby_then_drop(
        self: &Arc<Self>,
        object: Arc<dyn Dispatch>,
    ) -> Result<(), Arc<dyn Dispatch>> {
        loop {
            let mut ctl = lock(&self.ctl);
            if self.standby.load(Ordering::SeqCst)
                && ctl.idle_parked == 1
                && ctl.wakeups_pending == 0
            {
                // Not synchronisation: the time-out of the standby's wait is what is tested.
                std::thread::sleep(4 * STANDBY_TICK);
                ctl.jobs.push_back(Job::Drop(object));
                self.recruit(&mut ctl);
                return Ok(());
            }
            if !self.standby.load(Ordering::SeqCst) && !self.lent() {
                return Err(object);
            }
            drop(ctl);
            std::thread::yield_now();
        }
    }
}

/// Keeps the pool's count true when a worker dies of a panic in user code it runs outside
/// `dispatch`'s `catch_unwind` (the `Drop` of a released export): otherwise the pool would
/// go on counting the dead thread, and refuse to start the one that is needed next.
struct WorkerExit<'s>(&'s Arc<Shared>);

impl Drop for WorkerExit<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // No lock of the session's is held here: user code never runs under one.
            let mut ctl = lock(&self.0.ctl);
            ctl.workers -= 1;
            self.0.recruit(&mut ctl);
        }
    }
}
