//! Raw access to memory that another process may write at any moment.
//!
//! A [`Region`] is a base pointer and a length, never a Rust reference to the bytes: the
//! peer can change them under us, so the only sound accesses are copies through raw
//! pointers (treated like device memory: the values may be garbage and are validated after
//! the copy) and atomics (which are built for concurrent writers). Every access is bounds
//! checked against the region, so a wrong offset is a panic in our code, never an access
//! outside the mapping.
//!
//! # Racing copies
//!
//! A plain copy that races with a write is a data race in Rust's memory model (and so
//! undefined behaviour) whatever kind of pointer it goes through; a raw pointer only keeps
//! us from promising, as a reference would, that nobody writes. What makes our copies sound
//! in practice is where the writer is: in another process, behind a `MAP_SHARED` mapping the
//! compiler knows nothing about, so it can neither see the race nor optimise on its absence.
//! The copy is a call to `memcpy` through raw pointers, which the hardware executes as plain
//! loads and stores: a racing write yields torn or stale bytes, never anything worse. Every
//! shared-memory IPC written in Rust rests on this same assumption; ours is confined to
//! `copy_bytes`, and nothing copied is trusted before it is validated. (Word-by-word atomic
//! or volatile copies would remove the assumption at a large cost for blocks, and are used
//! where it matters: every header and position is an atomic.)
//!
//! Under `--cfg loom` the same interface is backed by loom cells, so the model checker sees
//! every data access and can report a missing happens-before edge between producer and
//! consumer.

#[cfg(not(loom))]
pub(crate) use real::{Region, append_slice, copy_slice};

#[cfg(loom)]
pub(crate) use model::Region;

#[cfg(not(loom))]
mod real {
    use std::ptr::NonNull;

    use crate::sync::AtomicU64;

    /// Copies longer than this go in pieces of this many bytes (see [`copy_bytes`]): below
    /// glibc's `rep movsb` threshold on every CPU with AVX (2112 bytes with FSRM, as on our
    /// AMD host; 4 KiB or more without).
    const COPY_PIECE: usize = 2048;

    /// Copies `len` bytes from `src` to `dst` through raw pointers. The ranges may overlap,
    /// which is sound, but then the bytes copied are unspecified; no caller overlaps them.
    ///
    /// A copy longer than [`COPY_PIECE`] goes in pieces of that size, so that glibc copies
    /// each with vector moves rather than with `rep movsb`. On the AMD EPYC host we measure
    /// on (Zen, with FSRM), `rep movsb` is 15 to 30 times slower when its destination is 8
    /// to 24 bytes past its source modulo 4096 (its loads aliasing its own recent stores):
    /// 22 to 47 µs for 64 KiB, against 1.5 µs at other distances or 1.8 to 2 µs in pieces.
    /// Ring positions move by record lengths, so every distance comes round. Splitting only
    /// at those distances was not enough: `find_block` (1.38 MB in 64 KiB parts) still took
    /// 57 µs in some runs and 90 to 160 µs in others, the peer's copies into the ring taking
    /// the extra time (we have not pinned down what else slows `rep movsb` there); in pieces
    /// it takes 55 to 67 µs, apart from runs the host slows whatever the copy. Pieces cost
    /// about 3% on a 64 KiB round trip; up to 2 KiB, a copy is one call.
    ///
    /// # Safety
    ///
    /// `src..src + len` must be readable and `dst..dst + len` writable for the call.
    #[inline]
    unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
        if len <= COPY_PIECE {
            // SAFETY: the caller's ranges.
            unsafe { std::ptr::copy(src, dst, len) };
            return;
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(COPY_PIECE);
            // SAFETY: `done + n <= len`, so both pieces lie inside the caller's ranges.
            unsafe { std::ptr::copy(src.add(done), dst.add(done), n) };
            done += n;
        }
    }

    /// Copies `src` into `dst` (of the same length) as [`copy_bytes`] does: for the socket
    /// transport's buffers, so that both transports copy alike.
    pub(crate) fn copy_slice(dst: &mut [u8], src: &[u8]) {
        assert_eq!(
            dst.len(),
            src.len(),
            "copy between slices of different lengths"
        );
        // SAFETY: both slices are valid for their length, `dst` writable; a `&mut` and a `&`
        // cannot overlap.
        unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
    }

    /// Appends `src` to `out` as [`copy_bytes`] copies, without zeroing the room first:
    /// `Vec::extend_from_slice` for the socket transport's buffers.
    pub(crate) fn append_slice(out: &mut Vec<u8>, src: &[u8]) {
        out.reserve(src.len());
        let room = &mut out.spare_capacity_mut()[..src.len()];
        // SAFETY: `room` is `src.len()` writable bytes of `out`'s allocation (reserved
        // above); `src` cannot overlap it, being borrowed while `out` is borrowed mutably.
        unsafe { copy_bytes(src.as_ptr(), room.as_mut_ptr().cast::<u8>(), src.len()) };
        let len = out.len() + src.len();
        // SAFETY: the first `len` bytes are initialised: those `out` held, then the copy.
        unsafe { out.set_len(len) };
    }

    /// A mapped, 8-byte aligned range of shared memory.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Region {
        base: NonNull<u8>,
        len: usize,
    }

    // SAFETY: a `Region` is only a pointer and a length; all access goes through raw copies
    // and atomics, which are sound from any thread while the mapping lives (the invariant
    // of `Region::new`).
    unsafe impl Send for Region {}
    // SAFETY: as for `Send`: no method hands out a reference to non-atomic bytes.
    unsafe impl Sync for Region {}

    impl Region {
        /// # Safety
        ///
        /// `base..base + len` must be mapped readable and writable, and aligned to 8 bytes,
        /// for as long as this `Region` or any copy of it is used.
        pub(crate) unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
            debug_assert_eq!(
                base.as_ptr() as usize % 8,
                0,
                "region base must be 8-aligned"
            );
            Region { base, len }
        }

        pub(crate) fn len(&self) -> usize {
            self.len
        }

        #[inline]
        fn check(&self, offset: usize, len: usize) {
            assert!(
                offset <= self.len && len <= self.len - offset,
                "access {offset}+{len} outside a region of {}",
                self.len
            );
        }

        /// Copies `out.len()` bytes starting at `offset` out of the region.
        #[inline]
        pub(crate) fn read(&self, offset: usize, out: &mut [u8]) {
            self.check(offset, out.len());
            // SAFETY: in bounds (checked above) of a mapping `new`'s invariant keeps alive; `out`
            // is ours and writable. A peer writing the source meanwhile gives torn or stale
            // bytes ("Racing copies" in the module docs), which the caller validates.
            unsafe { copy_bytes(self.base.as_ptr().add(offset), out.as_mut_ptr(), out.len()) }
        }

        /// Copies `out.len()` bytes starting at `offset` out of the region into memory that
        /// need not be initialised (the spare room of a vector), which the copy initialises.
        #[inline]
        pub(crate) fn read_uninit(&self, offset: usize, out: &mut [std::mem::MaybeUninit<u8>]) {
            self.check(offset, out.len());
            // SAFETY: as in `read`; writing bytes into `MaybeUninit<u8>` is always sound.
            unsafe {
                copy_bytes(
                    self.base.as_ptr().add(offset),
                    out.as_mut_ptr().cast::<u8>(),
                    out.len(),
                )
            }
        }

        /// Copies `bytes` into the region starting at `offset`.
        #[inline]
        pub(crate) fn write(&self, offset: usize, bytes: &[u8]) {
            self.check(offset, bytes.len());
            // SAFETY: in bounds (checked above) and mapped writable (`new`'s invariant);
            // `bytes` is our own memory, readable.
            unsafe { copy_bytes(bytes.as_ptr(), self.base.as_ptr().add(offset), bytes.len()) }
        }

        /// Copies `len` bytes from `offset` of this region to `dst_offset` of `dst`: shared
        /// memory to shared memory, with no buffer of ours in between.
        #[inline]
        pub(crate) fn copy_to(&self, offset: usize, dst: &Region, dst_offset: usize, len: usize) {
            self.check(offset, len);
            dst.check(dst_offset, len);
            // SAFETY: both in bounds (checked above) of live mappings (`new`'s invariant), `dst`
            // writable. A peer writing either range meanwhile (even one memfd as both rings) gives
            // torn bytes ("Racing copies" in the module docs); their reader validates them.
            unsafe {
                copy_bytes(
                    self.base.as_ptr().add(offset),
                    dst.base.as_ptr().add(dst_offset),
                    len,
                )
            }
        }

        /// Writes the 8-byte little-endian word at an 8-aligned `offset` (tests play a
        /// scribbling peer with it).
        #[cfg(test)]
        pub(crate) fn write_u64(&self, offset: usize, value: u64) {
            self.check(offset, 8);
            debug_assert_eq!(offset % 8, 0);
            // SAFETY: in bounds (checked above), 8-aligned (base is aligned, offset is a multiple
            // of 8) and writable (`new`'s invariant).
            unsafe {
                std::ptr::write_volatile(
                    self.base.as_ptr().add(offset).cast::<u64>(),
                    value.to_le(),
                );
            }
        }

        /// The atomic word at an 8-aligned `offset`.
        #[inline]
        pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
            self.check(offset, 8);
            assert_eq!(offset % 8, 0, "atomic at unaligned offset {offset}");
            // SAFETY: in bounds and aligned for `AtomicU64` (checked above). An `AtomicU64`
            // may be shared with concurrent writers (it is an `UnsafeCell`), including another
            // process; the reference cannot outlive `self`, and the mapping outlives `self`.
            unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{append_slice, copy_bytes};

        /// Every length around the piece size, at every distance around the slow ones,
        /// copies exactly its bytes.
        #[test]
        fn copies_come_out_whole_at_every_page_distance() {
            let src: Vec<u8> = (0..80_000u32).map(|i| (i % 251) as u8).collect();
            let mut dst = vec![0u8; 80_000 + 8192];
            let page = (dst.as_ptr() as usize).next_multiple_of(4096) - dst.as_ptr() as usize;
            for len in [
                0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 4097, 65_536, 70_001,
            ] {
                for ahead in (0..80).chain(4090..4096) {
                    // Place the copy `ahead` bytes past the source's page offset.
                    let offset = page + (src.as_ptr() as usize + ahead) % 4096;
                    dst.fill(0);
                    // SAFETY: both ranges are inside their vectors, which do not overlap.
                    unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr().add(offset), len) };
                    assert_eq!(
                        (dst.as_ptr() as usize + offset).wrapping_sub(src.as_ptr() as usize) % 4096,
                        ahead
                    );
                    assert!(
                        dst[offset..offset + len] == src[..len],
                        "{len} bytes, {ahead} ahead"
                    );
                    assert!(
                        dst[..offset]
                            .iter()
                            .chain(&dst[offset + len..])
                            .all(|&b| b == 0)
                    );
                }
            }
        }

        #[test]
        fn append_slice_appends_exactly_the_slice() {
            let src: Vec<u8> = (0..70_001u32).map(|i| (i % 251) as u8).collect();
            for len in [0, 1, 1025, 70_001] {
                let mut out = vec![9u8; 3];
                append_slice(&mut out, &src[..len]);
                assert_eq!(out.len(), 3 + len);
                assert!(out[..3] == [9; 3] && out[3..] == src[..len], "{len} bytes");
            }
        }
    }
}

#[cfg(loom)]
mod model {
    use std::sync::Arc;

    use loom::cell::UnsafeCell;

    use crate::sync::AtomicU64;

    /// The loom stand-in for shared memory: header words as loom atomics, data words as
    /// loom cells, so that racy data accesses are reported by the model checker.
    #[derive(Debug, Clone)]
    pub(crate) struct Region {
        inner: Arc<Inner>,
    }

    #[derive(Debug)]
    struct Inner {
        header: Vec<AtomicU64>,
        data: Vec<UnsafeCell<u64>>,
        /// The data words as record headers, which the ring accesses only atomically.
        /// Keeping them apart from `data` is faithful because the producer clears a header
        /// slot atomically before the consumer can reach it; were a clear missing, the
        /// consumer would read a stale header here and the model's assertions would fail.
        slots: Vec<AtomicU64>,
        data_offset: usize,
    }

    impl Region {
        /// A zeroed region of `data_offset` header bytes followed by `data_len` data bytes.
        pub(crate) fn new_model(data_offset: usize, data_len: usize) -> Self {
            let header = (0..crate::ring::HEADER_WORDS_USED)
                .map(|_| AtomicU64::new(0))
                .collect();
            let data = (0..data_len / 8).map(|_| UnsafeCell::new(0)).collect();
            let slots = (0..data_len / 8).map(|_| AtomicU64::new(0)).collect();
            Region {
                inner: Arc::new(Inner {
                    header,
                    data,
                    slots,
                    data_offset,
                }),
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.inner.data_offset + self.inner.data.len() * 8
        }

        fn word(&self, offset: usize) -> &UnsafeCell<u64> {
            assert!(
                offset >= self.inner.data_offset,
                "data access in the header at {offset}"
            );
            &self.inner.data[(offset - self.inner.data_offset) / 8]
        }

        pub(crate) fn read(&self, offset: usize, out: &mut [u8]) {
            for (i, b) in out.iter_mut().enumerate() {
                let at = offset + i;
                let word = self.word(at & !7).with(|p| {
                    // SAFETY: loom hands out the cell's pointer for the closure's duration
                    // and tracks the access; it reports any racing write.
                    unsafe { *p }
                });
                *b = word.to_le_bytes()[at & 7];
            }
        }

        pub(crate) fn write(&self, offset: usize, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let at = offset + i;
                self.word(at & !7).with_mut(|p| {
                    // SAFETY: as in `read`; loom reports racing accesses.
                    let mut w = unsafe { *p }.to_le_bytes();
                    w[at & 7] = *b;
                    // SAFETY: as above.
                    unsafe { *p = u64::from_le_bytes(w) };
                });
            }
        }

        pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
            match offset.checked_sub(self.inner.data_offset) {
                Some(at) => &self.inner.slots[at / 8],
                None => &self.inner.header[offset / 8],
            }
        }
    }
}
