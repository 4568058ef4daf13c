//! Checking an open drive or file against the identity its plan recorded, on Linux: `fstat` on
//! the descriptor (device number, inode) and the disk's `BLKGETDISKSEQ` and size.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::identity::{check_file, drive_changed, Identity};

/// The device and inode of an open file: what [`Identity::File`] records.
pub fn file_id(file: &File) -> std::io::Result<(u64, u64)> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The device and inode of the file or folder at `path` (links followed), if it exists.
pub fn file_id_at(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Refuses the open descriptor `file` of `path` unless it is what `identity` recorded.
pub fn check(file: &File, path: &Path, identity: &Identity) -> Result<()> {
    let Identity::Drive(expected) = identity else {
        return check_file(file, path, identity);
    };
    let changed = |what: String| drive_changed(path, &what);
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.file_type().is_block_device() {
        return Err(changed("it is no longer a block device".into()));
    }
    let rdev = meta.rdev();
    let devnum = format!("{}:{}", libc::major(rdev), libc::minor(rdev));
    if devnum != expected.devnum {
        return Err(changed(format!("device {devnum}, not {}", expected.devnum)));
    }
    if let Some(seq) = expected.diskseq {
        match diskseq(file) {
            Ok(now) if now != seq => {
                return Err(changed(format!("disk sequence {now}, not {seq}")))
            }
            Ok(_) => {}
            Err(e) => return Err(changed(format!("its disk sequence cannot be read: {e}"))),
        }
    }
    let size = crate::io::block::size_of(file).map_err(|e| Error::io(path, e))?;
    if size != expected.size {
        return Err(changed(format!("{size} bytes, not {}", expected.size)));
    }
    Ok(())
}

/// `BLKGETDISKSEQ` (linux/fs.h `_IOR(0x12, 128, __u64)`).
pub fn diskseq(file: &File) -> std::io::Result<u64> {
    const BLKGETDISKSEQ: libc::c_ulong = 0x8008_1280;
    let mut seq: u64 = 0;
    // SAFETY: the ioctl writes one u64 through the pointer we pass.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETDISKSEQ as _, &mut seq) };
    if rc == 0 {
        Ok(seq)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::identity::DriveIdentity;

    #[test]
    fn a_file_must_stay_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.img");
        std::fs::write(&path, b"disk").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let identity = Identity::File {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        check(&File::open(&path).unwrap(), &path, &identity).unwrap();
        // Replaced by another file under the same name.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        std::fs::write(&path, b"disk").unwrap();
        let err = check(&File::open(&path).unwrap(), &path, &identity).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        // A drive's identity never matches a regular file.
        let drive = Identity::Drive(DriveIdentity {
            devnum: "7:0".into(),
            diskseq: None,
            serial: String::new(),
            size: 4,
        });
        let err = check(&File::open(&path).unwrap(), &path, &drive).unwrap_err();
        assert!(
            err.to_string().contains("no longer a block device"),
            "{err}"
        );
    }
}
