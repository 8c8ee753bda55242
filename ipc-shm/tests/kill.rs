//! `kill -9` of the peer in the middle of a stream: every waiter returns `Disconnected`
//! promptly, the child is reaped, and nothing is left in `/dev/shm`.

mod util;

use std::time::{Duration, Instant};

use ipc_shm::{Error, Transport};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn sigkill(pid: u32) -> Instant {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    Instant::now()
}

/// The peer streams to us; we kill it after some records and keep receiving.
fn kill_while_receiving(transport: Transport) {
    let _dog = util::watchdog("kill_while_receiving", Duration::from_secs(60));
    let shm_before = util::dev_shm_entries();
    let config = util::config(transport);
    let (child, connection) = util::spawn_peer("stream", None, &config);
    let pid = child.pid();
    let (_tx, mut rx) = connection.split();
    for _ in 0..10_000 {
        rx.recv().unwrap();
    }
    let killed = sigkill(pid);
    // Records committed before the death are still delivered, then the end is reported.
    let mut after = 0u64;
    let error = loop {
        match rx.recv() {
            Ok(_) => after += 1,
            Err(e) => break e,
        }
    };
    let elapsed = killed.elapsed();
    assert!(matches!(error, Error::Disconnected), "{error:?}");
    eprintln!("{transport}: Disconnected {elapsed:?} after kill -9 ({after} records drained)");
    drop(child);
    util::assert_reaped(pid);
    let new: Vec<_> = util::dev_shm_entries()
        .difference(&shm_before)
        .cloned()
        .collect();
    let ours: Vec<_> = new
        .iter()
        .filter(|n| n.contains("ipc-shm") || n.contains("BSHM"))
        .collect();
    assert!(ours.is_empty(), "new entries in /dev/shm: {ours:?}");
}

#[test]
fn kill_9_of_a_streaming_peer_ends_recv_with_disconnected_over_shm() {
    kill_while_receiving(Transport::Shm);
}

#[test]
fn kill_9_of_a_streaming_peer_ends_recv_with_disconnected_over_socket() {
    kill_while_receiving(Transport::Socket);
}

/// The peer never reads; our ring fills up and our sender parks; we kill the peer.
fn kill_while_sending(transport: Transport) {
    let _dog = util::watchdog("kill_while_sending", Duration::from_secs(60));
    let mut config = util::config(transport);
    config.ring_capacity = 64 * 1024;
    let (child, connection) = util::spawn_peer("stall", None, &config);
    let pid = child.pid();
    let (mut tx, _rx) = connection.split();
    let record = [7u8; 1000];
    if transport == Transport::Shm {
        // Fill the ring without blocking, so that the next send must wait for the peer.
        while let Some(mut grant) = tx.try_reserve(record.len()).unwrap() {
            grant.write_at(0, &record);
            grant.commit();
        }
    }
    let sender = std::thread::spawn(move || {
        loop {
            if let Err(e) = tx.send_bytes(&record) {
                return (e, Instant::now());
            }
        }
    });
    let killed = sigkill(pid);
    let (error, returned) = sender.join().unwrap();
    assert!(matches!(error, Error::Disconnected), "{error:?}");
    eprintln!(
        "{transport}: blocked sender got Disconnected {:?} after kill -9",
        returned.saturating_duration_since(killed)
    );
    drop(child);
    util::assert_reaped(pid);
}

#[test]
fn kill_9_of_a_stalled_peer_wakes_a_blocked_sender_over_shm() {
    kill_while_sending(Transport::Shm);
}

#[test]
fn kill_9_of_a_stalled_peer_wakes_a_blocked_sender_over_socket() {
    kill_while_sending(Transport::Socket);
}

/// Dropping the connection makes a spawned child exit on its own; dropping `SpawnedChild`
/// then reaps it.
#[test]
fn a_spawned_child_exits_when_the_connection_closes_and_is_reaped() {
    let _dog = util::watchdog("child_exits", Duration::from_secs(60));
    for transport in [Transport::Shm, Transport::Socket] {
        let (mut child, connection) = util::spawn_peer("echo", None, &util::config(transport));
        let pid = child.pid();
        assert_eq!(util::process_state(pid).map(|s| s != 'Z'), Some(true));
        drop(connection);
        let status = child
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("child exited");
        assert!(status.success(), "{status}");
        drop(child);
        util::assert_reaped(pid);
    }
}

/// A child that does not exit although its `SpawnedChild` is dropped (here: the connection
/// is still open) is killed after the grace period and reaped.
#[test]
fn a_child_that_outstays_the_grace_period_is_killed_and_reaped() {
    let _dog = util::watchdog("grace", Duration::from_secs(60));
    let (child, connection) = util::spawn_peer("stall", None, &util::config(Transport::Shm));
    let pid = child.pid();
    let start = Instant::now();
    drop(child);
    assert!(start.elapsed() >= ipc_shm::connect::REAP_GRACE);
    util::assert_reaped(pid);
    let (_tx, mut rx) = connection.split();
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}
