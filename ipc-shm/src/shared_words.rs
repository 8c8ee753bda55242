//! A handful of atomic words in a sealed memfd, shared by two processes.
//!
//! This is the smallest possible shared-memory channel: no ring, no records, no waiting.
//! The benchmarks use it to measure the hardware floor of inter-process communication (two
//! processes bouncing a cache line), against which the ring is judged. Each word sits on a
//! line of its own ([`WORD_STRIDE`] bytes apart), so two words written by different
//! processes never share a cache line.
//!
//! The words are plain `AtomicU64`s reached through `Region::atomic_u64`, so the peer may
//! write any value at any time without undefined behaviour; what a value *means* is up to
//! the caller, who must treat it as untrusted.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Error;
use crate::mem::Region;
use crate::segment::{MAX_SEGMENT_LEN, Segment};
use crate::sync::AtomicU64;

/// Bytes between two words: two cache lines, so that the adjacent-line prefetcher of x86
/// does not couple neighbouring words either.
pub const WORD_STRIDE: usize = 128;

/// `count` atomic words, each on its own cache line, in a sealed memfd.
#[derive(Debug)]
pub struct SharedWords {
    region: Region,
    count: usize,
    // Declared last: `region` points into it.
    segment: Segment,
}

impl SharedWords {
    /// Creates `count` zeroed words. Hand [`Self::fd`] to the peer, which calls [`Self::open`].
    pub fn create(count: usize) -> Result<SharedWords, Error> {
        let len = segment_len(count)?;
        let segment = Segment::create("ipc-shm words", len)?;
        Ok(SharedWords {
            region: segment.region(),
            count,
            segment,
        })
    }

    /// Maps words the peer created with [`Self::create`], after checking that `fd` is a
    /// memfd sealed against shrinking and exactly as large as `count` words need.
    pub fn open(fd: OwnedFd, count: usize) -> Result<SharedWords, Error> {
        let len = segment_len(count)?;
        let segment = Segment::open(fd, len)?;
        Ok(SharedWords {
            region: segment.region(),
            count,
            segment,
        })
    }

    /// The memfd, to hand to the peer (by inheritance or `SCM_RIGHTS`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd().as_fd()
    }

    /// How many words there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no words (never true: [`Self::create`] refuses zero).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Word `i`. Panics when `i >= self.len()`, as slice indexing does.
    #[inline]
    pub fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.count, "word {i} of {}", self.count);
        self.region.atomic_u64(i * WORD_STRIDE)
    }
}

/// The segment length for `count` words, a whole number of pages.
fn segment_len(count: usize) -> Result<usize, Error> {
    const PAGE: usize = 4096;
    count
        .checked_mul(WORD_STRIDE)
        .filter(|&len| count > 0 && len <= MAX_SEGMENT_LEN - PAGE)
        .map(|len| len.div_ceil(PAGE) * PAGE)
        .ok_or_else(|| {
            Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot share {count} words"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProtocolError;
    use crate::sync::Ordering;

    #[test]
    fn words_are_shared_between_mappings_and_on_separate_lines() {
        let a = SharedWords::create(3).unwrap();
        let b = SharedWords::open(a.fd().try_clone_to_owned().unwrap(), 3).unwrap();
        a.get(0).store(7, Ordering::Relaxed);
        a.get(2).store(9, Ordering::Relaxed);
        assert_eq!(b.get(0).load(Ordering::Relaxed), 7);
        assert_eq!(b.get(1).load(Ordering::Relaxed), 0);
        assert_eq!(b.get(2).load(Ordering::Relaxed), 9);
        let line = |w: &AtomicU64| w as *const AtomicU64 as usize / 64;
        assert_ne!(line(a.get(0)), line(a.get(1)));
    }

    #[test]
    fn open_rejects_a_wrong_count_and_bad_counts_are_errors() {
        let a = SharedWords::create(1).unwrap();
        let fd = a.fd().try_clone_to_owned().unwrap();
        // 1 and 100 words need different page counts, so the size check catches it.
        assert!(matches!(
            SharedWords::open(fd, 100),
            Err(Error::Protocol(ProtocolError::SegmentSize { .. }))
        ));
        assert!(SharedWords::create(0).is_err());
        assert!(SharedWords::create(usize::MAX).is_err());
    }

    #[test]
    fn open_rejects_an_unsealed_file() {
        let file = tempfile_memfd_unsealed();
        assert!(matches!(
            SharedWords::open(file, 1),
            Err(Error::Protocol(ProtocolError::SegmentNotSealed { .. }))
        ));
    }

    fn tempfile_memfd_unsealed() -> OwnedFd {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let fd = memfd_create(c"unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        fd
    }

    #[test]
    fn len_reports_the_count() {
        let a = SharedWords::create(5).unwrap();
        assert_eq!(a.len(), 5);
        assert!(!a.is_empty());
    }
}
