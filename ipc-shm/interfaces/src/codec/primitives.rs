//! Codecs for integers, `bool`, `Option`, strings, byte strings, lists, tuples and
//! `Duration`, and the helpers the other codecs build on.

use std::io;
use std::time::Duration;

use zerocopy::little_endian::{I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{
    Decode, DecodeError, Encode, Input, LimitError, MAX_BYTES, MAX_ITEMS, MAX_STRING_BYTES,
    PREALLOC_ITEMS,
};

/// Maps a read failure to a decode error; running out of input is `UnexpectedEnd`.
pub(super) fn read_error(e: &io::Error, what: &'static str) -> DecodeError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => DecodeError::UnexpectedEnd { what },
        kind => DecodeError::Io { kind },
    }
}

/// Reads a fixed-layout wire struct as its bytes.
pub(super) fn read_wire<T, R>(r: &mut R, what: &'static str) -> Result<T, DecodeError>
where
    T: FromBytes + IntoBytes,
    R: Input + ?Sized,
{
    let mut wire = T::new_zeroed();
    r.read_exact(wire.as_mut_bytes())
        .map_err(|e| read_error(&e, what))?;
    Ok(wire)
}

/// Reads a `u32` length or count and checks it against `max`.
pub(super) fn read_len<R: Input + ?Sized>(
    r: &mut R,
    what: &'static str,
    max: u32,
) -> Result<u32, DecodeError> {
    let len = read_wire::<U32, _>(r, what)?.get();
    if len > max {
        return Err(DecodeError::TooLong {
            what,
            len: len.into(),
            max: max.into(),
        });
    }
    Ok(len)
}

/// Checks a length or count against `max` before sending, giving it as a `u32`.
pub(super) fn check_len(what: &'static str, len: usize, max: u32) -> Result<u32, LimitError> {
    match u32::try_from(len) {
        Ok(l) if l <= max => Ok(l),
        _ => Err(LimitError {
            what,
            len: len as u64,
            max: max.into(),
        }),
    }
}

/// Reads exactly `len` bytes into a new vector. The caller has bounded `len`; the vector
/// grows only as [`Input::read_vec`] lets it: by bytes the input really holds.
pub(super) fn read_bytes<R: Input + ?Sized>(
    r: &mut R,
    len: u32,
    what: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    r.read_vec(len as usize, &mut out)
        .map_err(|e| read_error(&e, what))?;
    Ok(out)
}

/// Reads a one-byte tag that must be below `count`.
pub(super) fn read_tag<R: Input + ?Sized>(
    r: &mut R,
    what: &'static str,
    count: u8,
) -> Result<u8, DecodeError> {
    let [tag] = read_wire::<[u8; 1], _>(r, what)?;
    if tag >= count {
        return Err(DecodeError::InvalidValue {
            what,
            value: tag.into(),
        });
    }
    Ok(tag)
}

/// Decodes a `bool` stored in a wire struct.
pub(super) fn flag(value: u8, what: &'static str) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidValue {
            what,
            value: value.into(),
        }),
    }
}

impl Encode for () {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(0)
    }

    fn encode<W: io::Write + ?Sized>(&self, _: &mut W) -> io::Result<()> {
        Ok(())
    }
}

impl Decode for () {
    fn decode<R: Input + ?Sized>(_: &mut R) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        (**self).encoded_len()
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        (**self).encode(w)
    }
}

impl Encode for bool {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(1)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&[u8::from(*self)])
    }
}

impl Decode for bool {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let [b] = read_wire::<[u8; 1], _>(r, "bool")?;
        flag(b, "bool")
    }
}

/// Integers as their little-endian zerocopy wire type.
macro_rules! int_codec {
    ($ty:ty, $wire:ty, $what:literal) => {
        impl Encode for $ty {
            fn encoded_len(&self) -> Result<usize, LimitError> {
                Ok(size_of::<$wire>())
            }

            fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
                w.write_all(<$wire>::new(*self).as_bytes())
            }
        }

        impl Decode for $ty {
            fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
                Ok(read_wire::<$wire, _>(r, $what)?.get())
            }
        }
    };
}

int_codec!(u32, U32, "u32");
int_codec!(u64, U64, "u64");
int_codec!(i32, I32, "i32");

impl<T: Encode> Encode for Option<T> {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(1 + self.as_ref().map_or(Ok(0), Encode::encoded_len)?)
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        match self {
            None => w.write_all(&[0]),
            Some(v) => {
                w.write_all(&[1])?;
                v.encode(w)
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        match read_tag(r, "option tag", 2)? {
            0 => Ok(None),
            _ => T::decode(r).map(Some),
        }
    }
}

/// Text: `u32` byte length, then UTF-8, at most [`MAX_STRING_BYTES`].
impl Encode for str {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        check_len("string", self.len(), MAX_STRING_BYTES)?;
        Ok(4 + self.len())
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        write_prefixed(w, self.as_bytes())
    }
}

impl Encode for String {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        self.as_str().encoded_len()
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.as_str().encode(w)
    }
}

impl Decode for String {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let len = read_len(r, "string", MAX_STRING_BYTES)?;
        let bytes = read_bytes(r, len, "string")?;
        String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { what: "string" })
    }
}

/// Writes `bytes` after their `u32` length. The caller has bounded the length.
pub(super) fn write_prefixed<W: io::Write + ?Sized>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    w.write_all(U32::new(len).as_bytes())?;
    w.write_all(bytes)
}

/// A byte string ([`Echo::echo`](crate::Echo::echo)'s payload): `u32` length, then the
/// bytes, at most [`MAX_BYTES`].
impl Encode for [u8] {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        check_len("byte string", self.len(), MAX_BYTES)?;
        Ok(4 + self.len())
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        write_prefixed(w, self)
    }
}

impl Encode for Vec<u8> {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        self.as_slice().encoded_len()
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.as_slice().encode(w)
    }
}

impl Decode for Vec<u8> {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let mut bytes = Vec::new();
        decode_bytes_into(r, &mut bytes)?;
        Ok(bytes)
    }
}

/// Decodes a byte string (as `Vec<u8>` does) into `buf`, replacing what it held: into
/// `buf`'s own room, so that a server can keep one buffer for the arguments of every call
/// instead of allocating one per call.
pub(crate) fn decode_bytes_into<R: Input + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let len = read_len(r, "byte string", MAX_BYTES)?;
    buf.clear();
    // The bytes ending a long message come in the buffer it was gathered into: moving
    // them to its front costs a copy within it, not a second buffer as large.
    if let Some((mut bytes, start)) = r.take_tail(len as usize) {
        bytes.drain(..start);
        *buf = bytes;
        return Ok(());
    }
    r.read_vec(len as usize, buf)
        .map_err(|e| read_error(&e, "byte string"))
}

/// A list of values other than bytes: `u32` count, then the items, at most [`MAX_ITEMS`].
/// (`u8` has no codec of its own, so this does not overlap the byte-string codec.)
impl<T: Encode> Encode for [T] {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        check_len("list", self.len(), MAX_ITEMS)?;
        self.iter()
            .try_fold(4, |sum, item| Ok(sum + item.encoded_len()?))
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let count = u32::try_from(self.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        w.write_all(U32::new(count).as_bytes())?;
        self.iter().try_for_each(|item| item.encode(w))
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        self.as_slice().encoded_len()
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        self.as_slice().encode(w)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        decode_list(r, MAX_ITEMS)
    }
}

/// Decodes a list of at most `max` items (a `u32` count, then the items), refusing a
/// longer count before anything is allocated for it.
pub(crate) fn decode_list<T: Decode, R: Input + ?Sized>(
    r: &mut R,
    max: u32,
) -> Result<Vec<T>, DecodeError> {
    let count = read_len(r, "list", max)?;
    let mut out = Vec::with_capacity((count as usize).min(PREALLOC_ITEMS));
    for _ in 0..count {
        out.push(T::decode(r)?);
    }
    Ok(out)
}

/// Tuples (method arguments): the fields in order.
macro_rules! tuple_codec {
    ($($name:ident),+) => {
        impl<$($name: Encode),+> Encode for ($($name,)+) {
            fn encoded_len(&self) -> Result<usize, LimitError> {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                Ok(0 $(+ $name.encoded_len()?)+)
            }

            fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.encode(w)?;)+
                Ok(())
            }
        }

        impl<$($name: Decode),+> Decode for ($($name,)+) {
            fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
                Ok(($($name::decode(r)?,)+))
            }
        }
    };
}

tuple_codec!(A);
tuple_codec!(A, B);
tuple_codec!(A, B, C);
tuple_codec!(A, B, C, D);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DurationWire {
    secs: U64,
    nanos: U32,
}

/// A `Duration`: whole seconds, then nanoseconds below 1,000,000,000.
impl Encode for Duration {
    fn encoded_len(&self) -> Result<usize, LimitError> {
        Ok(size_of::<DurationWire>())
    }

    fn encode<W: io::Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let wire = DurationWire {
            secs: U64::new(self.as_secs()),
            nanos: U32::new(self.subsec_nanos()),
        };
        w.write_all(wire.as_bytes())
    }
}

impl Decode for Duration {
    fn decode<R: Input + ?Sized>(r: &mut R) -> Result<Self, DecodeError> {
        let wire: DurationWire = read_wire(r, "duration")?;
        let nanos = wire.nanos.get();
        if nanos >= 1_000_000_000 {
            return Err(DecodeError::InvalidValue {
                what: "duration nanoseconds",
                value: nanos.into(),
            });
        }
        Ok(Duration::new(wire.secs.get(), nanos))
    }
}
