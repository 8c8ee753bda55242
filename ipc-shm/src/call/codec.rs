//! Encoding of arguments and results: straight into a ring record, and back out of one.
//!
//! The format is deliberately plain: integers little-endian at their natural width, `bool`
//! as one byte 0 or 1, sequences (`Vec`, `String`, slices) as a `u32` element count followed
//! by the elements, `Option` as a `bool` then the value, tuples and arrays as their fields in
//! order, objects as a `u64` id. Interfaces add
//! their own types by implementing [`Encode`] and [`Decode`], or write into the [`Encoder`]
//! (an `io::Write`) and read from the [`Decoder`] (an `io::Read`) directly, e.g. with Bitcoin
//! consensus encoding.
//!
//! A decoder never trusts a length it reads: every count is checked against the bytes left
//! in the message before anything is allocated for it. (In a message split over several
//! records, decoded while its parts arrive, the bytes left are those its first record
//! announced, within the session's message limit: up to that much may be reserved before
//! they arrive, as address space, as `reader::reserve_message` does for a gathered one.)

use std::io;
use std::sync::Arc;

use super::error::CallError;
use super::object::{BOOTSTRAP, Dispatch, RemoteObject};
use super::session::Shared;

/// Writes a message body straight into the reserved ring record (a small message: into a
/// staging buffer copied into its record in one piece) and, for a message the session
/// streams, into the records after it; anything else beyond the first record into a spill
/// buffer that is sent as continuation records.
pub struct Encoder<'a> {
    direct: Direct<'a>,
    /// Bytes still free in `direct`'s current record.
    room: usize,
    spill: &'a mut Vec<u8>,
    /// Bytes written so far.
    len: usize,
    max: usize,
    session: Option<&'a Arc<Shared>>,
    /// Ids exported while encoding, un-exported if the message is never sent.
    exported: Option<&'a mut Vec<u64>>,
}

/// Where an [`Encoder`] writes while its current record has room.
enum Direct<'a> {
    /// Nowhere: everything goes to the spill buffer (an encoder outside any session).
    Nothing,
    /// A small message's staging buffer, `room` bytes of it still free at its end: plain
    /// memory, written with copies the compiler inlines (a one-byte tag is one store).
    Stage(&'a mut [u8]),
    /// Ring records.
    Sink(&'a mut dyn Sink),
}

impl std::fmt::Debug for Encoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("len", &self.len)
            .field("room", &self.room)
            .finish()
    }
}

impl<'a> Encoder<'a> {
    /// An encoder that appends to `out`, outside any session (objects cannot be written).
    pub fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder {
            direct: Direct::Nothing,
            room: 0,
            spill: out,
            len: 0,
            max: usize::MAX,
            session: None,
            exported: None,
        }
    }

    /// An encoder that writes into `sink`'s current record, with room for `room` bytes,
    /// and on into its next records or else into `spill`.
    pub(crate) fn for_record(
        sink: &'a mut dyn Sink,
        room: usize,
        spill: &'a mut Vec<u8>,
        max: usize,
        session: &'a Arc<Shared>,
        exported: &'a mut Vec<u64>,
    ) -> Encoder<'a> {
        Encoder {
            room,
            ..Encoder::in_session(Direct::Sink(sink), spill, max, session, exported)
        }
    }

    /// An encoder that writes into `stage` first (the body of a small message's record),
    /// and what does not fit into `spill`. The body's first `min(len, stage.len())` bytes
    /// are in `stage` when it is done.
    pub(crate) fn for_stage(
        stage: &'a mut [u8],
        spill: &'a mut Vec<u8>,
        max: usize,
        session: &'a Arc<Shared>,
        exported: &'a mut Vec<u64>,
    ) -> Encoder<'a> {
        Encoder {
            room: stage.len(),
            ..Encoder::in_session(Direct::Stage(stage), spill, max, session, exported)
        }
    }

    fn in_session(
        direct: Direct<'a>,
        spill: &'a mut Vec<u8>,
        max: usize,
        session: &'a Arc<Shared>,
        exported: &'a mut Vec<u64>,
    ) -> Encoder<'a> {
        Encoder {
            direct,
            room: 0,
            spill,
            len: 0,
            max,
            session: Some(session),
            exported: Some(exported),
        }
    }

    /// Whether some of the body went past the first record into the spill buffer.
    pub(crate) fn spilled(&self) -> bool {
        !self.spill.is_empty()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encodes `value`.
    pub fn put<T: Encode + ?Sized>(&mut self, value: &T) -> Result<(), CallError> {
        value.encode(self)
    }

    /// Writes `bytes` as they are (no length prefix).
    #[inline(always)]
    pub fn put_raw(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        if bytes.len() > self.max - self.len {
            return Err(CallError::TooLarge {
                len: (self.len + bytes.len()) as u64,
                max: self.max as u64,
            });
        }
        if bytes.len() > self.room {
            return self.put_raw_beyond(bytes);
        }
        self.put_direct(bytes)?;
        self.len += bytes.len();
        Ok(())
    }

    /// Writes `bytes`, which fit the room left, into the current record.
    #[inline(always)]
    fn put_direct(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        match &mut self.direct {
            Direct::Stage(stage) => {
                // `room` bytes are free at the end of the stage.
                let at = stage.len() - self.room;
                stage[at..at + bytes.len()].copy_from_slice(bytes);
            }
            // The record (a ring grant) has `room` bytes left: it cannot fail.
            Direct::Sink(sink) => sink
                .write_all(bytes)
                .map_err(|_| CallError::decode("ring record shorter than reserved"))?,
            Direct::Nothing => debug_assert!(bytes.is_empty(), "no room without a record"),
        }
        self.room -= bytes.len();
        Ok(())
    }

    /// `put_raw` of bytes that do not all fit the current record.
    #[inline(never)]
    fn put_raw_beyond(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        let mut left = bytes;
        loop {
            let (now, rest) = left.split_at(left.len().min(self.room));
            if !now.is_empty() {
                self.put_direct(now)?;
            }
            if rest.is_empty() {
                break;
            }
            self.room = match &mut self.direct {
                Direct::Sink(sink) => sink.next_record()?,
                Direct::Stage(_) | Direct::Nothing => 0,
            };
            if self.room == 0 {
                self.spill.extend_from_slice(rest);
                break;
            }
            left = rest;
        }
        self.len += bytes.len();
        Ok(())
    }

    /// Exports `object` to the peer for as long as the peer holds a handle to it and writes
    /// its id. The peer decodes it as a [`RemoteObject`]. Fails when the session exports
    /// its limit of objects already ([`SessionConfig::max_exports`](super::SessionConfig::max_exports)).
    pub fn put_object(&mut self, object: Arc<dyn Dispatch>) -> Result<(), CallError> {
        let session = self.session.ok_or(CallError::decode(
            "objects can only be sent within a session",
        ))?;
        let id = session.export(object)?;
        if let Some(exported) = self.exported.as_mut() {
            exported.push(id);
        }
        self.put(&id)
    }
}

/// The ring records an [`Encoder`] writes into (or a small message's staging buffer).
pub(crate) trait Sink: io::Write {
    /// Called when the current record is full and more bytes follow: sends the record and
    /// returns the room in the next one, or 0 when the rest goes to the spill buffer.
    fn next_record(&mut self) -> Result<usize, CallError>;
}

impl io::Write for Encoder<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put_raw(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    /// `put_raw` takes all of `buf` or fails: no need for the default's loop of `write`s.
    /// (Inlined, so that a small write into a staged record is a store or two.)
    #[inline(always)]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.put_raw(buf).map_err(io::Error::other)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a message body, in place from a ring record, or from a copy: a small body's
/// (256 bytes at most), or the buffer the parts of a longer message were gathered into.
/// Never reads past the end of the body.
pub struct Decoder<'a> {
    src: Source<'a>,
    remaining: usize,
    session: Option<&'a Arc<Shared>>,
    /// A reference to one of the peer's objects was taken ([`Decoder::get_object`]; the
    /// bootstrap, which counts nothing, aside).
    took_object: bool,
    /// When the message may still turn out voided after it is decoded (see
    /// [`Decoder::holding_objects`]): a handle on each object taken, so that none is
    /// released meanwhile, whatever the decoding code drops.
    held: Option<Vec<RemoteObject>>,
}

/// The shortest value [`Decoder::take_raw`] hands a gathered buffer over for.
const TAKE_FROM: usize = 64 << 10;

enum Source<'a> {
    Slice(&'a [u8]),
    /// A body gathered into a buffer this decoder owns, read from `at` on: its tail can be
    /// handed out without a copy ([`Decoder::take_raw`]).
    Owned {
        buf: Vec<u8>,
        at: usize,
    },
    Read(&'a mut dyn Body),
}

/// A body read where it lies, in ring records: for [`Decoder::from_reader`].
pub(crate) trait Body: io::Read {
    /// Appends the next `n` bytes to `out`, copied into its spare room without zeroing it
    /// first. Fails when fewer than `n` are left (having appended some of them, perhaps:
    /// the decoding fails anyway).
    fn append(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()>;
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<'a> Decoder<'a> {
    /// A decoder over `bytes`, outside any session (objects cannot be read).
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder {
            remaining: bytes.len(),
            src: Source::Slice(bytes),
            session: None,
            took_object: false,
            held: None,
        }
    }

    pub(crate) fn from_slice(bytes: &'a [u8], session: &'a Arc<Shared>) -> Decoder<'a> {
        Decoder {
            remaining: bytes.len(),
            src: Source::Slice(bytes),
            session: Some(session),
            took_object: false,
            held: None,
        }
    }

    /// A decoder over `body`, a message gathered out of the ring. It gives the buffer back
    /// ([`Decoder::into_buffer`]) unless [`Decoder::take_raw`] took it.
    pub(crate) fn from_vec(body: Vec<u8>, session: &'a Arc<Shared>) -> Decoder<'a> {
        Decoder {
            remaining: body.len(),
            src: Source::Owned { buf: body, at: 0 },
            session: Some(session),
            took_object: false,
            held: None,
        }
    }

    /// The buffer of [`Decoder::from_vec`], unless it was taken.
    pub(crate) fn into_buffer(self) -> Option<Vec<u8>> {
        match self.src {
            Source::Owned { buf, .. } if buf.capacity() != 0 => Some(buf),
            _ => None,
        }
    }

    /// `src` must yield at least `len` bytes (a ring record whose header has been read).
    pub(crate) fn from_reader(
        src: &'a mut dyn Body,
        len: usize,
        session: &'a Arc<Shared>,
    ) -> Decoder<'a> {
        Decoder {
            src: Source::Read(src),
            remaining: len,
            session: Some(session),
            took_object: false,
            held: None,
        }
    }

    /// Bytes left in the body.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Decodes a `T`.
    pub fn get<T: Decode>(&mut self) -> Result<T, CallError> {
        T::decode(self)
    }

    /// Fills `out` with the next bytes of the body.
    #[inline(always)]
    pub fn get_raw(&mut self, out: &mut [u8]) -> Result<(), CallError> {
        if out.len() > self.remaining {
            return Err(CallError::decode("message ends early"));
        }
        match &mut self.src {
            Source::Slice(s) => {
                let (head, tail) = s.split_at(out.len());
                out.copy_from_slice(head);
                *s = tail;
            }
            Source::Owned { buf, at } => {
                // `remaining` is what `buf` holds from `at` on.
                out.copy_from_slice(&buf[*at..*at + out.len()]);
                *at += out.len();
            }
            Source::Read(r) => r
                .read_exact(out)
                .map_err(|_| CallError::decode("message ends early"))?,
        }
        self.remaining -= out.len();
        Ok(())
    }

    /// Appends the next `n` bytes of the body to `out`, copied straight into its spare room
    /// (a large byte string is not zeroed first only to be overwritten). `out` grows by no
    /// more than the bytes left in the body, which the message's header announced: never by
    /// a length's word alone (see the module documentation on split messages).
    #[inline]
    pub fn append_raw(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), CallError> {
        if n > self.remaining {
            return Err(CallError::decode("message ends early"));
        }
        if out.capacity() == 0 {
            // The body holds them (`remaining`): one allocation of the right size, not the
            // growth policy's detour through reallocations.
            *out = Vec::with_capacity(n);
        }
        match &mut self.src {
            Source::Slice(s) => {
                let (head, tail) = s.split_at(n);
                out.extend_from_slice(head);
                *s = tail;
            }
            Source::Owned { buf, at } => {
                out.extend_from_slice(&buf[*at..*at + n]);
                *at += n;
            }
            Source::Read(r) => r
                .append(n, out)
                .map_err(|_| CallError::decode("message ends early"))?,
        }
        self.remaining -= n;
        Ok(())
    }

    /// The next `n` bytes of the body without a copy, when they are all that is left of a
    /// body gathered out of the ring into a buffer and at least 64 KiB long (a long
    /// message's last value, say a block): that buffer, handed over, and the offset where
    /// the bytes start in it (they run to its end). `None`, consuming nothing, for any
    /// other bytes: copy those with [`Decoder::append_raw`]. (Shorter values are copied, so
    /// that the session keeps its buffer for the next message.)
    #[inline]
    pub fn take_raw(&mut self, n: usize) -> Option<(Vec<u8>, usize)> {
        match &mut self.src {
            Source::Owned { buf, at } if n == self.remaining && n >= TAKE_FROM => {
                self.remaining = 0;
                if buf.capacity() - buf.len() > buf.len() / 4 {
                    // A reused gathering buffer may be larger than this message: the value
                    // keeps none of its slack.
                    buf.shrink_to_fit();
                }
                // The body is used up: an empty buffer read from 0 keeps later reads of
                // nothing in bounds.
                Some((std::mem::take(buf), std::mem::take(at)))
            }
            _ => None,
        }
    }

    /// Reads a `u32` count of items that each take at least one byte, checked against
    /// what is left.
    pub fn get_len(&mut self) -> Result<usize, CallError> {
        let n = self.get::<u32>()? as usize;
        if n > self.remaining {
            return Err(CallError::decode("length exceeds the message"));
        }
        Ok(n)
    }

    /// Reads an object id the peer exported and returns a handle to that object.
    pub fn get_object(&mut self) -> Result<RemoteObject, CallError> {
        let id = self.get::<u64>()?;
        let session = self.session.ok_or(CallError::decode(
            "objects can only be received within a session",
        ))?;
        let object = session.import(id)?;
        if id != BOOTSTRAP {
            self.took_object = true;
            if let Some(held) = &mut self.held {
                held.push(object.clone());
            }
        }
        Ok(object)
    }

    /// Whether [`Decoder::get_object`] took a reference to an object of the peer's.
    pub(crate) fn took_object(&self) -> bool {
        self.took_object
    }

    /// This decoder, keeping a handle on every object it takes until [`Decoder::taken`]
    /// hands them over.
    pub(crate) fn holding_objects(mut self) -> Self {
        self.held = Some(Vec::new());
        self
    }

    /// The handles a decoder [`holding_objects`](Decoder::holding_objects) kept.
    pub(crate) fn taken(&mut self) -> Vec<RemoteObject> {
        self.held.take().unwrap_or_default()
    }

    /// Checks that the whole body was consumed.
    pub fn finish(&self) -> Result<(), CallError> {
        if self.remaining != 0 {
            return Err(CallError::decode("trailing bytes after the value"));
        }
        Ok(())
    }
}

impl io::Read for Decoder<'_> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.remaining);
        self.get_raw(&mut buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }

    /// `get_raw` fills all of `buf` or fails: no need for the default's loop of `read`s.
    /// (Inlined, so that reading a small integer from a copied body is a load or two.)
    #[inline(always)]
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.get_raw(buf)
            .map_err(|_| io::ErrorKind::UnexpectedEof.into())
    }
}

/// A value that can be written into a message.
pub trait Encode {
    /// The encoded length, or a close estimate: the sender reserves this much in the ring
    /// up front. Too little costs an extra copy, too much costs ring space; but a length
    /// above 256 KiB or one ring record (and within the session's limit) must be exact:
    /// that message goes out record by record while it is encoded, and if it comes out at
    /// another length its call fails.
    fn encoded_len(&self) -> usize;

    /// Writes the value.
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError>;

    /// Writes the elements of a slice (without the count). Overridden by `u8` to write
    /// bytes in bulk.
    #[doc(hidden)]
    fn encode_slice(items: &[Self], enc: &mut Encoder<'_>) -> Result<(), CallError>
    where
        Self: Sized,
    {
        items.iter().try_for_each(|item| item.encode(enc))
    }

    /// The encoded length of the elements of a slice (without the count).
    #[doc(hidden)]
    fn slice_encoded_len(items: &[Self]) -> usize
    where
        Self: Sized,
    {
        items.iter().map(Encode::encoded_len).sum()
    }
}

/// A value that can be read from a message.
pub trait Decode: Sized {
    /// Reads the value.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError>;

    /// Reads `n` elements, `n` already checked against the bytes left. Overridden by `u8`
    /// to read bytes in bulk.
    #[doc(hidden)]
    fn decode_vec(n: usize, dec: &mut Decoder<'_>) -> Result<Vec<Self>, CallError> {
        // Grow with what actually decodes, not with what the peer announced.
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(Self::decode(dec)?);
        }
        Ok(out)
    }
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encoded_len(&self) -> usize {
                size_of::<$t>()
            }
            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
                enc.put_raw(&self.to_le_bytes())
            }
        }
        impl Decode for $t {
            fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
                let mut b = [0u8; size_of::<$t>()];
                dec.get_raw(&mut b)?;
                Ok(<$t>::from_le_bytes(b))
            }
        }
    )*};
}
int!(u16, u32, u64, i8, i16, i32, i64);

impl Encode for u8 {
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put_raw(&[*self])
    }
    fn encode_slice(items: &[u8], enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put_raw(items)
    }
    fn slice_encoded_len(items: &[u8]) -> usize {
        items.len()
    }
}

impl Decode for u8 {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        let mut b = [0u8];
        dec.get_raw(&mut b)?;
        Ok(b[0])
    }
    fn decode_vec(n: usize, dec: &mut Decoder<'_>) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        dec.append_raw(n, &mut out)?;
        Ok(out)
    }
}

impl Encode for bool {
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put_raw(&[u8::from(*self)])
    }
}

impl Decode for bool {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        match u8::decode(dec)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CallError::decode("bool is neither 0 nor 1")),
        }
    }
}

impl Encode for () {
    fn encoded_len(&self) -> usize {
        0
    }
    fn encode(&self, _: &mut Encoder<'_>) -> Result<(), CallError> {
        Ok(())
    }
}

impl Decode for () {
    fn decode(_: &mut Decoder<'_>) -> Result<Self, CallError> {
        Ok(())
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encoded_len(&self) -> usize {
        N
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put_raw(self)
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        let mut b = [0u8; N];
        dec.get_raw(&mut b)?;
        Ok(b)
    }
}

fn put_len(enc: &mut Encoder<'_>, n: usize) -> Result<(), CallError> {
    let n = u32::try_from(n).map_err(|_| CallError::TooLarge {
        len: n as u64,
        max: u32::MAX.into(),
    })?;
    enc.put(&n)
}

impl<T: Encode> Encode for [T] {
    fn encoded_len(&self) -> usize {
        4 + T::slice_encoded_len(self)
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        put_len(enc, self.len())?;
        T::encode_slice(self, enc)
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encoded_len(&self) -> usize {
        self.as_slice().encoded_len()
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        self.as_slice().encode(enc)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        let n = dec.get_len()?;
        T::decode_vec(n, dec)
    }
}

impl Encode for str {
    fn encoded_len(&self) -> usize {
        self.as_bytes().encoded_len()
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        self.as_bytes().encode(enc)
    }
}

impl Encode for String {
    fn encoded_len(&self) -> usize {
        self.as_str().encoded_len()
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        self.as_str().encode(enc)
    }
}

impl Decode for String {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        String::from_utf8(Vec::<u8>::decode(dec)?)
            .map_err(|_| CallError::decode("string is not UTF-8"))
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encoded_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Encode::encoded_len)
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put(&self.is_some())?;
        self.as_ref().map_or(Ok(()), |v| v.encode(enc))
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        if dec.get::<bool>()? {
            Ok(Some(dec.get()?))
        } else {
            Ok(None)
        }
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        (**self).encode(enc)
    }
}

impl Encode for Arc<dyn Dispatch> {
    fn encoded_len(&self) -> usize {
        8
    }
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
        enc.put_object(self.clone())
    }
}

impl Decode for RemoteObject {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
        dec.get_object()
    }
}

macro_rules! tuple {
    ($($n:tt $t:ident),+) => {
        impl<$($t: Encode),+> Encode for ($($t,)+) {
            fn encoded_len(&self) -> usize {
                0 $(+ self.$n.encoded_len())+
            }
            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), CallError> {
                $(self.$n.encode(enc)?;)+
                Ok(())
            }
        }
        impl<$($t: Decode),+> Decode for ($($t,)+) {
            fn decode(dec: &mut Decoder<'_>) -> Result<Self, CallError> {
                Ok(($(dec.get::<$t>()?,)+))
            }
        }
    };
}
tuple!(0 A);
tuple!(0 A, 1 B);
tuple!(0 A, 1 B, 2 C);
tuple!(0 A, 1 B, 2 C, 3 D);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
