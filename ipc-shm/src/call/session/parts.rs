//! A split message decoded while its parts arrive, by the leader that reads them.

use super::*;

/// The body of a message split over several records, read part by part as it is decoded.
/// Only the leader reads one, and it reads nothing else meanwhile: the parts of a message
/// are adjacent in the ring. A long value goes from its records straight into its own
/// buffer ([`Body::append`]), instead of into a gathering buffer first and out of it again.
///
/// The decoder may stop early (a value that fails to decode, or leaves bytes over):
/// [`Parts::finish`], or dropping it when a decoder panics, reads the rest, so that the next
/// record the leader reads starts the next message.
pub(super) struct Parts<'r> {
    records: Records<'r>,
    /// The whole body's length.
    len: usize,
    /// Body bytes copied out of the ring and not read yet, from `at` on: the first part, then
    /// the rest of any part a read ended inside.
    held: Vec<u8>,
    at: usize,
    finished: bool,
}

/// The records of the rest of a split message.
struct Records<'r> {
    shared: &'r Arc<Shared>,
    rx: &'r mut Receiver,
    call: u64,
    /// Body bytes in records not read yet.
    unread: usize,
    /// Why reading stopped before the end.
    stop: Option<Stop>,
}

enum Stop {
    /// The sender voided the message.
    Voided,
    Fatal(Fatal),
}

/// What [`Parts::decode`] found.
pub(super) struct Decoded<T> {
    /// What the decoder returned; `None` when the sender voided the message.
    pub(super) value: Result<Option<T>, Fatal>,
    /// The decoder took references to objects of the peer's.
    pub(super) took_objects: bool,
    /// The first part's buffer, for reuse.
    pub(super) buffer: Vec<u8>,
}

/// How a message read with [`Parts`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Whole,
    /// Its sender gave up on it (see [`FLAG_VOID`](super::super::wire::FLAG_VOID)): what was
    /// decoded is to be dropped.
    Voided,
}

impl<'r> Parts<'r> {
    /// The message `call` of `len` body bytes, whose first part is `first`.
    pub(super) fn new(
        shared: &'r Arc<Shared>,
        rx: &'r mut Receiver,
        call: u64,
        len: usize,
        first: Vec<u8>,
    ) -> Parts<'r> {
        Parts {
            records: Records {
                shared,
                rx,
                call,
                unread: len - first.len(),
                stop: None,
            },
            len,
            held: first,
            at: 0,
            finished: false,
        }
    }

    /// Runs `decode` over the body, then reads what it left (see
    /// [`Parts::finish`]). For a voided message, first takes back the references to the
    /// peer's objects that `decode` took (their sender took the objects back itself; the
    /// decoder holds a handle on each until then, so none was released meanwhile), then
    /// drops what it returned.
    pub(super) fn decode<T>(mut self, decode: impl FnOnce(&mut Decoder<'_>) -> T) -> Decoded<T> {
        let (shared, len) = (self.records.shared, self.len);
        let (value, taken) = {
            let mut dec = Decoder::from_reader(&mut self, len, shared).holding_objects();
            let value = decode(&mut dec);
            (value, dec.taken())
        };
        let (ending, buffer) = self.finish();
        let value = match ending {
            Ok(Ending::Whole) => Ok(Some(value)),
            Ok(Ending::Voided) => {
                Shared::forget(&taken);
                drop(value);
                Ok(None)
            }
            Err(f) => Err(f),
        };
        let took_objects = !taken.is_empty();
        // The last handle of an object forgotten sends no release.
        drop(taken);
        Decoded {
            value,
            took_objects,
            buffer,
        }
    }

    /// Reads what the decoder left of the message, and says how it ended. Gives back the
    /// buffer of the first part, for reuse.
    pub(super) fn finish(mut self) -> (Result<Ending, Fatal>, Vec<u8>) {
        self.finished = true;
        let ending = self.records.skip_rest();
        (ending, std::mem::take(&mut self.held))
    }

    /// Bytes held and not read yet.
    fn held(&self) -> &[u8] {
        &self.held[self.at..]
    }
}

impl Records<'_> {
    /// Reads the next record of the message and returns it with its body length. When the
    /// message is over, voided or broken, fails, noting in `stop` why.
    fn next(&mut self) -> io::Result<(RxGrant<'_>, usize)> {
        let over = || io::Error::from(io::ErrorKind::UnexpectedEof);
        if self.stop.is_some() || self.unread == 0 {
            return Err(over());
        }
        let grant = match self.rx.recv() {
            Ok(grant) => grant,
            Err(e) => {
                self.stop = Some(Stop::Fatal(e.into()));
                return Err(over());
            }
        };
        match self.shared.check_part(&grant, self.call, self.unread) {
            Ok(Some(part)) => {
                self.unread -= part;
                Ok((grant, part))
            }
            Ok(None) => {
                self.stop = Some(Stop::Voided);
                Err(over())
            }
            Err(f) => {
                self.stop = Some(Stop::Fatal(f));
                Err(over())
            }
        }
    }

    /// Reads past the records left, and says how the message ended.
    fn skip_rest(&mut self) -> Result<Ending, Fatal> {
        while self.next().is_ok() {}
        match self.stop.take() {
            None => Ok(Ending::Whole),
            Some(Stop::Voided) => Ok(Ending::Voided),
            Some(Stop::Fatal(f)) => Err(f),
        }
    }
}

impl io::Read for Parts<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.held().is_empty() {
            if self.records.unread == 0 && self.records.stop.is_none() {
                return Ok(0);
            }
            let (grant, _) = self.records.next()?;
            self.held.clear();
            self.at = 0;
            copy_part(&grant, &mut self.held);
        }
        let n = buf.len().min(self.held().len());
        buf[..n].copy_from_slice(&self.held()[..n]);
        self.at += n;
        Ok(n)
    }
}

impl Body for Parts<'_> {
    fn append(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let from_held = n.min(self.held().len());
        out.extend_from_slice(&self.held()[..from_held]);
        self.at += from_held;
        let mut left = n - from_held;
        while left != 0 {
            let (grant, part) = self.records.next()?;
            let take = part.min(left);
            let copied = grant.append_to(HEADER_LEN, take, out);
            debug_assert!(copied, "the part was checked against the record length");
            if take < part {
                // The value ends inside this part: the rest is for the next reads.
                self.held.clear();
                self.at = 0;
                let kept = grant.append_to(HEADER_LEN + take, part - take, &mut self.held);
                debug_assert!(kept, "the part was checked against the record length");
            }
            left -= take;
        }
        Ok(())
    }
}

impl Drop for Parts<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // A decoder panicked: read the rest all the same, so that the next leader starts
            // at a message.
            if let Err(f) = self.records.skip_rest() {
                self.records.shared.fail(f);
            }
        }
    }
}
