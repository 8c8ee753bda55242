//! Every bad hello gets a distinct error on the accepting side and a distinct refusal on
//! the initiating side, and the listener goes on serving good clients.

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipc_shm::handshake::{HandshakeError, PROTOCOL_VERSION, Refusal};

/// A protocol version that is not ours.
const OTHER: u32 = PROTOCOL_VERSION + 1;
use ipc_shm::{Config, Connection, Endpoint, Error, Listener, Transport};
use util::{hello, read_reply};

const SILENCE: Duration = Duration::from_millis(300);

fn listener(dir: &Path, config: &Config) -> (Listener, PathBuf) {
    let path = dir.join("node.sock");
    (
        Listener::bind(&Endpoint::unix(&path), config).unwrap(),
        path,
    )
}

/// Runs `client` against one `accept` of `listener`.
fn accept_one<T: Send>(
    listener: &Listener,
    client: impl FnOnce() -> T + Send,
) -> (Result<Connection, Error>, T) {
    std::thread::scope(|s| {
        let server = s.spawn(|| listener.accept());
        let t = client();
        (server.join().unwrap(), t)
    })
}

fn handshake_error(result: Result<Connection, Error>) -> HandshakeError {
    match result {
        Err(Error::Handshake(e)) => e,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

/// A raw client: sends `bytes` (then half-closes if `shutdown`), returns the reply.
fn raw_client(path: &Path, bytes: &[u8], shutdown: bool) -> util::Reply {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.write_all(bytes).unwrap();
    if shutdown {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    read_reply(&mut stream)
}

fn round_trip(connection: Connection) {
    let (mut tx, mut rx) = connection.split();
    tx.send_bytes(b"ping").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"ping");
}

#[test]
fn the_listener_refuses_every_bad_hello_distinctly_and_keeps_serving() {
    let _dog = util::watchdog("bad hellos", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(Transport::Shm);
    config.handshake_timeout = SILENCE;
    let (listener, path) = listener(dir.path(), &config);
    let cap = 1u64 << 16;

    // Garbage: someone speaks HTTP at us.
    let garbage = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(3);
    let (server, reply) = accept_one(&listener, || raw_client(&path, &garbage[..72], false));
    assert_eq!(
        handshake_error(server),
        HandshakeError::BadMagic {
            what: "hello",
            found: *b"GET / HT"
        }
    );
    assert_eq!((&reply.magic, reply.status), (b"BSHMRPLY", 1));

    // Truncation: the client hangs up in the middle of its hello.
    let good = hello(PROTOCOL_VERSION, 0, cap, cap);
    let (server, reply) = accept_one(&listener, || raw_client(&path, &good[..20], true));
    assert_eq!(
        handshake_error(server),
        HandshakeError::Truncated {
            what: "hello",
            received: 20,
            expected: 72
        }
    );
    assert_eq!(reply.status, 2);

    // A version from the future.
    let (server, reply) = accept_one(&listener, || {
        raw_client(&path, &hello(99, 0, cap, cap), false)
    });
    assert_eq!(
        handshake_error(server),
        HandshakeError::UnsupportedVersion {
            found: 99,
            supported: PROTOCOL_VERSION
        }
    );
    assert_eq!(
        (reply.status, reply.detail, reply.version),
        (3, PROTOCOL_VERSION.into(), PROTOCOL_VERSION)
    );
    // Recognised from magic and version alone, whatever length that version's hello has.
    let (server, reply) = accept_one(&listener, || {
        raw_client(&path, &hello(OTHER, 0, cap, cap)[..12], false)
    });
    assert_eq!(
        handshake_error(server),
        HandshakeError::UnsupportedVersion {
            found: OTHER,
            supported: PROTOCOL_VERSION
        }
    );
    assert_eq!(reply.status, 3);

    // Silence: the deadline, not the client, ends the wait.
    let (server, reply) = accept_one(&listener, || {
        let mut stream = UnixStream::connect(&path).unwrap();
        read_reply(&mut stream)
    });
    assert_eq!(
        handshake_error(server),
        HandshakeError::Timeout { after: SILENCE }
    );
    assert_eq!((reply.status, reply.detail), (7, 300));

    // A ring size that is not a power of two, and one beyond the limit.
    for bad in [12_345u64, 1 << 40] {
        let (server, reply) = accept_one(&listener, || {
            raw_client(&path, &hello(PROTOCOL_VERSION, 0, bad, cap), false)
        });
        assert_eq!(
            handshake_error(server),
            HandshakeError::BadRingSize { capacity: bad }
        );
        assert_eq!((reply.status, reply.detail), (5, bad));
    }

    // An unknown transport.
    let (server, reply) = accept_one(&listener, || {
        raw_client(&path, &hello(PROTOCOL_VERSION, 9, cap, cap), false)
    });
    assert_eq!(
        handshake_error(server),
        HandshakeError::BadTransport { found: 9 }
    );
    assert_eq!((reply.status, reply.detail), (6, 9));

    // After all that, a good client of each transport is served.
    for transport in [Transport::Shm, Transport::Socket] {
        let client_config = util::config(transport);
        let (server, client) = accept_one(&listener, || {
            ipc_shm::connect(&Endpoint::unix(&path), &client_config)
        });
        let (server, client) = (server.unwrap(), client.unwrap());
        assert_eq!(
            (server.transport(), client.transport()),
            (transport, transport)
        );
        assert_eq!(server.peer().pid(), std::process::id());
        assert_eq!(server.peer().name(), "ipc-shm-test");
        let (mut tx, _rx) = client.split();
        tx.send_bytes(b"hello").unwrap();
        let (_stx, mut srx) = server.split();
        assert_eq!(srx.recv().unwrap().to_vec(), b"hello");
    }
}

/// A raw acceptor: accepts one connection, reads the hello, then does `respond`.
fn raw_acceptor(
    respond: impl FnOnce(&mut UnixStream) + Send,
    config: &Config,
) -> Result<Connection, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.sock");
    let raw = UnixListener::bind(&path).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut stream, _) = raw.accept().unwrap();
            let mut hello = [0u8; util::HELLO_LEN];
            stream.read_exact(&mut hello).unwrap();
            respond(&mut stream);
            // Hold the stream until the client is done, so only `respond` speaks.
            let _ = stream.read(&mut [0u8; 1]);
        });
        ipc_shm::connect(&Endpoint::unix(&path), config)
    })
}

#[test]
fn the_initiator_reports_every_bad_reply_distinctly() {
    let _dog = util::watchdog("bad replies", Duration::from_secs(60));
    let mut config = util::config(Transport::Shm);
    config.handshake_timeout = SILENCE;
    config.ring_capacity = 1 << 16;
    let cap = 1u64 << 16;
    type Respond<'a> = Box<dyn FnOnce(&mut UnixStream) + Send + 'a>;
    let cases: Vec<(Respond<'_>, HandshakeError)> = vec![
        (Box::new(|_| {}), HandshakeError::Timeout { after: SILENCE }),
        (
            Box::new(|s| s.write_all(&[0x42; 80]).unwrap()),
            HandshakeError::BadMagic {
                what: "reply",
                found: [0x42; 8],
            },
        ),
        (
            Box::new(|s| {
                s.write_all(&util::reply(PROTOCOL_VERSION, 0, 0, cap, cap)[..10])
                    .unwrap();
                s.shutdown(Shutdown::Write).unwrap();
            }),
            HandshakeError::Truncated {
                what: "reply",
                received: 10,
                expected: 80,
            },
        ),
        (
            Box::new(|s| s.write_all(&util::reply(OTHER, 3, 4, 0, 0)).unwrap()),
            HandshakeError::Refused(Refusal::UnsupportedVersion { supported: 4 }),
        ),
        (
            Box::new(|s| s.write_all(&util::reply(OTHER, 4, 1000, 0, 0)).unwrap()),
            HandshakeError::Refused(Refusal::PeerUid { uid: 1000 }),
        ),
        (
            Box::new(|s| s.write_all(&util::reply(OTHER, 0, 0, cap, cap)).unwrap()),
            HandshakeError::UnsupportedVersion {
                found: OTHER,
                supported: PROTOCOL_VERSION,
            },
        ),
        (
            Box::new(|s| {
                s.write_all(&util::reply(PROTOCOL_VERSION, 0, 0, cap * 2, cap))
                    .unwrap()
            }),
            HandshakeError::BadRingSize { capacity: cap * 2 },
        ),
    ];
    for (respond, expected) in cases {
        let error = handshake_error(raw_acceptor(respond, &config));
        assert_eq!(error, expected);
        assert!(!error.to_string().is_empty());
    }
}

/// Connections from another user are refused unless allowed. Needs root to become another
/// user; otherwise the check is covered by the unit test of `check_uid` alone.
#[test]
fn a_client_of_another_uid_is_refused_unless_allowed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot run a client as another user; the uid check is unit-tested");
        return;
    }
    let _dog = util::watchdog("other uid", Duration::from_secs(60));
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    // Let the other user reach the socket; the uid check is what must stop it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // And run the peer from here: the build's own copy may sit under a directory the other
    // user cannot enter (a checkout in /root), and exec would fail.
    let peer = dir.path().join("ipc-shm-peer");
    std::fs::copy(util::PEER, &peer).unwrap();
    std::fs::set_permissions(&peer, std::fs::Permissions::from_mode(0o755)).unwrap();
    for allow in [false, true] {
        let mut config = util::config(Transport::Shm);
        config.allow_other_uids = allow;
        let (listener, path) = listener(dir.path(), &config);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        // Started before we accept, so that a failure to start it fails the test here rather
        // than leaving `accept` waiting.
        let child = Command::new(&peer)
            .arg("echo")
            .arg(format!("-ipcconnect=unix:{}", path.display()))
            .uid(NOBODY)
            .gid(NOBODY)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ipc-shm-peer as another user");
        let server = listener.accept();
        if allow {
            let connection = server.unwrap();
            assert_eq!(connection.peer().uid(), NOBODY);
            round_trip(connection);
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert_eq!(
                handshake_error(server),
                HandshakeError::PeerUid {
                    peer: NOBODY,
                    ours: 0
                }
            );
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(
                stderr.contains(
                    "peer refused the connection: connections from uid 65534 are not allowed"
                ),
                "{stderr}"
            );
        }
    }
}

/// The deadline covers the whole handshake: a client that stops after its hello, before
/// sending its ring, is cut off too.
#[test]
fn a_client_silent_after_its_hello_is_cut_off_by_the_same_deadline() {
    let _dog = util::watchdog("silent after hello", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(Transport::Shm);
    config.handshake_timeout = SILENCE;
    config.ring_capacity = 1 << 16;
    let (listener, path) = listener(dir.path(), &config);
    let (server, _stream) = accept_one(&listener, || util::hand_hello(&path, 1 << 16, 0));
    assert_eq!(
        handshake_error(server),
        HandshakeError::Timeout { after: SILENCE }
    );
}

/// Each direction uses the smaller of the two sides' ring capacities.
#[test]
fn ring_sizes_are_the_smaller_of_both_sides() {
    let _dog = util::watchdog("ring sizes", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut server_config = util::config(Transport::Shm);
    server_config.ring_capacity = 1 << 16;
    let (listener, path) = listener(dir.path(), &server_config);
    for (transport, client_capacity, agreed) in [
        (Transport::Shm, 1 << 20, 1 << 16),
        (Transport::Socket, 1 << 20, 1 << 16),
        (Transport::Shm, 1 << 12, 1 << 12),
    ] {
        let mut config = util::config(transport);
        config.ring_capacity = client_capacity;
        let (server, client) = accept_one(&listener, || {
            ipc_shm::connect(&Endpoint::unix(&path), &config)
        });
        let (stx, srx) = server.unwrap().split();
        let (ctx, crx) = client.unwrap().split();
        for max in [
            stx.max_record_len(),
            srx.max_record_len(),
            ctx.max_record_len(),
            crx.max_record_len(),
        ] {
            assert_eq!(max, agreed / 2 - 8, "{transport} {client_capacity}");
        }
    }
}

/// With two threads in `accept`, a client that says nothing does not hold up the next one.
#[test]
fn a_silent_client_does_not_hold_up_others_when_two_threads_accept() {
    let _dog = util::watchdog("two acceptors", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(Transport::Shm);
    config.handshake_timeout = Duration::from_secs(30);
    let (listener, path) = listener(dir.path(), &config);
    std::thread::scope(|s| {
        let first = s.spawn(|| listener.accept());
        let second = s.spawn(|| listener.accept());
        let mut silent = UnixStream::connect(&path).unwrap();
        // Served by the other thread, well within its own (shorter) deadline.
        let mut client_config = util::config(Transport::Shm);
        client_config.handshake_timeout = Duration::from_secs(5);
        let good = ipc_shm::connect(&Endpoint::unix(&path), &client_config).unwrap();
        let (mut tx, _rx) = good.split();
        tx.send_bytes(b"first").unwrap();
        // The silent client gives up after one byte; its acceptor reports it.
        silent.write_all(b"B").unwrap();
        drop(silent);
        let (served, failed): (Vec<_>, Vec<_>) = [first.join().unwrap(), second.join().unwrap()]
            .into_iter()
            .partition(Result::is_ok);
        let failed = failed
            .into_iter()
            .map(|r| r.unwrap_err())
            .collect::<Vec<_>>();
        assert!(
            matches!(
                failed[..],
                [Error::Handshake(HandshakeError::Truncated {
                    received: 1,
                    ..
                })]
            ),
            "{failed:?}"
        );
        let served = served.into_iter().map(Result::unwrap).collect::<Vec<_>>();
        let [connection] = <[Connection; 1]>::try_from(served).unwrap();
        let (_stx, mut srx) = connection.split();
        assert_eq!(srx.recv().unwrap().to_vec(), b"first");
    });
}

/// One accept loop that hands each handshake to its own thread (`accept_pending`): a client
/// that says nothing holds up only itself.
#[test]
fn a_silent_client_does_not_hold_up_a_single_accept_loop() {
    let _dog = util::watchdog("pending handshakes", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(Transport::Shm);
    config.handshake_timeout = Duration::from_secs(30);
    let (listener, path) = listener(dir.path(), &config);
    let silent = UnixStream::connect(&path).unwrap();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let mut handshakes = Vec::new();
            for _ in 0..2 {
                let pending = listener.accept_pending().unwrap();
                handshakes.push(s.spawn(move || pending.handshake()));
            }
            handshakes
        });
        // Queued behind the silent client, and served while it is still silent.
        let good = ipc_shm::connect(&Endpoint::unix(&path), &util::config(Transport::Shm)).unwrap();
        let (mut tx, _rx) = good.split();
        tx.send_bytes(b"served").unwrap();
        drop(silent);
        let results: Vec<_> = server
            .join()
            .unwrap()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let served: Vec<Connection> = results
            .into_iter()
            .filter_map(|r| r.ok().flatten())
            .collect();
        let [connection] = <[Connection; 1]>::try_from(served).unwrap();
        let (_stx, mut srx) = connection.split();
        assert_eq!(srx.recv().unwrap().to_vec(), b"served");
    });
}
