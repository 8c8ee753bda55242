//! A spawned child's stderr, captured while the handshake runs and forwarded afterwards
//! (see [`SpawnOptions::capture_stderr`](super::SpawnOptions::capture_stderr)).
//!
//! The child's descriptor 2 is the write end of a pipe whose read end only a thread of ours
//! holds. The thread reads until end of file, always, so the child never blocks on a full
//! pipe. Until the handshake ends it keeps what it reads (the last
//! [`STDERR_CAPTURE_LIMIT`] bytes; older ones are passed on to our stderr as they are pushed
//! out). Once the handshake has succeeded, what it kept and everything after goes to our
//! stderr, in order; if the handshake failed, the caller takes what was kept.

use std::io::{self, PipeReader, Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The most of a spawned child's stderr kept while the handshake runs: the end of what it
/// wrote, where a process that fails at start says why.
pub const STDERR_CAPTURE_LIMIT: usize = 64 * 1024;

/// How long, once the child has been reaped, its stderr is given to reach end of file, so that
/// its last words are passed on before the caller goes on (and perhaps exits). Longer only
/// when something the child started still holds the pipe.
pub(super) const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// What the reader does with the bytes it reads.
#[derive(Debug)]
enum Mode {
    /// Keeps them (the handshake is running).
    Capture(Vec<u8>),
    /// Writes them to our stderr.
    Forward,
}

/// The read end of a child's stderr, being read by a thread.
#[derive(Debug)]
pub(super) struct StderrPipe {
    mode: Arc<Mutex<Mode>>,
    /// Disconnected once the reader has reached end of file and closed the read end.
    done: mpsc::Receiver<()>,
}

impl StderrPipe {
    /// Starts the thread that reads `reader`. It ends at end of file: when the child, and
    /// whatever inherited its stderr, have all closed the write end.
    pub(super) fn start(reader: PipeReader) -> io::Result<StderrPipe> {
        let mode = Arc::new(Mutex::new(Mode::Capture(Vec::new())));
        let (finished, done) = mpsc::channel::<()>();
        let shared = Arc::clone(&mode);
        std::thread::Builder::new()
            .name("ipc-shm-stderr".into())
            .spawn(move || {
                pump(reader, &shared);
                // `pump` has closed the read end: a caller that saw `done` disconnect
                // finds no descriptor of ours left.
                drop(finished);
            })?;
        Ok(StderrPipe { mode, done })
    }

    /// The handshake succeeded: what was kept goes to our stderr now, and so does everything
    /// the child writes from now on.
    pub(super) fn forward(&self) {
        let mut mode = lock(&self.mode);
        if let Mode::Capture(kept) = &*mode {
            write_stderr(kept);
        }
        *mode = Mode::Forward;
    }

    /// The handshake failed and the child has exited: waits at most `grace` for end of file,
    /// then returns what was kept. Anything read later (from a process the child started) is
    /// forwarded.
    pub(super) fn take(self, grace: Duration) -> Vec<u8> {
        self.drain(grace);
        match std::mem::replace(&mut *lock(&self.mode), Mode::Forward) {
            Mode::Capture(kept) => kept,
            Mode::Forward => Vec::new(),
        }
    }

    /// Waits at most `grace` for the reader to reach end of file, having passed everything on.
    /// True if it did.
    pub(super) fn drain(&self, grace: Duration) -> bool {
        matches!(
            self.done.recv_timeout(grace),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

/// Reads `reader` to end of file, keeping or forwarding as `mode` says.
fn pump(mut reader: PipeReader, mode: &Mutex<Mode>) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Not expected of a pipe; stopping closes the read end, so a child writing more
            // gets EPIPE instead of blocking.
            Err(e) => {
                tracing::warn!("cannot read the stderr of a spawned child: {e}");
                break;
            }
        };
        // Bytes are written while the lock is held, so `forward` cannot put what was kept
        // after bytes that followed it.
        let mut mode = lock(mode);
        match &mut *mode {
            Mode::Capture(kept) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_CAPTURE_LIMIT {
                    let excess = kept.len() - STDERR_CAPTURE_LIMIT;
                    write_stderr(&kept[..excess]);
                    kept.drain(..excess);
                }
            }
            Mode::Forward => write_stderr(&buf[..n]),
        }
    }
}

/// A poisoned lock only means a writer panicked; the mode it guards is always whole.
fn lock(mode: &Mutex<Mode>) -> MutexGuard<'_, Mode> {
    mode.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `bytes` to our stderr. A stderr that cannot be written to loses them, as it would
/// have lost the child's own writes; the reader goes on draining the pipe all the same.
pub(super) fn write_stderr(bytes: &[u8]) {
    if !bytes.is_empty() {
        let _ = io::stderr().lock().write_all(bytes);
    }
}
