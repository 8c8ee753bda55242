//! The records of the cross-process tests: record `i` of a stream is fully determined by
//! `i` and the stream's seed, so either side can check content and order without keeping
//! a copy. Shared by `ipc-shm-peer` and the tests (through `#[path]`).

use ipc_shm::{Error, Receiver, Sender};

/// The stream the tests send to `ipc-shm-peer`.
pub(crate) const TEST_SEED: u8 = 1;
/// The stream `ipc-shm-peer` sends.
pub(crate) const PEER_SEED: u8 = 2;

/// One record in this many has the largest length the ring allows, so that streams
/// exercise padding at wrap-around and the largest record, not only small ones.
const LARGE_EVERY: u64 = 65_536;

/// The length of record `i` for a connection whose records may be `max` bytes long.
pub(crate) fn len_of(i: u64, max: usize) -> usize {
    if i % LARGE_EVERY == LARGE_EVERY - 1 {
        return max;
    }
    (8 + (i.wrapping_mul(2_654_435_761) % 249) as usize).min(max)
}

/// Writes record `i` of the stream `seed` into `out`.
pub(crate) fn fill(i: u64, seed: u8, max: usize, out: &mut Vec<u8>) {
    let len = len_of(i, max);
    out.clear();
    out.extend_from_slice(&i.to_le_bytes()[..len.min(8)]);
    let base = (i as u8).wrapping_mul(31) ^ seed;
    out.extend((8..len).map(|j| base.wrapping_add(j as u8)));
}

/// Checks that `got` is record `i` of the stream `seed`; `scratch` is reused between calls.
pub(crate) fn check(
    i: u64,
    seed: u8,
    max: usize,
    got: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    fill(i, seed, max, scratch);
    if got == scratch.as_slice() {
        return Ok(());
    }
    let index = got
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    Err(format!(
        "record {i} of stream {seed}: got {} bytes (index field {index:?}), expected {} bytes",
        got.len(),
        scratch.len()
    ))
}

/// Sends records `0..count` of the stream `seed`.
pub(crate) fn send(tx: &mut Sender, seed: u8, count: u64) -> Result<(), Error> {
    let max = tx.max_record_len();
    let mut record = Vec::new();
    for i in 0..count {
        fill(i, seed, max, &mut record);
        tx.send_bytes(&record)?;
    }
    Ok(())
}

/// Receives records `range` of the stream `seed` and checks each.
pub(crate) fn check_stream(
    rx: &mut Receiver,
    seed: u8,
    range: std::ops::Range<u64>,
) -> Result<(), String> {
    let max = rx.max_record_len();
    let (mut got, mut scratch) = (Vec::new(), Vec::new());
    for i in range {
        let grant = rx.recv().map_err(|e| format!("record {i}: {e}"))?;
        got.resize(grant.len(), 0);
        let copied = grant.read_at(0, &mut got);
        drop(grant);
        debug_assert!(copied);
        check(i, seed, max, &got, &mut scratch)?;
    }
    Ok(())
}
