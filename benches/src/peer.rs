//! Peer processes: a bench binary re-executes itself as the other end of a benchmark.

use std::cell::Cell;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

    /// Gives the peer up to `limit` to exit on its own (a peer that owns resources outside
    /// the process, such as iceoryx2's segments in `/dev/shm`, removes them only when it
    /// exits cleanly), then kills and reaps it as dropping does.
    pub fn finish(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
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
        if spins.is_multiple_of(4096) {
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

/// Watches the calls made to one peer and kills the peer when a call has been waiting for
/// [`HANG_LIMIT`]: the call then fails with a disconnection instead of hanging the bench.
/// (A peer that dies is noticed by the connection itself; this is for one that stops
/// answering while alive.) Dropping it stops the watching thread.
///
/// It is not `Sync`: calls are watched from one thread at a time, which lets it count them
/// with plain stores instead of atomic read-modify-writes (two on every call, which the raw
/// round trips it is compared with do not pay).
#[derive(Debug)]
pub struct CallWatchdog {
    shared: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
    one_thread: PhantomData<Cell<()>>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Bumped when a call starts and again when it ends: odd while one is in flight.
    calls: AtomicU64,
    stop: AtomicBool,
}

/// How often the watchdog looks.
const WATCH_TICK: Duration = Duration::from_millis(250);

impl CallWatchdog {
    /// Starts watching the calls to the peer with process id `pid`.
    pub fn arm(pid: u32) -> anyhow::Result<CallWatchdog> {
        CallWatchdog::with_limit(pid, HANG_LIMIT)
    }

    /// As [`CallWatchdog::arm`], with a limit other than [`HANG_LIMIT`].
    pub fn with_limit(pid: u32, limit: Duration) -> anyhow::Result<CallWatchdog> {
        let shared = Arc::new(WatchState::default());
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("call-watchdog".into())
            .spawn(move || watch(&watched, pid, limit))
            .context("start the call watchdog")?;
        Ok(CallWatchdog {
            shared,
            thread: Some(thread),
            one_thread: PhantomData,
        })
    }

    /// Marks one call as in flight until the returned guard is dropped.
    #[inline]
    pub fn watch(&self) -> CallGuard<'_> {
        bump(&self.shared.calls);
        CallGuard(&self.shared.calls, PhantomData)
    }
}

impl Drop for CallWatchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One call in flight, see [`CallWatchdog::watch`].
///
/// Not `Send`: it ends the call on the thread that started it, the counter's one writer.
#[derive(Debug)]
pub struct CallGuard<'a>(&'a AtomicU64, PhantomData<*const ()>);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        bump(self.0);
    }
}

/// Adds one to the call counter. Relaxed: the watchdog only compares successive values of
/// this one counter. A load and a store, not a read-modify-write: only the one thread that
/// holds the (not `Sync`) watchdog writes it.
#[inline]
fn bump(calls: &AtomicU64) {
    calls.store(
        calls.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

fn watch(state: &WatchState, pid: u32, limit: Duration) {
    // The in-flight call seen at the last look, and since when.
    let mut seen: Option<(u64, Instant)> = None;
    while !state.stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(WATCH_TICK);
        let calls = state.calls.load(Ordering::Relaxed);
        seen = match seen {
            _ if calls.is_multiple_of(2) => None,
            Some((c, since)) if c == calls => {
                if since.elapsed() > limit {
                    eprintln!("bench: no answer from peer {pid} within {limit:?}; killing it");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        Signal::SIGKILL,
                    );
                    return;
                }
                Some((c, since))
            }
            _ => Some((calls, Instant::now())),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in peer: a process that lives for a minute unless killed.
    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("start sleep")
    }

    #[test]
    fn a_call_that_outlives_the_limit_kills_the_peer_and_quick_ones_do_not() {
        let limit = Duration::from_millis(300);
        let mut quick = sleeper();
        let watchdog = CallWatchdog::with_limit(quick.id(), limit).expect("arm");
        let start = Instant::now();
        while start.elapsed() < 3 * limit {
            drop(watchdog.watch());
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(watchdog);
        assert!(
            quick.try_wait().expect("poll").is_none(),
            "a peer answering in time was killed"
        );
        let _ = quick.kill();
        let _ = quick.wait();

        let mut hung = sleeper();
        let watchdog = CallWatchdog::with_limit(hung.id(), limit).expect("arm");
        let call = watchdog.watch();
        let status = hung.wait().expect("reap");
        // Killed: `sleep` would have exited successfully after its minute.
        assert!(!status.success(), "{status}");
        drop(call);
    }
}
