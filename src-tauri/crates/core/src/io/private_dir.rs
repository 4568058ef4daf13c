//! A folder only this user can change, and everything under it opened relative to it: the cache
//! lives in one. See `linux/private_dir.rs` for the rule and `windows/api/private_dir.rs` for
//! what Windows gives of it.

pub use crate::io::sys::private_dir::PrivateDir;
