//! Which processes use a drive, so a flash names who to close instead of writing under them.
//! Linux reads /proc; Windows has no such list for an unprivileged process, and its volume lock
//! refuses a drive in use when the drive is opened.

pub use crate::io::sys::openers::users_of;

/// A process using a drive, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub pid: u32,
    pub name: String,
    /// What it holds: `/dev/sdb1`, or a path inside a mounted filesystem.
    pub holds: String,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} ({}) holds {}",
            self.pid, self.name, self.holds
        )
    }
}
