//! The machine on Windows. The decisions are plain code, tested on every system against
//! recorded answers: what a disk is and which disks Windows needs (`disks`, from the IOCTL
//! answers `answers` reads), how a disk's volumes are taken before writing (`locking`), and
//! the checks on an opened disk (`checks`). Only `api/` calls Windows (windows-sys), and it is
//! thin: it asks, and hands the answers to these.

pub mod answers;
pub mod checks;
pub mod command_line;
pub mod disks;
pub mod locking;

#[cfg(windows)]
pub mod api;
#[cfg(test)]
mod recorded;
