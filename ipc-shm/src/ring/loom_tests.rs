//! Model checks of the index protocol and the park/doorbell handshake under every
//! interleaving loom can find. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ipc-shm --lib --release ring::loom_tests`.
//!
//! The doorbells are modelled with `loom::sync::Notify` (a permit, like a bell that stays
//! readable until drained): if the parked flags and their fences allowed a missed wake-up,
//! loom would find the execution where a side waits forever and report a deadlock.

use loom::sync::{Arc, Notify};
use loom::thread;

use super::*;

fn produce(producer: &mut ProducerCore, space: &Notify, data: &Notify, payload: &[u8]) {
    loop {
        if let Some(res) = producer.try_reserve(payload.len()).unwrap() {
            producer.region().write(res.payload, payload);
            if producer.commit(res, payload.len(), &[]) {
                data.notify();
            }
            return;
        }
        producer.set_parked(true);
        if !producer.has_room(payload.len()).unwrap() {
            space.wait();
        }
        producer.set_parked(false);
    }
}

fn consume(consumer: &mut ConsumerCore, space: &Notify, data: &Notify) -> Vec<u8> {
    loop {
        if let Some(record) = consumer.try_peek().unwrap() {
            let mut bytes = vec![0; record.len];
            consumer.region().read(record.payload, &mut bytes);
            consumer.release(record);
            if consumer.publish() {
                space.notify();
            }
            return bytes;
        }
        consumer.set_parked(true);
        if consumer.try_peek().unwrap().is_none() {
            data.wait();
        }
        consumer.set_parked(false);
    }
}

/// Record `i` is `lens[i]` bytes of value `i`.
fn payload(i: usize, len: usize) -> Vec<u8> {
    vec![i as u8; len]
}

/// Records of `lens` bytes through a ring of `capacity` bytes, both sides parking.
///
/// Exploration is bounded to three preemptions per execution (loom's recommended way to keep
/// a model of this size tractable; bugs of this kind need one or two).
fn run(capacity: usize, lens: &'static [usize]) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let region = Region::new_model(DATA_OFFSET, capacity);
        let mut producer = ProducerCore::new(region.clone(), capacity);
        validate_header(&region, capacity).unwrap();
        let mut consumer = ConsumerCore::new(region, capacity);
        let space = Arc::new(Notify::new());
        let data = Arc::new(Notify::new());
        let (space2, data2) = (space.clone(), data.clone());
        let t = thread::spawn(move || {
            for (i, &len) in lens.iter().enumerate() {
                produce(&mut producer, &space2, &data2, &payload(i, len));
            }
        });
        for (i, &len) in lens.iter().enumerate() {
            assert_eq!(consume(&mut consumer, &space, &data), payload(i, len));
        }
        t.join().unwrap();
    });
}

#[test]
fn records_pass_in_order_and_no_wakeup_is_missed() {
    // 16-byte spans in 64 bytes: no waiting for space, the consumer parks.
    run(64, &[8, 8, 8]);
}

#[test]
fn a_full_ring_wraps_and_both_sides_park() {
    // A 16-byte span and the next header slot fill most of 32 bytes: the producer parks on
    // a full ring and records wrap.
    run(32, &[8, 8, 8]);
}

#[test]
fn a_padding_record_leads_to_a_cleared_slot() {
    // Spans of 8 and 16 end at 24; the next 16 do not fit before the end, so the producer
    // pads 8 bytes, once the consumer has released everything, and writes at offset 0 (left
    // over from the first record): the consumer must wait there, not read it again.
    run(32, &[0, 8, 8]);
}
