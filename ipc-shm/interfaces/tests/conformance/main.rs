//! Conformance of the interfaces across the ways a caller can reach them: the same suite
//! runs against the test implementation in-process and through proxies over a real
//! connection (listener, handshake, shared-memory rings or the socket transport), and the
//! transcripts must match line for line.

mod differential;
mod keys;
mod robustness;
mod suite;
mod wallet;
mod world;

/// How many cases a property test runs: `default`, or `PROPTEST_CASES` when set (the long
/// fuzzing run of docs/reliability.md).
fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Init, InterfaceError};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::{Config, Endpoint, Listener, Transport, connect};

use keys::Key;
use world::{TestInit, World};

/// Aborts the test process if the guarded test has not finished within `limit`: a hang
/// in a transport must fail the run, not stall it.
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

impl Watchdog {
    fn new(limit: Duration) -> Watchdog {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                // Straight to stderr: libtest captures eprintln! in test threads, and the abort
                // below would throw the capture away.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: test still running after {limit:?}; aborting"
                );
                std::process::abort();
            }
        });
        Watchdog(done)
    }
}

/// A fresh test world and its `Init`, identical every time.
fn fresh() -> (Arc<World>, Arc<dyn Init>) {
    let world = World::new(suite::START_BLOCKS, &Key::new(1).script());
    let init: Arc<dyn Init> = Arc::new(TestInit {
        world: world.clone(),
    });
    (world, init)
}

/// Rings smaller than the 1 MiB echo and the blocks, so long messages are split.
const RING: usize = 1 << 18;

/// The two ways a connection carries records.
const TRANSPORTS: [Transport; 2] = [Transport::Shm, Transport::Socket];

/// A client session connected to a server session serving `init`, over a real connection:
/// a listener on a unix socket in a temporary directory, the versioned handshake, and for
/// `Transport::Shm` memfd rings passed with `SCM_RIGHTS`.
pub(crate) struct Remote {
    pub(crate) proxy: Arc<dyn Init>,
    pub(crate) server: Session,
    pub(crate) client: Session,
    _dir: tempfile::TempDir,
}

fn connected(init: Arc<dyn Init>, transport: Transport) -> Remote {
    let dir = tempfile::tempdir().expect("temporary directory");
    let endpoint = Endpoint::unix(dir.path().join("node.sock"));
    let config = |name: &str| {
        let mut config = Config::new(name);
        config.transport = transport;
        config.ring_capacity = RING;
        config
    };
    let listener = Listener::bind(&endpoint, &config("conformance-server")).expect("listen");
    let (accepted, connection) = std::thread::scope(|s| {
        let accepted = s.spawn(|| listener.accept().expect("accept"));
        let connection = connect(&endpoint, &config("conformance-client")).expect("connect");
        (accepted.join().expect("the accepting thread"), connection)
    });
    assert_eq!(accepted.transport(), transport);
    assert_eq!(connection.transport(), transport);
    let sessions = SessionConfig {
        name: String::from("conformance"),
        ..SessionConfig::default()
    };
    let bootstrap: Arc<dyn Dispatch> = Arc::new(InitServer::new(init));
    let server = Session::new(accepted, Some(bootstrap), &sessions);
    let client = Session::new(connection, None, &sessions);
    let proxy: Arc<dyn Init> = Arc::new(InitProxy::new(client.bootstrap()));
    Remote {
        proxy,
        server,
        client,
        _dir: dir,
    }
}

fn in_process_transcript() -> Vec<String> {
    let (world, init) = fresh();
    suite::run(&init, &|| world.disconnect_tip())
}

fn assert_same(expected: &[String], found: &[String], how: &str) {
    for (i, (e, f)) in expected.iter().zip(found).enumerate() {
        assert_eq!(e, f, "line {i} differs {how}");
    }
    assert_eq!(
        expected.len(),
        found.len(),
        "transcript lengths differ {how}"
    );
}

#[test]
fn in_process_is_deterministic() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let first = in_process_transcript();
    assert_same(
        &first,
        &in_process_transcript(),
        "between two in-process runs",
    );
    assert!(
        first.len() > 120,
        "the suite recorded {} lines",
        first.len()
    );
}

#[test]
fn shm_matches_in_process() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let expected = in_process_transcript();
    let (world, init) = fresh();
    let remote = connected(init, Transport::Shm);
    assert_same(
        &expected,
        &suite::run(&remote.proxy, &|| world.disconnect_tip()),
        "over shm",
    );
}

#[test]
fn socket_matches_in_process() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let expected = in_process_transcript();
    let (world, init) = fresh();
    let remote = connected(init, Transport::Socket);
    assert_same(
        &expected,
        &suite::run(&remote.proxy, &|| world.disconnect_tip()),
        "over the socket transport",
    );
}

#[test]
fn disconnect_fails_every_later_call() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let remote = connected(init, transport);
        let chain = remote.proxy.make_chain().expect("chain");
        assert_eq!(chain.get_height(), Ok(Some(suite::START_BLOCKS)));
        drop(remote.server);
        assert_eq!(
            chain.get_height(),
            Err(InterfaceError::Disconnected),
            "{transport:?}"
        );
        assert_eq!(
            remote.proxy.make_node().err(),
            Some(InterfaceError::Disconnected)
        );
    }
}
