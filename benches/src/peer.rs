//! Peer processes: a bench binary re-executes itself as the other end of a benchmark.

use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;

/// The argument that turns a bench binary into a peer: `--bench-peer=ROLE`.
pub const PEER_ARG: &str = "--bench-peer=";

/// A backstop: a peer exits after this long whatever happens.
pub const PEER_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long a client waits for an answer before it declares the peer hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);

/// The role this process was started to play, if it is a peer.
pub fn role() -> Option<String> {
    std::env::args().find_map(|a| a.strip_prefix(PEER_ARG).map(str::to_owned))
}

/// The value of `--NAME=VALUE` among this process's arguments.
pub fn arg(name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    std::env::args().find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
}

/// Arms a peer's watchdogs: the kernel kills it when its parent dies (`PR_SET_PDEATHSIG`),
/// and it exits on its own after [`PEER_LIFETIME`]. Neither costs anything while idle.
pub fn arm_watchdog() -> anyhow::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set the parent-death signal")?;
    // The parent may have died before the line above: then we were re-parented already.
    if std::os::unix::process::parent_id() == 1 {
        std::process::exit(1);
    }
    std::thread::spawn(|| {
        std::thread::sleep(PEER_LIFETIME);
        eprintln!("bench peer: still alive after {PEER_LIFETIME:?}; exiting");
        std::process::exit(2);
    });
    Ok(())
}

/// A peer started with [`Peer::spawn`]. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct Peer {
    child: Child,
}

impl Peer {
    /// Re-executes the current binary as the peer `role`, with `args` and `stdin` as its
    /// standard input (how a peer gets its one descriptor: a socket or a memfd).
    pub fn spawn(role: &str, args: &[String], stdin: OwnedFd) -> anyhow::Result<Peer> {
        let exe = std::env::current_exe().context("find the bench executable")?;
        let child = Command::new(&exe)
            .arg(format!("{PEER_ARG}{role}"))
            .args(args)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("start {} as the {role} peer", exe.display()))?;
        Ok(Peer { child })
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spins until `ready` yields a value, failing after [`HANG_LIMIT`]. The clock is read only
/// every few thousand spins, so the wait itself stays a tight loop over `ready`.
#[inline]
pub fn spin_until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let mut spins = 0u32;
    let mut start = None;
    loop {
        if let Some(v) = ready() {
            return Ok(v);
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            let start = *start.get_or_insert_with(Instant::now);
            if start.elapsed() > HANG_LIMIT {
                anyhow::bail!("no answer from the peer ({what}) within {HANG_LIMIT:?}");
            }
        }
    }
}

/// When this process was started as a bench peer, serves its role with `serve` and exits
/// (status 1, with the reason on stderr, if serving failed); otherwise returns, and the
/// caller goes on to run its benchmarks.
pub fn serve_if_peer(serve: impl FnOnce(&str) -> anyhow::Result<()>) {
    let Some(role) = role() else { return };
    if let Err(e) = arm_watchdog().and_then(|()| serve(&role)) {
        eprintln!("bench peer {role}: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}
