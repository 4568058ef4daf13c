//! Flash targets as the writer and the read-back see them, whatever the system: opened
//! exclusively, with direct (unbuffered) I/O and buffers aligned to the device's logical block
//! size. How a drive or file is opened is the platform's (`linux/device.rs`, `windows/api/device.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::identity::{self, Identity};
use crate::io::medium::Medium;
pub use crate::io::sys::aligned::AlignedBuf;
pub use crate::io::sys::device::{
    check_names_a_drive, check_own_name, kind_of, open_for_read, open_for_write,
    resolve_file_target, writable_by_me, Folder,
};

/// Buffers are aligned for direct I/O on any device (logical blocks are 512 or 4096 bytes).
pub const ALIGN: usize = 4096;

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
    /// Direct I/O is on (O_DIRECT, FILE_FLAG_NO_BUFFERING): writes must be aligned and padded
    /// to the logical block size.
    pub direct: bool,
    /// A file this flash created, in the folder it was created in: removed again (from that
    /// folder, not by path) if the flash fails, so a failure leaves nothing.
    pub created: Option<(Folder, OsString)>,
    pub access: Access,
}

impl Target {
    /// Removes the file this flash created, if it did: a failed flash leaves nothing behind.
    pub fn remove_created(&self) {
        if let Some((folder, name)) = &self.created {
            folder.remove(name);
        }
    }
}

/// The folder a file is in; `.` for a bare file name (whose `parent()` is the empty path).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens the image file `path` for writing as `identity` (an existing file or a new one) says:
/// an existing one in the folder it was resolved in and checked to be the file approved, a new
/// one created there (never over anything) and removed again if the check fails. `open_error`
/// words the system's refusals.
pub fn open_file_for_write(
    path: &Path,
    identity: &Identity,
    open_error: fn(&Path, std::io::Error) -> Error,
) -> Result<Target> {
    let (file, created) = match identity {
        Identity::NewFile => {
            let (folder, name) = Folder::of(path)?;
            let file = folder.create(name).map_err(|e| open_error(path, e))?;
            if let Err(e) = identity::check(&file, path, identity) {
                folder.remove(name);
                return Err(e);
            }
            (file, Some((folder, name.to_owned())))
        }
        _ => {
            let (folder, name) = Folder::of(path)?;
            let file = folder
                .open_existing(name, true)
                .map_err(|e| open_error(path, e))?;
            identity::check(&file, path, identity)?;
            (file, None)
        }
    };
    let file_len = created
        .is_none()
        .then(|| file.metadata().map(|m| m.len()))
        .transpose()
        .map_err(|e| Error::io(path, e))?;
    Ok(Target {
        medium: Box::new(file),
        capacity: None,
        file_len,
        path: path.to_path_buf(),
        kind: TargetKind::File,
        logical_block_size: 512,
        direct: false,
        created,
        access: Access::Direct,
    })
}

/// `n` rounded up to a multiple of `block`.
pub fn round_up(n: u64, block: u64) -> u64 {
    n.div_ceil(block) * block
}

/// What a target path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    File,
    /// A whole disk or a partition: a block device on Linux, `\\.\PhysicalDriveN` on Windows.
    Drive,
    /// Anything else (a folder, a FIFO, a character device).
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_blocks() {
        assert_eq!(round_up(0, 512), 0);
        assert_eq!(round_up(1, 512), 512);
        assert_eq!(round_up(4096, 4096), 4096);
        assert_eq!(round_up(4097, 4096), 8192);
    }

    #[test]
    fn a_bare_name_is_in_the_working_folder() {
        assert_eq!(folder_of(Path::new("disk.img")), Path::new("."));
        assert_eq!(folder_of(Path::new("vms/disk.img")), Path::new("vms"));
    }
}
