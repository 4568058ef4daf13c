//! Opening flash targets on Windows: a disk (`\\.\PhysicalDriveN`) unbuffered and write-through,
//! checked to be the disk chosen, with each of its volumes locked and dismounted and held until
//! it is closed; an image file as on Linux, in the folder it was resolved in.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_FILE_EXISTS, ERROR_INVALID_PARAMETER, ERROR_SHARING_VIOLATION,
};
use windows_sys::Win32::Storage::FileSystem::{FILE_FLAG_NO_BUFFERING, FILE_FLAG_WRITE_THROUGH};

use super::win32::{self, Volumes, Win32};
use super::{block, identity};
use crate::error::{Error, Result};
use crate::io::device::{folder_of, open_file_for_write, Access, PathKind, Target, TargetKind};
use crate::io::identity::Identity;
use crate::io::medium::Medium;
use crate::io::windows::disks::{self, Machine};
use crate::io::windows::{checks, locking};

fn disk_of(path: &Path) -> Option<u32> {
    path.to_str().and_then(disks::disk_number)
}

/// What `path` names: a disk by its `\\.\PhysicalDriveN` name, else what the file system says.
pub fn kind_of(path: &Path) -> io::Result<PathKind> {
    if disk_of(path).is_some() {
        return Ok(PathKind::Drive);
    }
    let meta = std::fs::metadata(path)?;
    Ok(if meta.is_file() {
        PathKind::File
    } else {
        PathKind::Other
    })
}

/// The privileged helper's rule: `target` names a whole disk.
pub fn check_names_a_drive(target: &Path) -> Result<()> {
    match disk_of(target) {
        Some(_) => Ok(()),
        None => Err(Error::Refused {
            target: target.display().to_string(),
            reason: "it is not a drive; name it \\\\.\\PhysicalDriveN".into(),
        }),
    }
}

/// The privileged helper's rule for the disks on its command line: each by its own name,
/// `\\.\PhysicalDriveN` (Windows has no links to a disk to follow).
pub fn check_own_name(path: &Path) -> Result<()> {
    check_names_a_drive(path)
}

/// Image files are opened by the path given: following links is Windows' own business (creating
/// one needs an administrator or developer mode).
pub fn resolve_file_target(path: &Path) -> Result<PathBuf> {
    Ok(path.to_path_buf())
}

/// Opens `path` for writing as `identity` says: a disk unbuffered and write-through with its
/// volumes taken from Windows, or an image file.
pub fn open_for_write(path: &Path, identity: &Identity) -> Result<Target> {
    let (Identity::Drive(_), Some(disk)) = (identity, disk_of(path)) else {
        if matches!(identity, Identity::Drive(_)) {
            return Err(crate::io::identity::drive_changed(
                path,
                "it is no longer named as a disk",
            ));
        }
        return open_file_for_write(path, identity, open_error);
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(win32::SHARE)
        .custom_flags(FILE_FLAG_NO_BUFFERING | FILE_FLAG_WRITE_THROUGH)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    identity::check(&file, path, identity)?;
    let logical_block_size = block::logical_block_size(&file).unwrap_or(512);
    let capacity = block::size_of(&file).map_err(|e| Error::io(path, e))?;
    let volumes =
        locking::take(&Volumes, &disks::volumes_on(disk, &Win32.volumes())).map_err(|e| {
            Error::Refused {
                target: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
    Ok(Target {
        medium: Box::new(Disk {
            file,
            sector: logical_block_size,
            capacity,
            _volumes: volumes,
        }),
        capacity: Some(capacity),
        file_len: None,
        path: path.to_path_buf(),
        kind: TargetKind::BlockDevice,
        logical_block_size,
        direct: true,
        created: None,
        access: Access::Direct,
    })
}

/// An open disk and the volume handles that keep it Windows-free while it is written.
struct Disk {
    file: File,
    sector: u32,
    capacity: u64,
    _volumes: Vec<File>,
}

impl Disk {
    fn aligned(&self, addr: usize, len: usize, offset: u64) -> io::Result<()> {
        match checks::unaligned(addr, len, offset, self.sector) {
            Some(why) => Err(io::Error::new(io::ErrorKind::InvalidInput, why)),
            None => Ok(()),
        }
    }
}

impl Medium for Disk {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.aligned(buf.as_ptr() as usize, buf.len(), offset)?;
        crate::io::block::write_all_at(&self.file, buf, offset)
    }
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let on_disk = checks::on_disk(buf.len(), offset, self.capacity);
        let buf = &mut buf[..on_disk];
        if buf.is_empty() {
            return Ok(0);
        }
        self.aligned(buf.as_ptr() as usize, buf.len(), offset)?;
        crate::io::block::read_full_at(&self.file, buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn drop_cache(&self) {}
    fn reread_partitions(&self) {
        block::reread_partitions(&self.file)
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    open_error_for(path, e, false)
}

/// Why `path` could not be opened, for writing or (`reading`) for reading.
fn open_error_for(path: &Path, e: io::Error, reading: bool) -> Error {
    let refused = |reason: &str| Error::Refused {
        target: path.display().to_string(),
        reason: reason.into(),
    };
    match e.raw_os_error().map(|c| c as u32) {
        Some(ERROR_ACCESS_DENIED) if disk_of(path).is_some() => {
            checks::administrator_needed(&path.display().to_string(), reading)
        }
        Some(ERROR_FILE_EXISTS) => refused("a file appeared at its path since it was chosen"),
        Some(ERROR_SHARING_VIOLATION) => refused("it is busy: another program has it open"),
        _ => Error::io(path, e),
    }
}

/// Opens `path` for reading back without the cache (`FILE_FLAG_NO_BUFFERING`), buffered only
/// where Windows refuses that.
pub fn open_for_read(path: &Path) -> Result<(File, bool)> {
    let open = |flags: u32| {
        OpenOptions::new()
            .read(true)
            .share_mode(win32::SHARE)
            .custom_flags(flags)
            .open(path)
    };
    match open(FILE_FLAG_NO_BUFFERING) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => {
            tracing::info!(path = %path.display(), "unbuffered reads are refused here; reading through the cache");
            Ok((open(0).map_err(|e| Error::io(path, e))?, false))
        }
        Err(e) => Err(open_error_for(path, e, true)),
    }
}

/// Whether this process may open `path` for writing (for a disk: whether it runs as an
/// administrator). Only a refusal of access says no: a busy or missing disk is not a reason to
/// ask for the elevated helper, and the open then says what it is.
pub fn writable_by_me(path: &Path) -> bool {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(win32::SHARE)
        .open(path);
    !matches!(opened, Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32))
}

/// The folder a new image file is created in. Windows has no handle-relative opens in its
/// ordinary API: the folder is kept by path.
pub struct Folder {
    path: PathBuf,
}

impl Folder {
    /// The folder holding the file `path` names, and the file's name in it.
    pub fn of(path: &Path) -> Result<(Folder, &OsStr)> {
        let name = path.file_name().ok_or_else(|| Error::Refused {
            target: path.display().to_string(),
            reason: "it names no file".into(),
        })?;
        let folder = folder_of(path);
        if !folder.is_dir() {
            return Err(Error::io(folder, io::ErrorKind::NotFound.into()));
        }
        Ok((
            Folder {
                path: folder.to_path_buf(),
            },
            name,
        ))
    }

    /// Creates `name` in the folder, never over an existing file.
    pub fn create(&self, name: &OsStr) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path.join(name))
    }

    /// Opens the existing file `name` in the folder.
    pub fn open_existing(&self, name: &OsStr, write: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.path.join(name))
    }

    /// Removes `name` from the folder (best effort): what [`create`](Self::create) made.
    pub fn remove(&self, name: &OsStr) {
        let _ = std::fs::remove_file(self.path.join(name));
    }
}
