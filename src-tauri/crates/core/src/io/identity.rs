//! A target is an identity, not a path. Between the moment an operator picks `/dev/sdb` (or
//! `\\.\PhysicalDrive2`) and the moment it is opened, a stick can be pulled and its name given to
//! another disk, a loop device re-attached to another file, or a symlink swapped. So the plan
//! records what the path named when it was approved (device number, `diskseq`, serial and size for
//! a drive; device and inode for an existing file) and every open — direct, through UDisks2's
//! descriptor, or in the privileged helper — opens without following symlinks, checks what it
//! opened and compares. Any difference refuses with "the drive changed since you chose it" before
//! a byte is written. The checks on an open file are the platform's.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
pub use crate::io::sys::identity::{check, file_id, file_id_at};

/// What a drive is, as listed: enough to tell it from any drive that takes its name later.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveIdentity {
    /// `major:minor` on Linux; on Windows the disk number N of `\\.\PhysicalDriveN`.
    pub devnum: String,
    /// The kernel's sequence number for this disk's media (Linux 5.15+): a new stick, or a loop
    /// device attached anew, gets a new one even under the same name and number. On Windows the
    /// device's GUID (`IOCTL_STORAGE_GET_DEVICE_NUMBER_EX`) folded to 64 bits: another device
    /// given the same disk number has another.
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
    file_id_at(path) == Some((*dev, *ino))
}

/// The refusal of a target that is no longer the drive the operator chose, saying how it differs.
pub fn drive_changed(path: &Path, how: &str) -> Error {
    Error::Refused {
        target: path.display().to_string(),
        reason: format!("the drive changed since you chose it ({how}); choose it again"),
    }
}

/// Refuses the open image file `file` of `path` unless it is what `identity` recorded: the same
/// file for an existing one (device and inode, or volume and file index), a regular file for a
/// new one. A drive's identity never vouches for a file.
pub fn check_file(file: &File, path: &Path, identity: &Identity) -> Result<()> {
    let refused = |reason: &str| Error::Refused {
        target: path.display().to_string(),
        reason: reason.into(),
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    match identity {
        Identity::Drive(_) => Err(drive_changed(path, "it is no longer a block device")),
        Identity::File { dev, ino } => {
            let id = file_id(file).map_err(|e| Error::io(path, e))?;
            if !meta.is_file() || id != (*dev, *ino) {
                return Err(refused(
                    "the file changed since it was chosen (another file is at its path now)",
                ));
            }
            Ok(())
        }
        Identity::NewFile if !meta.is_file() => Err(refused("it is no longer a regular file")),
        Identity::NewFile => Ok(()),
    }
}
