//! Anonymous shared-memory segments: a sealed `memfd`, mapped `MAP_SHARED`.
//!
//! The creator sizes the memfd and seals it against shrinking and growing, so the peer can
//! never truncate it and make our accesses fault with `SIGBUS`. The receiver checks the
//! size with `fstat` and the seals with `F_GET_SEALS` before mapping anything. A memfd has
//! no name in any file system: when the last process holding it exits, the memory is gone.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::{Error, ProtocolError};
use crate::mem::Region;

/// The largest segment a peer may hand us. Bounds the address space a hostile peer can make
/// us map.
pub(crate) const MAX_SEGMENT_LEN: usize = (1 << 30) + (1 << 20);

/// A mapped memfd. Unmapped on drop; the memory itself lives until both sides have dropped
/// their descriptors and mappings.
#[derive(Debug)]
pub(crate) struct Segment {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is process-wide; `Segment` hands out only `Region`s, whose accesses are
// sound from any thread.
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` allows no access beyond what `Region` allows.
unsafe impl Sync for Segment {}

impl Segment {
    /// Creates a zero-filled segment of `len` bytes, sealed against any change of size.
    pub(crate) fn create(name: &str, len: usize) -> Result<Segment, Error> {
        assert!(
            len > 0 && len <= MAX_SEGMENT_LEN,
            "segment length {len} out of range"
        );
        let name = std::ffi::CString::new(name).unwrap_or_else(|_| c"ipc-shm".to_owned());
        let fd = memfd_create(
            name.as_c_str(),
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        nix::unistd::ftruncate(&fd, len as i64)?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        Segment::map(fd, len)
    }

    /// Maps a segment received from the peer after checking that it is a memfd of exactly
    /// `expected_len` bytes that can no longer shrink.
    pub(crate) fn open(fd: OwnedFd, expected_len: usize) -> Result<Segment, Error> {
        if expected_len == 0 || expected_len > MAX_SEGMENT_LEN {
            return Err(ProtocolError::SegmentSize {
                expected: expected_len as u64,
                found: 0,
            }
            .into());
        }
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS)
            .map_err(|_| ProtocolError::SegmentNotSealed { seals: 0 })?;
        let seals = seals as u32;
        if seals & (SealFlag::F_SEAL_SHRINK.bits() as u32) == 0 {
            return Err(ProtocolError::SegmentNotSealed { seals }.into());
        }
        // Checked after the seal: from here on the size cannot go down.
        let found = nix::sys::stat::fstat(&fd)?.st_size as u64;
        if found != expected_len as u64 {
            return Err(ProtocolError::SegmentSize {
                expected: expected_len as u64,
                found,
            }
            .into());
        }
        Segment::map(fd, expected_len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Segment, Error> {
        let nz = NonZeroUsize::new(len).ok_or(ProtocolError::SegmentSize {
            expected: 1,
            found: 0,
        })?;
        // SAFETY: we map a fresh range chosen by the kernel (no fixed address, so nothing of
        // ours is replaced). The memfd is at least `len` bytes and sealed against shrinking,
        // so every page of the mapping stays backed for its whole life.
        let base = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )
        }?;
        Ok(Segment {
            fd,
            base: base.cast(),
            len,
        })
    }

    /// The descriptor, to hand to the peer.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The mapped bytes, valid while `self` lives.
    pub(crate) fn region(&self) -> Region {
        // SAFETY: `base..base+len` is our mapping (page aligned, so 8-aligned), readable and
        // writable, and stays mapped until `self` is dropped; every owner of a `Region` made
        // here keeps the `Segment` alive beside it (see `ring::Producer`/`Consumer`).
        unsafe { Region::new(self.base, self.len) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` is exactly the mapping made in `map`, unmapped only here; no
        // `Region` made from it is used after its owning `Segment` is dropped.
        if let Err(e) = unsafe { munmap(self.base.cast(), self.len) } {
            tracing::warn!("munmap of a {}-byte segment failed: {e}", self.len);
        }
    }
}
