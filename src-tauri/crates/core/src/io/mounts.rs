//! Unmounting a drive's filesystems before it is written. On Linux, every mount point is
//! unmounted (never lazily) and the mount table read again; on Windows each volume is locked and
//! dismounted when the disk is opened, and held so until it is closed.

pub use crate::io::sys::mounts::unmount_drive;
