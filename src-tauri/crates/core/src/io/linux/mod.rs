//! The machine on Linux: sysfs and /proc, block ioctls, O_DIRECT, mounts, UDisks2 over D-Bus,
//! folders opened with openat.

pub mod aligned;
pub mod block;
pub mod cancellable;
pub mod device;
pub mod drives;
pub mod eject;
pub mod identity;
pub mod mounts;
pub mod openers;
pub mod private_dir;
pub mod privilege;
pub mod signals;
pub mod udisks;
