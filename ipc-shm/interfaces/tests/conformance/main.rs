//! Conformance of the interfaces across the ways a caller can reach them: the same suite
//! runs against the test implementation in-process and through proxies over a real
//! connection, and the transcripts must match line for line.

mod keys;
mod robustness;
mod suite;
mod wallet;
mod world;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use interfaces::remote::{InitProxy, InitServer};
use interfaces::{Init, InterfaceError};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::wait::WaitPolicy;

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
                eprintln!("watchdog: test still running after {limit:?}; aborting");
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

/// `init` served over a pair of sessions on real shared-memory rings; returns the client's
/// proxy and both sessions (server first).
fn over_shm(init: Arc<dyn Init>) -> (Arc<dyn Init>, Session, Session) {
    let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(init));
    let config = SessionConfig {
        name: String::from("conformance"),
        ..SessionConfig::default()
    };
    let (server, client) = Session::pair(RING, WaitPolicy::default(), Some(server), None, &config)
        .expect("session pair");
    let proxy: Arc<dyn Init> = Arc::new(InitProxy::new(client.bootstrap()));
    (proxy, server, client)
}

fn in_process_transcript() -> Vec<String> {
    let (world, init) = fresh();
    suite::run(&init, &world)
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
    let (proxy, _server, _client) = over_shm(init);
    let found = suite::run(&proxy, &world);
    assert_same(&expected, &found, "over shm");
}

#[test]
fn disconnect_fails_every_later_call() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    let (_world, init) = fresh();
    let (proxy, server, _client) = over_shm(init);
    let chain = proxy.make_chain().expect("chain");
    assert_eq!(chain.get_height(), Ok(Some(suite::START_BLOCKS)));
    drop(server);
    assert_eq!(chain.get_height(), Err(InterfaceError::Disconnected));
    assert_eq!(proxy.make_node().err(), Some(InterfaceError::Disconnected));
}
