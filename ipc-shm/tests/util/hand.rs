//! A peer written by hand from `docs/protocol.md`: it can say anything on the wire and
//! scribble on its own ring at any moment, as a hostile process may. Shared by ipc-shm's
//! tests and, through `#[path]`, by the node's tests, which aim it at a real node.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    recvmsg, sendmsg, socketpair,
};

pub const HELLO_LEN: usize = 72;
pub const REPLY_LEN: usize = 80;
pub const DATA_OFFSET: u64 = 4096;
/// A record header's flags: every header has bit 0; padding adds bit 1.
pub const FLAG_RECORD: u64 = 1;
pub const FLAG_PADDING: u64 = 2;

/// A record header: length, then flags.
pub fn record_header(len: u32, flags: u64) -> u64 {
    u64::from(len) | flags << 32
}

/// A hello as `docs/protocol.md` lays it out.
pub fn hello(version: u32, transport: u32, to_acceptor: u64, to_initiator: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(HELLO_LEN);
    m.extend_from_slice(b"BSHMHELO");
    m.extend_from_slice(&version.to_le_bytes());
    m.extend_from_slice(&transport.to_le_bytes());
    m.extend_from_slice(&to_acceptor.to_le_bytes());
    m.extend_from_slice(&to_initiator.to_le_bytes());
    m.extend_from_slice(&std::process::id().to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    let mut name = [0u8; 32];
    name[..9].copy_from_slice(b"hand-peer");
    m.extend_from_slice(&name);
    assert_eq!(m.len(), HELLO_LEN);
    m
}

/// The fields of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub magic: [u8; 8],
    pub version: u32,
    pub status: u32,
    pub detail: u64,
    pub to_acceptor: u64,
    pub to_initiator: u64,
    pub name: String,
}

pub fn read_reply(stream: &mut UnixStream) -> Reply {
    let mut b = [0u8; REPLY_LEN];
    stream.read_exact(&mut b).expect("read reply");
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let name = &b[48..80];
    let end = name.iter().position(|&c| c == 0).unwrap_or(32);
    Reply {
        magic: b[..8].try_into().unwrap(),
        version: u32_at(8),
        status: u32_at(12),
        detail: u64_at(16),
        to_acceptor: u64_at(24),
        to_initiator: u64_at(32),
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
    }
}

/// A reply as an acceptor would send it.
pub fn reply(
    version: u32,
    status: u32,
    detail: u64,
    to_acceptor: u64,
    to_initiator: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(REPLY_LEN);
    m.extend_from_slice(b"BSHMRPLY");
    m.extend_from_slice(&version.to_le_bytes());
    m.extend_from_slice(&status.to_le_bytes());
    m.extend_from_slice(&detail.to_le_bytes());
    m.extend_from_slice(&to_acceptor.to_le_bytes());
    m.extend_from_slice(&to_initiator.to_le_bytes());
    m.extend_from_slice(&std::process::id().to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&[0u8; 32]);
    assert_eq!(m.len(), REPLY_LEN);
    m
}

/// A ring made by hand: a memfd written with `pwrite` (no mapping needed), and two bells:
/// datagram socket pairs, of which the peer is sent one end and we keep the other, where its
/// rings arrive.
#[derive(Debug)]
pub struct HandRing {
    pub memfd: OwnedFd,
    pub space_bell: OwnedFd,
    pub data_bell: OwnedFd,
    pub space_bell_end: OwnedFd,
    pub data_bell_end: OwnedFd,
}

/// A bell as `docs/protocol.md` describes it: (the end to send, the end to keep).
pub fn bell_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .unwrap()
}

impl HandRing {
    /// A ring of `capacity` bytes with a correct header, sealed against shrinking if `seal`.
    pub fn new(name: &str, capacity: u64, seal: bool) -> HandRing {
        let memfd =
            memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&memfd, (DATA_OFFSET + capacity) as i64).unwrap();
        if seal {
            fcntl(
                &memfd,
                FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
            )
            .unwrap();
        }
        let (space_bell, space_bell_end) = bell_pair();
        let (data_bell, data_bell_end) = bell_pair();
        let ring = HandRing {
            memfd,
            space_bell,
            data_bell,
            space_bell_end,
            data_bell_end,
        };
        ring.write_u64(0, u64::from_le_bytes(*b"BSHMRNG1"));
        ring.write_u64(8, 2);
        ring.write_u64(16, capacity);
        ring.write_u64(24, DATA_OFFSET);
        ring
    }

    /// Writes a little-endian word into the segment, as a hostile producer may at any time.
    pub fn write_u64(&self, offset: u64, value: u64) {
        let n = nix::sys::uio::pwrite(&self.memfd, &value.to_le_bytes(), offset as i64).unwrap();
        assert_eq!(n, 8);
    }

    /// Sends the ring message with these descriptors plus `extra` more.
    pub fn send(&self, stream: &UnixStream, extra: &[&OwnedFd]) {
        let mut fds = vec![
            self.memfd.as_raw_fd(),
            self.space_bell.as_raw_fd(),
            self.data_bell.as_raw_fd(),
        ];
        fds.extend(extra.iter().map(|f| f.as_raw_fd()));
        send_fds(stream, &fds);
    }
}

/// Sends the 8-byte ring message with `fds` attached.
pub fn send_fds(stream: &UnixStream, fds: &[i32]) {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let n = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[std::io::IoSlice::new(b"BSHMRFDS")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    assert_eq!(n, 8);
}

/// Reads the peer's ring message; its descriptors are discarded by the kernel (a plain
/// read has no room for them), which closes them.
pub fn skip_fds(stream: &mut UnixStream) {
    let mut magic = [0u8; 8];
    stream.read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"BSHMRFDS");
}

/// Reads the peer's ring message and keeps its three descriptors: its ring's memfd, its
/// space bell and its data bell.
pub fn take_fds(stream: &UnixStream) -> [OwnedFd; 3] {
    let mut magic = [0u8; 8];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 3]);
    let mut iov = [std::io::IoSliceMut::new(&mut magic)];
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    assert_eq!(msg.bytes, 8, "the ring message arrives whole");
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these for this message; nobody else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
            );
        }
    }
    assert_eq!(&magic, b"BSHMRFDS");
    fds.try_into().expect("three descriptors")
}

/// Rings a bell the peer sent (a datagram socket), as `docs/protocol.md` says.
pub fn ring_bell(bell: &OwnedFd) {
    nix::sys::socket::send(bell.as_raw_fd(), &[1], MsgFlags::MSG_DONTWAIT).unwrap();
}

/// Connects to `path` and does the hello by hand for a shared-memory connection of
/// `capacity`-byte rings; returns the stream once the reply is read.
pub fn hand_hello(path: &std::path::Path, capacity: u64, transport: u32) -> UnixStream {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .write_all(&hello(
            ipc_shm::handshake::PROTOCOL_VERSION,
            transport,
            capacity,
            capacity,
        ))
        .unwrap();
    let r = read_reply(&mut stream);
    assert_eq!(
        (r.status, r.to_acceptor, r.to_initiator),
        (0, capacity, capacity),
        "{r:?}"
    );
    stream
}

/// The descriptors of this process that point at a memfd named `name`.
pub fn open_memfds_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(&format!("memfd:{name}")))
        .count()
}
