//! The baseline: the payload over a plain unix socketpair, with blocking reads and writes.
//!
//! Each message is a 4-byte little-endian length and the payload, written with one `write`;
//! the peer reads it through a buffer (one `read` for small messages) and writes the payload
//! back with one `write`.

use std::io::{BufReader, Read, Write, stdin};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::Context;

use crate::peer::{HANG_LIMIT, Peer};

/// The peer role that echoes over the socket.
pub const ROLE: &str = "unix_socketpair";

/// The client end.
#[derive(Debug)]
pub struct SocketPair {
    stream: UnixStream,
    frame: Vec<u8>,
    reply: Vec<u8>,
    _peer: Peer,
}

impl SocketPair {
    /// Makes a socketpair and starts a peer with one end as its standard input.
    pub fn spawn() -> anyhow::Result<SocketPair> {
        let (ours, theirs) = UnixStream::pair()?;
        // A hung peer fails the benchmark instead of hanging it.
        ours.set_read_timeout(Some(HANG_LIMIT))?;
        let peer = Peer::spawn(ROLE, &[], OwnedFd::from(theirs))?;
        Ok(SocketPair {
            stream: ours,
            frame: Vec::new(),
            reply: Vec::new(),
            _peer: peer,
        })
    }

    /// Sends `payload` and reads the echo.
    #[inline]
    pub fn round_trip(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let len = u32::try_from(payload.len()).context("payload too large")?;
        self.frame.clear();
        self.frame.extend_from_slice(&len.to_le_bytes());
        self.frame.extend_from_slice(payload);
        self.stream
            .write_all(&self.frame)
            .context("write to the peer")?;
        self.reply.resize(payload.len(), 0);
        self.stream
            .read_exact(&mut self.reply)
            .context("read the echo")?;
        Ok(())
    }
}

/// The peer: echoes each message's payload until the client closes the socket.
pub(crate) fn serve() -> anyhow::Result<()> {
    let fd = stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("take the socket from stdin")?;
    let mut writer = UnixStream::from(fd);
    let mut reader = BufReader::with_capacity(64 << 10, writer.try_clone()?);
    let mut payload = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e).context("read a message header"),
        }
        let len = u32::from_le_bytes(len) as usize;
        anyhow::ensure!(
            len <= 64 << 20,
            "message of {len} bytes is beyond any benchmark"
        );
        payload.resize(len, 0);
        reader.read_exact(&mut payload).context("read a payload")?;
        writer.write_all(&payload).context("write the echo")?;
    }
}
