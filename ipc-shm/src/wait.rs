//! Waiting for the peer: spin briefly, yield, then park on a doorbell socket.
//!
//! A wake-up through the kernel costs about as much as a whole socket round trip on our
//! machines, so a waiter first spins through the short gaps between messages (looking once per
//! `spin_loop`, then once per `yield` so that a peer sharing the core can run). Only when
//! the spin budget is spent does it park: it raises its *parked* flag in shared memory and
//! sleeps in `poll` on two descriptors at once, its doorbell and the connection socket. The
//! peer rings the doorbell only when it sees the flag, so the steady-state hot path makes no
//! system call; and a dead peer hangs up the socket, which wakes the waiter at once.
//!
//! The spin budget adapts: it doubles (up to [`WaitPolicy::spin`]) whenever spinning ended a
//! wait, and halves whenever the waiter had to park anyway, so a connection that sees long
//! gaps stops burning CPU on it. Every `PROBE_EVERY`th wait spins for the whole window
//! whatever the budget: without that, a budget that collapsed during a burst of long gaps
//! (or while the machine was busy) would stay below the connection's real round-trip time
//! for good, since a wait longer than the budget always parks and parking only shrinks it.
//!
//! A waiter whose budget is spent while the peer says it is producing what we wait for (a
//! long record being copied into the ring) keeps looking, yielding at each look, for up to
//! 1 ms per wait (`BUSY_SPIN`), then parks as usual (`Spinner::spin_with`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, getpeername, getsockopt, recv, send,
    socketpair, sockopt,
};

use crate::error::{Error, ProtocolError};

/// How long a waiter spins before it parks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// The longest a waiter spins (busy, then yielding) before parking. Zero parks at once.
    pub spin: Duration,
    /// Whether the budget adapts between `spin / 64` and `spin` to what recent waits needed.
    pub adaptive: bool,
}

impl WaitPolicy {
    /// Parks at once: no CPU spent waiting, every wake-up through the kernel.
    pub const PARK: WaitPolicy = WaitPolicy {
        spin: Duration::ZERO,
        adaptive: false,
    };

    /// Spins for up to `spin`, adaptively.
    pub const fn spin_for(spin: Duration) -> WaitPolicy {
        WaitPolicy {
            spin,
            adaptive: true,
        }
    }
}

impl Default for WaitPolicy {
    /// Spin for up to 50 µs: longer than a round trip through shared memory by three orders
    /// of magnitude, shorter than most scheduler time slices.
    fn default() -> Self {
        WaitPolicy::spin_for(Duration::from_micros(50))
    }
}

/// The adaptive spin state of one waiter.
#[derive(Debug)]
pub(crate) struct Spinner {
    policy: WaitPolicy,
    budget: Duration,
    /// Waits so far, to pick the probing ones.
    waits: u32,
}

/// One wait in this many spins for the full window (see the module docs).
const PROBE_EVERY: u32 = 16;

/// Looks between two readings of the clock while busy-spinning. A look costs about one
/// `spin_loop` (16 ns on today's Intel host), a clock reading about 40 ns in our VMs: reading
/// it at every look would triple the time to notice a record.
const LOOKS_PER_CLOCK: u32 = 32;

/// How long a waiter keeps its CPU (looking once per `spin_loop`, as the cache-line floor
/// does) before it starts yielding: longer than an ordinary round trip through shared
/// memory, short against the spin window. Yielding early handed the CPU to other work in the
/// middle of ordinary round trips whenever the machine was busy.
const PURE_SPIN: Duration = Duration::from_micros(5);

/// The longest a wait goes on, in all, while the peer says it is producing what we wait
/// for ([`Spinner::spin_with`]): a 2 MiB record, the longest with the default 4 MiB ring,
/// takes about 0.2 ms to copy across cores. Past this the waiter parks as usual, so a peer
/// that says so forever costs us at most this much CPU per wait.
pub(crate) const BUSY_SPIN: Duration = Duration::from_millis(1);

impl Spinner {
    pub(crate) fn new(policy: WaitPolicy) -> Self {
        Spinner {
            policy,
            budget: policy.spin,
            waits: 0,
        }
    }

    /// Calls `ready` until it yields `Some` or the budget is spent: once per `spin_loop` for
    /// [`PURE_SPIN`], then once per `yield`.
    ///
    /// The busy looks are not spaced out by an exponential back-off: a record arrives as a
    /// single cache-line transfer, and a back-off of doubling pauses noticed it up to half a
    /// wait late (a 64 B round trip went from 1.55 to 1.02 µs on an Intel host without it).
    #[inline]
    pub(crate) fn spin<T>(
        &mut self,
        mut ready: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let mut no_allowance = Duration::ZERO;
        self.spin_with(&mut (), |()| ready(), |()| false, &mut no_allowance)
    }

    /// As [`spin`](Self::spin), but a spent budget does not end the wait while `busy` says
    /// the peer is in the middle of producing what we wait for (copying a long record into
    /// the ring): its end is then a copy away, and a park and a wake-up would cost more.
    /// Such a wait goes on (yielding at each look) until it has lasted `allowance`, which
    /// it then uses up by as much as it lasted: a caller that spins again after a wake-up
    /// passes what is left, so that a peer ringing us at will cannot buy more than one
    /// allowance per wait. `busy` is asked only once the budget is spent, and never with a
    /// zero budget ([`WaitPolicy::PARK`] never spins); both closures get `ctx`, so that
    /// they may share mutable state. For the budget's adaptation, a wait the allowance
    /// ended took the budget.
    #[inline(always)]
    pub(crate) fn spin_with<C, T>(
        &mut self,
        ctx: &mut C,
        mut ready: impl FnMut(&mut C) -> Result<Option<T>, Error>,
        busy: impl FnMut(&mut C) -> bool,
        allowance: &mut Duration,
    ) -> Result<Option<T>, Error> {
        if let Some(v) = ready(ctx)? {
            self.adapt(Some(Duration::ZERO));
            return Ok(Some(v));
        }
        if self.budget.is_zero() {
            return Ok(None);
        }
        self.spin_on(ctx, ready, busy, allowance)
    }

    /// The rest of [`Self::spin_with`] once its first look found nothing: out of line, so
    /// that a wait that ends at once costs one look.
    #[inline(never)]
    fn spin_on<C, T>(
        &mut self,
        ctx: &mut C,
        mut ready: impl FnMut(&mut C) -> Result<Option<T>, Error>,
        mut busy: impl FnMut(&mut C) -> bool,
        allowance: &mut Duration,
    ) -> Result<Option<T>, Error> {
        // Read after the first look failed: the clock then costs time spent waiting anyway.
        let start = Instant::now();
        self.waits = self.waits.wrapping_add(1);
        let probe = self.policy.adaptive && self.waits.is_multiple_of(PROBE_EVERY);
        let budget = if probe { self.policy.spin } else { self.budget };
        let pure = PURE_SPIN.min(budget);
        let mut looks = 0u32;
        let mut yielding = false;
        // The wait so far as of the last reading of the clock.
        let mut elapsed = Duration::ZERO;
        loop {
            // Decided before the look, so that the last look comes after the budget ran out:
            // a pause that overran it (a preemption) must not turn a wait that has already
            // ended into a park.
            let mut expired = false;
            if yielding || looks % LOOKS_PER_CLOCK == LOOKS_PER_CLOCK - 1 {
                elapsed = start.elapsed();
                expired = elapsed >= budget && (elapsed >= *allowance || !busy(ctx));
                yielding = elapsed >= pure;
            }
            if let Some(v) = ready(ctx)? {
                // The last reading, not a new one: the clock would cost the caller 40 ns
                // between the record's arrival and its use. The budget only needs to know
                // roughly how long waits take: this is up to `LOOKS_PER_CLOCK` looks short
                // (zero within the first of them), and a success never shrinks the budget.
                *allowance = allowance.saturating_sub(elapsed);
                self.adapt(Some(elapsed.min(budget)));
                return Ok(Some(v));
            }
            if expired {
                *allowance = allowance.saturating_sub(elapsed);
                self.adapt(None);
                return Ok(None);
            }
            if yielding {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            looks = looks.wrapping_add(1);
        }
    }

    /// Adapts the budget to a wait that ended at its first look, taken by the caller.
    #[inline(always)]
    pub(crate) fn ended_at_once(&mut self) {
        self.adapt(Some(Duration::ZERO));
    }

    /// Adapts the budget to a wait that spinning ended after `needed`, or that had to park.
    #[inline(always)]
    fn adapt(&mut self, needed: Option<Duration>) {
        if !self.policy.adaptive {
            return;
        }
        self.budget = match needed {
            // A probe that succeeded late lifts the budget to twice what it took.
            Some(needed) => (self.budget * 2).max(needed * 2).min(self.policy.spin),
            None => (self.budget / 2).max(self.policy.spin / 64),
        };
    }
}

/// Keeps the CPU, without looking at anything shared, for `duration`.
pub(crate) fn pause(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        for _ in 0..LOOKS_PER_CLOCK {
            std::hint::spin_loop();
        }
    }
}

/// Datagrams a bell takes from its queue per wake-up: more than the kernel queues on it
/// (`net.unix.max_dgram_qlen`, 10 by default), so one drain empties it; a peer ringing faster
/// than we drain costs us spurious wake-ups, not an unbounded loop.
const DRAIN_LIMIT: usize = 64;

/// A datagram socket this side sleeps on; the peer rings it through the other end of its pair.
///
/// Not an eventfd: a descriptor passed with `SCM_RIGHTS` shares its open file description,
/// and with it the `O_NONBLOCK` flag, with the peer. A hostile peer can clear that flag at
/// any time; an eventfd then blocks our write once the peer has filled its counter, and our
/// read once the peer has drained it, with nothing to wake us. A socket takes
/// `MSG_DONTWAIT` per call, which no flag of the peer's can override.
#[derive(Debug)]
pub(crate) struct Bell {
    fd: OwnedFd,
}

impl Bell {
    /// A new bell, and the end of its pair to hand to the peer (our only copy of it: once it
    /// is sent and dropped, only the peer can ring).
    pub(crate) fn new() -> Result<(Bell, OwnedFd), Error> {
        let (fd, peer_end) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok((Bell { fd }, peer_end))
    }

    /// Empties the queue after a wake-up.
    fn clear(&self) {
        let mut byte = [0u8; 1];
        for _ in 0..DRAIN_LIMIT {
            // Longer datagrams are truncated and dropped whole; EAGAIN means the queue is
            // empty. Never blocks, whatever the peer did to its end.
            if recv(self.fd.as_raw_fd(), &mut byte, MsgFlags::MSG_DONTWAIT).is_err() {
                break;
            }
        }
    }
}

/// The peer's bell: the end of its socket pair it sent us, which this side rings to wake it.
#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// Takes a descriptor the peer sent, which must be one end of a datagram socket pair:
    /// not a socket connected to a named one elsewhere (`/dev/log`, say), which our ringing
    /// would send datagrams to, carrying our credentials.
    pub(crate) fn from_peer(fd: OwnedFd) -> Result<Doorbell, Error> {
        let datagram = matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::Datagram));
        // A unix socket whose peer has no name (the address of another family fails).
        let paired = getpeername::<UnixAddr>(fd.as_raw_fd()).is_ok_and(|peer| peer.is_unnamed());
        if datagram && paired {
            Ok(Doorbell { fd })
        } else {
            Err(ProtocolError::NotADoorbell.into())
        }
    }

    #[cfg(test)]
    pub(crate) fn pair() -> Result<(Bell, Doorbell), Error> {
        let (bell, peer_end) = Bell::new()?;
        Ok((bell, Doorbell::from_peer(peer_end)?))
    }

    /// Wakes the peer. Never blocks (`MSG_DONTWAIT`, whatever the descriptor's flags), and
    /// failures are ignored: a full queue already means "wake up", and a peer whose bell is
    /// broken only fails to wake itself; its death shows up as a hang-up of the connection.
    pub(crate) fn ring(&self) {
        let _ = send(
            self.fd.as_raw_fd(),
            &[1],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }
}

/// The connection socket, watched while parked: when the peer dies the kernel hangs it up.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    socket: Arc<OwnedFd>,
}

/// What ended a park.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The doorbell rang (or the wait was cut short): look again.
    Rung,
    /// The peer hung up the connection.
    PeerGone,
}

impl Liveness {
    pub(crate) fn new(socket: Arc<OwnedFd>) -> Liveness {
        Liveness { socket }
    }

    /// The connection socket itself (the call layer shuts it down to hang up).
    pub(crate) fn socket(&self) -> &Arc<OwnedFd> {
        &self.socket
    }

    /// Whether the peer has closed the connection, without blocking. Data on the socket is a
    /// protocol error: the shared-memory transport sends nothing there after the handshake.
    pub(crate) fn check(&self) -> Result<bool, Error> {
        let mut byte = [0u8; 1];
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        match nix::sys::socket::recv(self.socket.as_raw_fd(), &mut byte, flags) {
            Ok(0) => Ok(true),
            Ok(_) => Err(ProtocolError::UnexpectedSocketData.into()),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(false),
            Err(Errno::ECONNRESET) | Err(Errno::EPIPE) | Err(Errno::ENOTCONN) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Sleeps until `bell` rings or the peer hangs up.
///
/// The caller must already have raised its parked flag and re-checked for progress after a
/// `SeqCst` fence (see `ring::Producer::wait_space`): that order is what makes a missed
/// wake-up impossible.
pub(crate) fn park(bell: &Bell, liveness: &Liveness) -> Result<Wake, Error> {
    loop {
        let mut fds = [
            PollFd::new(bell.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(liveness.fd(), PollFlags::POLLIN | PollFlags::POLLPRI),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let rung = fds[0].revents().is_some_and(|r| !r.is_empty());
        let sock = fds[1].revents().unwrap_or(PollFlags::empty());
        if rung {
            bell.clear();
        }
        if sock.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return Ok(Wake::PeerGone);
        }
        if sock.contains(PollFlags::POLLIN) && liveness.check()? {
            return Ok(Wake::PeerGone);
        }
        if sock.intersects(PollFlags::POLLIN | PollFlags::POLLPRI) {
            // Readable, yet a peek finds no byte: out-of-band data, which connection sockets
            // take inline (`sys::inline_out_of_band`), unless the peer found a way around
            // that. Polling again would return at once, for ever.
            return Err(ProtocolError::UnexpectedSocketData.into());
        }
        if rung {
            return Ok(Wake::Rung);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinner_gives_up_after_budget_and_adapts() {
        let mut s = Spinner::new(WaitPolicy::spin_for(Duration::from_micros(200)));
        let r: Option<()> = s.spin(|| Ok(None)).unwrap();
        assert!(r.is_none());
        assert_eq!(
            s.budget,
            Duration::from_micros(100),
            "a failed spin halves the budget"
        );
        let mut n = 0;
        let r = s
            .spin(|| {
                n += 1;
                Ok((n == 3).then_some(7))
            })
            .unwrap();
        assert_eq!(r, Some(7));
        assert_eq!(
            s.budget,
            Duration::from_micros(200),
            "a successful spin doubles it back"
        );
    }

    #[test]
    fn a_collapsed_budget_recovers_through_probes() {
        let window = Duration::from_micros(400);
        let mut s = Spinner::new(WaitPolicy::spin_for(window));
        for _ in 0..(PROBE_EVERY - 1) {
            let r: Option<()> = s.spin(|| Ok(None)).unwrap();
            assert!(r.is_none());
        }
        assert_eq!(
            s.budget,
            window / 64,
            "long gaps shrink the budget to its floor"
        );
        // Now every wait ends after 20 µs: longer than the collapsed budget, so only the probe
        // (the 16th wait) can catch one by spinning; from then on the budget covers them.
        // Deterministic whatever the scheduler does: a spin gives up only after one last look
        // taken past its budget, and every budget here is past the 20 µs gap by then.
        let mut caught = 0;
        for _ in 0..(2 * PROBE_EVERY) {
            let begun = Instant::now();
            let gap = Duration::from_micros(20);
            if s.spin(|| Ok((begun.elapsed() >= gap).then_some(())))
                .unwrap()
                .is_some()
            {
                caught += 1;
            }
        }
        assert!(
            s.budget >= Duration::from_micros(40),
            "budget {:?} did not recover",
            s.budget
        );
        assert!(
            caught > PROBE_EVERY,
            "only {caught} waits were caught by spinning"
        );
    }

    /// A wait whose budget is spent goes on while the peer says it is busy, until it has
    /// lasted the allowance, which it uses up; when the peer is not busy it ends at the
    /// budget, having asked once.
    #[test]
    fn a_busy_peer_keeps_the_waiter_spinning_past_its_budget() {
        let mut s = Spinner::new(WaitPolicy::spin_for(Duration::from_micros(20)));
        // An idle peer: asked once, when the budget is spent, and the wait ends there. (With
        // an allowance of an hour: a wait preempted past `BUSY_SPIN` would not ask at all.)
        let mut asked = 0;
        let mut allowance = Duration::from_secs(3600);
        let idle: Option<()> = s
            .spin_with(
                &mut asked,
                |_| Ok(None),
                |asked| {
                    *asked += 1;
                    false
                },
                &mut allowance,
            )
            .unwrap();
        assert_eq!(
            (idle, asked),
            (None, 1),
            "an idle peer's wait ends at the budget"
        );
        assert_eq!(s.budget, Duration::from_micros(10), "and halves it");
        // A busy peer whose record comes 15 budgets late is waited for (within an allowance
        // no preemption of this test outlasts).
        let begun = Instant::now();
        let late = |_: &mut ()| Ok((begun.elapsed() >= Duration::from_micros(300)).then_some(()));
        let hour = Duration::from_secs(3600);
        let mut allowance = hour;
        let busy = s
            .spin_with(&mut (), late, |()| true, &mut allowance)
            .unwrap();
        assert_eq!(busy, Some(()));
        // Used up by the wait as of its last reading of the clock: by something, and by no
        // more than the wait lasted. (Not by nearly 300 µs: a wait preempted right after a
        // reading finds the record at its next look without reading the clock again.)
        let used = hour - allowance;
        assert!(!used.is_zero() && used <= begun.elapsed(), "{used:?} used");
        assert_eq!(
            s.budget,
            Duration::from_micros(20),
            "as a wait spinning ended: doubled"
        );
        // A peer busy for ever is given up on after the allowance, which is then spent: a
        // second wait in the same allowance (after a wake-up) ends at the budget.
        let mut allowance = BUSY_SPIN;
        let begun = Instant::now();
        let forever: Option<()> = s
            .spin_with(&mut (), |()| Ok(None), |()| true, &mut allowance)
            .unwrap();
        assert_eq!(forever, None);
        assert!(begun.elapsed() >= BUSY_SPIN, "not before BUSY_SPIN");
        assert_eq!(allowance, Duration::ZERO);
        let mut asked = 0;
        let again: Option<()> = s
            .spin_with(
                &mut asked,
                |_| Ok(None),
                |asked| {
                    *asked += 1;
                    true
                },
                &mut allowance,
            )
            .unwrap();
        assert_eq!(
            (again, asked),
            (None, 0),
            "no allowance left: the peer is not even asked"
        );
    }

    #[test]
    fn park_wakes_on_ring_and_on_hangup() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let live = Liveness::new(Arc::new(OwnedFd::from(a)));
        let (bell, door) = Doorbell::pair().unwrap();
        door.ring();
        assert_eq!(park(&bell, &live).unwrap(), Wake::Rung);
        let t = std::thread::spawn(move || park(&bell, &live).unwrap());
        drop(b);
        assert_eq!(t.join().unwrap(), Wake::PeerGone);
    }

    #[test]
    #[cfg(not(loom))]
    fn an_out_of_band_byte_on_the_liveness_socket_is_a_protocol_error_not_a_busy_loop() {
        for inline in [false, true] {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            if inline {
                crate::sys::inline_out_of_band(a.as_fd()).unwrap();
            }
            let live = Liveness::new(Arc::new(OwnedFd::from(a)));
            let (bell, _door) = Doorbell::pair().unwrap();
            match send(b.as_raw_fd(), b"!", MsgFlags::MSG_OOB) {
                // Unix sockets carry out-of-band data from Linux 5.15 on.
                Err(Errno::EOPNOTSUPP) => return,
                sent => assert_eq!(sent, Ok(1)),
            }
            // Before the fix, `park` polled a socket that stayed readable with nothing to
            // peek (without inline out-of-band data), and never returned.
            let (done, parked) = std::sync::mpsc::channel();
            std::thread::spawn(move || done.send(park(&bell, &live)));
            let woke = parked
                .recv_timeout(Duration::from_secs(20))
                .expect("park kept polling a socket with an out-of-band byte");
            assert!(
                matches!(
                    woke,
                    Err(Error::Protocol(ProtocolError::UnexpectedSocketData))
                ),
                "inline: {inline}, woke: {woke:?}"
            );
        }
    }

    #[test]
    fn only_one_end_of_a_datagram_socket_pair_is_a_doorbell() {
        use std::os::unix::net::{UnixDatagram, UnixStream};
        let dir = std::env::temp_dir().join(format!("ipc-shm-doorbell-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let named = UnixDatagram::bind(dir.join("log")).unwrap();
        let to_named = UnixDatagram::unbound().unwrap();
        to_named.connect(dir.join("log")).unwrap();
        let unconnected = UnixDatagram::unbound().unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(udp.local_addr().unwrap()).unwrap();
        let stream = UnixStream::pair().unwrap().0;
        for (what, fd) in [
            ("connected to a named socket", OwnedFd::from(to_named)),
            ("unconnected", OwnedFd::from(unconnected)),
            ("not a unix socket", OwnedFd::from(udp)),
            ("a stream", OwnedFd::from(stream)),
        ] {
            assert!(
                matches!(
                    Doorbell::from_peer(fd),
                    Err(Error::Protocol(ProtocolError::NotADoorbell))
                ),
                "{what}"
            );
        }
        let (_bell, peer_end) = Bell::new().unwrap();
        assert!(Doorbell::from_peer(peer_end).is_ok());
        drop(named);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn data_on_the_liveness_socket_is_a_protocol_error() {
        use std::io::Write;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let live = Liveness::new(Arc::new(OwnedFd::from(a)));
        b.write_all(b"x").unwrap();
        assert!(matches!(
            live.check(),
            Err(Error::Protocol(ProtocolError::UnexpectedSocketData))
        ));
    }
}
