//! Helpers shared by the cross-process tests: a watchdog, the `ipc-shm-peer` process,
//! `/proc` checks, and ([`hand`]) a peer written by hand from `docs/protocol.md` that can say
//! anything on the wire and scribble on its ring.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::sync::mpsc;
use std::time::Duration;

use ipc_shm::{Config, Connection, SpawnedChild, Transport};

pub mod bind;
pub mod hand;
#[path = "../../src/bin/ipc-shm-peer/pattern.rs"]
pub mod pattern;

#[allow(unused_imports)] // each test binary uses a different subset
pub use hand::*;

/// Aborts the whole test process if the guard is not dropped within `limit`: a hang fails
/// the test run in bounded time instead of blocking it.
#[derive(Debug)]
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to stderr: libtest captures eprintln! in test threads, and the abort
            // below would throw the capture away.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: {name} did not finish within {limit:?}; aborting"
            );
            std::process::abort();
        }
    });
    Watchdog { _done: tx }
}

/// The helper binary, built by cargo for the integration tests.
pub const PEER: &str = env!("CARGO_BIN_EXE_ipc-shm-peer");

pub fn config(transport: Transport) -> Config {
    let mut config = Config::new("ipc-shm-test");
    config.transport = transport;
    config
}

/// Spawns `ipc-shm-peer ROLE [COUNT]` over `transport`.
pub fn spawn_peer(role: &str, count: Option<u64>, config: &Config) -> (SpawnedChild, Connection) {
    let mut args = vec![role.to_owned(), format!("-transport={}", config.transport)];
    args.extend(count.map(|c| c.to_string()));
    args.push(format!("-ring={}", config.ring_capacity));
    ipc_shm::spawn(PEER, &args, config).expect("spawn ipc-shm-peer")
}

/// The state letter of a process in `/proc/PID/stat` (`Z` for a zombie), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may contain spaces.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

/// Asserts that `pid` is neither running nor a zombie (it was reaped).
pub fn assert_reaped(pid: u32) {
    if let Some(state) = process_state(pid) {
        // A pid reused by an unrelated process is not a zombie of ours.
        assert_ne!(state, 'Z', "process {pid} is a zombie");
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !ppid.contains(&format!(" {} ", std::process::id())),
            "process {pid} is still our child: {ppid}"
        );
    }
}

/// What a process has mapped from `/dev/shm` (must be nothing: rings are memfds) and how
/// many ring memfds it maps.
pub fn shm_mappings(pid: u32) -> (Vec<String>, usize) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let dev_shm = maps
        .lines()
        .filter(|l| l.contains("/dev/shm/"))
        .map(str::to_owned)
        .collect();
    let memfds = maps
        .lines()
        .filter(|l| l.contains("/memfd:ipc-shm ring"))
        .count();
    (dev_shm, memfds)
}

pub fn dev_shm_entries() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// A peer written by hand from docs/protocol.md.
