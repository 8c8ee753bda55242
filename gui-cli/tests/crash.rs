//! `kill -9` of `bitcoin-gui` at random moments while it mines through the `bitcoin-node` it
//! spawned (which spawned `bitcoin-wallet`): each time, the orphaned node notices that its
//! parent is gone, stops its wallet and exits; nothing is left running, and the next start
//! finds nothing in its way (no lock, no socket) and every block still there. Segments are
//! unnamed memfds, so there is no file to leave behind; they go with the last process.
//!
//! This test makes its process a child subreaper, so the orphans are reparented to it and
//! their exits can be waited for (`waitpid`) instead of polled; it therefore runs alone in
//! this test binary, where no other test's children could be reaped by mistake.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use util::bound::node_exe;
use util::{ADDRESS, gui, gui_exe};

/// Times `bitcoin-gui` is killed.
const ROUNDS: u32 = 50;

/// How long the whole test may take before the watchdog kills what it started and aborts.
const WATCHDOG: Duration = Duration::from_secs(600);

/// The processes whose parent is this one (with the subreaper set: also orphaned
/// descendants).
fn our_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .to_owned();
            (ppid == me).then_some(pid)
        })
        .collect()
}

#[test]
fn kill_9_of_bitcoin_gui_leaves_nothing_behind_and_loses_no_block() {
    node_exe();
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        // Straight to stderr: libtest captures eprintln! in test threads, and the abort
        // below would throw the capture away.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "watchdog: still running after {WATCHDOG:?}; killing what the test started"
        );
        for pid in our_children() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::process::abort();
    });
    nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    // The moments of the kills: a fixed xorshift sequence, so a failure can be replayed.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next_delay = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(seed % 400)
    };

    let mut height = 0u32;
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let mut gui_process = Command::new(gui_exe())
            .args([datadir.as_str(), "generatetoaddress", "25", ADDRESS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bitcoin-gui");
        // Not a synchronisation: the kill lands at a random moment of start-up or mining.
        std::thread::sleep(next_delay());
        gui_process.kill().expect("kill -9 bitcoin-gui");
        gui_process.wait().expect("reap bitcoin-gui");
        let killed = Instant::now();
        // The node and wallet it started are ours now; wait for each to exit until none is
        // left (ECHILD). A survivor that never noticed would hold this until the watchdog.
        loop {
            match waitpid(None, None) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => break,
                Err(e) => panic!("waitpid: {e}"),
            }
        }
        slowest = slowest.max(killed.elapsed());

        // The next start finds no lock, socket or segment in its way, and no block is lost.
        let (ok, stdout, stderr) = gui(&[datadir.as_str(), "getblockcount"]);
        assert!(ok, "round {round}: {stderr}");
        let now: u32 = stdout.trim().parse().expect("a height");
        assert!(
            now >= height,
            "round {round}: height went from {height} to {now}"
        );
        height = now;
    }
    eprintln!(
        "{ROUNDS} kills of bitcoin-gui: orphaned node and wallet gone within {slowest:?} at worst; \
         {height} blocks mined across the rounds"
    );
    assert!(height > 0, "no round got as far as mining");
}
