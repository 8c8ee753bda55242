//! A million records each way between two processes, over both transports, every record
//! checked for content and order on arrival.

mod util;

use std::time::{Duration, Instant};

use ipc_shm::{Error, Transport};
use util::pattern::{self, PEER_SEED, TEST_SEED};

const RECORDS: u64 = 1_000_000;

fn million_each_way(transport: Transport) {
    let _dog = util::watchdog("million_each_way", Duration::from_secs(300));
    let config = util::config(transport);
    let (mut child, connection) = util::spawn_peer("duplex", Some(RECORDS), &config);
    assert_eq!(connection.transport(), transport);
    assert_eq!(connection.peer().pid(), child.pid());
    assert_eq!(connection.peer().name(), "ipc-shm-peer");
    let pid = child.pid();
    let start = Instant::now();
    let (mut tx, mut rx) = connection.split();
    let sender =
        std::thread::spawn(move || pattern::send(&mut tx, TEST_SEED, RECORDS).map(|()| tx));
    pattern::check_stream(&mut rx, PEER_SEED, 0..1).unwrap();
    if transport == Transport::Shm {
        // The peer is sending, so it has mapped both rings, and keeps them until it has
        // received all of ours.
        let (ours, _) = util::shm_mappings(std::process::id());
        let (theirs, memfds) = util::shm_mappings(pid);
        assert!(
            ours.is_empty() && theirs.is_empty(),
            "/dev/shm mappings: {ours:?} {theirs:?}"
        );
        assert_eq!(memfds, 2, "the peer maps its two rings from memfds");
    }
    pattern::check_stream(&mut rx, PEER_SEED, 1..RECORDS).unwrap();
    let tx = sender.join().unwrap().unwrap();
    eprintln!(
        "{transport}: {RECORDS} records each way in {:?}",
        start.elapsed()
    );
    // Nothing more arrives; closing our side lets the peer finish and exit successfully.
    drop(tx);
    assert!(matches!(rx.try_recv(), Ok(None) | Err(Error::Disconnected)));
    drop(rx);
    let status = child.wait().unwrap();
    assert!(status.success(), "peer failed: {status}");
    util::assert_reaped(pid);
}

#[test]
fn million_records_each_way_over_shm() {
    million_each_way(Transport::Shm);
}

#[test]
fn million_records_each_way_over_socket() {
    million_each_way(Transport::Socket);
}

/// Every API path (reserve/commit_len, io::Write, typed send, recv_obj, recv_batch,
/// try_recv, io::Read) through an echoing peer, over both transports.
#[test]
fn every_api_path_round_trips_through_an_echo_peer() {
    use std::io::{Read, Write};
    let _dog = util::watchdog("echo", Duration::from_secs(60));
    for transport in [Transport::Shm, Transport::Socket] {
        let mut config = util::config(transport);
        config.ring_capacity = 64 * 1024;
        let (mut child, connection) = util::spawn_peer("echo", None, &config);
        let (mut tx, mut rx) = connection.split();
        assert_eq!(tx.max_record_len(), 32 * 1024 - 8);
        assert_eq!(rx.max_record_len(), 32 * 1024 - 8);

        let mut grant = tx.reserve(100).unwrap();
        grant.write_all(b"hello ").unwrap();
        grant.write_all(b"world").unwrap();
        assert_eq!(grant.position(), 11);
        grant.commit_len(11);
        let mut got = String::new();
        rx.recv().unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello world");

        tx.send(&0x0123_4567_89ab_cdefu64).unwrap();
        assert_eq!(rx.recv_obj::<u64>().unwrap(), 0x0123_4567_89ab_cdef);
        tx.send_bytes(&[1, 2, 3]).unwrap();
        assert!(matches!(rx.recv_obj::<u64>(), Err(Error::Protocol(_))));

        let big = vec![0xa5; tx.max_record_len()];
        tx.send_bytes(&big).unwrap();
        assert_eq!(rx.recv().unwrap().to_vec(), big);
        assert!(matches!(
            tx.reserve(big.len() + 1),
            Err(Error::TooLarge { .. })
        ));

        for i in 0..10u32 {
            tx.send(&i).unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 10 {
            rx.recv_batch(4, |g| seen.push(g.read_obj::<u32>(0).unwrap()))
                .unwrap();
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());

        tx.try_reserve(8)
            .unwrap()
            .expect("room in an empty ring")
            .commit();
        let mut grant = rx.recv().unwrap();
        let mut out = [0u8; 4];
        assert!(grant.read_at(4, &mut out) && !grant.read_at(5, &mut out));
        let mut appended = vec![0xee];
        assert!(!grant.append_to(5, 4, &mut appended) && !grant.append_to(9, 0, &mut appended));
        assert!(grant.append_to(4, 4, &mut appended));
        assert_eq!(appended[1..], out, "append_to copies what read_at does");
        assert_eq!(grant.read(&mut [0u8; 16]).unwrap(), 8);
        drop(grant);

        // The connection closes when both ends are gone; the echo peer then exits.
        drop((tx, rx));
        assert!(child.wait().unwrap().success());
    }
}

/// `Sender::forward` and `WriteGrant::write_from` copy a received record into a record of
/// another connection, for each pair of transports: after a prefix, and whole, at lengths
/// around the header's cache line (whose bytes a ring record stages apart) up to the
/// longest record.
#[test]
fn a_received_record_is_forwarded_between_connections_of_either_transport() {
    const PREFIX: &[u8; 16] = b"forwarded after:";
    const NAMES: [&str; 2] = ["shm", "socket"];
    let _dog = util::watchdog("forward", Duration::from_secs(60));
    let (mut children, mut txs, mut rxs) = (Vec::new(), Vec::new(), Vec::new());
    for transport in [Transport::Shm, Transport::Socket] {
        let mut config = util::config(transport);
        config.ring_capacity = 64 * 1024;
        let (child, connection) = util::spawn_peer("echo", None, &config);
        let (tx, rx) = connection.split();
        children.push(child);
        txs.push(tx);
        rxs.push(rx);
    }
    let max = txs[0].max_record_len();
    for (from, to) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        for len in [0, 1, 7, 55, 56, 57, 64, 100, 4096, max - PREFIX.len(), max] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + from * 7 + to) as u8).collect();
            let case = format!("{len} bytes from {} to {}", NAMES[from], NAMES[to]);
            if PREFIX.len() + len <= max {
                txs[from].send_bytes(&payload).unwrap();
                let grant = rxs[from].recv().unwrap();
                let mut out = txs[to].reserve(PREFIX.len() + len).unwrap();
                out.write_at(0, PREFIX);
                out.write_from(PREFIX.len(), &grant);
                out.commit();
                drop(grant);
                let expected = [&PREFIX[..], &payload].concat();
                assert_eq!(
                    rxs[to].recv().unwrap().to_vec(),
                    expected,
                    "{case}, after a prefix"
                );
            }
            txs[from].send_bytes(&payload).unwrap();
            let grant = rxs[from].recv().unwrap();
            txs[to].forward(&grant).unwrap();
            drop(grant);
            assert_eq!(rxs[to].recv().unwrap().to_vec(), payload, "{case}, whole");
        }
    }
    drop((txs, rxs));
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
}
