//! Making a call: send the request, then wait for the reply as the leader or a follower.

use super::*;

/// How a call ended, and whether its callee took none of the objects its request carried
/// (the response's [`FLAG_UNTAKEN`](crate::call::wire::FLAG_UNTAKEN)).
type Answer<R> = (Result<R, CallError>, bool);

impl Shared {
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
        let call = {
            let mut ctl = lock(&self.ctl);
            if ctl.closed {
                return Err(CallError::Disconnected);
            }
            ctl.slots.alloc()
        };
        // Frees the slot even if `encode` or `decode` panics.
        let guard = SlotGuard::new(self, call);
        let exported = self
            .send(Header::request(call, object, method, 0), len_hint, encode)
            .map_err(Unsent::into_error)?;
        let (result, untaken) = self.await_reply(&guard, decode);
        if untaken && !exported.is_empty() {
            // The callee refused the call before taking any object we sent it, so it will
            // never release them: drop them now rather than when the connection closes.
            drop(guard);
            self.unexport(&exported);
        }
        result
    }

    /// Waits for the reply to the call of `guard`: as the leader when nobody leads, else
    /// as a follower until the reply is handed over or leadership is.
    pub(super) fn await_reply<R>(
        self: &Arc<Self>,
        guard: &SlotGuard<'_>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Answer<R> {
        // Only a follower needs a handle on its slot: a leader reads its reply itself.
        let slot = {
            let mut locked = lock(&self.ctl);
            let ctl = &mut *locked;
            if ctl.closed {
                return (Err(CallError::Disconnected), false);
            }
            let Some(e) = ctl.slots.entry(guard.call()) else {
                unreachable!("a call's slot is busy until its guard is dropped");
            };
            if e.slot.state.load(Ordering::Acquire) == READY {
                // Whoever read before us has handed the reply over already (it did so
                // before giving leadership up, under this lock).
                let slot = e.slot.clone();
                drop(locked);
                return self.take_reply(&slot, decode);
            }
            if !ctl.leading {
                // Vacant: the ring is free to read, and the reply still to come.
                ctl.leading = true;
                drop(locked);
                return self.lead_for(guard, decode);
            }
            // Cloned only here: a reference count is two locked instructions, and the
            // leader never looks at its slot.
            let slot = e.slot.clone();
            // Follow, registered before looking at the loan (see `Shared::lend_lead`).
            ctl.slots.set_follower(guard.call(), true);
            self.mirror_followers(ctl);
            if self.take_loan() {
                // Lent by a thread running a request (perhaps this one, calling back), or
                // gone back to its own work: the ring is free to read.
                ctl.slots.set_follower(guard.call(), false);
                self.mirror_followers(ctl);
                drop(locked);
                return self.lead_for(guard, decode);
            }
            slot
        };
        match self.wait_slot(&slot) {
            READY => self.take_reply(&slot, decode),
            LEAD => {
                slot.state.store(PENDING, Ordering::Relaxed);
                self.lead_for(guard, decode)
            }
            _ => (Err(CallError::Disconnected), false),
        }
    }

    /// Spins, then sleeps, until `slot` leaves `PENDING`; returns the new state.
    pub(super) fn wait_slot(&self, slot: &Slot) -> u8 {
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
    pub(super) fn take_reply<R>(
        self: &Arc<Self>,
        slot: &Slot,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Answer<R> {
        let (status, untaken, body) = {
            let mut reply = lock(&slot.reply);
            (reply.status, reply.untaken, std::mem::take(&mut reply.body))
        };
        let len = body.len();
        // The decoder owns the body, so that a value at its end (a block) can keep it.
        let mut dec = Decoder::from_vec(body, self);
        let result = finish_reply(status, len, &mut dec, decode);
        if let Some(mut body) = dec.into_buffer()
            && body.capacity() <= KEEP_BUFFER
        {
            // Kept for the slot's next reply.
            body.clear();
            lock(&slot.reply).body = body;
        }
        (result, untaken)
    }

    /// Decodes the reply to the leader's own call `call`, split over several records, while
    /// its parts arrive; `first` holds the first part, and goes back to `slot` for reuse.
    fn decode_parts<R>(
        self: &Arc<Self>,
        rx: &mut Receiver,
        call: u64,
        len: usize,
        first: Vec<u8>,
        slot: &Slot,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut decoded = Parts::new(self, rx, call, len, first).decode(decode);
        if decoded.buffer.capacity() <= KEEP_BUFFER {
            decoded.buffer.clear();
            lock(&slot.reply).body = decoded.buffer;
        }
        match decoded.value {
            Ok(Some(result)) => result,
            Ok(None) => {
                tracing::warn!(session = %self.name, "the peer could not finish a reply");
                Err(CallError::Remote {
                    kind: RemoteErrorKind::Failed,
                    message: VOIDED_REPLY.into(),
                })
            }
            Err(f) => Err(self.fail(f)),
        }
    }

    /// Leads until the reply to the call of `guard` is in: decodes it straight from the
    /// ring, where it lies when it comes as one record (a small one from a copy on the
    /// stack), else while its parts arrive; then hands leadership on, freeing the call's
    /// slot under the same lock.
    #[inline(always)]
    pub(super) fn lead_for<R>(
        self: &Arc<Self>,
        guard: &SlotGuard<'_>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Answer<R> {
        let call = guard.call();
        let busy = Busy::enter();
        let mut lead = LeadGuard {
            shared: self,
            done: None,
        };
        let mut decode = Some(decode);
        // SAFETY: we are the leader (`ctl.leading` was set for us under the lock) and every
        // borrow of `rx` ends inside this loop, before `lead` is dropped below (a panic in
        // `decode` drops the grant first too: it was declared later).
        let rx = unsafe { self.rx.get() };
        let outcome = loop {
            // Nobody else reads, so nobody hands this call its reply: only a close ends
            // the wait.
            if self.closed.load(Ordering::Acquire) {
                break None;
            }
            // The event borrows `rx`; a split message is gathered after it is gone.
            let (part_call, len, buf, then) = match self.next_event(rx, Some(call), false) {
                Ok(Event::Done | Event::Delivered) => continue,
                Ok(Event::Own {
                    grant,
                    status,
                    untaken,
                    len,
                }) => {
                    let decode = decode.take().expect("the reply is decoded once");
                    let result = decode_body(&grant, len, self, |dec| {
                        finish_reply(status, len, dec, decode)
                    });
                    lead.done = Some(guard.hand_over());
                    break Some((result, untaken));
                }
                Ok(Event::Partial {
                    call,
                    len,
                    buf,
                    then,
                }) => (call, len, buf, then),
                Ok(Event::Request { .. }) => unreachable!("callers queue requests for workers"),
                Err(f) => break Some((Err(self.fail(f)), false)),
            };
            if let Then::Reply {
                slot,
                status,
                untaken,
            } = &then
                && part_call == call
            {
                let (status, untaken) = (*status, *untaken);
                let decode = decode.take().expect("the reply is decoded once");
                let result = self.decode_parts(rx, call, len, buf, slot, |dec| {
                    finish_reply(status, len, dec, decode)
                });
                lead.done = Some(guard.hand_over());
                break Some((result, untaken));
            }
            if let Err(f) = self.finish_partial(rx, part_call, len, buf, then) {
                break Some((Err(self.fail(f)), false));
            }
        };
        drop(lead);
        drop(busy);
        outcome.unwrap_or((Err(CallError::Disconnected), false))
    }
}
