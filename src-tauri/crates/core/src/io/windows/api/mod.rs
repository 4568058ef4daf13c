//! io/ on Windows: each module implements its namesake in io/ with the Win32 calls of
//! `win32.rs` and the decisions of io/windows/.

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
mod win32;
