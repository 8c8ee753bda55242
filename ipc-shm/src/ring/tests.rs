//! Ring tests: the index protocol on its own (cores over a real segment), the blocking ends
//! across threads, and a peer that scribbles on shared state.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::segment::Segment;

const CAP: usize = 4096;

/// A producer core and a consumer core over one real segment, as two processes would see it.
struct Pair {
    producer: ProducerCore,
    consumer: ConsumerCore,
    _segment: Segment,
}

fn pair(capacity: usize) -> Pair {
    let segment = Segment::create("ring test", segment_len(capacity)).unwrap();
    let producer = ProducerCore::new(segment.region(), capacity);
    validate_header(&segment.region(), capacity).unwrap();
    let consumer = ConsumerCore::new(segment.region(), capacity);
    Pair {
        producer,
        consumer,
        _segment: segment,
    }
}

impl Pair {
    fn push(&mut self, payload: &[u8]) -> bool {
        match self.producer.try_reserve(payload.len()).unwrap() {
            Some(res) => {
                self.producer.region().write(res.payload, payload);
                self.producer.commit(res, payload.len(), &[]);
                true
            }
            None => false,
        }
    }

    fn pop(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        let Some(record) = self.consumer.try_peek()? else {
            return Ok(None);
        };
        let mut out = vec![0; record.len];
        self.consumer.region().read(record.payload, &mut out);
        self.consumer.release(record);
        self.consumer.publish();
        Ok(Some(out))
    }

    /// Offset in the segment of the byte at stream position `pos`.
    fn at(&self, pos: u64) -> usize {
        DATA_OFFSET + (pos as usize & (self.producer.capacity as usize - 1))
    }
}

fn payload(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// Aborts the test process if a test hangs: a missed wake-up must fail, not stall CI.
fn watchdog(limit: Duration) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            // Straight to stderr: libtest captures eprintln! in test threads, and the abort
            // below would throw the capture away.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: test still running after {limit:?}"
            );
            std::process::abort();
        }
    });
    done
}

#[test]
fn empty_ring_has_nothing() {
    let mut p = pair(CAP);
    assert_eq!(p.pop().unwrap(), None);
}

#[test]
fn records_come_out_in_order_with_their_bytes() {
    let mut p = pair(CAP);
    for (i, len) in [0usize, 1, 7, 8, 9, 100].into_iter().enumerate() {
        assert!(p.push(&payload(i as u32, len)));
    }
    for (i, len) in [0usize, 1, 7, 8, 9, 100].into_iter().enumerate() {
        assert_eq!(p.pop().unwrap(), Some(payload(i as u32, len)));
    }
    assert_eq!(p.pop().unwrap(), None);
}

#[test]
fn full_ring_refuses_until_the_consumer_releases() {
    let mut p = pair(CAP);
    // 56-byte payloads take 64 bytes each, and the next header slot stays free: 63 fit.
    let mut n = 0;
    while p.push(&payload(n, 56)) {
        n += 1;
    }
    assert_eq!(n as usize, CAP / 64 - 1);
    assert_eq!(p.pop().unwrap(), Some(payload(0, 56)));
    assert!(
        p.push(&payload(n, 56)),
        "one released record makes room for one more"
    );
    assert!(!p.push(&payload(n + 1, 56)));
}

#[test]
fn wrap_around_pads_and_keeps_records_whole() {
    let mut p = pair(CAP);
    // 1000-byte payloads (1008 bytes each) never divide the ring, so records keep hitting the end.
    let mut next_out = 0u32;
    for seq in 0..50u32 {
        while !p.push(&payload(seq, 1000)) {
            assert_eq!(p.pop().unwrap(), Some(payload(next_out, 1000)));
            next_out += 1;
        }
    }
    while let Some(got) = p.pop().unwrap() {
        assert_eq!(got, payload(next_out, 1000));
        next_out += 1;
    }
    assert_eq!(next_out, 50);
}

#[test]
fn the_largest_record_fits_from_every_position() {
    let max = max_record_len(CAP);
    for lead in (0..CAP).step_by(8 * 37) {
        let mut p = pair(CAP);
        // Advance both positions by `lead` bytes with records of at most 512 bytes.
        let mut left = lead;
        while left > 0 {
            let span = left.min(512);
            assert!(p.push(&payload(0, span - 8)));
            assert_eq!(p.pop().unwrap().map(|v| v.len()), Some(span - 8));
            left -= span;
        }
        assert!(p.push(&payload(1, max)), "max record after {lead} bytes");
        assert_eq!(p.pop().unwrap(), Some(payload(1, max)));
    }
}

#[test]
fn oversize_records_are_rejected_with_the_limit() {
    let (mut tx, _rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    let max = tx.max_record_len();
    assert_eq!(max, CAP / 2 - 8);
    match tx.reserve(max + 1) {
        Err(Error::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn batch_drain_publishes_the_position_once() {
    let mut p = pair(CAP);
    for seq in 0..10 {
        assert!(p.push(&payload(seq, 24)));
    }
    let region = *p.consumer.region();
    let read_word = region.atomic_u64(OFF_READ);
    for seq in 0..10 {
        let record = p.consumer.try_peek().unwrap().unwrap();
        let mut out = vec![0; record.len];
        p.consumer.region().read(record.payload, &mut out);
        assert_eq!(out, payload(seq, 24));
        p.consumer.release(record);
        assert_eq!(
            read_word.load(Ordering::Relaxed),
            0,
            "nothing published mid-batch"
        );
    }
    p.consumer.publish();
    assert_eq!(read_word.load(Ordering::Relaxed), 10 * 32);
}

#[test]
fn blocking_ends_batch_drain() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::default()).unwrap();
    for seq in 0..20 {
        tx.send_bytes(&payload(seq, 40)).unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        rx.recv_batch(usize::MAX, |g| seen.push(g.to_vec()))
            .unwrap();
    }
    assert_eq!(seen, (0..20).map(|s| payload(s, 40)).collect::<Vec<_>>());
}

/// A batch whose callback panics does not leave the consumer batching: the records taken
/// after it, with or without waiting, publish the position when their grants drop.
#[test]
fn a_batch_cut_short_by_a_panic_leaves_later_grants_publishing() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::default()).unwrap();
    let region = *rx.core.region();
    let read_word = region.atomic_u64(OFF_READ);
    for seq in 0..3 {
        tx.send_bytes(&payload(seq, 56)).unwrap();
    }
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_batch(usize::MAX, |_| {
            panic!("the batch's callback panics (expected)")
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(
        read_word.load(Ordering::Relaxed),
        0,
        "the batch published nothing"
    );
    drop(rx.try_recv().unwrap().expect("the second record"));
    assert_eq!(
        read_word.load(Ordering::Relaxed),
        2 * 64,
        "try_recv's grant published"
    );
    drop(rx.recv().unwrap());
    assert_eq!(
        read_word.load(Ordering::Relaxed),
        3 * 64,
        "recv's grant published"
    );
}

/// A record released lazily is not published at once, but before the consumer next waits
/// for a record, and as soon as a quarter of the ring waits to be published.
#[test]
fn lazily_released_records_are_published_before_a_wait_or_when_far_behind() {
    let _w = watchdog(Duration::from_secs(60));
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::default()).unwrap();
    let region = *rx.core.region();
    let read_word = region.atomic_u64(OFF_READ);
    const RECORD: u64 = 64; // with its 8-byte header
    let body = RECORD as usize - 8;

    for seq in 0..2 {
        tx.send_bytes(&payload(seq, body)).unwrap();
    }
    for _ in 0..2 {
        rx.recv().unwrap().release_lazily();
        assert_eq!(read_word.load(Ordering::Relaxed), 0, "not published yet");
    }

    // Nothing is there: the consumer publishes its position before it waits.
    let consumer = std::thread::spawn(move || {
        let grant = rx.recv().unwrap();
        assert_eq!(grant.to_vec(), payload(2, body));
        grant.release_lazily();
        rx
    });
    while read_word.load(Ordering::Relaxed) != 2 * RECORD {
        std::thread::yield_now();
    }
    tx.send_bytes(&payload(2, body)).unwrap();
    let mut rx = consumer.join().unwrap();
    assert_eq!(read_word.load(Ordering::Relaxed), 2 * RECORD);

    // Records there at once: published when a quarter of the ring waits, not one by one.
    for seq in 3..23 {
        tx.send_bytes(&payload(seq, body)).unwrap();
    }
    for _ in 3..23 {
        rx.recv().unwrap().release_lazily();
        let behind = rx.core.read - read_word.load(Ordering::Relaxed);
        assert!(behind <= CAP as u64 / 4, "{behind} bytes behind");
    }
    assert!(read_word.load(Ordering::Relaxed) > 2 * RECORD);
}

#[test]
fn grants_read_and_write_through_io_traits_and_objects() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    let mut g = tx.reserve(64).unwrap();
    g.write_all(b"hello, ").unwrap();
    g.write_all(b"ring").unwrap();
    assert_eq!(g.position(), 11);
    assert!(
        g.write_all(&[0; 64]).is_err(),
        "writing past the reservation fails"
    );
    g.commit_len(11);
    tx.send(&0x1122_3344_5566_7788u64).unwrap();

    let mut r = rx.recv().unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello, ring");
    assert_eq!(
        r.read_obj::<u32>(8),
        None,
        "reads past the payload are refused"
    );
    drop(r);
    assert_eq!(rx.recv_obj::<u64>().unwrap(), 0x1122_3344_5566_7788);
}

#[test]
fn grants_written_in_any_order_arrive_whole_from_every_position() {
    // The bytes sharing the header's cache line are held back until the commit; writes on
    // either side of that line, in any order and in pieces, must still all arrive.
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    for (seq, len) in [1usize, 7, 8, 55, 56, 57, 63, 64, 65, 120, 200, 1000]
        .into_iter()
        .cycle()
        .take(300)
        .enumerate()
    {
        let bytes = payload(seq as u32, len);
        let mut grant = tx.reserve(len).unwrap();
        // Back to front, in pieces of 5 bytes, then one overwrite of the middle.
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(5);
            grant.write_at(start, &bytes[start..end]);
            end = start;
        }
        grant.write_at(len / 2, &bytes[len / 2..]);
        grant.commit();
        assert_eq!(
            rx.recv().unwrap().to_vec(),
            bytes,
            "record {seq} of {len} bytes"
        );
    }
    // A grant committed short sends only what it committed.
    let mut grant = tx.reserve(100).unwrap();
    grant.write_at(0, &[7; 100]);
    grant.commit_len(30);
    assert_eq!(rx.recv().unwrap().to_vec(), vec![7; 30]);
}

#[test]
fn an_uncommitted_grant_sends_nothing() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    let abandoned = tx.reserve(100).unwrap();
    let _ = abandoned;
    tx.send_bytes(b"only").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"only");
    assert!(rx.try_recv().unwrap().is_none());
}

fn stream(policy: WaitPolicy, records: u32, capacity: usize) {
    let done = watchdog(Duration::from_secs(120));
    let (mut tx, mut rx) = channel(capacity, policy).unwrap();
    let producer = std::thread::spawn(move || {
        for seq in 0..records {
            let len = (seq % 97) as usize * 3;
            let mut g = tx.reserve(len + 4).unwrap();
            g.write_obj(0, &seq);
            g.write_at(4, &payload(seq, len));
            g.commit();
        }
    });
    for seq in 0..records {
        let g = rx.recv().unwrap();
        assert_eq!(g.read_obj::<u32>(0), Some(seq));
        let len = (seq % 97) as usize * 3;
        assert_eq!(g.len(), len + 4);
        let mut body = vec![0; len];
        assert!(g.read_at(4, &mut body));
        assert_eq!(body, payload(seq, len), "record {seq}");
    }
    producer.join().unwrap();
    assert!(
        matches!(rx.recv(), Err(Error::Disconnected)),
        "producer gone after its last record"
    );
    done.send(()).unwrap();
}

#[test]
fn streams_across_threads_spinning() {
    stream(WaitPolicy::default(), 200_000, 16 * 1024);
}

#[test]
fn streams_across_threads_parking_every_time() {
    // Parking on every wait exercises the parked flags and doorbells in both directions
    // (tiny ring: the producer parks on a full ring, the consumer on an empty one).
    stream(WaitPolicy::PARK, 50_000, 4096);
}

/// A ping-pong where both sides park at every wait: each record is published just as its
/// consumer goes to sleep, the window in which a wake-up can be lost. Where the kernel has
/// process-wide barriers, producers publish without a fence of their own, and this is the
/// test of that: a lost wake-up leaves both sides asleep and the watchdog fails the test.
#[test]
fn a_ping_pong_that_parks_at_every_wait_loses_no_wakeup() {
    let done = watchdog(Duration::from_secs(120));
    let (mut ping_tx, mut ping_rx) = channel(4096, WaitPolicy::PARK).unwrap();
    let (mut pong_tx, mut pong_rx) = channel(4096, WaitPolicy::PARK).unwrap();
    let rounds = 20_000u32;
    let echo = std::thread::spawn(move || {
        for _ in 0..rounds {
            let seq: u32 = ping_rx.recv().unwrap().read_obj(0).unwrap();
            pong_tx.send_bytes(&seq.to_le_bytes()).unwrap();
        }
        pong_tx.core.light_fence
    });
    for seq in 0..rounds {
        ping_tx.send_bytes(&seq.to_le_bytes()).unwrap();
        assert_eq!(pong_rx.recv().unwrap().read_obj::<u32>(0), Some(seq));
    }
    let light = [ping_tx.core.light_fence, echo.join().unwrap()];
    assert_eq!(
        light,
        [process_barriers(); 2],
        "producers publish without a fence where barriers exist"
    );
    done.send(()).unwrap();
}

#[test]
fn batches_reach_a_consumer_that_parks_between_and_within_them() {
    // Both sides park at every wait, and the ring holds far less than a batch: within a
    // batch the producer must wake the consumer before it waits for room, and after the
    // batch before it returns, or one of them sleeps for ever (the watchdog fails the test).
    let done = watchdog(Duration::from_secs(120));
    let (mut tx, mut rx) = channel(4096, WaitPolicy::PARK).unwrap();
    let records: Vec<Vec<u8>> = (0..20_000)
        .map(|seq| payload(seq, seq as usize % 200))
        .collect();
    let expected = records.clone();
    let producer = std::thread::spawn(move || {
        let mut sent = 0;
        for batch in records.chunks(173) {
            sent += tx.send_batch(batch.iter().map(Vec::as_slice)).unwrap();
        }
        let too_long = vec![0; tx.max_record_len() + 1];
        let refused = tx.send_batch([&b"last"[..], &too_long[..]]);
        assert!(
            matches!(refused, Err(Error::TooLarge { .. })),
            "{refused:?}"
        );
        sent
    });
    for (seq, record) in expected.iter().enumerate() {
        assert_eq!(&rx.recv().unwrap().to_vec(), record, "record {seq}");
    }
    assert_eq!(
        rx.recv().unwrap().to_vec(),
        b"last",
        "records before a refused one are sent"
    );
    assert_eq!(producer.join().unwrap(), expected.len());
    done.send(()).unwrap();
}

#[test]
fn records_committed_before_the_peer_died_are_still_delivered() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    for seq in 0..3 {
        tx.send_bytes(&payload(seq, 10)).unwrap();
    }
    drop(tx);
    for seq in 0..3 {
        assert_eq!(rx.recv().unwrap().to_vec(), payload(seq, 10));
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[test]
fn a_parked_consumer_wakes_when_the_producer_dies() {
    let done = watchdog(Duration::from_secs(30));
    let (tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    let (parked_tx, parked_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        parked_tx.send(()).unwrap();
        rx.recv().map(|g| g.len())
    });
    parked_rx.recv().unwrap();
    drop(tx);
    assert!(matches!(waiter.join().unwrap(), Err(Error::Disconnected)));
    done.send(()).unwrap();
}

#[test]
fn a_producer_blocked_on_a_full_ring_wakes_when_the_consumer_dies() {
    let done = watchdog(Duration::from_secs(30));
    let (mut tx, rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    let writer = std::thread::spawn(move || {
        loop {
            if let Err(e) = tx.send_bytes(&[7; 100]) {
                return e;
            }
        }
    });
    drop(rx);
    assert!(matches!(writer.join().unwrap(), Error::Disconnected));
    done.send(()).unwrap();
}

// ---- a hostile peer -------------------------------------------------------------------

#[test]
fn corrupt_ring_headers_are_rejected() {
    let segment = Segment::create("ring test", segment_len(CAP)).unwrap();
    let region = segment.region();
    init_header(&region, CAP);
    validate_header(&region, CAP).unwrap();
    type Check = fn(&ProtocolError) -> bool;
    let cases: [(usize, u64, Check); 4] = [
        (OFF_MAGIC, 0xdead_beef, |e| {
            matches!(e, ProtocolError::BadMagic { found: 0xdead_beef })
        }),
        (OFF_VERSION, 99, |e| {
            matches!(e, ProtocolError::BadVersion { found: 99 })
        }),
        (OFF_CAPACITY, (CAP * 2) as u64, |e| {
            matches!(e, ProtocolError::BadGeometry { .. })
        }),
        (OFF_DATA_OFFSET, 64, |e| {
            matches!(e, ProtocolError::BadGeometry { .. })
        }),
    ];
    for (offset, value, expected) in cases {
        init_header(&region, CAP);
        region.atomic_u64(offset).store(value, Ordering::Relaxed);
        let err = validate_header(&region, CAP).unwrap_err();
        assert!(expected(&err), "offset {offset}: {err}");
    }
    init_header(&region, CAP);
    assert!(matches!(
        validate_header(&region, CAP * 2),
        Err(ProtocolError::BadGeometry { .. })
    ));
}

#[test]
fn a_padding_record_that_wraps_the_whole_ring_is_rejected() {
    // Padding from offset 0 reaches the end, so it passes once; its second reading, a lap
    // later, would cover bytes not released yet. Refused, so the consumer does not spin.
    let mut p = pair(CAP);
    let at = p.at(0);
    p.producer.region().write_u64(
        at,
        encode_header(CAP as u32 - 8, FLAG_RECORD | FLAG_PADDING),
    );
    assert!(matches!(
        p.pop(),
        Err(ProtocolError::BadRecordLength { .. })
    ));
}

#[test]
fn a_record_is_not_seen_before_its_header_is_published() {
    // A stale payload word where the next header goes must not pass for a header: the
    // producer clears the slot after each record before publishing the record.
    let mut p = pair(CAP);
    let fake = encode_header(8, FLAG_RECORD);
    let stale: Vec<u8> = std::iter::repeat_n(fake.to_le_bytes(), CAP / 8)
        .flatten()
        .collect();
    assert!(p.push(&stale[..max_record_len(CAP)]));
    assert_eq!(p.pop().unwrap().unwrap().len(), max_record_len(CAP));
    // The ring is empty, and every byte of the data area but the cleared slot looks like a
    // header from the lap before.
    assert_eq!(p.pop().unwrap(), None);
    for seq in 0..200 {
        assert!(p.push(&payload(seq, 40)));
        assert_eq!(p.pop().unwrap(), Some(payload(seq, 40)));
        assert_eq!(p.pop().unwrap(), None, "after record {seq}");
    }
}

#[test]
fn corrupt_record_headers_are_rejected() {
    type Check = fn(&ProtocolError) -> bool;
    let cases: [(u64, Check); 5] = [
        // Longer than the longest record.
        (encode_header(3000, FLAG_RECORD), |e| {
            matches!(e, ProtocolError::BadRecordLength { len: 3000, .. })
        }),
        (encode_header(u32::MAX, FLAG_RECORD), |e| {
            matches!(e, ProtocolError::BadRecordLength { .. })
        }),
        // Unknown flags, or a non-zero header without the record flag.
        (encode_header(8, 0x81), |e| {
            matches!(e, ProtocolError::BadRecordFlags { flags: 0x81 })
        }),
        (encode_header(8, 0), |e| {
            matches!(e, ProtocolError::BadRecordFlags { flags: 0 })
        }),
        // Padding that does not reach the end of the ring.
        (encode_header(8, FLAG_RECORD | FLAG_PADDING), |e| {
            matches!(e, ProtocolError::BadRecordLength { .. })
        }),
    ];
    for (header, expected) in cases {
        let mut p = pair(CAP);
        assert!(p.push(&[1; 16]));
        let at = p.at(0);
        p.producer.region().write_u64(at, header);
        let err = p.pop().unwrap_err();
        assert!(expected(&err), "{header:#x}: {err}");
    }
}

#[test]
fn a_consumer_position_outside_what_was_written_is_rejected() {
    let mut p = pair(CAP);
    while p.push(&[3; 100]) {}
    // The consumer claims to have read more than was ever written.
    p.producer
        .region()
        .atomic_u64(OFF_READ)
        .store(1 << 40, Ordering::Relaxed);
    let err = p.producer.try_reserve(100).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::BadPosition {
                which: "consumer",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_blocking_consumer_reports_a_protocol_error_not_a_crash() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::PARK).unwrap();
    tx.send_bytes(&[9; 32]).unwrap();
    // Scribble over the record header from the producer's side, as a hostile peer would.
    tx.core
        .region()
        .write_u64(DATA_OFFSET, encode_header(5000, FLAG_RECORD));
    assert!(matches!(
        rx.recv(),
        Err(Error::Protocol(ProtocolError::BadRecordLength {
            len: 5000,
            ..
        }))
    ));
}

#[test]
fn unsealed_or_missized_segments_are_refused() {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(c"unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&fd, segment_len(CAP) as i64).unwrap();
    assert!(matches!(
        Segment::open(fd, segment_len(CAP)),
        Err(Error::Protocol(ProtocolError::SegmentNotSealed { .. }))
    ));
    let sealed = Segment::create("sealed", segment_len(CAP)).unwrap();
    let fd = sealed.fd().try_clone().unwrap();
    assert!(matches!(
        Segment::open(fd, segment_len(CAP * 2)),
        Err(Error::Protocol(ProtocolError::SegmentSize { .. }))
    ));
    let (_prepared, fds) = PreparedRings::new(CAP).unwrap();
    let (other, _) = PreparedRings::new(CAP).unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = other
        .connect(fds, CAP * 2, Arc::new(OwnedFd::from(a)), WaitPolicy::PARK)
        .unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::SegmentSize { .. })),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]

    /// Any interleaving of pushes and pops behaves like a queue of byte strings, and the ring
    /// never holds more than its capacity.
    #[test]
    fn behaves_like_a_queue(ops in proptest::collection::vec((any::<bool>(), 0usize..600), 1..400)) {
        let mut p = pair(CAP);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut seq = 0u32;
        for (is_push, len) in ops {
            if is_push {
                let bytes = payload(seq, len);
                let stored: u64 = model.iter().map(|r| record_span(r.len())).sum();
                if p.push(&bytes) {
                    model.push_back(bytes);
                    seq += 1;
                    prop_assert!(stored + record_span(len) <= CAP as u64, "never more than the capacity");
                } else {
                    // Padding in the ring and before this record each waste less than one
                    // record, which bounds how early a refusal may come; an empty ring never
                    // refuses.
                    prop_assert!(!model.is_empty());
                    let max_span = record_span(max_record_len(CAP));
                    // The next header slot's 8 bytes are kept free too.
                    prop_assert!(stored + 2 * record_span(len) + max_span + 8 > CAP as u64);
                }
            } else {
                prop_assert_eq!(p.pop().unwrap(), model.pop_front());
            }
        }
        while let Some(expected) = model.pop_front() {
            prop_assert_eq!(p.pop().unwrap(), Some(expected));
        }
        prop_assert_eq!(p.pop().unwrap(), None);
    }

    /// Whatever the peer writes into the header words and the data area, the consumer returns
    /// records inside the data area or a protocol error; it never panics or reads outside.
    #[test]
    fn arbitrary_peer_writes_never_panic(
        writes in proptest::collection::vec((0usize..CAP / 8, any::<u64>(), any::<bool>()), 0..16),
        pushes in 0usize..8,
    ) {
        let mut p = pair(CAP);
        for i in 0..pushes {
            p.push(&payload(i as u32, 40 * i));
        }
        for (word, value, as_header) in writes {
            // Half of the words get a header's record flag, so lengths and padding are tried
            // and not only unknown flags.
            let value = if as_header { value & 0xffff_fffc_ffff_ffff | 1 << 32 } else { value };
            p.producer.region().write_u64(DATA_OFFSET + word * 8, value);
        }
        for _ in 0..16 {
            match p.pop() {
                Ok(Some(record)) => prop_assert!(record.len() <= max_record_len(CAP)),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// The producer says it is writing a long record from its reservation to its commit, and
/// only then; a shorter reservation (after a long grant was dropped) lowers it.
#[test]
fn the_producer_announces_a_long_record_while_it_writes_it() {
    let mut p = pair(4 * LONG_RECORD);
    assert!(!p.consumer.producer_writing_long());
    let res = p.producer.try_reserve(LONG_RECORD).unwrap().unwrap();
    assert!(p.consumer.producer_writing_long(), "reserved: writing");
    p.producer.commit(res, LONG_RECORD, &[]);
    assert!(!p.consumer.producer_writing_long(), "committed: done");
    assert_eq!(p.pop().unwrap().map(|r| r.len()), Some(LONG_RECORD));
    let res = p.producer.try_reserve(LONG_RECORD - 8).unwrap().unwrap();
    assert!(
        !p.consumer.producer_writing_long(),
        "a shorter record is not announced"
    );
    p.producer.commit(res, 0, &[]);
    // A long grant dropped uncommitted, then a short record.
    p.producer.try_reserve(LONG_RECORD).unwrap().unwrap();
    assert!(p.consumer.producer_writing_long());
    assert!(p.push(&[7; 8]));
    assert!(
        !p.consumer.producer_writing_long(),
        "the next reservation lowers it"
    );
}

/// `expect_to_publish` raises the flag ahead of a record, which lowers it.
#[test]
fn a_producer_can_announce_a_record_before_writing_it() {
    let (mut tx, mut rx) = channel(CAP, WaitPolicy::default()).unwrap();
    assert!(!rx.core.producer_writing_long());
    tx.expect_to_publish();
    assert!(rx.core.producer_writing_long());
    tx.send_bytes(&[1; 8]).unwrap();
    assert!(!rx.core.producer_writing_long());
    assert_eq!(rx.recv().unwrap().to_vec(), [1; 8]);
}

/// A long write that outlasts even the busy spin: the consumer spins on the producer's
/// flag until `BUSY_SPIN` runs out, then parks (the producer waits to see its parked word
/// before it commits), and the commit wakes it; the record arrives whole. Its 1 µs budget
/// is spent at once, so only the flag kept it from parking sooner.
#[test]
fn a_consumer_outwaited_by_a_long_write_parks_and_is_woken_by_its_commit() {
    let done = watchdog(Duration::from_secs(60));
    let (mut tx, mut rx) = channel(
        8 * LONG_RECORD,
        WaitPolicy::spin_for(Duration::from_micros(1)),
    )
    .unwrap();
    let body = payload(3, 2 * LONG_RECORD);
    let region = *tx.core.region();
    let mut grant = tx.reserve(body.len()).unwrap();
    let begun = std::time::Instant::now();
    let reader = std::thread::spawn(move || rx.recv().map(|g| g.to_vec()).unwrap());
    grant.write_at(0, &body);
    // Relaxed: only waiting to see the consumer asleep; the commit's own check wakes it.
    let parked = || {
        region
            .atomic_u64(OFF_CONSUMER_PARKED)
            .load(Ordering::Relaxed)
            != 0
    };
    while !parked() {
        std::thread::yield_now();
    }
    assert!(
        begun.elapsed() >= BUSY_SPIN,
        "parked after the busy spin, not before"
    );
    grant.commit();
    assert_eq!(reader.join().unwrap(), body);
    done.send(()).unwrap();
}

#[test]
fn each_park_is_woken_once() {
    let mut p = pair(CAP);
    let commit = |p: &mut Pair| {
        let res = p.producer.try_reserve(8).unwrap().unwrap();
        p.producer.commit(res, 8, &[])
    };
    assert!(!commit(&mut p), "nobody is parked");
    p.consumer.set_parked(true);
    assert!(
        commit(&mut p),
        "the first commit after a park wakes the consumer"
    );
    assert!(
        !commit(&mut p),
        "its doorbell is still rung: no second ring for the same park"
    );
    p.consumer.set_parked(false);
    p.consumer.set_parked(true);
    assert!(commit(&mut p), "a new park is woken again");
    // Symmetrically for a producer parked on a full ring.
    while p.pop().unwrap().is_some() {}
    p.producer.set_parked(true);
    p.push(&[1; 8]);
    let record = p.consumer.try_peek().unwrap().unwrap();
    p.consumer.release(record);
    assert!(
        p.consumer.publish(),
        "the first release after a park wakes the producer"
    );
    p.push(&[2; 8]);
    let record = p.consumer.try_peek().unwrap().unwrap();
    p.consumer.release(record);
    assert!(!p.consumer.publish(), "no second ring for the same park");
}
