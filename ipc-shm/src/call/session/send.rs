//! Sending a message: a small one is encoded in a staging buffer and copied into the ring
//! in one piece, any other straight into the ring. A message whose length hint exceeds
//! [`STREAM_FROM`] (or one record) is streamed record by record as it is encoded; any other
//! message that outgrows its record has its rest spilled and sent as continuation records.

use std::any::Any;

use super::*;
use crate::call::codec::Sink;
use crate::call::link::TxGrant;
use crate::call::wire::FLAG_VOID;

/// Body bytes per record of a streamed message. The receiver copies one record out while
/// the next is written, so a long message crosses in about the time of one copy, not two.
pub(super) const STREAM_PART: usize = 64 << 10;

/// Messages hinted longer than this are streamed even when one record could hold them:
/// written whole, a 1.4 MB block is copied in, then out, one copy after the other; in
/// parts, the two copies overlap. (Below this the overlap gains less than gathering the
/// parts costs the receiver.)
pub(super) const STREAM_FROM: usize = 4 * STREAM_PART;

/// Messages hinted at most this long are encoded in a staging buffer and copied into the ring in
/// one piece: cheaper than an encoder's many small writes through a ring grant.
pub(super) const SMALL_MESSAGE: usize = 256;

/// Why a message was not sent whole, and what the peer saw of it.
pub(super) struct Unsent {
    error: CallError,
    pub(super) fate: Fate,
    /// The encoder panicked: resumed by [`Unsent::into_error`], once the caller has noted
    /// the message's fate.
    panic: Option<Box<dyn Any + Send>>,
}

/// What became of a message that was not sent whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// The peer saw nothing of it.
    NotSent,
    /// Its first parts went out and the peer was told to discard them ([`FLAG_VOID`]): for
    /// a response, the caller has had its answer.
    Voided,
    /// The connection is gone.
    Lost,
}

impl Unsent {
    fn new(error: CallError, fate: Fate) -> Unsent {
        Unsent {
            error,
            fate,
            panic: None,
        }
    }

    /// The error to report, or the encoder's panic, resumed.
    pub(super) fn into_error(self) -> CallError {
        if let Some(panic) = self.panic {
            std::panic::resume_unwind(panic);
        }
        self.error
    }
}

impl std::fmt::Debug for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsent")
            .field("error", &self.error)
            .field("fate", &self.fate)
            .finish()
    }
}

impl Shared {
    /// Sends one message: `header` (its length and flags are filled in) and a body written
    /// by `encode`. When `len_hint` exceeds [`STREAM_FROM`] or one record (and not the
    /// session's limit) the body is streamed, so `len_hint` must then be exact: a body of
    /// any other length is voided
    /// (see [`FLAG_VOID`]) and reported as an error. A panic in `encode` is resumed by
    /// [`Unsent::into_error`], after the message is voided or dropped unsent. Returns the ids
    /// of the objects the message carried (none, nearly always: then without allocating).
    pub(super) fn send(
        self: &Arc<Self>,
        mut header: Header,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<Vec<u64>, Unsent> {
        let _busy = Busy::enter();
        let mut guard = lock(&self.tx);
        if !guard.exported.is_empty() {
            // Objects exported for a message that never went out: its encoder panicked, or
            // the connection failed before its staged record could be reserved.
            let orphans = std::mem::take(&mut guard.exported);
            drop(guard);
            self.unexport(&orphans);
            guard = lock(&self.tx);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Unsent::new(CallError::Disconnected, Fate::Lost));
        }
        let tx = &mut *guard;
        let outcome = self.write_releases(tx).and_then(|()| {
            let max_part = tx.sender.max_record_len() - HEADER_LEN;
            tx.spill.clear();
            tx.exported.clear();
            if len_hint > STREAM_FROM.min(max_part) && len_hint <= self.max_message {
                return self.send_streamed(tx, header, len_hint, max_part, encode);
            }
            if len_hint <= SMALL_MESSAGE && SMALL_MESSAGE <= max_part {
                let (head, body) = tx.stage.split_at_mut(HEADER_LEN);
                let enc = Encoder::for_stage(
                    body,
                    &mut tx.spill,
                    self.max_message,
                    self,
                    &mut tx.exported,
                );
                if let Err(error) = encode_first(enc, &mut header, encode) {
                    return Ok(Err(Unsent::new(error, Fate::NotSent)));
                }
                head.copy_from_slice(header.as_bytes());
                let record = &tx.stage[..HEADER_LEN + SMALL_MESSAGE.min(header.len as usize)];
                let mut grant = tx.sender.reserve(record.len())?;
                grant.write_at(0, record);
                grant.commit();
            } else {
                let first = len_hint.min(max_part);
                let mut grant = tx.sender.reserve(HEADER_LEN + first)?;
                skip_header(&mut grant, &header);
                let enc = Encoder::for_record(
                    &mut grant,
                    first,
                    &mut tx.spill,
                    self.max_message,
                    self,
                    &mut tx.exported,
                );
                if let Err(error) = encode_first(enc, &mut header, encode) {
                    // Nothing was sent: the grant goes uncommitted.
                    return Ok(Err(Unsent::new(error, Fate::NotSent)));
                }
                grant.write_obj(0, &header);
                let used = grant.position();
                grant.commit_len(used);
            }
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
            Ok(Ok(())) => {
                // Sent: the peer holds these now, unless it answers that it took none.
                if tx.exported.is_empty() {
                    Ok(Vec::new())
                } else {
                    Ok(std::mem::take(&mut tx.exported))
                }
            }
            Ok(Err(unsent)) => {
                // The receiver never sees the message: take back what the encoder exported.
                let exported = std::mem::take(&mut tx.exported);
                drop(guard);
                self.unexport(&exported);
                Err(unsent)
            }
            Err(fatal) => {
                drop(guard);
                self.fail(fatal);
                Err(Unsent::new(CallError::Disconnected, Fate::Lost))
            }
        }
    }

    /// Sends a message whose body is longer than one record, record by record as it is
    /// encoded (see [`Records`]).
    fn send_streamed(
        self: &Arc<Self>,
        tx: &mut Tx,
        header: Header,
        len: usize,
        max_part: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<Result<(), Unsent>, Fatal> {
        let first = STREAM_PART.min(max_part);
        let grant = tx.sender.reserve(HEADER_LEN + first)?;
        let mut records = Records::new(grant, header, len, max_part);
        // A panic is caught so that the message is voided or dropped, what it exported
        // taken back and the send lock released before it goes on.
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            let mut enc = Encoder::for_record(
                &mut records,
                first,
                &mut tx.spill,
                self.max_message,
                self,
                &mut tx.exported,
            );
            encode(&mut enc).map(|()| enc.len())
        }));
        let (encoded, panic) = match encoded {
            Ok(encoded) => (encoded, None),
            Err(panic) => (Err(CallError::failed("the encoder panicked")), Some(panic)),
        };
        match records.finish(encoded) {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(unsent)) => Ok(Err(Unsent { panic, ..unsent })),
            Err(fatal) => Err(Fatal::from(fatal)),
        }
    }

    pub(super) fn unexport(&self, ids: &[u64]) {
        let mut dropped = Vec::new();
        let mut ex = lock(&self.exports);
        for id in ids {
            if let Some(e) = ex.map.remove(id) {
                self.export_count.fetch_sub(1, Ordering::AcqRel);
                self.exports_epoch.fetch_add(1, Ordering::Release);
                dropped.push(e.object);
            }
        }
        drop(ex);
        // User `Drop` code runs outside our locks.
        drop(dropped);
    }
}

/// The records of a streamed message: the [`Sink`] behind its encoder, which sends each
/// record as soon as it is full.
struct Records<'s> {
    /// The record being written, its header slot skipped; `None` once a reservation failed.
    grant: Option<TxGrant<'s>>,
    /// The message's first header.
    header: Header,
    /// The body length the first header announces.
    announced: usize,
    /// Body bytes in records already sent.
    sent: usize,
    max_part: usize,
    /// A reservation failed: the connection is gone.
    broken: Option<crate::Error>,
}

impl<'s> Records<'s> {
    fn new(
        mut grant: TxGrant<'s>,
        header: Header,
        announced: usize,
        max_part: usize,
    ) -> Records<'s> {
        skip_header(&mut grant, &header);
        Records {
            grant: Some(grant),
            header,
            announced,
            sent: 0,
            max_part,
            broken: None,
        }
    }

    /// Writes the header of the current record, sends it and reserves the next, with room
    /// for `len` body bytes.
    fn send_on(&mut self, head: Header, len: usize) -> Result<(), crate::Error> {
        let mut grant = self.grant.take().expect("a record is being written");
        grant.write_obj(0, &head);
        let mut next = grant.commit_then_reserve(HEADER_LEN + len)?;
        skip_header(&mut next, &head);
        self.grant = Some(next);
        Ok(())
    }

    /// Sends the last record of the message.
    fn send_last(&mut self, head: Header) {
        let mut grant = self.grant.take().expect("a record is being written");
        grant.write_obj(0, &head);
        let used = grant.position();
        grant.commit_len(used);
    }

    /// Sends the message as `encoded` came out: whole, voided, or not at all.
    fn finish(
        mut self,
        encoded: Result<usize, CallError>,
    ) -> Result<Result<(), Unsent>, crate::Error> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let announced = self.announced;
        let error = match encoded {
            Ok(len) if len == announced => None,
            Ok(len) => Some(CallError::failed(format!(
                "message encoded to {len} bytes, {announced} announced"
            ))),
            Err(e) => Some(e),
        };
        if self.sent == 0 {
            // Still in the first record: either it is all there was to send, or nothing went
            // out yet. A streamed message is longer than one record, so it is the latter.
            let error = error
                .unwrap_or_else(|| CallError::failed("streamed message shorter than one record"));
            return Ok(Err(Unsent::new(error, Fate::NotSent)));
        }
        let Some(error) = error else {
            self.send_last(Header::continuation(self.header.call));
            return Ok(Ok(()));
        };
        self.void();
        Ok(Err(Unsent::new(error, Fate::Voided)))
    }

    /// The receiver has the first parts of a streamed message that will not be finished:
    /// ends it early with a last part that tells the receiver to discard it. Like every
    /// continuation, that part carries at least one byte.
    fn void(&mut self) {
        let grant = self.grant.as_mut().expect("a record is being written");
        if grant.position() == HEADER_LEN {
            grant
                .write_all(&[0])
                .expect("every part has room for a byte");
        }
        self.send_last(Header {
            flags: FLAG_VOID,
            ..Header::continuation(self.header.call)
        });
    }

    /// Sends the current (full) record and reserves the next one; returns its room, or 0
    /// when the message has all its announced bytes.
    fn next_part(&mut self) -> Result<usize, crate::Error> {
        let body = self
            .grant
            .as_ref()
            .expect("a record is being written")
            .position()
            - HEADER_LEN;
        let left = self.announced - self.sent - body;
        if left == 0 {
            return Ok(0);
        }
        let head = if self.sent == 0 {
            Header {
                len: self.announced as u64,
                flags: self.header.flags | FLAG_MORE,
                ..self.header
            }
        } else {
            Header {
                flags: FLAG_MORE,
                ..Header::continuation(self.header.call)
            }
        };
        self.sent += body;
        let n = left.min(STREAM_PART).min(self.max_part);
        self.send_on(head, n)?;
        Ok(n)
    }
}

impl io::Write for Records<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.grant.as_mut() {
            Some(grant) => grant.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Records<'_> {
    fn next_record(&mut self) -> Result<usize, CallError> {
        if self.grant.is_none() {
            // A reservation failed already (an encoder that ignored the error writes on).
            return Err(CallError::Disconnected);
        }
        match self.next_part() {
            Ok(0) => Err(CallError::failed(format!(
                "message longer than the {} bytes announced",
                self.announced
            ))),
            Ok(room) => Ok(room),
            Err(e) => {
                self.broken = Some(e);
                Err(CallError::Disconnected)
            }
        }
    }
}

/// Room to stage a small message's record: the header slot, then up to [`SMALL_MESSAGE`]
/// body bytes. Kept with the sending end, so that a send does not clear a new one.
pub(super) type Stage = [u8; HEADER_LEN + SMALL_MESSAGE];

/// A plain message's one record: what does not fit goes to the spill buffer.
impl Sink for TxGrant<'_> {
    fn next_record(&mut self) -> Result<usize, CallError> {
        Ok(0)
    }
}

/// Encodes a message's body with `enc`, over its first record, and sets the header's length
/// and, when part of the body was spilled past that record, its [`FLAG_MORE`].
fn encode_first(
    mut enc: Encoder<'_>,
    header: &mut Header,
    encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
) -> Result<(), CallError> {
    encode(&mut enc)?;
    header.len = enc.len() as u64;
    if enc.spilled() {
        header.flags |= FLAG_MORE;
    }
    Ok(())
}

/// Moves `grant`'s write cursor past the header slot; the header is written for real when
/// the record is sent.
fn skip_header(grant: &mut TxGrant<'_>, header: &Header) {
    let skipped = grant.write_all(header.as_bytes());
    debug_assert!(skipped.is_ok(), "every record has room for its header");
}
