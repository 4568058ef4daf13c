//! Opening flash targets and reading them back as block devices want: exclusive, direct I/O with
//! buffers aligned to the device's logical block size, and re-reading the partition table.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::identity::{self, Identity};
use crate::io::medium::Medium;

/// Buffers are aligned for O_DIRECT on any device (logical blocks are 512 or 4096 bytes).
pub const ALIGN: usize = 4096;

// Linux block ioctls (linux/fs.h), not exported by the libc crate.
const BLKRRPART: libc::c_ulong = 0x125f;
const BLKSSZGET: libc::c_ulong = 0x1268;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    BlockDevice,
    File,
}

/// How a target was reached: opened by this process, through UDisks2 (polkit), or by the
/// privileged helper (pkexec).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Direct,
    Udisks2,
    Helper,
}

/// A target opened for writing.
pub struct Target {
    /// The open drive or file (memory in the writer's tests).
    pub medium: Box<dyn Medium>,
    /// A drive's size: the writer stops there. `None` for a file, which grows.
    pub capacity: Option<u64>,
    /// An existing file's length when it was opened: its last 64 KiB are wiped like a drive's
    /// end (a VM disk larger than the image keeps its size, not its old backup GPT).
    pub file_len: Option<u64>,
    pub path: PathBuf,
    pub kind: TargetKind,
    pub logical_block_size: u32,
    /// O_DIRECT is on: writes must be aligned and padded to the logical block size.
    pub direct: bool,
    /// A file this flash created: removed again if the flash fails, so a failure leaves nothing.
    pub created: bool,
    pub access: Access,
}

/// Opens `path` for writing and reading back, never following a symlink, and refuses it unless
/// the descriptor is what `identity` recorded: a block device `O_RDWR|O_EXCL|O_DIRECT|O_CLOEXEC`
/// (EBUSY is a refusal; O_DIRECT is dropped only where the device rejects it), directly or
/// through UDisks2; a regular file as it is (or created).
pub fn open_for_write(path: &Path, identity: &Identity) -> Result<Target> {
    if !matches!(identity, Identity::Drive(_)) {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW);
        let (file, created) = match identity {
            Identity::NewFile => match options.clone().create_new(true).open(path) {
                Ok(file) => (file, true),
                Err(e) => return Err(open_error(path, e)),
            },
            _ => (options.open(path).map_err(|e| open_error(path, e))?, false),
        };
        if let Err(e) = identity::check(&file, path, identity) {
            if created {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        let file_len = (!created)
            .then(|| file.metadata().map(|m| m.len()))
            .transpose()
            .map_err(|e| Error::io(path, e))?;
        return Ok(Target {
            medium: Box::new(file),
            capacity: None,
            file_len,
            path: path.to_path_buf(),
            kind: TargetKind::File,
            logical_block_size: 512,
            direct: false,
            created,
            access: Access::Direct,
        });
    }
    let ((file, access), direct) = match open_block(path, true, libc::O_EXCL | libc::O_DIRECT) {
        Ok(f) => (f, true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %path.display(), "the device rejects O_DIRECT; writing through the page cache");
            (open_block(path, true, libc::O_EXCL)?, false)
        }
        Err(e) => return Err(e),
    };
    identity::check(&file, path, identity)?;
    let logical_block_size = logical_block_size(&file).map_err(|e| Error::io(path, e))?;
    let capacity = Some(size_of(&file).map_err(|e| Error::io(path, e))?);
    Ok(Target {
        medium: Box::new(file),
        capacity,
        file_len: None,
        path: path.to_path_buf(),
        kind: TargetKind::BlockDevice,
        logical_block_size,
        direct,
        created: false,
        access,
    })
}

/// Opens a block device directly where this user may (root, the disk group), else through UDisks2,
/// which asks polkit.
fn open_block(path: &Path, write: bool, flags: libc::c_int) -> Result<(File, Access)> {
    let direct = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(flags | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path);
    match direct {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            tracing::info!(path = %path.display(), "no direct access; asking UDisks2 to open it");
            let file = crate::io::udisks::open(path, write, flags | libc::O_CLOEXEC)?;
            Ok((file, Access::Udisks2))
        }
        other => other
            .map(|f| (f, Access::Direct))
            .map_err(|e| open_error(path, e)),
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Refused {
            target: path.display().to_string(),
            reason: "it became a symbolic link since it was chosen".into(),
        },
        Some(libc::EEXIST) => Error::Refused {
            target: path.display().to_string(),
            reason: "a file appeared at its path since it was chosen".into(),
        },
        Some(libc::EBUSY) => Error::Refused {
            target: path.display().to_string(),
            reason: "it is busy: a filesystem on it is mounted or another program has it open"
                .into(),
        },
        _ => Error::io(path, e),
    }
}

/// Opens `path` for reading back without the page cache: O_DIRECT where possible, and the
/// kernel told to drop what it cached of the file either way (Etcher #1523, Imager #414 verified
/// from the cache).
pub fn open_for_read(path: &Path) -> Result<(File, bool)> {
    let is_block = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let open = |flags: libc::c_int| {
        if is_block {
            open_block(path, false, flags).map(|(f, _)| f)
        } else {
            OpenOptions::new()
                .read(true)
                .custom_flags(flags | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io(path, e))
        }
    };
    let (file, direct) = match open(libc::O_DIRECT) {
        Ok(f) => (f, true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            tracing::info!(path = %path.display(), "O_DIRECT is not supported here; reading after dropping the cache");
            (open(0)?, false)
        }
        Err(e) => return Err(e),
    };
    drop_cache(&file);
    Ok((file, direct))
}

/// Whether this process may open `path` for writing itself (access(2) with the real ids).
pub fn writable_by_me(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

/// Asks the kernel to forget cached pages of the whole file (best effort).
pub fn drop_cache(file: &File) {
    // SAFETY: plain syscall on an owned, open descriptor.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

pub fn logical_block_size(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKSSZGET, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size as u32)
}

/// The size of a block device, or of a regular file.
pub fn size_of(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Ok(meta.len());
    }
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Asks the kernel to re-read the partition table; devices without partition scanning (some
/// loop devices) refuse, which is harmless.
pub fn reread_partitions(file: &File) {
    // SAFETY: BLKRRPART takes no argument.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART) } != 0 {
        tracing::debug!("BLKRRPART: {}", io::Error::last_os_error());
    }
}

/// A zeroed buffer whose start is aligned to [`ALIGN`], as O_DIRECT requires, in a mapping of
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
                std::alloc::Layout::from_size_align(map_len, ALIGN).expect("buffer layout"),
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

/// `n` rounded up to a multiple of `block`.
pub fn round_up(n: u64, block: u64) -> u64 {
    n.div_ceil(block) * block
}

/// Writes all of `buf` at `offset`.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    FileExt::write_all_at(file, buf, offset)
}

/// Reads up to `buf.len()` bytes at `offset`, stopping early only at the end of the device.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(round_up(1, 512), 512);
        assert_eq!(round_up(4096, 4096), 4096);
        assert_eq!(round_up(4097, 4096), 8192);
    }
}
