//! A peer written by hand from `docs/protocol.md` corrupts what it controls: its ring's
//! header, its descriptors, record lengths and positions, frames, the socket. Each yields a
//! typed error on our side, never a crash, and a violation after the handshake closes the
//! connection: the peer reads the hang-up.

mod util;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ipc_shm::handshake::HandshakeError;
use ipc_shm::{Connection, Endpoint, Error, Listener, ProtocolError, Transport};
use util::{DATA_OFFSET, FLAG_PADDING, FLAG_RECORD, HandRing, record_header};

const CAP: u64 = 4096;

fn listener(dir: &Path) -> (Listener, std::path::PathBuf) {
    let mut config = util::config(Transport::Shm);
    config.ring_capacity = CAP as usize;
    config.handshake_timeout = Duration::from_secs(10);
    let path = dir.join("node.sock");
    (
        Listener::bind(&Endpoint::unix(&path), &config).unwrap(),
        path,
    )
}

/// Accepts one client that `client` plays by hand over shared memory; returns our side's
/// result and whatever the client keeps (its stream and ring, so they stay open).
fn against<T: Send>(client: impl FnOnce(&Path) -> T + Send) -> (Result<Connection, Error>, T) {
    let dir = tempfile::tempdir().unwrap();
    let (listener, path) = listener(dir.path());
    std::thread::scope(|s| {
        let server = s.spawn(|| listener.accept());
        let kept = client(&path);
        (server.join().unwrap(), kept)
    })
}

/// A client that completes the handshake with `ring`, after `tamper` scribbled on it.
fn shm_client(
    ring: HandRing,
    tamper: impl FnOnce(&HandRing),
) -> impl FnOnce(&Path) -> (UnixStream, HandRing) {
    move |path| {
        let mut stream = util::hand_hello(path, CAP, 0);
        tamper(&ring);
        ring.send(&stream, &[]);
        util::skip_fds(&mut stream);
        (stream, ring)
    }
}

fn protocol_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ProtocolError {
    match result {
        Err(Error::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn a_corrupt_ring_header_is_refused_at_connection() {
    let _dog = util::watchdog("corrupt header", Duration::from_secs(60));
    let (server, _kept) = against(shm_client(HandRing::new("hostile", CAP, true), |r| {
        r.write_u64(0, 0xdead)
    }));
    assert_eq!(
        protocol_error(server),
        ProtocolError::BadMagic { found: 0xdead }
    );

    let (server, _kept) = against(shm_client(HandRing::new("hostile", CAP, true), |r| {
        r.write_u64(8, 7)
    }));
    assert_eq!(
        protocol_error(server),
        ProtocolError::BadVersion { found: 7 }
    );

    let (server, _kept) = against(shm_client(HandRing::new("hostile", CAP, true), |r| {
        r.write_u64(16, 2 * CAP)
    }));
    assert!(matches!(
        protocol_error(server),
        ProtocolError::BadGeometry { capacity: 8192, .. }
    ));
}

#[test]
fn an_unsealed_segment_is_refused() {
    let _dog = util::watchdog("unsealed", Duration::from_secs(60));
    let (server, _kept) = against(shm_client(HandRing::new("hostile", CAP, false), |_| {}));
    assert!(matches!(
        protocol_error(server),
        ProtocolError::SegmentNotSealed { .. }
    ));
}

#[test]
fn too_few_or_too_many_descriptors_are_refused_and_extras_closed() {
    let _dog = util::watchdog("fd count", Duration::from_secs(60));
    let (server, _kept) = against(|path| {
        let stream = util::hand_hello(path, CAP, 0);
        let ring = HandRing::new("hostile", CAP, true);
        util::send_fds(&stream, &[std::os::fd::AsRawFd::as_raw_fd(&ring.memfd)]);
        (stream, ring)
    });
    match server {
        Err(Error::Handshake(e)) => assert_eq!(
            e,
            HandshakeError::BadFds {
                expected: 3,
                received: 1
            }
        ),
        other => panic!("{other:?}"),
    }

    let name = format!("hostile-extra-{}", std::process::id());
    let (server, kept) = against(|path| {
        let stream = util::hand_hello(path, CAP, 0);
        let ring = HandRing::new("hostile", CAP, true);
        let extra: Vec<_> = (0..40)
            .map(|_| HandRing::new(&name, CAP, true).memfd)
            .collect();
        ring.send(&stream, &extra.iter().collect::<Vec<_>>());
        (stream, ring, extra)
    });
    match server {
        Err(Error::Handshake(e)) => assert_eq!(
            e,
            HandshakeError::BadFds {
                expected: 3,
                received: 43
            }
        ),
        other => panic!("{other:?}"),
    }
    drop(kept);
    assert_eq!(
        util::open_memfds_named(&name),
        0,
        "every descriptor received was closed"
    );
}

/// Asserts that our side closed the connection: the hostile peer reads end-of-file.
fn assert_hung_up(stream: &mut UnixStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        stream.read(&mut byte).unwrap(),
        0,
        "the connection is closed"
    );
}

/// A connection whose peer ring we can scribble on after the handshake.
fn connected() -> (Connection, (UnixStream, HandRing)) {
    let (server, kept) = against(shm_client(HandRing::new("hostile", CAP, true), |_| {}));
    (server.unwrap(), kept)
}

#[test]
fn a_record_length_beyond_the_ring_is_a_protocol_error() {
    let _dog = util::watchdog("record length", Duration::from_secs(60));
    let (connection, (mut stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    ring.write_u64(DATA_OFFSET, record_header(5000, FLAG_RECORD));
    assert!(matches!(
        protocol_error(rx.recv()),
        ProtocolError::BadRecordLength { len: 5000, .. }
    ));
    assert_hung_up(&mut stream);
    assert!(
        rx.recv().is_err(),
        "nothing more is read from a closed connection"
    );
}

#[test]
fn a_padding_record_that_does_not_reach_the_end_is_a_protocol_error() {
    let _dog = util::watchdog("padding", Duration::from_secs(60));
    let (connection, (_stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    // Padding of 8 bytes, far from the end.
    ring.write_u64(DATA_OFFSET, record_header(8, FLAG_RECORD | FLAG_PADDING));
    assert!(matches!(
        protocol_error(rx.recv()),
        ProtocolError::BadRecordLength { len: 8, .. }
    ));
}

#[test]
fn unknown_record_flags_are_a_protocol_error() {
    let _dog = util::watchdog("flags", Duration::from_secs(60));
    let (connection, (_stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    ring.write_u64(DATA_OFFSET, record_header(4, 6));
    assert_eq!(
        protocol_error(rx.recv()),
        ProtocolError::BadRecordFlags { flags: 6 }
    );
}

#[test]
fn a_padding_record_around_the_whole_ring_is_a_protocol_error() {
    // It reaches the end from offset 0, so it is skipped once; a lap later it would cover
    // what was never released. The consumer refuses it instead of going round for ever.
    let _dog = util::watchdog("padding lap", Duration::from_secs(60));
    let (connection, (mut stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    ring.write_u64(
        DATA_OFFSET,
        record_header(CAP as u32 - 8, FLAG_RECORD | FLAG_PADDING),
    );
    assert!(matches!(
        protocol_error(rx.recv()),
        ProtocolError::BadRecordLength { .. }
    ));
    assert_hung_up(&mut stream);
}

#[test]
fn a_valid_hand_made_record_is_received() {
    let _dog = util::watchdog("valid record", Duration::from_secs(60));
    let (connection, (_stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    nix::sys::uio::pwrite(&ring.memfd, b"hand", (DATA_OFFSET + 8) as i64).unwrap();
    ring.write_u64(DATA_OFFSET, record_header(4, FLAG_RECORD));
    assert_eq!(rx.recv().unwrap().to_vec(), b"hand");
}

#[test]
fn a_bell_that_is_not_a_datagram_socket_is_refused() {
    let _dog = util::watchdog("bell type", Duration::from_secs(60));
    // A pipe (or an eventfd, the bell of versions 1 and 2): the peer could make it block us.
    let (pipe_end, _kept) = nix::unistd::pipe().unwrap();
    let mut ring = HandRing::new("hostile", CAP, true);
    ring.space_bell = pipe_end;
    let (server, _kept) = against(shm_client(ring, |_| {}));
    assert_eq!(protocol_error(server), ProtocolError::NotADoorbell);
}

/// The peer shares the file description of the bell end it sent us, and with it the
/// `O_NONBLOCK` flag: it fills the bell's queue, clears the flag, says it is parked and
/// publishes a record. Releasing the record rings that bell, which must not block: with an
/// eventfd as the bell, `write` blocked for good, and nothing woke it (not even the peer's
/// death, since we hold the descriptor).
#[test]
fn a_peer_that_makes_its_bell_blocking_cannot_block_us() {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    let _dog = util::watchdog("blocking bell", Duration::from_secs(60));
    let (connection, (_stream, ring)) = connected();
    let (_tx, mut rx) = connection.split();
    let mut queued = 0;
    while send(ring.space_bell.as_raw_fd(), &[1], MsgFlags::MSG_DONTWAIT).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the bell's queue never filled");
    }
    let flags = OFlag::from_bits_retain(fcntl(&ring.space_bell, FcntlArg::F_GETFL).unwrap());
    fcntl(
        &ring.space_bell,
        FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK),
    )
    .unwrap();
    ring.write_u64(384, 7); // producer_parked: a park generation
    nix::sys::uio::pwrite(&ring.memfd, b"hand", (DATA_OFFSET + 8) as i64).unwrap();
    ring.write_u64(DATA_OFFSET, record_header(4, FLAG_RECORD));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let record = rx.recv().map(|g| g.to_vec());
        // The grant is dropped: the record released, the parked producer's bell rung.
        let _ = done.send(record);
    });
    let record = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("releasing the record blocked in the bell");
    assert_eq!(record.unwrap(), b"hand");
}

#[test]
fn bytes_on_the_socket_of_a_shm_connection_are_a_protocol_error() {
    let _dog = util::watchdog("socket bytes", Duration::from_secs(60));
    let (connection, (mut stream, _ring)) = connected();
    let (_tx, mut rx) = connection.split();
    stream.write_all(b"?").unwrap();
    assert_eq!(
        protocol_error(rx.recv()),
        ProtocolError::UnexpectedSocketData
    );
    assert_hung_up(&mut stream);
}

#[test]
fn an_out_of_band_byte_on_the_socket_of_a_shm_connection_is_a_protocol_error() {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    let _dog = util::watchdog("out-of-band byte", Duration::from_secs(60));
    let (connection, (mut stream, _ring)) = connected();
    let (_tx, mut rx) = connection.split();
    match send(stream.as_raw_fd(), b"!", MsgFlags::MSG_OOB) {
        // Unix sockets carry out-of-band data from Linux 5.15 on.
        Err(nix::errno::Errno::EOPNOTSUPP) => return,
        sent => assert_eq!(sent, Ok(1)),
    }
    // The parked receiver used to wake up, peek nothing and poll again, for ever.
    assert_eq!(
        protocol_error(rx.recv()),
        ProtocolError::UnexpectedSocketData
    );
    assert_hung_up(&mut stream);
}

#[test]
fn malformed_frames_on_the_socket_transport_are_protocol_errors() {
    let _dog = util::watchdog("frames", Duration::from_secs(60));
    let max = (CAP / 2 - 8) as u32;
    for (header, reason) in [
        ([4u32, 1], "unknown flags in frame header"),
        ([max + 1, 0], "frame longer than the record limit"),
    ] {
        let (server, mut stream) = against(|path| util::hand_hello(path, CAP, 1));
        let (_tx, mut rx) = server.unwrap().split();
        let mut frame = header[0].to_le_bytes().to_vec();
        frame.extend_from_slice(&header[1].to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        stream.write_all(&frame).unwrap();
        assert_eq!(
            protocol_error(rx.recv()),
            ProtocolError::BadFrame { reason }
        );
        assert_hung_up(&mut stream);
    }
    // A well-formed frame of the largest size is fine.
    let (server, mut stream) = against(|path| util::hand_hello(path, CAP, 1));
    let (_tx, mut rx) = server.unwrap().split();
    let mut frame = max.to_le_bytes().to_vec();
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.extend(std::iter::repeat_n(9u8, max as usize));
    stream.write_all(&frame).unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), vec![9u8; max as usize]);
}
