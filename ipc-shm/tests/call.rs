//! The call layer between two processes, over both transports: the test binary calls
//! `Calc` served by `ipc-shm-call-peer`, and serves `Listener` callbacks back.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_shm::call::{CallError, Dispatch, RemoteErrorKind, RemoteObject, Session, SessionConfig};
use ipc_shm::{SpawnedChild, Transport};

#[path = "../src/bin/ipc-shm-call-peer/calc.rs"]
mod calc;

use calc::*;

const CALL_PEER: &str = env!("CARGO_BIN_EXE_ipc-shm-call-peer");

fn start(transport: Transport) -> (SpawnedChild, Session) {
    let config = util::config(transport);
    let args = [
        format!("-transport={transport}"),
        format!("-ring={}", config.ring_capacity),
    ];
    let (child, connection) =
        ipc_shm::spawn(CALL_PEER, &args, &config).expect("spawn ipc-shm-call-peer");
    assert_eq!(connection.transport(), transport);
    let session = Session::new(
        connection,
        None,
        &SessionConfig {
            name: "test".into(),
            ..SessionConfig::default()
        },
    );
    (child, session)
}

/// Waits (yielding) until `cond` holds, for at most 30 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn calls_and_errors(transport: Transport) {
    let _dog = util::watchdog("calls_and_errors", Duration::from_secs(120));
    let (mut child, session) = start(transport);
    let calc = session.bootstrap();
    // Up to 4 MiB: more than one record of the default 4 MiB ring (2 MiB), so split.
    for len in [0usize, 64, 4096, 1 << 20, 4 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let back: Vec<u8> = calc.call(ECHO, &data).unwrap();
        assert!(back == data, "echo of {len} bytes over {transport}");
    }
    assert_eq!(calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(), 5);
    // For the record, not asserted: the latency of a 64-byte echo.
    let data = vec![1u8; 64];
    let start = Instant::now();
    for _ in 0..20_000 {
        let _: Vec<u8> = calc.call(ECHO, &data).unwrap();
    }
    eprintln!(
        "{transport}: 64-byte echo across processes in {:?}",
        start.elapsed() / 20_000
    );
    let err = calc.call::<_, ()>(FAIL, &()).unwrap_err();
    assert!(
        matches!(&err, CallError::Remote { kind: RemoteErrorKind::Failed, message } if message == "no luck")
    );
    let err = calc.call::<_, ()>(1000, &()).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::UnknownMethod,
                ..
            }
        ),
        "{err}"
    );
    let err = calc.call::<_, u64>(ADD, &7u8).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            }
        ),
        "{err}"
    );
    // Closing our side lets the peer exit cleanly.
    drop(calc);
    drop(session);
    assert!(child.wait().unwrap().success());
}

#[test]
fn calls_and_errors_over_shm() {
    calls_and_errors(Transport::Shm);
}

#[test]
fn calls_and_errors_over_socket() {
    calls_and_errors(Transport::Socket);
}

fn callbacks_and_objects(transport: Transport) {
    let _dog = util::watchdog("callbacks_and_objects", Duration::from_secs(120));
    let (_child, session) = start(transport);
    let calc = session.bootstrap();
    for depth in [0u32, 1, 10] {
        let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
        assert_eq!(
            calc.call::<_, u64>(NOTIFY, &(listener, depth)).unwrap(),
            43 + u64::from(depth)
        );
    }
    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
    let sub: RemoteObject = calc.call(SUBSCRIBE, &listener).unwrap();
    drop(listener);
    assert_eq!(calc.call::<_, u64>(LIVE, &()).unwrap(), 1);
    assert_eq!(sub.call::<_, u64>(FIRE, &()).unwrap(), 42);
    assert_eq!(session.imported_objects(), 1);
    drop(sub);
    assert_eq!(session.imported_objects(), 0);
    // The peer drops the subscription, which releases our listener.
    eventually("the subscription is dropped", || {
        calc.call::<_, u64>(LIVE, &()).unwrap() == 0
    });
    eventually("the listener is released", || {
        session.exported_objects() == 0
    });
}

#[test]
fn callbacks_and_objects_over_shm() {
    callbacks_and_objects(Transport::Shm);
}

#[test]
fn callbacks_and_objects_over_socket() {
    callbacks_and_objects(Transport::Socket);
}

fn eight_threads(transport: Transport) {
    let _dog = util::watchdog("eight_threads", Duration::from_secs(300));
    let (_child, session) = start(transport);
    let calc = session.bootstrap();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let calc = calc.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    assert_eq!(
                        calc.call::<_, u64>(ADD, &(i, t << 32)).unwrap(),
                        i + (t << 32)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn eight_threads_over_shm() {
    eight_threads(Transport::Shm);
}

#[test]
fn eight_threads_over_socket() {
    eight_threads(Transport::Socket);
}

/// The peer is killed while 8 calls wait in it: all 8 return `Disconnected`, and so does
/// every later call.
fn peer_death(transport: Transport) {
    let _dog = util::watchdog("peer_death", Duration::from_secs(120));
    let (mut child, session) = start(transport);
    let calc = session.bootstrap();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let calc = calc.clone();
            std::thread::spawn(move || calc.call::<_, ()>(BLOCK, &()))
        })
        .collect();
    eventually("8 calls are blocked in the peer", || {
        calc.call::<_, u64>(BLOCKED, &()).unwrap() == 8
    });
    let pid = child.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for c in callers {
        let r = c.join().unwrap();
        assert!(matches!(r, Err(CallError::Disconnected)), "{r:?}");
    }
    assert!(matches!(
        calc.call::<_, u64>(ADD, &(1u64, 1u64)),
        Err(CallError::Disconnected)
    ));
    assert!(session.is_closed());
    assert!(!child.wait().unwrap().success());
    util::assert_reaped(pid);
}

#[test]
fn peer_death_over_shm() {
    peer_death(Transport::Shm);
}

#[test]
fn peer_death_over_socket() {
    peer_death(Transport::Socket);
}
