//! The socket transport: the records of a ring, framed over the connection socket itself.
//!
//! A frame is an 8-byte header — payload length (`u32` LE), flags (`u32` LE, always 0) —
//! followed by the payload, with no padding. A payload is at most as long as the longest
//! record of a shared-memory ring of the agreed capacity, so both transports carry the same
//! records. It exists as a baseline for benchmarks and as a fallback; it offers the same
//! interface as the rings.
//!
//! The sender assembles a record in a buffer it owns and writes it, after its header, with
//! one vectored `sendmsg` when the record is committed (`send_bytes` skips the buffer). The receiver reads as much as the socket holds into a buffer it
//! owns and hands out frames from it, so a stream of small records costs few system calls.
//! Neither buffer grows beyond one frame of the largest allowed size.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, UnixAddr, recv, sendmsg};

use crate::error::{Error, ProtocolError};
use crate::ring::{RECORD_HEADER_LEN, max_record_len};
use crate::sys::socket_error;

/// Bytes the receiver asks the kernel for at once when frames are small.
const READ_CHUNK: usize = 64 * 1024;

/// Waits until `sock` is ready for `events` (for a socket left non-blocking by its creator).
fn wait(sock: &OwnedFd, events: PollFlags) -> Result<(), Errno> {
    let mut fds = [PollFd::new(sock.as_fd(), events)];
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The sending half of a socket connection.
#[derive(Debug)]
pub(crate) struct FrameSender {
    sock: Arc<OwnedFd>,
    /// The payload being assembled.
    buf: Vec<u8>,
    max: usize,
    /// Set when a send failed: every later reservation fails the same way, as on a ring
    /// whose consumer has gone.
    failed: Option<Errno>,
}

impl FrameSender {
    /// Frames records of at most `max_record_len(capacity)` bytes onto `sock`.
    pub(crate) fn new(sock: Arc<OwnedFd>, capacity: usize) -> Self {
        FrameSender {
            sock,
            buf: Vec::new(),
            max: max_record_len(capacity),
            failed: None,
        }
    }

    pub(crate) fn max_record_len(&self) -> usize {
        self.max
    }

    /// Starts a frame with room for `len` payload bytes. Never waits: the wait, if any,
    /// happens when the frame is written at commit.
    pub(crate) fn reserve(&mut self, len: usize) -> Result<FrameGrant<'_>, Error> {
        self.check(len)?;
        self.buf.resize(len, 0);
        Ok(FrameGrant {
            sender: self,
            len,
            cursor: 0,
        })
    }

    /// Sends `bytes` as one frame, straight from the caller's slice.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check(bytes.len())?;
        self.failed = write_frame(&self.sock, bytes).err();
        Ok(())
    }

    fn check(&self, len: usize) -> Result<(), Error> {
        if len > self.max {
            return Err(Error::TooLarge { len, max: self.max });
        }
        match self.failed {
            Some(e) => Err(socket_error(e)),
            None => Ok(()),
        }
    }

    /// Like [`Self::reserve`], but `None` when the socket cannot take more bytes now.
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<FrameGrant<'_>>, Error> {
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLOUT)];
        let writable = poll(&mut fds, PollTimeout::ZERO)? > 0;
        if !writable && self.failed.is_none() {
            return Ok(None);
        }
        self.reserve(len).map(Some)
    }
}

/// Writes one frame: its header, then `payload`, with as few system calls as the socket
/// allows (one, unless the socket buffer fills up).
fn write_frame(sock: &OwnedFd, payload: &[u8]) -> Result<(), Errno> {
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let total = RECORD_HEADER_LEN + payload.len();
    let mut done = 0;
    while done < total {
        let (head, body) = match done.checked_sub(RECORD_HEADER_LEN) {
            None => (&header[done..], payload),
            Some(into_payload) => (&[][..], &payload[into_payload..]),
        };
        let iov = [IoSlice::new(head), IoSlice::new(body)];
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(sock, PollFlags::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A frame being written. Mirrors [`crate::ring::WriteGrant`].
#[derive(Debug)]
pub(crate) struct FrameGrant<'a> {
    sender: &'a mut FrameSender,
    len: usize,
    cursor: usize,
}

impl FrameGrant<'_> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        crate::mem::copy_slice(self.slice_mut(offset, bytes.len()), bytes);
    }

    /// The `len` bytes at `offset` of the frame, to be written in place (a record forwarded
    /// from a ring is copied straight in). Panics as [`Self::write_at`] does when they are
    /// not inside it.
    pub(crate) fn slice_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(
            offset <= self.len && len <= self.len - offset,
            "write of {len} bytes at {offset} into a {}-byte record",
            self.len
        );
        &mut self.sender.buf[offset..offset + len]
    }

    /// Writes the frame with the first `len` bytes as payload. A failure (the peer has gone)
    /// is reported by the next reservation, as with a ring.
    pub(crate) fn commit_len(self, len: usize) {
        assert!(
            len <= self.len,
            "committed {len} bytes of a {}-byte reservation",
            self.len
        );
        let sender = self.sender;
        sender.failed = write_frame(&sender.sock, &sender.buf[..len]).err();
    }

    pub(crate) fn position(&self) -> usize {
        self.cursor
    }
}

impl<'a> FrameGrant<'a> {
    /// Writes the whole frame, then reserves the next one.
    pub(crate) fn commit_then_reserve(self, len: usize) -> Result<FrameGrant<'a>, Error> {
        let FrameGrant {
            sender, len: used, ..
        } = self;
        sender.failed = write_frame(&sender.sock, &sender.buf[..used]).err();
        sender.reserve(len)
    }
}

impl io::Write for FrameGrant<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len - self.cursor);
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let at = self.cursor;
        self.write_at(at, &buf[..n]);
        self.cursor += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How hard [`FrameReceiver::next`] tries to get a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Wait until a whole frame has arrived.
    Wait,
    /// Read what the socket holds now, without waiting.
    NoWait,
    /// Only what is already buffered: no system call.
    Buffered,
}

/// The receiving half of a socket connection.
#[derive(Debug)]
pub(crate) struct FrameReceiver {
    sock: Arc<OwnedFd>,
    /// `buf[start..end]` holds received bytes not yet handed out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    /// The peer closed the stream; what is buffered is still delivered.
    eof: bool,
}

/// Where a frame's payload sits in the receive buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    payload: usize,
    len: usize,
}

impl FrameReceiver {
    pub(crate) fn new(sock: Arc<OwnedFd>, capacity: usize) -> Self {
        let max = max_record_len(capacity);
        let size = READ_CHUNK.min(RECORD_HEADER_LEN + max);
        FrameReceiver {
            sock,
            buf: vec![0; size],
            start: 0,
            end: 0,
            max,
            eof: false,
        }
    }

    pub(crate) fn max_record_len(&self) -> usize {
        self.max
    }

    /// The next complete frame, validated. `None` only for [`Fetch::NoWait`] and
    /// [`Fetch::Buffered`] when no whole frame is there yet.
    pub(crate) fn next(&mut self, fetch: Fetch) -> Result<Option<Frame>, Error> {
        loop {
            let buffered = self.end - self.start;
            let mut need = RECORD_HEADER_LEN;
            if buffered >= RECORD_HEADER_LEN {
                let header = &self.buf[self.start..self.start + RECORD_HEADER_LEN];
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                if flags != 0 {
                    return Err(ProtocolError::BadFrame {
                        reason: "unknown flags in frame header",
                    }
                    .into());
                }
                if len > self.max {
                    return Err(ProtocolError::BadFrame {
                        reason: "frame longer than the record limit",
                    }
                    .into());
                }
                need = RECORD_HEADER_LEN + len;
                if buffered >= need {
                    return Ok(Some(Frame {
                        payload: self.start + RECORD_HEADER_LEN,
                        len,
                    }));
                }
            }
            if fetch == Fetch::Buffered {
                return Ok(None);
            }
            if self.eof {
                return Err(Error::Disconnected);
            }
            self.make_room(need);
            if !self.fill(fetch == Fetch::Wait)? {
                return Ok(None);
            }
        }
    }

    /// Waits for the next complete frame.
    pub(crate) fn recv(&mut self) -> Result<Frame, Error> {
        loop {
            if let Some(frame) = self.next(Fetch::Wait)? {
                return Ok(frame);
            }
        }
    }

    /// Ensures `buf[start..]` can hold `need` bytes: moves the buffered bytes to the front,
    /// and grows the buffer for a frame larger than it (at most one largest frame).
    fn make_room(&mut self, need: usize) {
        if self.start + need <= self.buf.len() {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if need > self.buf.len() {
            debug_assert!(need <= RECORD_HEADER_LEN + self.max);
            self.buf.resize(need, 0);
        }
    }

    /// Reads what the socket holds into the free tail. Returns whether anything arrived.
    fn fill(&mut self, block: bool) -> Result<bool, Error> {
        let flags = if block {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        loop {
            match recv(self.sock.as_raw_fd(), &mut self.buf[self.end..], flags) {
                Ok(0) => {
                    // A frame cut short by the end of the stream means the peer died while
                    // writing it: a disconnection, not a malformed frame.
                    self.eof = true;
                    return Err(Error::Disconnected);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) if !block => return Ok(false),
                Err(Errno::EAGAIN) => wait(&self.sock, PollFlags::POLLIN).map_err(Error::from)?,
                Err(e) => return Err(socket_error(e)),
            }
        }
    }

    /// Hands out the frame's payload bytes.
    pub(crate) fn payload(&self, frame: Frame) -> &[u8] {
        &self.buf[frame.payload..frame.payload + frame.len]
    }

    /// Consumes a frame handed out by [`Self::next`].
    pub(crate) fn release(&mut self, frame: Frame) {
        self.start = frame.payload + frame.len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// A received frame. Mirrors [`crate::ring::ReadGrant`]; dropping it consumes the frame.
#[derive(Debug)]
pub(crate) struct FrameView<'a> {
    receiver: &'a mut FrameReceiver,
    frame: Frame,
    cursor: usize,
}

impl<'a> FrameView<'a> {
    pub(crate) fn new(receiver: &'a mut FrameReceiver, frame: Frame) -> Self {
        FrameView {
            receiver,
            frame,
            cursor: 0,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.receiver.payload(self.frame)
    }
}

impl io::Read for FrameView<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.receiver.payload(self.frame)[self.cursor..];
        let n = buf.len().min(rest.len());
        crate::mem::copy_slice(&mut buf[..n], &rest[..n]);
        self.cursor += n;
        Ok(n)
    }
}

impl Drop for FrameView<'_> {
    fn drop(&mut self) {
        self.receiver.release(self.frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn pair(capacity: usize) -> (FrameSender, FrameReceiver, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let raw = a.try_clone().unwrap();
        let tx = FrameSender::new(Arc::new(OwnedFd::from(a)), capacity);
        let rx = FrameReceiver::new(Arc::new(OwnedFd::from(b)), capacity);
        (tx, rx, raw)
    }

    #[test]
    fn frames_of_every_size_arrive_whole_and_in_order() {
        let (mut tx, mut rx, raw) = pair(1 << 20);
        let max = tx.max_record_len();
        let lens = [
            0,
            1,
            7,
            8,
            100,
            READ_CHUNK - 8,
            READ_CHUNK,
            READ_CHUNK + 3,
            max,
        ];
        let t = std::thread::spawn(move || {
            for (i, &len) in lens.iter().enumerate() {
                let mut g = tx.reserve(len).unwrap();
                let payload: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                g.write_all(&payload).unwrap();
                g.commit_len(len);
            }
        });
        for (i, &len) in lens.iter().enumerate() {
            let frame = rx.next(Fetch::Wait).unwrap().unwrap();
            let view = FrameView::new(&mut rx, frame);
            assert_eq!(view.bytes().len(), len);
            assert!(
                view.bytes()
                    .iter()
                    .enumerate()
                    .all(|(j, &b)| b == (i + j) as u8)
            );
        }
        t.join().unwrap();
        drop(raw);
        assert!(rx.buf.len() <= RECORD_HEADER_LEN + max);
        assert!(matches!(rx.next(Fetch::Wait), Err(Error::Disconnected)));
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        for (header, reason) in [
            ([4u8, 0, 0, 0, 1, 0, 0, 0], "unknown flags in frame header"),
            (
                [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0],
                "frame longer than the record limit",
            ),
        ] {
            let (_tx, mut rx, mut raw) = pair(4096);
            raw.write_all(&header).unwrap();
            match rx.next(Fetch::Wait) {
                Err(Error::Protocol(ProtocolError::BadFrame { reason: r })) => {
                    assert_eq!(r, reason)
                }
                other => panic!("expected BadFrame, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_frame_cut_short_by_hangup_is_a_disconnection() {
        let (tx, mut rx, mut raw) = pair(4096);
        raw.write_all(&[100, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(raw);
        drop(tx);
        assert!(matches!(
            rx.next(Fetch::NoWait),
            Ok(None) | Err(Error::Disconnected)
        ));
        assert!(matches!(rx.next(Fetch::Wait), Err(Error::Disconnected)));
    }
}
