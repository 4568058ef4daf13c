//! The machine labflash runs on: which drives there are and what they hold, who uses them, and
//! opening them as flashing needs (exclusive, direct I/O, through UDisks2 when this user may not).
//! Linux only (sysfs, /proc, block ioctls, O_DIRECT, D-Bus): the rest of the engine reaches the
//! machine through here.

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
pub mod udisks;
