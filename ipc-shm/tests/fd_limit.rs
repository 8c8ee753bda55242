//! A peer that sends many descriptors while our descriptor table is nearly full: the kernel
//! installs what fits, then truncates the message. Whatever it installed is ours to close;
//! the handshake fails with a typed error and no descriptor is left behind.
//!
//! Alone in its test binary: it lowers the process's `RLIMIT_NOFILE`, which would starve
//! tests running beside it.

mod util;

use std::os::fd::OwnedFd;
use std::time::Duration;

use ipc_shm::handshake::HandshakeError;
use ipc_shm::{Endpoint, Error, Listener, Transport};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use util::HandRing;

const CAP: u64 = 4096;

fn open_fds() -> Vec<u64> {
    let mut fds: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn descriptors_the_kernel_installs_before_truncating_a_message_are_closed() {
    let _dog = util::watchdog("fd limit", Duration::from_secs(60));
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let before = open_fds();
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(Transport::Shm);
    config.ring_capacity = CAP as usize;
    config.handshake_timeout = Duration::from_secs(10);
    let path = dir.path().join("node.sock");
    let listener = Listener::bind(&Endpoint::unix(&path), &config).unwrap();
    let ring = HandRing::new("fd-limit", CAP, true);
    let extra: Vec<OwnedFd> = (0..200).map(|_| ring.memfd.try_clone().unwrap()).collect();
    let server = std::thread::scope(|s| {
        let server = s.spawn(|| listener.accept());
        let stream = util::hand_hello(&path, CAP, 0);
        // Room for 20 more descriptors: the listener has accepted, and is waiting for ours.
        let highest = *open_fds().last().unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, highest + 21, hard).unwrap();
        ring.send(&stream, &extra.iter().collect::<Vec<_>>());
        let server = server.join().unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
        drop(stream);
        server
    });
    match server {
        Err(Error::Handshake(HandshakeError::BadFds {
            expected: 3,
            received,
        })) => {
            assert!(
                (1..203).contains(&received),
                "{received} of 203 descriptors arrived"
            );
        }
        other => panic!("expected too few descriptors, got {other:?}"),
    }
    drop((listener, ring, extra, dir));
    assert_eq!(open_fds(), before, "every descriptor received was closed");
}
