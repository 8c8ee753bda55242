//! The lock that makes binding one socket path exclusive, across processes and within one.
//!
//! Probing a socket file (does anybody answer `connect`?) and replacing it when stale are two
//! steps, so two listeners binding one path at once could both find it stale, and one remove
//! the file the other has just bound. A [`BindLock`] is taken before either step and held by
//! the [`Listener`](super::Listener) for its whole life: a socket bound in Linux's *abstract*
//! namespace under a name derived from the socket path. The kernel refuses a second bind of
//! one abstract name (`EADDRINUSE`) while a socket holds it, and frees the name when the last
//! descriptor of that socket closes, also when its process is killed. Nothing is ever written
//! to the file system, so a crash leaves nothing to clean up.
//!
//! The name is `ipc-shm/bind/<dev>/<ino>/<file name>` (`dev`, `ino`: the directory's device
//! and inode numbers from `stat`, in lowercase hex): one directory reached by different paths
//! (relative, through a symlink, from another mount namespace) gives one name. A file name too
//! long for the 107 bytes of an abstract address is cut and ends in `#` and the 64-bit FNV-1a
//! hash of the whole name (16 hex digits), so the name stays deterministic across builds.
//!
//! Limits: the abstract namespace belongs to the network namespace, so processes in different
//! network namespaces that share the directory are not kept apart by the lock (they still get
//! the probe). Abstract names carry no permissions: a local process that binds the name first
//! makes our bind fail as "in use"; it cannot obtain anything by it.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};

use super::io_error;
use crate::error::ConnectError;

/// What every lock name starts with.
const PREFIX: &str = "ipc-shm/bind/";

/// The longest abstract name: `sun_path`'s 108 bytes less the leading zero byte that marks
/// the abstract namespace.
const MAX_NAME: usize = 107;

/// The lock of one socket path, held as long as this value lives.
#[derive(Debug)]
pub(super) struct BindLock {
    /// A unix stream socket bound to the lock's abstract name. It never listens, so a
    /// `connect` to the name is refused; it is close-on-exec, so no child we start holds it.
    _socket: OwnedFd,
}

impl BindLock {
    /// Takes the lock of the socket path `path`, whose directory must exist. `Ok(None)` when a
    /// live [`Listener`](super::Listener), in this process or another, holds it.
    pub(super) fn acquire(path: &Path) -> Result<Option<BindLock>, ConnectError> {
        // "/", "..", "dir/..": a directory, never a socket file.
        let file = path.file_name().ok_or_else(|| ConnectError::NotASocket {
            path: path.to_owned(),
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let meta = fs::metadata(dir).map_err(io_error("inspect", dir))?;
        let name = lock_name(meta.dev(), meta.ino(), file.as_bytes());
        let addr = UnixAddr::new_abstract(&name)
            .map_err(|e| io_error("make the bind lock address of", path)(e.into()))?;
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io_error("create the bind lock of", path)(e.into()))?;
        match bind(sock.as_raw_fd(), &addr) {
            Ok(()) => Ok(Some(BindLock { _socket: sock })),
            Err(Errno::EADDRINUSE) => Ok(None),
            Err(e) => Err(io_error("take the bind lock of", path)(e.into())),
        }
    }
}

/// The abstract name (without its leading zero byte) of the lock of the file `file` in the
/// directory with device `dev` and inode `ino`. At most [`MAX_NAME`] bytes.
fn lock_name(dev: u64, ino: u64, file: &[u8]) -> Vec<u8> {
    let mut name = format!("{PREFIX}{dev:x}/{ino:x}/").into_bytes();
    if name.len() + file.len() <= MAX_NAME {
        name.extend_from_slice(file);
    } else {
        let hash = format!("#{:016x}", fnv1a(file));
        // The prefix is at most 13 + 16 + 1 + 16 + 1 = 47 bytes, the hash 17: at least 43
        // bytes of the file name remain.
        let keep = MAX_NAME - name.len() - hash.len();
        name.extend_from_slice(&file[..keep]);
        name.extend_from_slice(hash.as_bytes());
    }
    debug_assert!(name.len() <= MAX_NAME);
    name
}

/// The 64-bit FNV-1a hash: fixed by its definition, unlike `std`'s hashers, so every build
/// of every process derives the same name.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_cut_and_hashed() {
        assert_eq!(
            lock_name(0x803, 0x1a2b, b"node.sock"),
            b"ipc-shm/bind/803/1a2b/node.sock"
        );
        let long = [b'n'; 200];
        let mut other = long;
        other[199] = b'm';
        let (a, b) = (
            lock_name(u64::MAX, u64::MAX, &long),
            lock_name(u64::MAX, u64::MAX, &other),
        );
        assert_eq!(a.len(), MAX_NAME);
        assert_eq!(b.len(), MAX_NAME);
        assert_ne!(
            a, b,
            "names differing only past the cut differ by their hash"
        );
        assert_eq!(
            lock_name(1, 2, &long),
            lock_name(1, 2, &long),
            "deterministic"
        );
        // A name that just fits is kept whole.
        let prefix = "ipc-shm/bind/1/2/".len();
        let fits = vec![b'x'; MAX_NAME - prefix];
        assert_eq!(lock_name(1, 2, &fits).len(), MAX_NAME);
        assert!(lock_name(1, 2, &fits).ends_with(&fits));
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
