//! The few socket and process calls the connection layer needs, wrapped once so that the
//! rest of the crate is safe code: passing descriptors with `SCM_RIGHTS`, reading the
//! peer's credentials, adopting an inherited descriptor, and keeping one across `exec`.
//!
//! Every `unsafe` block of the connection layer lives here.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::libc;
use nix::sys::socket::{
    ControlMessage, MsgFlags, SockType, UnixAddr, getsockopt, sendmsg, setsockopt, sockopt,
};

use crate::error::Error;

/// The most descriptors the kernel passes in one message (`SCM_MAX_FD`). Our control buffer
/// has room for that many, so the kernel truncates a peer's `SCM_RIGHTS` message only when
/// our descriptor table is full (see [`recv_with_fds`]).
const SCM_MAX_FD: usize = 253;

/// Turns the error of a call on the connection socket into ours: the errors that mean the
/// peer has gone become [`Error::Disconnected`], the rest stay I/O errors.
pub(crate) fn socket_error(e: Errno) -> Error {
    match e {
        Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN | Errno::ECONNABORTED => {
            Error::Disconnected
        }
        e => Error::from(e),
    }
}

/// Shuts a connection socket down in both directions: the peer, and our own threads
/// waiting on either end (parked on a ring, or blocked on the socket transport), see a
/// hang-up at once.
pub(crate) fn hang_up(socket: BorrowedFd<'_>) {
    // ENOTCONN when the peer already went: nothing left to do.
    let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

/// Sends `bytes` with `fds` attached to them. Returns how many bytes the kernel took (on a
/// stream socket possibly fewer than `bytes.len()`; the descriptors go with the first byte).
/// Never raises `SIGPIPE` and never blocks.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, Errno> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    )
}

/// Receives into `buf` without blocking, together with any descriptors attached. At most
/// `keep - fds.len()` descriptors are appended to `fds`; any beyond are closed at once and
/// counted in `dropped`. Received descriptors are close-on-exec (`MSG_CMSG_CLOEXEC`). Returns
/// the bytes read (0 at end of stream).
///
/// Calls `recvmsg(2)` itself rather than through `nix`, whose parser refuses a truncated
/// control buffer: the kernel also truncates when it runs out of room in our descriptor
/// table (`RLIMIT_NOFILE`) part way through a message, and the descriptors it installed
/// before that are in the buffer all the same. We take them over (and so close them) in
/// every case; a peer sending many descriptors while we are near the limit cannot leak them.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    keep: usize,
    fds: &mut Vec<OwnedFd>,
    dropped: &mut usize,
) -> Result<usize, Errno> {
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is plain old data, for which all zeroes is a valid value (no name,
    // no vectors, no control buffer); the fields that matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_LEN as _;
    // SAFETY: `msg` points at one vector covering `buf` and at `control`, both live and
    // writable for the whole call and of the lengths given; the kernel writes at most those
    // lengths and reports how much it wrote in `msg`.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(Errno::last());
    }
    let filled = (msg.msg_controllen as usize).min(CONTROL_LEN);
    for raw in scm_rights(&control.0[..filled]) {
        // SAFETY: the kernel has just installed `raw` in our descriptor table for this
        // message (it lists only those it installed); no other owner of it exists, so taking
        // ownership is sound and guarantees it is closed exactly once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if fds.len() < keep {
            fds.push(fd);
        } else {
            *dropped += 1;
        }
    }
    Ok(n as usize)
}

/// Bytes of a control buffer with room for [`SCM_MAX_FD`] descriptors.
// SAFETY: `CMSG_SPACE` is arithmetic on its argument; it touches no memory.
const CONTROL_LEN: usize =
    unsafe { libc::CMSG_SPACE((SCM_MAX_FD * size_of::<RawFd>()) as u32) } as usize;

/// A control buffer aligned as a `cmsghdr` must be.
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// The descriptors of every `SCM_RIGHTS` message in `control`, the part of a control buffer
/// the kernel filled: a sequence of headers (`cmsg_len`, level, type), each followed by its
/// data and padded to the header's alignment.
fn scm_rights(control: &[u8]) -> impl Iterator<Item = RawFd> + '_ {
    const HEADER: usize = size_of::<libc::cmsghdr>();
    const ALIGN: usize = align_of::<libc::cmsghdr>();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at + HEADER <= control.len() {
            let word = |offset: usize, len: usize| &control[at + offset..at + offset + len];
            let len = usize::from_ne_bytes(word(0, size_of::<usize>()).try_into().ok()?);
            let level = i32::from_ne_bytes(word(size_of::<usize>(), 4).try_into().ok()?);
            let kind = i32::from_ne_bytes(word(size_of::<usize>() + 4, 4).try_into().ok()?);
            if len < HEADER {
                return None;
            }
            let data = &control[(at + HEADER).min(control.len())..(at + len).min(control.len())];
            at = at.saturating_add(len.next_multiple_of(ALIGN));
            if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                return Some(
                    data.chunks_exact(size_of::<RawFd>())
                        .map(|c| RawFd::from_ne_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
        }
        None
    })
    .flatten()
}

/// The credentials of the process at the other end of a unix socket, as the kernel recorded
/// them when the connection was made (`SO_PEERCRED`): they cannot be forged by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerCredentials {
    pub(crate) pid: u32,
    pub(crate) uid: u32,
}

/// Makes out-of-band bytes (`MSG_OOB`) on a connection socket ordinary data, where our
/// checks see them: otherwise a peek finds nothing while `poll` keeps reporting the socket
/// readable, and a parked waiter would wake up again and again without end.
pub(crate) fn inline_out_of_band(sock: BorrowedFd<'_>) -> Result<(), Error> {
    setsockopt(&sock, sockopt::OobInline, &true)?;
    Ok(())
}

pub(crate) fn peer_credentials(sock: BorrowedFd<'_>) -> Result<PeerCredentials, Error> {
    let cred = getsockopt(&sock, sockopt::PeerCredentials)?;
    Ok(PeerCredentials {
        pid: cred.pid() as u32,
        uid: cred.uid(),
    })
}

/// Takes ownership of a unix stream socket this process inherited across `exec` under the
/// number `fd` (Bitcoin Core's `-ipcfd=N`), after checking that it is one, and marks it
/// close-on-exec so that our own children do not inherit it (a stray copy in a grandchild
/// would keep the connection open after we die and hide our death from the peer).
///
/// A descriptor that survived `exec` is necessarily *not* close-on-exec, while everything
/// Rust's standard library and this crate open is; and adopting sets the flag. So requiring
/// the flag to be clear both recognises an inherited descriptor and makes a second adoption
/// of the same one fail.
pub(crate) fn adopt_inherited_socket(fd: RawFd) -> Result<OwnedFd, Error> {
    let invalid = |why: &str| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("-ipcfd={fd}: {why}"),
        ))
    };
    if fd < 0 {
        return Err(invalid("not a descriptor number"));
    }
    // SAFETY: borrowed only for the checks below, which are harmless on any descriptor
    // number; an unused number makes `fcntl` fail with EBADF, which we report.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags =
        fcntl(borrowed, FcntlArg::F_GETFD).map_err(|_| invalid("no such open descriptor"))?;
    if FdFlag::from_bits_retain(flags).contains(FdFlag::FD_CLOEXEC) {
        return Err(invalid(
            "descriptor is close-on-exec, so it was not inherited (or is already in use)",
        ));
    }
    let is_unix_stream = getsockopt(&borrowed, sockopt::SockType) == Ok(SockType::Stream)
        && nix::sys::socket::getsockname::<UnixAddr>(fd).is_ok();
    if !is_unix_stream {
        return Err(invalid("not a unix stream socket"));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    // SAFETY: the descriptor is open, and was inherited (not close-on-exec, checked above):
    // our parent handed it to this process for this connection alone, and no earlier
    // adoption took it (that would have set the flag).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the child started by `cmd` inherit `fd` under the same number, although the
/// parent keeps it close-on-exec (so that no other child of the parent ever inherits it).
pub(crate) fn inherit_in_child(cmd: &mut Command, fd: BorrowedFd<'_>) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the forked child before `exec`: one `fcntl`, no allocation,
    // so async-signal-safe. The parent keeps `fd` open until `spawn` returns, so in the child
    // (a copy of the parent's descriptor table) `raw` names the same socket.
    unsafe {
        cmd.pre_exec(move || {
            // SAFETY: see above: `raw` is open in the child for the duration of this call.
            let fd = BorrowedFd::borrow_raw(raw);
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }
}

/// Process-wide memory barriers (`membarrier(2)`, `GLOBAL_EXPEDITED`): a ring's consumer
/// runs one before it sleeps, so that the producer needs no fence of its own on every
/// record to see whether it must wake the consumer (see "Waking a parked consumer" in
/// `ring`).
pub(crate) mod membarrier {
    use std::sync::OnceLock;

    use nix::libc::{SYS_membarrier, c_int, c_long, syscall};

    const CMD_QUERY: c_int = 0;
    const CMD_GLOBAL_EXPEDITED: c_int = 1 << 1;
    const CMD_REGISTER_GLOBAL_EXPEDITED: c_int = 1 << 2;

    fn call(cmd: c_int) -> c_long {
        // SAFETY: `membarrier` takes a command and two integer arguments and touches no
        // memory of ours; a kernel without it, or without the command, returns an error.
        unsafe { syscall(SYS_membarrier, cmd, 0 as c_int, 0 as c_int) }
    }

    /// Whether this process takes part: registered, so that a barrier run by any process
    /// reaches its threads, and able to run one itself. Registers on first use.
    pub(crate) fn available() -> bool {
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        *REGISTERED.get_or_init(|| {
            let needed = c_long::from(CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED);
            let supported = call(CMD_QUERY);
            supported >= 0
                && supported & needed == needed
                && call(CMD_REGISTER_GLOBAL_EXPEDITED) == 0
        })
    }

    /// Runs a full memory barrier on every CPU that runs a thread of a registered process,
    /// this one's included, before it returns. False if the call failed (it cannot, once
    /// [`available`] said yes: its only errors are for commands the kernel lacks).
    pub(crate) fn global() -> bool {
        call(CMD_GLOBAL_EXPEDITED) == 0
    }
}
