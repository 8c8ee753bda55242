//! The records of the call protocol.
//!
//! Every record starts with the same 32-byte [`Header`] (little-endian, like the rest of the
//! protocol), followed by a part of the message body:
//!
//! | kind           | `call`  | `object`       | `method`  | `status` | `len`                 |
//! |----------------|---------|----------------|-----------|----------|-----------------------|
//! | `REQUEST`      | call id | target object  | method id | 0        | body bytes, all parts |
//! | `RESPONSE`     | call id | 0              | 0         | status   | body bytes, all parts |
//! | `RELEASE`      | 0       | released object| 0         | 0        | references released   |
//! | `CONTINUATION` | call id | 0              | 0         | 0        | 0                     |
//!
//! A body longer than one record (the ring's record limit less the header) is split: the
//! first record carries [`FLAG_MORE`], and `CONTINUATION` records with the same call id carry
//! the rest, the last one without the flag. A sender writes all parts of a message while
//! holding its send lock, so the parts of one message are adjacent in the ring.
//!
//! A sender may send the first parts of a message before it has encoded the rest (it
//! *streams* it, so the receiver copies one part out while the next is written). Should the
//! encoding then fail, or come out at another length than the first header announced, the
//! sender ends the message early with a last part carrying [`FLAG_VOID`] (and at least one
//! byte, as every continuation): the receiver discards the message (a voided response fails
//! its call).
//!
//! A response body is the encoded result when `status` is 0, else a UTF-8 error message.
//! A response carries [`FLAG_UNTAKEN`] when its callee took none of the objects the request
//! carried (it refused the call before decoding any): the caller drops them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Header bytes at the start of every record.
pub(crate) const HEADER_LEN: usize = size_of::<Header>();

pub(crate) const KIND_REQUEST: u8 = 1;
pub(crate) const KIND_RESPONSE: u8 = 2;
pub(crate) const KIND_RELEASE: u8 = 3;
pub(crate) const KIND_CONTINUATION: u8 = 4;

/// More parts of this message follow in `CONTINUATION` records.
pub(crate) const FLAG_MORE: u8 = 1;

/// On the last `CONTINUATION` record: the sender could not finish the message; discard it.
pub(crate) const FLAG_VOID: u8 = 2;

/// On a response: the callee took none of the object ids in the request's arguments (it
/// refused the call, or failed, before decoding one), so it will never release them; the
/// caller drops the references it counted for them. Without the flag the callee may have
/// taken some, and releases each one it took.
pub(crate) const FLAG_UNTAKEN: u8 = 4;

/// Response status of a successful call.
pub(crate) const STATUS_OK: u16 = 0;

/// The fixed header of every record. Copied out of the ring before it is looked at.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub(crate) struct Header {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) status: u16,
    pub(crate) method: u32,
    pub(crate) call: u64,
    pub(crate) object: u64,
    pub(crate) len: u64,
}

const _: () = assert!(HEADER_LEN == 32);
// The header is copied as native integers: the wire's little-endian order is the native one
// on every target we build for.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "the call protocol is little-endian"
);

/// A record whose header breaks the rules; the connection is closed with this as the
/// logged reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadRecord(pub(crate) &'static str);

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A validated record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    Request {
        call: u64,
        object: u64,
        method: u32,
        len: u64,
        more: bool,
    },
    Response {
        call: u64,
        status: u16,
        len: u64,
        more: bool,
        /// [`FLAG_UNTAKEN`].
        untaken: bool,
    },
    Release {
        object: u64,
        count: u64,
    },
    Continuation {
        call: u64,
        more: bool,
        void: bool,
    },
}

impl Header {
    pub(crate) fn request(call: u64, object: u64, method: u32, len: u64) -> Header {
        Header {
            kind: KIND_REQUEST,
            flags: 0,
            status: 0,
            method,
            call,
            object,
            len,
        }
    }

    pub(crate) fn response(call: u64, status: u16, len: u64) -> Header {
        Header {
            kind: KIND_RESPONSE,
            flags: 0,
            status,
            method: 0,
            call,
            object: 0,
            len,
        }
    }

    pub(crate) fn release(object: u64, count: u64) -> Header {
        Header {
            kind: KIND_RELEASE,
            flags: 0,
            status: 0,
            method: 0,
            call: 0,
            object,
            len: count,
        }
    }

    pub(crate) fn continuation(call: u64) -> Header {
        Header {
            kind: KIND_CONTINUATION,
            flags: 0,
            status: 0,
            method: 0,
            call,
            object: 0,
            len: 0,
        }
    }

    /// Checks a header copied out of a record of `record_len` bytes (header included)
    /// against the rules of its kind. `max_message` bounds the announced body length.
    #[inline(always)]
    pub(crate) fn parse(&self, record_len: usize, max_message: u64) -> Result<Record, BadRecord> {
        if record_len < HEADER_LEN {
            return Err(BadRecord("record shorter than a header"));
        }
        let part = (record_len - HEADER_LEN) as u64;
        let known = match self.kind {
            KIND_CONTINUATION => FLAG_MORE | FLAG_VOID,
            KIND_RESPONSE => FLAG_MORE | FLAG_UNTAKEN,
            _ => FLAG_MORE,
        };
        if self.flags & !known != 0 {
            return Err(BadRecord("unknown header flags"));
        }
        let more = self.flags & FLAG_MORE != 0;
        let body = |len: u64| -> Result<(), BadRecord> {
            if len > max_message {
                return Err(BadRecord("message longer than the session limit"));
            }
            if more && part >= len || !more && part != len {
                return Err(BadRecord("record length disagrees with the message length"));
            }
            Ok(())
        };
        match self.kind {
            KIND_REQUEST => {
                if self.status != 0 {
                    return Err(BadRecord("request with a status"));
                }
                body(self.len)?;
                Ok(Record::Request {
                    call: self.call,
                    object: self.object,
                    method: self.method,
                    len: self.len,
                    more,
                })
            }
            KIND_RESPONSE => {
                if self.method != 0 || self.object != 0 {
                    return Err(BadRecord("response with a method or an object"));
                }
                body(self.len)?;
                Ok(Record::Response {
                    call: self.call,
                    status: self.status,
                    len: self.len,
                    more,
                    untaken: self.flags & FLAG_UNTAKEN != 0,
                })
            }
            KIND_RELEASE => {
                if self.flags != 0
                    || part != 0
                    || self.call != 0
                    || self.method != 0
                    || self.status != 0
                {
                    return Err(BadRecord("malformed release"));
                }
                if self.len == 0 {
                    return Err(BadRecord("release of zero references"));
                }
                Ok(Record::Release {
                    object: self.object,
                    count: self.len,
                })
            }
            KIND_CONTINUATION => {
                if self.method != 0 || self.object != 0 || self.status != 0 || self.len != 0 {
                    return Err(BadRecord("malformed continuation"));
                }
                if part == 0 {
                    return Err(BadRecord("empty continuation"));
                }
                let void = self.flags & FLAG_VOID != 0;
                if void && more {
                    return Err(BadRecord("void flag before the last part"));
                }
                Ok(Record::Continuation {
                    call: self.call,
                    more,
                    void,
                })
            }
            _ => Err(BadRecord("unknown record kind")),
        }
    }
}
