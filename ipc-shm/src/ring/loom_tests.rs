//! Model checks of the index protocol and the park/doorbell handshake under every
//! interleaving loom can find. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p ipc-shm --lib --release ring::loom_tests`.
//!
//! The doorbells are modelled with `loom::sync::Notify` (a permit, like an eventfd counter):
//! if the parked flags and their fences allowed a missed wake-up, loom would find the
//! execution where a side waits forever and report a deadlock.

use loom::sync::{Arc, Notify};
use loom::thread;

use super::*;

fn produce(producer: &mut ProducerCore, space: &Notify, data: &Notify, seq: u64) {
    loop {
        if let Some(res) = producer.try_reserve(8).unwrap() {
            producer.region().write(res.payload, &seq.to_le_bytes());
            if producer.commit(res, 8) {
                data.notify();
            }
            return;
        }
        producer.set_parked(true);
        if !producer.has_room(8).unwrap() {
            space.wait();
        }
        producer.set_parked(false);
    }
}

fn consume(consumer: &mut ConsumerCore, space: &Notify, data: &Notify) -> u64 {
    loop {
        if let Some(record) = consumer.try_peek().unwrap() {
            assert_eq!(record.len, 8);
            let mut bytes = [0; 8];
            consumer.region().read(record.payload, &mut bytes);
            consumer.release(record);
            if consumer.publish() {
                space.notify();
            }
            return u64::from_le_bytes(bytes);
        }
        consumer.set_parked(true);
        if consumer.try_peek().unwrap().is_none() {
            data.wait();
        }
        consumer.set_parked(false);
    }
}

/// `records` 8-byte records through a ring of `capacity` bytes, both sides parking.
///
/// Exploration is bounded to three preemptions per execution (loom's recommended way to keep
/// a model of this size tractable; bugs of this kind need one or two).
fn run(capacity: usize, records: u64) {
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
            for seq in 0..records {
                produce(&mut producer, &space2, &data2, seq);
            }
        });
        for seq in 0..records {
            assert_eq!(consume(&mut consumer, &space, &data), seq);
        }
        t.join().unwrap();
    });
}

#[test]
fn records_pass_in_order_and_no_wakeup_is_missed() {
    // 16-byte spans in 64 bytes: no waiting for space, the consumer parks.
    run(64, 3);
}

#[test]
fn a_full_ring_wraps_and_both_sides_park() {
    // Two 16-byte spans fill 32 bytes: the producer parks on a full ring and records wrap.
    run(32, 3);
}
