//! A target is an identity, not a path. Between the moment an operator picks `/dev/sdb` and the
//! moment it is opened, a stick can be pulled and its name given to another disk, a loop device
//! re-attached to another file, or a symlink swapped. So the plan records what the path named when
//! it was approved (device number, `diskseq`, serial and size for a drive; device and inode for an
//! existing file) and every open — direct, through UDisks2's descriptor, or in the privileged
//! helper — opens without following symlinks, `fstat`s the descriptor and compares. Any difference
//! refuses with "the drive changed since you chose it" before a byte is written.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Result};

/// What a drive is, as listed: enough to tell it from any drive that takes its name later.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveIdentity {
    /// `major:minor`.
    pub devnum: String,
    /// The kernel's sequence number for this disk's media (Linux 5.15+): a new stick, or a loop
    /// device attached anew, gets a new one even under the same name and number.
    pub diskseq: Option<u64>,
    pub serial: String,
    pub size: u64,
}

/// What a target was when it was approved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Identity {
    Drive(DriveIdentity),
    /// An image file that existed: it must still be that file.
    File {
        dev: u64,
        ino: u64,
    },
    /// An image file the flash will create.
    NewFile,
}

/// Whether the file at `path` is the image file `identity` recorded (the same device and inode).
pub fn is_file(path: &Path, identity: &Identity) -> bool {
    let Identity::File { dev, ino } = identity else {
        return false;
    };
    std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (*dev, *ino))
}

/// Refuses the open descriptor `file` of `path` unless it is what `identity` recorded.
pub fn check(file: &File, path: &Path, identity: &Identity) -> Result<()> {
    let changed = |what: String| drive_changed(path, &what);
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    match identity {
        Identity::Drive(expected) => {
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
                    Err(e) => {
                        return Err(changed(format!("its disk sequence cannot be read: {e}")))
                    }
                }
            }
            let size = crate::io::block::size_of(file).map_err(|e| Error::io(path, e))?;
            if size != expected.size {
                return Err(changed(format!("{size} bytes, not {}", expected.size)));
            }
            Ok(())
        }
        Identity::File { dev, ino } => {
            if !meta.is_file() || meta.dev() != *dev || meta.ino() != *ino {
                return Err(Error::Refused {
                    target: path.display().to_string(),
                    reason:
                        "the file changed since it was chosen (another file is at its path now)"
                            .into(),
                });
            }
            Ok(())
        }
        Identity::NewFile => {
            if !meta.is_file() {
                return Err(Error::Refused {
                    target: path.display().to_string(),
                    reason: "it is no longer a regular file".into(),
                });
            }
            Ok(())
        }
    }
}

/// The refusal of a target that is no longer the drive the operator chose, saying how it differs.
pub fn drive_changed(path: &Path, how: &str) -> Error {
    Error::Refused {
        target: path.display().to_string(),
        reason: format!("the drive changed since you chose it ({how}); choose it again"),
    }
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
