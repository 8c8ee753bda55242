//! The single-producer/single-consumer byte ring that lives in a shared segment.
//!
//! # Layout
//!
//! A segment is a 4096-byte header followed by `capacity` bytes of data (a power of two).
//! Every header field is a little-endian `u64` accessed atomically; the fields each side
//! writes sit on cache lines of their own:
//!
//! | offset | field             | written by | meaning                                          |
//! |-------:|-------------------|------------|--------------------------------------------------|
//! |      0 | `magic`           | producer   | `b"BSHMRNG1"`                                    |
//! |      8 | `version`         | producer   | layout version, [`RING_VERSION`]                 |
//! |     16 | `capacity`        | producer   | data bytes, a power of two                       |
//! |     24 | `data_offset`     | producer   | where data starts, [`DATA_OFFSET`]               |
//! |    128 | `read`            | consumer   | bytes ever released (monotonic)                  |
//! |    256 | `consumer_parked` | consumer   | park generation (non-zero) while it sleeps       |
//! |    264 | `consumer_flags`  | consumer   | bit 0: it sleeps only after a process-wide barrier |
//! |    384 | `producer_parked` | producer   | park generation (non-zero) while it sleeps       |
//! |    392 | `producer_flags`  | producer   | bit 0: a long record is being written or coming  |
//!
//! Positions are byte counts that only grow; the byte a position refers to is at
//! `data_offset + (pos & (capacity - 1))`. The producer's position is never published: the
//! record headers themselves say how far it got.
//!
//! # Records
//!
//! A record is an 8-byte header — payload length (`u32`), flags (`u32`) — followed by the
//! payload, padded to a multiple of 8 so every header is 8-aligned. Flag bit 0 is set in
//! every header, so a header word of 0 means "nothing here yet"; flag bit 1 marks a
//! *padding record*. A record never wraps: when it does not fit before the end of the data
//! area, the producer fills the rest with a padding record (length = the bytes after its
//! header up to the end) and starts the record at offset 0. The longest payload is
//! `capacity / 2 - 8`, which always fits in an empty ring whatever the position.
//!
//! # Publishing by header
//!
//! The consumer finds the next record by polling its header slot, not a position word, so a
//! record crosses from one core to the other in the cache lines that hold it and nothing
//! else. That needs one invariant from the producer: **a header slot holds 0 before the
//! consumer can reach it.** Before the producer publishes a record (a Release store of its
//! header) it stores 0 into the slot just after it, and before it publishes a padding
//! record it stores 0 into slot 0. So the producer keeps 8 bytes of room beyond every
//! record: `write + span + 8 - read <= capacity`. Without that zero the consumer could take
//! old payload bytes of an earlier lap for a header.
//!
//! # Waking a parked consumer
//!
//! A consumer about to sleep raises its parked word, then looks for a record once more; a
//! producer, after publishing a header, loads that word and rings the consumer's bell if it
//! is raised. Each side needs a full barrier between its store and its load, or both can
//! miss the other's store and the consumer sleeps on a published record. The producer's
//! barrier was a `SeqCst` fence per record, which waits for the record's stores to leave the
//! core: about a sixth of a 64 B record's cost in a stream. Where the kernel provides
//! `membarrier(GLOBAL_EXPEDITED)`, the consumer instead runs that before its last look: it
//! executes a full barrier on every CPU running a thread of a registered process, the
//! producer's included (a producer not running has passed one when it was switched out).
//! The consumer announces this with bit 0 of `consumer_flags`; a producer whose own process
//! is registered then publishes with a compiler fence only. A consumer may clear the bit
//! (it does if a barrier ever fails) and the producer fences again from its next record.
//! A peer that ignores the word stays correct: it never sets the bit, or fences anyway.
//!
//! # Waiting through a long write
//!
//! A consumer whose spin budget runs out parks, and a park and its wake-up cost tens of
//! microseconds in a VM. A wait that outlasts the budget because the producer is copying a
//! long record (a 1 MiB record takes about 0.1 ms to copy across cores) ends a copy later,
//! and parking then only adds that cost. So while it holds a reservation of
//! [`LONG_RECORD`] bytes or more, the producer sets bit 0 of `producer_flags`, and clears
//! it when it publishes (or reserves a shorter record). It may also set it ahead of a record
//! it is about to produce ([`Producer::expect_to_publish`]): the call layer does so while it
//! reads a long request, whose reply its peer is waiting for. A consumer whose budget is spent
//! keeps looking (yielding at each look) while it sees the bit, for up to `wait::BUSY_SPIN`
//! of spinning per wait however often it is woken meanwhile, and then parks as before. A
//! consumer with a zero budget ([`WaitPolicy::PARK`]) never spins, bit or no bit. The word
//! is advice: waking does not depend on it, a peer that never sets it only makes us park,
//! and a peer that never clears it costs us that much spinning per wait. A grant dropped
//! uncommitted leaves the bit set until the producer's next reservation or record.
//!
//! # Trust
//!
//! The consumer validates every record header it reads and the producer validates the
//! consumer's position. A violation is a [`ProtocolError`]. Each side keeps its own
//! position and the capacity in private memory and only *publishes* them; it never
//! re-reads them from the segment.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Error, ProtocolError};
use crate::mem::Region;
use crate::sync::{Ordering, fence};
use crate::wait::{BUSY_SPIN, Bell, Doorbell, Liveness, Spinner, WaitPolicy, Wake, park, pause};

/// `b"BSHMRNG1"` read as a little-endian `u64`.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"BSHMRNG1");
/// The layout version this crate writes and accepts.
pub const RING_VERSION: u64 = 2;
/// Where the data area starts in a segment.
pub const DATA_OFFSET: usize = 4096;
/// The smallest ring capacity.
pub const MIN_CAPACITY: usize = 4096;
/// The largest ring capacity (1 GiB).
pub const MAX_CAPACITY: usize = 1 << 30;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 8;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_CAPACITY: usize = 16;
const OFF_DATA_OFFSET: usize = 24;
const OFF_READ: usize = 128;
const OFF_CONSUMER_PARKED: usize = 256;
const OFF_CONSUMER_FLAGS: usize = 264;
/// `consumer_flags` bit: before it re-checks for records and sleeps, the consumer runs a
/// process-wide memory barrier (`membarrier` `GLOBAL_EXPEDITED`).
const CONSUMER_BARRIER: u64 = 1;

// Process-wide barriers (see "Waking a parked consumer"): whether this process takes part,
// and running one. Never under loom, which models the fences on both sides.
#[cfg(not(loom))]
use crate::sys::membarrier::{available as process_barriers, global as global_barrier};
#[cfg(loom)]
use loom_barriers::*;

#[cfg(loom)]
mod loom_barriers {
    pub(super) fn process_barriers() -> bool {
        false
    }

    pub(super) fn global_barrier() -> bool {
        false
    }
}
const OFF_PRODUCER_PARKED: usize = 384;
const OFF_PRODUCER_FLAGS: usize = 392;
/// `producer_flags` bit: the producer is writing a record of [`LONG_RECORD`] bytes or more,
/// or expects to publish its next record soon ([`Producer::expect_to_publish`]).
const PRODUCER_WRITING_LONG: u64 = 1;
/// Records at least this long are announced in `producer_flags` while they are written
/// (see "Waiting through a long write"): copying one takes several microseconds.
pub const LONG_RECORD: usize = 64 << 10;
#[cfg(loom)]
pub(crate) const HEADER_WORDS_USED: usize = OFF_PRODUCER_FLAGS / 8 + 1;

/// Set in every header, so that a published header is never 0.
const FLAG_RECORD: u32 = 1;
/// Marks a padding record (together with [`FLAG_RECORD`]).
const FLAG_PADDING: u32 = 2;
/// Room the producer keeps free after every record for the next header slot's zero.
const NEXT_SLOT: u64 = RECORD_HEADER_LEN as u64;

/// The segment length that holds a ring of `capacity` data bytes.
pub const fn segment_len(capacity: usize) -> usize {
    DATA_OFFSET + capacity
}

/// The longest payload a ring of `capacity` bytes carries.
pub const fn max_record_len(capacity: usize) -> usize {
    capacity / 2 - RECORD_HEADER_LEN
}

/// Whether `capacity` is a ring size this crate accepts.
pub const fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
}

/// Header plus payload, rounded up to the next record boundary.
#[inline]
const fn record_span(len: usize) -> u64 {
    ((RECORD_HEADER_LEN + len + 7) & !7) as u64
}

#[inline]
fn encode_header(len: u32, flags: u32) -> u64 {
    u64::from(len) | (u64::from(flags) << 32)
}

/// The next park generation: never 0, which means "not parked".
fn next_generation(generation: &mut u64) -> u64 {
    *generation = generation.wrapping_add(1).max(1);
    *generation
}

/// Whether the peer, whose parked word reads `parked`, must be woken: it is parked, and not
/// already woken for this park. A doorbell stays rung until the woken side reads it, so one
/// ring per park is enough; ringing on every commit while the peer is still waking up (tens
/// of microseconds) cost a system call per record and throttled a fast producer to a
/// fraction of its rate. The word is the peer's to write: any value is safe here, a bogus
/// one costs at most a missed or a spurious wake-up of the peer itself.
#[inline]
fn needs_wake(parked: u64, woken: &mut u64) -> bool {
    if parked == 0 || parked == *woken {
        return false;
    }
    *woken = parked;
    true
}

/// Writes a fresh ring header. The segment is newly created and zero-filled, so the
/// positions and flags are already 0.
pub(crate) fn init_header(region: &Region, capacity: usize) {
    debug_assert!(valid_capacity(capacity) || cfg!(loom));
    debug_assert_eq!(region.len(), segment_len(capacity));
    region
        .atomic_u64(OFF_MAGIC)
        .store(RING_MAGIC, Ordering::Relaxed);
    region
        .atomic_u64(OFF_VERSION)
        .store(RING_VERSION, Ordering::Relaxed);
    region
        .atomic_u64(OFF_CAPACITY)
        .store(capacity as u64, Ordering::Relaxed);
    region
        .atomic_u64(OFF_DATA_OFFSET)
        .store(DATA_OFFSET as u64, Ordering::Relaxed);
}

/// Checks a header the peer wrote against the capacity agreed in the handshake. The
/// values are loaded once, here, and never trusted again.
pub(crate) fn validate_header(region: &Region, capacity: usize) -> Result<(), ProtocolError> {
    let magic = region.atomic_u64(OFF_MAGIC).load(Ordering::Relaxed);
    if magic != RING_MAGIC {
        return Err(ProtocolError::BadMagic { found: magic });
    }
    let version = region.atomic_u64(OFF_VERSION).load(Ordering::Relaxed);
    if version != RING_VERSION {
        return Err(ProtocolError::BadVersion {
            found: version.min(u64::from(u32::MAX)) as u32,
        });
    }
    let found = region.atomic_u64(OFF_CAPACITY).load(Ordering::Relaxed);
    let data = region.atomic_u64(OFF_DATA_OFFSET).load(Ordering::Relaxed);
    if found != capacity as u64 || data != DATA_OFFSET as u64 {
        return Err(ProtocolError::BadGeometry {
            capacity: found,
            segment: region.len() as u64,
        });
    }
    Ok(())
}

/// The producer's side of the index protocol, without any waiting.
#[derive(Debug)]
pub(crate) struct ProducerCore {
    region: Region,
    capacity: u64,
    /// Our position: everything below it is published (records and padding).
    write: u64,
    /// The consumer's position as last loaded (a lower bound of the real one).
    cached_read: u64,
    /// The generation of our latest park, published in our parked word.
    park_generation: u64,
    /// The consumer's park generation we last reported as needing a wake-up.
    consumer_woken: u64,
    /// The consumer runs a process-wide barrier before it sleeps and so does this process
    /// take part: publishing needs no fence (see "Waking a parked consumer").
    light_fence: bool,
    /// This process takes part in process-wide barriers (asked once: `process_barriers`).
    barriers: bool,
    /// What we last stored in `producer_flags` (see "Waiting through a long write").
    writing_long: bool,
}

/// Where a reserved record goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reservation {
    /// Stream position of the record header (after any padding).
    pos: u64,
    /// Segment offset of the payload.
    payload: usize,
    /// Payload bytes reserved.
    len: usize,
    /// How many of them share the header's cache line (see [`WriteGrant`]).
    head: usize,
}

/// Bytes of a cache line.
const LINE: usize = 64;

/// Lines after the header's that a waiting consumer loads too (see `ConsumerCore::try_peek`):
/// enough for a small call (a 32-byte call header and a 64-byte argument) wherever its
/// record starts in a line. Loading more costs the waiter; the records it helps are short.
const WATCHED_LINES: usize = 2;

impl ProducerCore {
    /// Writes a fresh header into `region` and starts producing into it.
    #[cfg(any(loom, test))]
    pub(crate) fn new(region: Region, capacity: usize) -> Self {
        init_header(&region, capacity);
        Self::attach(region, capacity)
    }

    /// Starts producing into a ring whose header [`init_header`] already wrote.
    pub(crate) fn attach(region: Region, capacity: usize) -> Self {
        ProducerCore {
            region,
            capacity: capacity as u64,
            write: 0,
            cached_read: 0,
            park_generation: 0,
            consumer_woken: 0,
            light_fence: false,
            barriers: process_barriers(),
            writing_long: false,
        }
    }

    #[inline(always)]
    fn mask(&self) -> u64 {
        self.capacity - 1
    }

    #[inline]
    pub(crate) fn max_record_len(&self) -> usize {
        max_record_len(self.capacity as usize)
    }

    /// Loads the consumer's position and checks that it moved forward within what we wrote.
    fn refresh_read(&mut self) -> Result<(), ProtocolError> {
        // SYNC: Acquire pairs with the Release store of `read` in `ConsumerCore::publish`:
        // once we see the consumer's position, its reads of the bytes below it are done and
        // we may overwrite them.
        let read = self.region.atomic_u64(OFF_READ).load(Ordering::Acquire);
        if read < self.cached_read || read > self.write || !read.is_multiple_of(8) {
            return Err(ProtocolError::BadPosition {
                which: "consumer",
                found: read,
                min: self.cached_read,
                max: self.write,
            });
        }
        self.cached_read = read;
        Ok(())
    }

    /// Bytes a record of `len` bytes takes from our position: padding to the end of the
    /// data area if it does not fit before it, the record, and the next header slot.
    #[inline(always)]
    fn needed(&self, len: usize) -> (u64, u64) {
        let span = record_span(len);
        let to_end = self.capacity - (self.write & self.mask());
        let pad = if span <= to_end { 0 } else { to_end };
        (pad, pad + span + NEXT_SLOT)
    }

    /// Stores 0 into the header slot at stream position `pos`, which we are about to make
    /// reachable (see "Publishing by header" in the module docs).
    #[inline(always)]
    fn clear_slot(&self, pos: u64) {
        // Relaxed: the Release store of the header that makes the slot reachable publishes it.
        self.region
            .atomic_u64(DATA_OFFSET + (pos & self.mask()) as usize)
            .store(0, Ordering::Relaxed);
    }

    /// Reserves room for a payload of `len` bytes, or `None` when the ring is too full.
    /// `len` must not exceed `max_record_len` (checked by the caller).
    #[inline(always)]
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<Reservation>, ProtocolError> {
        debug_assert!(len <= self.max_record_len());
        let (pad, needed) = self.needed(len);
        if self.write + needed - self.cached_read > self.capacity {
            self.refresh_read()?;
            if self.write + needed - self.cached_read > self.capacity {
                return Ok(None);
            }
        }
        if pad != 0 {
            // The padding goes out now, with slot 0 cleared first; the consumer skips it and
            // waits at slot 0 for the record. A grant dropped uncommitted leaves both valid.
            let header_at = DATA_OFFSET + (self.write & self.mask()) as usize;
            self.clear_slot(self.write + pad);
            // SYNC: Release pairs with the Acquire load of a header in `ConsumerCore::try_peek`:
            // the cleared slot 0 is visible before the padding that leads the consumer to it.
            self.region.atomic_u64(header_at).store(
                encode_header(
                    (pad - RECORD_HEADER_LEN as u64) as u32,
                    FLAG_RECORD | FLAG_PADDING,
                ),
                Ordering::Release,
            );
            self.write += pad;
        }
        let pos = self.write;
        let payload = DATA_OFFSET + (pos & self.mask()) as usize + RECORD_HEADER_LEN;
        // Segments are page-aligned in memory, so segment offsets fall on cache lines as the
        // addresses do.
        let head = (LINE - payload % LINE).min(len);
        if (len >= LONG_RECORD) != self.writing_long {
            self.announce_long_write(len >= LONG_RECORD);
        }
        Ok(Some(Reservation {
            pos,
            payload,
            len,
            head,
        }))
    }

    /// Says in `producer_flags` whether we are writing a long record. Out of line: most
    /// records are short and never get here.
    #[cold]
    #[inline(never)]
    fn announce_long_write(&mut self, long: bool) {
        self.writing_long = long;
        // Relaxed: advice for a spinning consumer, which no ordering depends on.
        let word = if long { PRODUCER_WRITING_LONG } else { 0 };
        self.region
            .atomic_u64(OFF_PRODUCER_FLAGS)
            .store(word, Ordering::Relaxed);
    }

    /// Publishes a reserved record with its first `used` bytes as the payload. Returns whether
    /// the consumer is parked and must be woken: once per park of the consumer, since a
    /// doorbell rung stays rung until the woken side reads it (see [`needs_wake`]).
    ///
    /// `head` are the payload bytes that share the header's cache line, written here right
    /// before the header (at most `res.head` of them; the caller wrote the rest).
    #[cfg(any(test, loom))]
    #[inline(always)]
    pub(crate) fn commit(&mut self, res: Reservation, used: usize, head: &[u8]) -> bool {
        self.publish(res, used, head);
        self.consumer_needs_wake()
    }

    /// Publishes a reserved record with its first `used` bytes as the payload (`head` as
    /// for `commit`), without the wake-up check: the caller must call
    /// [`Self::consumer_needs_wake`] after it, at the latest before it waits for anything.
    #[inline(always)]
    pub(crate) fn publish(&mut self, res: Reservation, used: usize, head: &[u8]) {
        assert!(
            used <= res.len,
            "committed {used} bytes of a {}-byte reservation",
            res.len
        );
        debug_assert!(head.len() <= res.head);
        let end = res.pos + record_span(used);
        // The reservation kept room for this slot (`needed`).
        self.clear_slot(end);
        self.region
            .write(res.payload, &head[..head.len().min(used)]);
        // SYNC: Release pairs with the Acquire load of a header in `ConsumerCore::try_peek`:
        // the payload written through the grant and the cleared next slot are visible before
        // the header that publishes them.
        self.region
            .atomic_u64(res.payload - RECORD_HEADER_LEN)
            .store(encode_header(used as u32, FLAG_RECORD), Ordering::Release);
        self.write = end;
        // Lowered after the header: a consumer that saw it lowered first parks and is woken
        // as usual.
        if self.writing_long {
            self.announce_long_write(false);
        }
    }

    /// Whether the consumer is parked and must be woken, after records were published: once
    /// per park of the consumer, since a doorbell rung stays rung until the woken side reads
    /// it (see [`needs_wake`]).
    #[inline(always)]
    pub(crate) fn consumer_needs_wake(&mut self) -> bool {
        if self.light_fence {
            // SYNC: pairs with the process-wide barrier in `ConsumerCore::set_parked`, which
            // runs a full fence on this CPU if we are running (a switch away is one too):
            // either the consumer sees our latest header after raising its flag, or we see
            // its flag here. Only the compiler must keep the load after the store.
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            // SYNC: this SeqCst fence pairs with the one (or the barrier) in
            // `ConsumerCore::set_parked`, with the same either-or.
            fence(Ordering::SeqCst);
        }
        let parked = self
            .region
            .atomic_u64(OFF_CONSUMER_PARKED)
            .load(Ordering::Relaxed);
        // Read on every commit (the same line as `parked`): a consumer that stops running
        // barriers clears its flag, and we fence again from the next record on.
        let flags = self
            .region
            .atomic_u64(OFF_CONSUMER_FLAGS)
            .load(Ordering::Relaxed);
        self.light_fence = flags & CONSUMER_BARRIER != 0 && self.barriers;
        needs_wake(parked, &mut self.consumer_woken)
    }

    /// Whether a payload of `len` bytes would fit now (reloads the consumer's position).
    pub(crate) fn has_room(&mut self, len: usize) -> Result<bool, ProtocolError> {
        self.refresh_read()?;
        let (_, needed) = self.needed(len);
        Ok(self.write + needed - self.cached_read <= self.capacity)
    }

    /// Raises (with a new generation) or lowers our parked word. Raising is followed by a
    /// SeqCst fence that pairs with the one in `ConsumerCore::publish`.
    pub(crate) fn set_parked(&mut self, parked: bool) {
        let word = if parked {
            next_generation(&mut self.park_generation)
        } else {
            0
        };
        self.region
            .atomic_u64(OFF_PRODUCER_PARKED)
            .store(word, Ordering::Relaxed);
        if parked {
            // SYNC: pairs with the SeqCst fence in `ConsumerCore::publish`: either we see the
            // consumer's new `read` in `has_room`, or it sees our flag and rings our bell.
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }
}

/// The consumer's side of the index protocol, without any waiting.
#[derive(Debug)]
pub(crate) struct ConsumerCore {
    region: Region,
    capacity: u64,
    /// Everything below this has been released (possibly not yet published).
    read: u64,
    /// What we last published as `read`.
    published: u64,
    /// The generation of our latest park, published in our parked word.
    park_generation: u64,
    /// The producer's park generation we last reported as needing a wake-up.
    producer_woken: u64,
    /// We run a process-wide barrier before we sleep, and say so in `consumer_flags`.
    barrier: bool,
}

/// A committed record, located and validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// Segment offset of the payload.
    payload: usize,
    len: usize,
    /// Stream position just past the record.
    end: u64,
}

impl ConsumerCore {
    /// Wraps a segment whose header has been checked with [`validate_header`].
    pub(crate) fn new(region: Region, capacity: usize) -> Self {
        let barrier = process_barriers();
        if barrier {
            region
                .atomic_u64(OFF_CONSUMER_FLAGS)
                .store(CONSUMER_BARRIER, Ordering::Relaxed);
        }
        ConsumerCore {
            region,
            capacity: capacity as u64,
            read: 0,
            published: 0,
            park_generation: 0,
            producer_woken: 0,
            barrier,
        }
    }

    #[inline(always)]
    fn mask(&self) -> u64 {
        self.capacity - 1
    }

    /// Locates the next published record, skipping padding. Does not release anything.
    #[inline(always)]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Record>, ProtocolError> {
        let mut pos = self.read;
        loop {
            let offset = pos & self.mask();
            let to_end = self.capacity - offset;
            // What the producer may have written from `pos` on: not past the end of the data
            // area, nor into bytes we have not released.
            let limit = to_end.min(self.read + self.capacity - pos);
            // SYNC: Acquire pairs with the Release stores of headers in `ProducerCore::commit`
            // and `ProducerCore::try_reserve`: the payload and the cleared next slot are
            // visible once we see the header.
            let header = self
                .region
                .atomic_u64(DATA_OFFSET + offset as usize)
                .load(Ordering::Acquire);
            if header == 0 {
                // Also wait on the lines after the header's, where a record longer than the
                // rest of its line goes on: they then cross over together with it instead of
                // one after the other when the record arrives.
                let next_line = (offset as usize | (LINE - 1)) + 1;
                for line in (next_line..self.capacity as usize)
                    .step_by(LINE)
                    .take(WATCHED_LINES)
                {
                    std::hint::black_box(
                        self.region
                            .atomic_u64(DATA_OFFSET + line)
                            .load(Ordering::Relaxed),
                    );
                }
                return Ok(None);
            }
            let (len, flags) = (header as u32, (header >> 32) as u32);
            match flags {
                FLAG_RECORD => {
                    let span = record_span(len as usize);
                    if len as usize > max_record_len(self.capacity as usize) || span > limit {
                        return Err(ProtocolError::BadRecordLength {
                            len: len.into(),
                            available: limit,
                        });
                    }
                    // Padding we skipped is released together with this record.
                    self.read = pos;
                    return Ok(Some(Record {
                        payload: DATA_OFFSET + offset as usize + RECORD_HEADER_LEN,
                        len: len as usize,
                        end: pos + span,
                    }));
                }
                f if f == FLAG_RECORD | FLAG_PADDING => {
                    // Padding runs exactly to the end; after one, `limit` is below a whole
                    // ring, so a second one in a row is refused and this loop ends.
                    if u64::from(len) + RECORD_HEADER_LEN as u64 != to_end || to_end > limit {
                        return Err(ProtocolError::BadRecordLength {
                            len: len.into(),
                            available: limit.saturating_sub(RECORD_HEADER_LEN as u64),
                        });
                    }
                    pos += to_end;
                }
                _ => return Err(ProtocolError::BadRecordFlags { flags }),
            }
        }
    }

    /// Marks `record` consumed. The producer learns of it at the next [`Self::publish`].
    #[inline(always)]
    pub(crate) fn release(&mut self, record: Record) {
        debug_assert!(record.end > self.read && record.end <= self.read + self.capacity);
        self.read = record.end;
    }

    /// Whether a quarter of the ring or more has been released and not yet published (see
    /// [`ReadGrant::release_lazily`](ends::ReadGrant::release_lazily)).
    #[inline(always)]
    pub(crate) fn far_behind(&self) -> bool {
        self.read - self.published >= self.capacity / 4
    }

    /// Publishes our position if it moved. Returns whether the producer is parked and must be
    /// woken.
    #[inline(always)]
    pub(crate) fn publish(&mut self) -> bool {
        if self.read == self.published {
            return false;
        }
        self.published = self.read;
        // SYNC: Release pairs with the Acquire load of `read` in `ProducerCore::refresh_read`:
        // our copies out of the released bytes happen before the producer overwrites them.
        self.region
            .atomic_u64(OFF_READ)
            .store(self.read, Ordering::Release);
        // SYNC: pairs with the SeqCst fence in `ProducerCore::set_parked`.
        fence(Ordering::SeqCst);
        let parked = self
            .region
            .atomic_u64(OFF_PRODUCER_PARKED)
            .load(Ordering::Relaxed);
        needs_wake(parked, &mut self.producer_woken)
    }

    /// Whether the producer says a long record is being written or coming (advice only; see
    /// "Waiting through a long write").
    #[inline]
    pub(crate) fn producer_writing_long(&self) -> bool {
        // Relaxed: no ordering depends on the answer.
        self.region
            .atomic_u64(OFF_PRODUCER_FLAGS)
            .load(Ordering::Relaxed)
            & PRODUCER_WRITING_LONG
            != 0
    }

    /// Raises (with a new generation) or lowers our parked word; raising is followed by a
    /// process-wide barrier, or a SeqCst fence, that pairs with the fence (or the compiler
    /// fence) in `ProducerCore::consumer_needs_wake`.
    pub(crate) fn set_parked(&mut self, parked: bool) {
        let word = if parked {
            next_generation(&mut self.park_generation)
        } else {
            0
        };
        self.region
            .atomic_u64(OFF_CONSUMER_PARKED)
            .store(word, Ordering::Relaxed);
        if !parked {
            return;
        }
        if self.barrier && !global_barrier() {
            // Cannot happen once the kernel said it supports the call. Should it, we stop
            // saying we run barriers and fence instead; a producer that has not read the
            // cleared flag yet still publishes without a fence, so a record published in
            // that window may wait for the next one to wake us.
            self.barrier = false;
            self.region
                .atomic_u64(OFF_CONSUMER_FLAGS)
                .store(0, Ordering::Relaxed);
        }
        if !self.barrier {
            // SYNC: pairs with the SeqCst fence in `ProducerCore::consumer_needs_wake`:
            // either we see the producer's new header in the re-check that follows, or it
            // sees our flag.
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }
}

// ---------------------------------------------------------------------------------------
// Blocking ends with waiting, over a real segment.

#[cfg(not(loom))]
pub use ends::*;

// The hot path (reserve, write, commit; peek, read, release) is `#[inline(always)]` down to
// the atomics, and everything that waits is out of line, so that a record's position and
// length stay in registers instead of crossing calls through memory (where a wide load of
// narrow stores stalled the pipeline). Measured on the AMD host: a 64 B round trip with both
// ends on one thread, 200 → 63 ns; across processes, 341 → 220–235 ns; a 64 B stream,
// 15 → 43 M records/s.
#[cfg(not(loom))]
mod ends {
    use super::*;
    use crate::segment::Segment;

    /// The writing end of a ring.
    #[derive(Debug)]
    pub struct Producer {
        pub(super) core: ProducerCore,
        spinner: Spinner,
        /// We sleep on this while the ring is full; the consumer rings it.
        space_bell: Bell,
        /// The consumer's bell, rung when it is parked and we commit.
        data_door: Doorbell,
        liveness: Liveness,
        peer_gone: bool,
        /// Records were published without checking whether the consumer sleeps
        /// ([`Producer::send_batch`]); checked before we wait for anything.
        unannounced: bool,
        // Declared last: the core's region points into it, so it must be dropped last.
        _segment: Segment,
    }

    /// The reading end of a ring.
    #[derive(Debug)]
    pub struct Consumer {
        pub(super) core: ConsumerCore,
        spinner: Spinner,
        data_bell: Bell,
        space_door: Doorbell,
        liveness: Liveness,
        peer_gone: bool,
        /// The last [`Consumer::recv_batch`] drained a backlog: the producer is streaming.
        behind: bool,
        /// A batch is being handed out: its grants release without publishing, and the batch
        /// publishes once at its end.
        batching: bool,
        _segment: Segment,
    }

    /// A batch this long means the consumer found a backlog: the producer is streaming.
    const BACKLOG: usize = 16;

    /// How long a consumer that drained a backlog lets a streaming producer get ahead before
    /// it looks again. Looking at once, it polls the very line the producer is writing and
    /// takes that line away from it for every record; the pause lets the producer write a
    /// run of records undisturbed, which the next batch drains. A stream of 64 B records went
    /// from 6.3–6.7 to 11–11.7 M records/s with it on our Intel host (16–16.7 M with
    /// `send_batch`). The cost: while records come faster than they are consumed, each batch
    /// starts up to this much later.
    const STREAM_PAUSE: std::time::Duration = std::time::Duration::from_micros(4);

    /// Descriptors that one side hands the other to set up the two rings of a connection:
    /// the memfd of its sending ring, and the peer's ends of the two bells it sleeps on
    /// (unix datagram socket pairs): while that ring is full, and while its receiving ring
    /// is empty.
    #[derive(Debug)]
    pub struct RingFds {
        /// The sealed memfd of the sender's ring.
        pub memfd: OwnedFd,
        /// Rung by the receiver of that ring when it frees space and the sender is parked.
        pub space_bell: OwnedFd,
        /// Rung by the sender of the opposite ring when it commits and this side is parked.
        pub data_bell: OwnedFd,
    }

    /// One side's half of a connection's rings, created before the peer's descriptors arrive.
    #[derive(Debug)]
    pub struct PreparedRings {
        tx_segment: Segment,
        tx_capacity: usize,
        space_bell: Bell,
        data_bell: Bell,
    }

    impl PreparedRings {
        /// Creates our sending ring of `tx_capacity` bytes and both of our bells, and returns
        /// the descriptors to send to the peer.
        pub fn new(tx_capacity: usize) -> Result<(PreparedRings, RingFds), Error> {
            if !valid_capacity(tx_capacity) {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "ring capacity {tx_capacity} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
                    ),
                )));
            }
            let tx_segment = Segment::create("ipc-shm ring", segment_len(tx_capacity))?;
            init_header(&tx_segment.region(), tx_capacity);
            let (space_bell, space_bell_fd) = Bell::new()?;
            let (data_bell, data_bell_fd) = Bell::new()?;
            let fds = RingFds {
                memfd: tx_segment.fd().try_clone()?,
                space_bell: space_bell_fd,
                data_bell: data_bell_fd,
            };
            Ok((
                PreparedRings {
                    tx_segment,
                    tx_capacity,
                    space_bell,
                    data_bell,
                },
                fds,
            ))
        }

        /// Maps the peer's ring (its capacity as agreed in the handshake) and returns our two
        /// ends. `socket` is the connection socket, watched for the peer's death.
        pub fn connect(
            self,
            peer: RingFds,
            rx_capacity: usize,
            socket: Arc<OwnedFd>,
            policy: WaitPolicy,
        ) -> Result<(Producer, Consumer), Error> {
            if !valid_capacity(rx_capacity) {
                return Err(ProtocolError::BadGeometry {
                    capacity: rx_capacity as u64,
                    segment: 0,
                }
                .into());
            }
            let rx_segment = Segment::open(peer.memfd, segment_len(rx_capacity))?;
            validate_header(&rx_segment.region(), rx_capacity)?;
            let liveness = Liveness::new(socket);
            let producer = Producer {
                core: ProducerCore::attach(self.tx_segment.region(), self.tx_capacity),
                spinner: Spinner::new(policy),
                space_bell: self.space_bell,
                data_door: Doorbell::from_peer(peer.data_bell)?,
                liveness: liveness.clone(),
                peer_gone: false,
                unannounced: false,
                _segment: self.tx_segment,
            };
            let consumer = Consumer {
                core: ConsumerCore::new(rx_segment.region(), rx_capacity),
                spinner: Spinner::new(policy),
                data_bell: self.data_bell,
                space_door: Doorbell::from_peer(peer.space_bell)?,
                liveness,
                peer_gone: false,
                behind: false,
                batching: false,
                _segment: rx_segment,
            };
            Ok((producer, consumer))
        }
    }

    /// A one-way ring inside this process, through a real shared segment: the two ends may
    /// live on different threads. For tests and benchmarks; connections between processes
    /// are set up by the handshake.
    pub fn channel(capacity: usize, policy: WaitPolicy) -> Result<(Producer, Consumer), Error> {
        let (a, a_fds) = PreparedRings::new(capacity)?;
        let (b, b_fds) = PreparedRings::new(capacity)?;
        let (sa, sb) = std::os::unix::net::UnixStream::pair()?;
        let (pa, _ca) = a.connect(b_fds, capacity, Arc::new(OwnedFd::from(sa)), policy)?;
        let (_pb, cb) = b.connect(a_fds, capacity, Arc::new(OwnedFd::from(sb)), policy)?;
        Ok((pa, cb))
    }

    impl Producer {
        /// The connection socket this ring's waiters watch.
        pub(crate) fn socket(&self) -> &Arc<OwnedFd> {
            self.liveness.socket()
        }

        /// The longest payload one record can carry.
        #[inline]
        pub fn max_record_len(&self) -> usize {
            self.core.max_record_len()
        }

        /// Tells a consumer waiting for our next record that it is coming soon, though not
        /// yet being written: it then spins on past its budget instead of parking, as for a
        /// long record (see "Waiting through a long write"). The hint lasts until our next
        /// record, or a reservation shorter than [`LONG_RECORD`]. For a side that is working
        /// on an answer its peer waits for: a server reading a long request.
        pub fn expect_to_publish(&mut self) {
            if !self.core.writing_long {
                self.core.announce_long_write(true);
            }
        }

        /// Reserves a record of `len` bytes, waiting for room. Write the payload through the
        /// grant, then [`WriteGrant::commit`] it; a grant dropped uncommitted sends nothing.
        #[inline(always)]
        pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, Error> {
            self.check_len(len)?;
            loop {
                if let Some(res) = self.core.try_reserve(len)? {
                    return Ok(WriteGrant {
                        producer: self,
                        res,
                        cursor: 0,
                        head: [0; LINE],
                    });
                }
                self.wait_space(len)?;
            }
        }

        /// Reserves a record of `len` bytes if there is room now.
        #[inline(always)]
        pub fn try_reserve(&mut self, len: usize) -> Result<Option<WriteGrant<'_>>, Error> {
            self.check_len(len)?;
            if self.peer_gone {
                return Err(Error::Disconnected);
            }
            Ok(self.core.try_reserve(len)?.map(|res| WriteGrant {
                producer: self,
                res,
                cursor: 0,
                head: [0; LINE],
            }))
        }

        /// Sends `bytes` as one record.
        #[inline(always)]
        pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
            let mut grant = self.reserve(bytes.len())?;
            grant.write_at(0, bytes);
            grant.commit();
            Ok(())
        }

        /// Sends a fixed-layout value as one record, written straight into the ring.
        #[inline]
        pub fn send<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
            self.send_bytes(value.as_bytes())
        }

        /// Sends each of `records` as one record, and checks once, at the end, whether the
        /// consumer sleeps and must be woken (the producer-side twin of
        /// [`Consumer::recv_batch`]). Each record is visible to a spinning consumer as soon as
        /// it is written; one that parked meanwhile is woken at the end of the batch, or
        /// before this side waits for room. Returns how many records were sent; on an error,
        /// the records before it were sent.
        pub fn send_batch<'r>(
            &mut self,
            records: impl IntoIterator<Item = &'r [u8]>,
        ) -> Result<usize, Error> {
            let mut sent = 0;
            let result = records.into_iter().try_for_each(|bytes| {
                let mut grant = self.reserve(bytes.len())?;
                grant.write_at(0, bytes);
                grant.commit_unannounced();
                sent += 1;
                Ok(())
            });
            if self.unannounced {
                self.announce();
            }
            result.map(|()| sent)
        }

        /// Wakes the consumer if it parked since records were published without a check.
        #[inline(always)]
        fn announce(&mut self) {
            self.unannounced = false;
            if self.core.consumer_needs_wake() {
                self.data_door.ring();
            }
        }

        #[inline]
        fn check_len(&self, len: usize) -> Result<(), Error> {
            let max = self.max_record_len();
            if len > max {
                return Err(Error::TooLarge { len, max });
            }
            Ok(())
        }

        fn wait_space(&mut self, len: usize) -> Result<(), Error> {
            // A consumer asleep on records it was not told of would never free the space.
            if self.unannounced {
                self.announce();
            }
            if self.peer_gone {
                return Err(Error::Disconnected);
            }
            let core = &mut self.core;
            if self
                .spinner
                .spin(|| Ok(core.has_room(len)?.then_some(())))?
                .is_some()
            {
                return Ok(());
            }
            self.core.set_parked(true);
            let outcome = match self.core.has_room(len) {
                Ok(true) => Ok(Wake::Rung),
                Ok(false) => park(&self.space_bell, &self.liveness),
                Err(e) => Err(e.into()),
            };
            self.core.set_parked(false);
            if outcome? == Wake::PeerGone {
                self.peer_gone = true;
                return Err(Error::Disconnected);
            }
            Ok(())
        }

        /// Publishes a reserved record; with `announce`, also wakes the consumer if it
        /// sleeps, else leaves that to the end of the batch (or to [`Self::wait_space`]).
        #[inline(always)]
        fn finish(&mut self, res: Reservation, used: usize, head: &[u8], announce: bool) {
            self.core.publish(res, used, head);
            self.unannounced = true;
            if announce {
                self.announce();
            }
        }
    }

    impl Consumer {
        /// The longest payload one record can carry.
        #[inline]
        pub fn max_record_len(&self) -> usize {
            max_record_len(self.core.capacity as usize)
        }

        /// Waits for the next record. After the peer has gone, the records it committed are
        /// still delivered; then [`Error::Disconnected`].
        #[inline(always)]
        pub fn recv(&mut self) -> Result<ReadGrant<'_>, Error> {
            let record = self.wait_record()?;
            Ok(ReadGrant {
                consumer: self,
                record,
                cursor: 0,
            })
        }

        /// The next record if one is there, without waiting.
        #[inline]
        pub fn try_recv(&mut self) -> Result<Option<ReadGrant<'_>>, Error> {
            // As in `wait_record`: a batch cut short by a panic in its callback left this set.
            self.batching = false;
            match self.core.try_peek()? {
                Some(record) => Ok(Some(ReadGrant {
                    consumer: self,
                    record,
                    cursor: 0,
                })),
                None if self.peer_gone => Err(Error::Disconnected),
                None => Ok(None),
            }
        }

        /// Waits for at least one record, then hands `f` every record already committed, up
        /// to `max`, and publishes the consumer position once for all of them. Returns how
        /// many records `f` saw.
        ///
        /// This is the call for throughput: when the previous batch drained a backlog (at
        /// least 16 records), it first lets the producer get ahead for 4 µs rather than
        /// fight it for each new record's cache lines (see `STREAM_PAUSE`).
        pub fn recv_batch(
            &mut self,
            max: usize,
            mut f: impl FnMut(ReadGrant<'_>),
        ) -> Result<usize, Error> {
            if std::mem::take(&mut self.behind) {
                pause(STREAM_PAUSE);
            }
            let mut record = self.wait_record()?;
            let mut seen = 0;
            // Cleared below, or by the next wait should `f` panic.
            self.batching = true;
            let peeked = loop {
                f(ReadGrant {
                    consumer: self,
                    record,
                    cursor: 0,
                });
                seen += 1;
                if seen == max {
                    break Ok(());
                }
                match self.core.try_peek() {
                    Ok(Some(next)) => record = next,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            self.batching = false;
            peeked?;
            self.publish();
            self.behind = seen >= BACKLOG;
            Ok(seen)
        }

        /// Receives a record that must hold exactly one `T`.
        pub fn recv_obj<T: FromBytes + IntoBytes>(&mut self) -> Result<T, Error> {
            let grant = self.recv()?;
            let value = grant.read_obj::<T>(0);
            let len = grant.len();
            drop(grant);
            match value {
                Some(v) if len == size_of::<T>() => Ok(v),
                _ => Err(ProtocolError::UnexpectedLength {
                    len: len as u64,
                    expected: size_of::<T>() as u64,
                }
                .into()),
            }
        }

        #[inline(always)]
        fn wait_record(&mut self) -> Result<Record, Error> {
            // A batch cut short by a panic in its callback left this set.
            self.batching = false;
            // A record already there is the common case on a busy connection; it is taken
            // here, inline, and only a wait goes out of line.
            if let Some(record) = self.core.try_peek()? {
                self.spinner.ended_at_once();
                if self.core.far_behind() {
                    self.publish();
                }
                return Ok(record);
            }
            self.wait_for_record()
        }

        #[inline(never)]
        fn wait_for_record(&mut self) -> Result<Record, Error> {
            // Records released lazily go out before we wait: the producer may be waiting for
            // their room.
            self.publish();
            // One allowance for spinning through the producer's long writes per wait, however
            // often its bell wakes us.
            let mut busy_spin = BUSY_SPIN;
            loop {
                let waited = self.spinner.spin_with(
                    &mut self.core,
                    |core| Ok(core.try_peek()?),
                    |core| core.producer_writing_long(),
                    &mut busy_spin,
                )?;
                if let Some(record) = waited {
                    return Ok(record);
                }
                if let Some(record) = self.park()? {
                    return Ok(record);
                }
            }
        }

        /// Sleeps until the producer rings our bell or goes, unless a record came meanwhile.
        /// Out of line: the hot path of [`Self::wait_record`] is the spin.
        #[inline(never)]
        fn park(&mut self) -> Result<Option<Record>, Error> {
            if self.peer_gone {
                return Err(Error::Disconnected);
            }
            self.core.set_parked(true);
            let outcome = match self.core.try_peek() {
                Ok(Some(record)) => {
                    self.core.set_parked(false);
                    return Ok(Some(record));
                }
                Ok(None) => park(&self.data_bell, &self.liveness),
                Err(e) => Err(e.into()),
            };
            self.core.set_parked(false);
            if outcome? == Wake::PeerGone {
                // Deliver what the peer committed before it went; then report it.
                self.peer_gone = true;
            }
            Ok(None)
        }

        #[inline(always)]
        fn publish(&mut self) {
            if self.core.publish() {
                self.space_door.ring();
            }
        }
    }

    /// A reserved record, writable in place in shared memory. Writes past the reserved length
    /// panic, as slice indexing does. `commit` publishes it; dropping it sends nothing.
    ///
    /// The payload bytes that share the header's cache line are kept here and written at
    /// `commit`, together with the header: the consumer is polling that line, and writing it
    /// once, not once for the payload and again for the header, saves it a round of
    /// cross-core transfers per record.
    #[derive(Debug)]
    pub struct WriteGrant<'a> {
        producer: &'a mut Producer,
        res: Reservation,
        cursor: usize,
        head: [u8; LINE],
    }

    impl WriteGrant<'_> {
        /// Bytes reserved.
        #[inline]
        pub fn len(&self) -> usize {
            self.res.len
        }

        /// Whether zero bytes were reserved.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.res.len == 0
        }

        /// Copies `bytes` to `offset` within the record.
        #[inline(always)]
        pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
            assert!(
                offset <= self.res.len && bytes.len() <= self.res.len - offset,
                "write of {} bytes at {offset} into a {}-byte record",
                bytes.len(),
                self.res.len
            );
            let (head, tail) =
                bytes.split_at(self.res.head.saturating_sub(offset).min(bytes.len()));
            if !head.is_empty() {
                self.head[offset..offset + head.len()].copy_from_slice(head);
            }
            if !tail.is_empty() {
                self.producer
                    .core
                    .region()
                    .write(self.res.payload + offset + head.len(), tail);
            }
        }

        /// Writes a fixed-layout value at `offset` within the record.
        #[inline]
        pub fn write_obj<T: IntoBytes + Immutable + ?Sized>(&mut self, offset: usize, value: &T) {
            self.write_at(offset, value.as_bytes());
        }

        /// Copies the whole payload of the received record `src` to `offset` within this
        /// record, from ring to ring. Panics as [`Self::write_at`] does when it does not fit.
        #[inline(always)]
        pub fn write_from(&mut self, offset: usize, src: &ReadGrant<'_>) {
            let len = src.record.len;
            assert!(
                offset <= self.res.len && len <= self.res.len - offset,
                "copy of a {len}-byte record to {offset} in a {}-byte record",
                self.res.len
            );
            // What lands on the header's line is staged with it, as in `write_at`.
            let head = self.res.head.saturating_sub(offset).min(len);
            if head > 0 {
                let copied = src.read_at(0, &mut self.head[offset..offset + head]);
                debug_assert!(copied, "the range is inside the source record");
            }
            if head < len {
                let from = src.record.payload + head;
                let to = self.res.payload + offset + head;
                src.consumer.core.region().copy_to(
                    from,
                    self.producer.core.region(),
                    to,
                    len - head,
                );
            }
        }

        /// Publishes the whole reservation.
        #[inline(always)]
        pub fn commit(self) {
            let len = self.res.len;
            self.commit_len(len);
        }

        /// Publishes the first `len` bytes (for writers that reserve an upper bound).
        #[inline(always)]
        pub fn commit_len(self, len: usize) {
            let res = self.res;
            self.producer.finish(res, len, &self.head[..res.head], true);
        }

        /// Publishes the whole reservation, leaving the wake-up check to the end of the
        /// batch ([`Producer::send_batch`]).
        #[inline]
        fn commit_unannounced(self) {
            let res = self.res;
            self.producer
                .finish(res, res.len, &self.head[..res.head], false);
        }

        /// Bytes written so far through `io::Write`.
        pub fn position(&self) -> usize {
            self.cursor
        }
    }

    impl<'a> WriteGrant<'a> {
        /// Publishes the whole reservation and reserves the next record of `len` bytes, for
        /// a writer that sends a long message record by record: the consumer reads this one
        /// while the next is written.
        pub fn commit_then_reserve(self, len: usize) -> Result<WriteGrant<'a>, Error> {
            let WriteGrant {
                producer,
                res,
                head,
                ..
            } = self;
            producer.finish(res, res.len, &head[..res.head], true);
            producer.reserve(len)
        }
    }

    /// Sequential writes, for encoders that take an `io::Write`: the bytes go straight into
    /// shared memory. Writing past the reservation is an `io::ErrorKind::WriteZero` error.
    impl io::Write for WriteGrant<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.res.len - self.cursor);
            if n == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let at = self.cursor;
            self.write_at(at, &buf[..n]);
            self.cursor += n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A committed record, read in place. Every read copies out of shared memory, so the
    /// values are ours to validate. Dropping the grant releases the record.
    #[derive(Debug)]
    pub struct ReadGrant<'a> {
        consumer: &'a mut Consumer,
        record: Record,
        cursor: usize,
        // No flag for `release_lazily` here: a `bool` left 7 bytes of padding after it,
        // which rustc copied, with overlapping 4-byte moves that defeat store forwarding,
        // each time the grant moved (into the transport's grant, through a `?`): two
        // stalls on every record's way to its reader.
    }

    impl ReadGrant<'_> {
        /// The payload length.
        #[inline]
        pub fn len(&self) -> usize {
            self.record.len
        }

        /// Releases the record without telling the producer yet: its room is published when
        /// this consumer next waits for a record (or takes one while a quarter of the ring
        /// or more waits to be published), not now. Publishing takes a full fence; a reader
        /// that answers the record (with a request of its own, say) saves that on the way
        /// to its answer, and publishes on its way back to waiting.
        #[inline(always)]
        pub fn release_lazily(self) {
            let mut grant = std::mem::ManuallyDrop::new(self);
            let record = grant.record;
            grant.consumer.core.release(record);
        }

        /// Whether the payload is empty.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.record.len == 0
        }

        /// Copies `out.len()` bytes from `offset` of the payload. Returns `false` (and copies
        /// nothing) when that range is not inside the payload.
        #[must_use]
        #[inline(always)]
        pub fn read_at(&self, offset: usize, out: &mut [u8]) -> bool {
            if offset > self.record.len || out.len() > self.record.len - offset {
                return false;
            }
            self.consumer
                .core
                .region()
                .read(self.record.payload + offset, out);
            true
        }

        /// Copies a fixed-layout value from `offset` of the payload, if it is inside.
        #[inline]
        pub fn read_obj<T: FromBytes + IntoBytes>(&self, offset: usize) -> Option<T> {
            let mut value = T::new_zeroed();
            self.read_at(offset, value.as_mut_bytes()).then_some(value)
        }

        /// Appends `len` bytes from `offset` of the payload to `out`, copying them into its
        /// spare room without zeroing it first. Returns `false` (and appends nothing) when
        /// that range is not inside the payload, so `out`'s length never grows by more than
        /// a record.
        #[must_use]
        #[inline]
        pub fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> bool {
            if offset > self.record.len || len > self.record.len - offset {
                return false;
            }
            out.reserve(len);
            let start = out.len();
            let room = &mut out.spare_capacity_mut()[..len];
            self.consumer
                .core
                .region()
                .read_uninit(self.record.payload + offset, room);
            // SAFETY: the `len` bytes after `start` were initialised by the copy above, and
            // `reserve` made room for them.
            unsafe { out.set_len(start + len) };
            true
        }

        /// Copies the whole payload into a new vector.
        #[inline]
        pub fn to_vec(&self) -> Vec<u8> {
            let mut out = Vec::new();
            let copied = self.append_to(0, self.record.len, &mut out);
            debug_assert!(copied);
            out
        }
    }

    /// Sequential reads, for decoders that take an `io::Read`.
    impl io::Read for ReadGrant<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.record.len - self.cursor);
            let copied = self.read_at(self.cursor, &mut buf[..n]);
            debug_assert!(copied);
            self.cursor += n;
            Ok(n)
        }
    }

    impl Drop for ReadGrant<'_> {
        #[inline(always)]
        fn drop(&mut self) {
            self.consumer.core.release(self.record);
            if !self.consumer.batching {
                self.consumer.publish();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
