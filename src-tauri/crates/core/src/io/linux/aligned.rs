//! Buffers for direct I/O: aligned to any logical block size, in a mapping of their own.

/// A zeroed buffer whose start is aligned to [`ALIGN`](crate::io::device::ALIGN), as O_DIRECT requires, in a mapping of
/// its own. Whole 2 MiB stretches are asked for huge pages: every O_DIRECT request pins its
/// buffer's pages, once per target, and pinning one huge page costs what pinning one small
/// page does, not 512 times that.
pub struct AlignedBuf {
    map: *mut u8,
    map_len: usize,
    offset: usize,
    len: usize,
}

// SAFETY: the buffer owns its mapping outright, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

const HUGE_PAGE: usize = 2 << 20;

impl AlignedBuf {
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            return Self::default();
        }
        // Room to start on a huge-page boundary; mmap's own pages are ALIGN-aligned.
        let map_len = if len >= HUGE_PAGE {
            len + HUGE_PAGE
        } else {
            len
        };
        // SAFETY: a fresh private anonymous mapping (zero-filled); nothing else refers to it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(map_len, crate::io::device::ALIGN)
                    .expect("buffer layout"),
            );
        }
        let map = map.cast::<u8>();
        let offset = if len >= HUGE_PAGE {
            map.align_offset(HUGE_PAGE)
        } else {
            0
        };
        let huge = len / HUGE_PAGE * HUGE_PAGE;
        if huge > 0 {
            // SAFETY: the range lies inside the mapping. A refusal only costs speed.
            unsafe { libc::madvise(map.add(offset).cast(), huge, libc::MADV_HUGEPAGE) };
        }
        Self {
            map,
            map_len,
            offset,
            len,
        }
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        Self {
            map: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            map_len: 0,
            offset: 0,
            len: 0,
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: the mapping made in `zeroed`, unmapped once.
            unsafe { libc::munmap(self.map.cast(), self.map_len) };
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes from `offset` lie inside the mapping (or len is 0).
        unsafe { std::slice::from_raw_parts(self.map.add(self.offset), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.map.add(self.offset), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::device::ALIGN;

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [1, 4096, 4 << 20, (4 << 20) + 1] {
            let mut buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.as_ptr() as usize % ALIGN, 0);
            assert_eq!(buf.len(), len);
            assert!(buf.iter().all(|b| *b == 0));
            buf[len - 1] = 7;
            assert_eq!(buf[len - 1], 7);
        }
        assert_eq!(AlignedBuf::zeroed(4 << 20).as_ptr() as usize % HUGE_PAGE, 0);
        assert!(AlignedBuf::default().is_empty());
    }
}
