//! The machine labflash runs on: which drives there are and what they hold, who uses them, and
//! opening them as flashing needs (exclusive, direct I/O, through UDisks2 when this user may not).
//! The rest of the engine reaches the machine through these modules only, the same on every
//! system; each forwards to its system's implementation, `linux/` (sysfs, /proc, block ioctls,
//! O_DIRECT, D-Bus) or `windows/` (physical disks, volume locks, unbuffered I/O). This folder is
//! the only place in the engine that names a system.

pub mod block;
pub mod cancellable;
pub mod device;
pub mod drives;
pub mod eject;
pub mod identity;
pub mod medium;
pub mod mounts;
pub mod openers;
pub mod private_dir;
pub mod privilege;
pub mod signals;
pub mod udisks;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(unix)]
mod linux;
#[cfg(unix)]
use linux as sys;

// Windows' decisions (what a disk is, which is the system's, how volumes are locked) are plain
// code, compiled and tested everywhere; only their calls into Windows are Windows-only.
#[cfg_attr(not(windows), allow(dead_code))]
mod windows;
#[cfg(windows)]
use windows::api as sys;
