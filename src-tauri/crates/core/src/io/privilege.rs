//! Whether a privileged helper can write what this user may not, and whether a file is safe to
//! run as one: on Linux the helper runs under pkexec from a path only root controls; Windows has
//! no helper yet, so writing a drive there needs labflash run as administrator.

pub use crate::io::sys::privilege::{helper_available, is_root, root_alone_controls};
