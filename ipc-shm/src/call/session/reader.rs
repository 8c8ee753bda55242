//! The leader's reading: validate each record, hand replies to their callers, and queue or
//! return requests.

use std::sync::TryLockError;

use super::*;

/// `io::Read` over a ring record from `pos` on.
pub(super) struct GrantReader<'g, 'r> {
    pub(super) grant: &'g RxGrant<'r>,
    pub(super) pos: usize,
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

impl Body for GrantReader<'_, '_> {
    fn append(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        if !self.grant.append_to(self.pos, n, out) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n;
        Ok(())
    }
}

/// Requests at least this long announce their reply ([`Shared::reply_coming`]): reading
/// and answering one takes the peer's waiter past its 50 µs spin budget (a 64 KiB echo
/// takes 20 µs, and gains nothing from the hint, which costs a lock and a store).
const LONG_REQUEST: usize = 256 << 10;

/// Bodies up to this long are copied out of their record in one piece and decoded from
/// the copy: cheaper than a decoder's many small reads from the ring.
const SMALL_BODY: usize = 256;

/// Runs `decode` on the `len`-byte body of `grant`'s record.
#[inline(always)]
pub(super) fn decode_body<T>(
    grant: &RxGrant<'_>,
    len: usize,
    session: &Arc<Shared>,
    decode: impl FnOnce(&mut Decoder<'_>) -> T,
) -> T {
    let mut small = [0; SMALL_BODY];
    if let Some(body) = small.get_mut(..len)
        && grant.read_at(HEADER_LEN, body)
    {
        return decode(&mut Decoder::from_slice(body, session));
    }
    let mut src = GrantReader {
        grant,
        pos: HEADER_LEN,
    };
    decode(&mut Decoder::from_reader(&mut src, len, session))
}

/// What the leader found in the next record.
pub(super) enum Event<'g> {
    /// Dealt with: a release, a request queued for a worker.
    Done,
    /// A reply copied into its caller's slot (never the leader's own call).
    Delivered,
    /// The reply to the leader's own call, single-record, still in the ring.
    Own {
        grant: RxGrant<'g>,
        status: u16,
        untaken: bool,
        len: usize,
    },
    /// A request for the leader to run (worker leaders only).
    Request {
        call: u64,
        object: ObjectId,
        method: MethodId,
        args: Args<'g>,
    },
    /// The first part of a message split over several records, copied into `buf`; the
    /// leader gathers the rest with [`Shared::gather`].
    Partial {
        call: u64,
        len: usize,
        buf: Vec<u8>,
        then: Then,
    },
}

/// What a gathered message is.
pub(super) enum Then {
    Reply {
        slot: Arc<Slot>,
        status: u16,
        untaken: bool,
    },
    Request {
        object: ObjectId,
        method: MethodId,
    },
}

/// The arguments of a request being served.
pub(crate) enum Args<'g> {
    /// In the ring; this thread leads.
    Ring { grant: RxGrant<'g>, len: usize },
    /// Copied out of the ring.
    Buffer(Vec<u8>),
    /// Split over several records, the first one's part copied out, the rest in the ring;
    /// this thread leads. (Boxed: the other kinds, which every small call moves about, stay
    /// small.)
    Parts(Box<Parts<'g>>),
    /// Already decoded.
    Taken,
}

impl Shared {
    /// Reads and validates the next record, and deals with what the leader need not see.
    pub(super) fn next_event<'g>(
        self: &Arc<Self>,
        rx: &'g mut Receiver,
        own: Option<u64>,
        run_requests: bool,
    ) -> Result<Event<'g>, Fatal> {
        let grant = rx.recv()?;
        let header = grant
            .read_obj::<Header>(0)
            .ok_or_else(|| protocol("record shorter than a header"))?;
        let record = header
            .parse(grant.len(), self.max_message as u64)
            .map_err(|e| protocol(e.0))?;
        match record {
            Record::Response {
                call,
                status,
                len,
                more,
                untaken,
            } => {
                let len = len as usize;
                if !more && own == Some(call) {
                    return Ok(Event::Own {
                        grant,
                        status,
                        untaken,
                        len,
                    });
                }
                // Another thread's call, or ours split over several records.
                let slot = lock(&self.ctl).slots.answer(call)?;
                let mut buf = std::mem::take(&mut lock(&slot.reply).body);
                buf.clear();
                if own != Some(call) {
                    // (The leader's own reply is decoded while its parts arrive: `Parts`.)
                    reserve_message(&mut buf, len, more);
                }
                copy_part(&grant, &mut buf);
                drop(grant);
                if more {
                    return Ok(Event::Partial {
                        call,
                        len,
                        buf,
                        then: Then::Reply {
                            slot,
                            status,
                            untaken,
                        },
                    });
                }
                self.complete(&slot, status, untaken, buf);
                Ok(Event::Delivered)
            }
            Record::Request {
                call,
                object,
                method,
                len,
                more,
            } => {
                let len = len as usize;
                if len >= LONG_REQUEST {
                    self.reply_coming();
                }
                if run_requests && !more {
                    return Ok(Event::Request {
                        call,
                        object,
                        method,
                        args: Args::Ring { grant, len },
                    });
                }
                let mut buf = self.take_buffer();
                if !run_requests {
                    // (A worker leader decodes the arguments while their parts arrive:
                    // `Parts`.)
                    reserve_message(&mut buf, len, more);
                }
                copy_part(&grant, &mut buf);
                drop(grant);
                if more {
                    return Ok(Event::Partial {
                        call,
                        len,
                        buf,
                        then: Then::Request { object, method },
                    });
                }
                if run_requests {
                    return Ok(Event::Request {
                        call,
                        object,
                        method,
                        args: Args::Buffer(buf),
                    });
                }
                self.queue_call(call, object, method, buf)?;
                Ok(Event::Done)
            }
            Record::Release { object, count } => {
                drop(grant);
                if let Some(gone) = self.release_export(object, count)? {
                    self.drop_on_worker(gone);
                }
                Ok(Event::Done)
            }
            Record::Continuation { .. } => Err(protocol("continuation record without a message")),
        }
    }

    /// A long request takes a while to read and to serve, while its caller waits for the
    /// reply: tell the peer it is coming, so that its waiter spins on instead of parking
    /// ([`Sender::expect_to_send`]). Only when the send lock is free: the leader never waits
    /// for it (a sender may be waiting for room that only our reading frees).
    fn reply_coming(&self) {
        let mut tx = match self.tx.try_lock() {
            Ok(tx) => tx,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        tx.sender.expect_to_send();
    }

    /// Reads the continuation records of `call` into `buf` until it holds `len` bytes.
    /// Returns whether the sender voided the message (see [`FLAG_VOID`](super::super::wire::FLAG_VOID)).
    pub(super) fn gather(
        &self,
        rx: &mut Receiver,
        call: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<bool, Fatal> {
        while buf.len() < len {
            let grant = rx.recv()?;
            if self.check_part(&grant, call, len - buf.len())?.is_none() {
                return Ok(true);
            }
            copy_part(&grant, buf);
        }
        Ok(false)
    }

    /// Checks `grant`, the next record of the split message `call`, of which `unread` body
    /// bytes are still to come. Returns the body bytes of this part, or `None` when it
    /// voids the message: its sender gave up on the rest, which then never comes.
    pub(super) fn check_part(
        &self,
        grant: &RxGrant<'_>,
        call: u64,
        unread: usize,
    ) -> Result<Option<usize>, Fatal> {
        let header = grant
            .read_obj::<Header>(0)
            .ok_or_else(|| protocol("record shorter than a header"))?;
        let Record::Continuation {
            call: c,
            more,
            void,
        } = header
            .parse(grant.len(), self.max_message as u64)
            .map_err(|e| protocol(e.0))?
        else {
            return Err(protocol("message interrupted before its last part"));
        };
        if c != call {
            return Err(protocol("continuation of another call"));
        }
        // Every part carries a byte at least, so one that leaves nothing for a next is
        // as long as one that runs past the announced length.
        let part = grant.len() - HEADER_LEN;
        if part > unread || more && part == unread {
            return Err(protocol("message longer than announced"));
        }
        if void {
            return Ok(None);
        }
        if !more && part < unread {
            return Err(protocol("message shorter than announced"));
        }
        Ok(Some(part))
    }

    /// Gathers the rest of a split message, then delivers it (caller leaders only: a worker
    /// leader runs a gathered request itself).
    pub(super) fn finish_partial(
        self: &Arc<Self>,
        rx: &mut Receiver,
        call: u64,
        len: usize,
        mut buf: Vec<u8>,
        then: Then,
    ) -> Result<(), Fatal> {
        if self.gather(rx, call, len, &mut buf)? {
            self.discard(then, buf);
            return Ok(());
        }
        match then {
            Then::Reply {
                slot,
                status,
                untaken,
            } => {
                self.complete(&slot, status, untaken, buf);
                Ok(())
            }
            Then::Request { object, method } => self.queue_call(call, object, method, buf),
        }
    }

    /// Drops a message its sender voided. Its caller gave up on a request already; a
    /// response fails its call.
    pub(super) fn discard(&self, then: Then, mut buf: Vec<u8>) {
        match then {
            Then::Reply { slot, .. } => {
                tracing::warn!(session = %self.name, "the peer could not finish a reply");
                buf.clear();
                buf.extend_from_slice(VOIDED_REPLY.as_bytes());
                // Whether the callee took the request's objects is unknown: they are kept.
                self.complete(&slot, RemoteErrorKind::Failed.status(), false, buf);
            }
            Then::Request { .. } => self.recycle_buffer(buf),
        }
    }

    /// Hands a reply to its caller.
    pub(super) fn complete(&self, slot: &Slot, status: u16, untaken: bool, body: Vec<u8>) {
        {
            let mut reply = lock(&slot.reply);
            reply.status = status;
            reply.untaken = untaken;
            reply.body = body;
        }
        slot.set(READY, &self.ctl);
    }

    pub(super) fn take_buffer(&self) -> Vec<u8> {
        lock(&self.ctl).buffers.pop().unwrap_or_default()
    }

    pub(super) fn recycle_buffer(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= KEEP_BUFFER {
            buf.clear();
            let mut ctl = lock(&self.ctl);
            if ctl.buffers.len() < 16 {
                ctl.buffers.push(buf);
            }
        }
    }
}

/// What the caller of a call whose reply was voided learns.
pub(super) const VOIDED_REPLY: &str = "the peer could not finish its reply";

/// Makes room in `buf` for a message of `len` bytes that comes in several records (`more`)
/// before gathering it, so that it is not copied again as the buffer grows. `len` is the
/// peer's word, checked against the session's message limit; an allocation this large is
/// only address space until the bytes arrive.
fn reserve_message(buf: &mut Vec<u8>, len: usize, more: bool) {
    if more {
        buf.reserve_exact(len);
    }
}

/// Appends the body part of `grant` (after the header) to `buf`.
pub(super) fn copy_part(grant: &RxGrant<'_>, buf: &mut Vec<u8>) {
    let copied = grant.append_to(HEADER_LEN, grant.len() - HEADER_LEN, buf);
    debug_assert!(copied, "the header was parsed against the record length");
}

/// Decodes a reply body: the result when `status` is OK, else the peer's error.
pub(super) fn finish_reply<R>(
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
        None => Err(CallError::Remote {
            kind: RemoteErrorKind::Failed,
            message: format!("unknown status {status}: {message}"),
        }),
    }
}
