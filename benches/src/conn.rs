//! Round trips and streams over an [`ipc_shm::Connection`], on either transport.
//!
//! The peer is started with [`ipc_shm::spawn`] (the bench binary itself, with `-ipcfd=N`)
//! and plays one of two modes: `echo` forwards every record back; `sink` drains records in
//! batches and, on a one-byte end marker, answers with the count it saw.

use std::time::Duration;

use anyhow::{Context, bail};
use ipc_shm::wait::WaitPolicy;
use ipc_shm::{Config, Connection, Error, Receiver, Sender, SpawnedChild, Transport};

use crate::peer::{PEER_ARG, arg};

/// The peer role served over a connection.
pub const ROLE: &str = "connection";

/// A record of this length ends a stream: records of a stream are never this short.
const END_MARKER: [u8; 1] = [0xee];

/// What the peer does with records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send every record back.
    Echo,
    /// Count records until the end marker, then send the count.
    Sink,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Sink => "sink",
        }
    }
}

/// How to set a connection up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Shared memory or the socket.
    pub transport: Transport,
    /// Bytes of each ring; the longest record is half of it.
    pub ring_capacity: usize,
    /// How long a waiter spins before it parks, on both sides.
    pub spin: Duration,
    /// What the peer does.
    pub mode: Mode,
}

impl Setup {
    /// Defaults: 4 MiB rings (records of up to 2 MiB), the default spin window.
    pub fn new(transport: Transport, mode: Mode) -> Setup {
        Setup {
            transport,
            ring_capacity: 4 << 20,
            spin: WaitPolicy::default().spin,
            mode,
        }
    }

    fn config(&self, name: &str) -> Config {
        let mut config = Config::new(name);
        config.transport = self.transport;
        config.ring_capacity = self.ring_capacity;
        config.wait = WaitPolicy::spin_for(self.spin);
        config
    }
}

/// The client end of a connection to a spawned peer.
#[derive(Debug)]
pub struct Client {
    sender: Sender,
    receiver: Receiver,
    reply: Vec<u8>,
    // Dropped after the ends: the peer sees the connection close, exits, and is reaped.
    child: SpawnedChild,
}

impl Client {
    /// Starts a peer and connects to it.
    pub fn spawn(setup: Setup) -> anyhow::Result<Client> {
        let (child, connection) = spawn(ROLE, setup, &[])?;
        let (sender, receiver) = connection.split();
        Ok(Client {
            sender,
            receiver,
            reply: Vec::new(),
            child,
        })
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> u32 {
        self.child.pid()
    }

    /// Sends `payload` and copies the echo out (peer in [`Mode::Echo`]).
    #[inline]
    pub fn round_trip(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.sender.send_bytes(payload).context("send")?;
        let grant = self.receiver.recv().context("receive the echo")?;
        self.reply.resize(grant.len(), 0);
        let copied = grant.read_at(0, &mut self.reply);
        debug_assert!(copied);
        // The room goes back when we next wait, not on the way to the next request.
        grant.release_lazily();
        Ok(())
    }

    /// Sends `count` copies of `record` one way, `batch` at a time (1: `send_bytes`, more:
    /// `send_batch`), then waits until the peer (in [`Mode::Sink`]) confirms that it has
    /// drained them all.
    pub fn stream(&mut self, record: &[u8], count: u64, batch: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            record.len() > END_MARKER.len(),
            "stream records must be longer than the end marker"
        );
        if batch <= 1 {
            for _ in 0..count {
                self.sender.send_bytes(record).context("send")?;
            }
        } else {
            let mut left = count;
            while left > 0 {
                let n = left.min(batch);
                self.sender
                    .send_batch(std::iter::repeat_n(record, n as usize))
                    .context("send a batch")?;
                left -= n;
            }
        }
        self.sender
            .send_bytes(&END_MARKER)
            .context("send the end marker")?;
        let seen: u64 = self.receiver.recv_obj().context("receive the count")?;
        anyhow::ensure!(seen == count, "the peer drained {seen} records of {count}");
        Ok(())
    }
}

/// The peer: accepts the connection on `-ipcfd=N` and serves in its `--mode` until the
/// client closes it.
pub(crate) fn serve() -> anyhow::Result<()> {
    let mode = match arg("mode").as_deref() {
        Some("echo") => Mode::Echo,
        Some("sink") => Mode::Sink,
        other => bail!("bad --mode {other:?}"),
    };
    let connection = accept(mode)?;
    let (mut sender, mut receiver) = connection.split();
    let served = match mode {
        Mode::Echo => echo(&mut sender, &mut receiver),
        Mode::Sink => sink(&mut sender, &mut receiver),
    };
    match served {
        Err(Error::Disconnected) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(never) => match never {},
    }
}

/// The peer's side of [`spawn`]: accepts the connection on `-ipcfd=N` with the ring
/// capacity and spin window the client passed.
pub(crate) fn accept(mode: Mode) -> anyhow::Result<Connection> {
    let fd: i32 = std::env::args()
        .find_map(|a| a.strip_prefix("-ipcfd=").map(str::to_owned))
        .context("no -ipcfd argument")?
        .parse()
        .context("bad -ipcfd")?;
    let ring_capacity = arg("ring-capacity")
        .context("no --ring-capacity")?
        .parse()?;
    let spin = Duration::from_nanos(arg("spin-ns").context("no --spin-ns")?.parse()?);
    // The transport is the initiator's choice; the rest must match for the rings to agree.
    let setup = Setup {
        transport: Transport::Shm,
        ring_capacity,
        spin,
        mode,
    };
    Ok(ipc_shm::accept_ipcfd(fd, &setup.config("bench-peer"))?)
}

/// Starts the bench binary as the peer `role` (with `extra` arguments of its own) and
/// connects to it as `setup` says.
pub(crate) fn spawn(
    role: &str,
    setup: Setup,
    extra: &[String],
) -> anyhow::Result<(SpawnedChild, Connection)> {
    let exe = std::env::current_exe().context("find the bench executable")?;
    let args = [
        format!("{PEER_ARG}{role}"),
        format!("--mode={}", setup.mode.as_str()),
        format!("--ring-capacity={}", setup.ring_capacity),
        format!("--spin-ns={}", setup.spin.as_nanos()),
    ];
    ipc_shm::spawn(
        &exe,
        args.iter().chain(extra),
        &setup.config("bench-client"),
    )
    .with_context(|| format!("spawn a {} peer", setup.transport))
}

/// Answers each record with a copy of it, made straight from the record received into the
/// one sent (ring to ring over shared memory; from the receive buffer over the socket), as
/// iceoryx2's server answers from the request it was lent.
fn echo(sender: &mut Sender, receiver: &mut Receiver) -> Result<std::convert::Infallible, Error> {
    loop {
        let grant = receiver.recv()?;
        sender.forward(&grant)?;
        grant.release_lazily();
    }
}

fn sink(sender: &mut Sender, receiver: &mut Receiver) -> Result<std::convert::Infallible, Error> {
    let mut seen = 0u64;
    loop {
        let mut ended = false;
        receiver.recv_batch(usize::MAX, |grant| {
            if grant.len() == END_MARKER.len() {
                ended = true;
            } else {
                seen += 1;
            }
        })?;
        if ended {
            sender.send(&seen)?;
            seen = 0;
        }
    }
}
