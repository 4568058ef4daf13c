//! Windows lists no process's open handles to an unprivileged process; a disk in use is found
//! when its volumes are locked (`FSCTL_LOCK_VOLUME` refuses, and the refusal says to close it).

use crate::io::drives::{Drive, SystemRoots};
use crate::io::openers::User;

pub fn users_of(_drive: &Drive, _roots: &SystemRoots) -> Vec<User> {
    Vec::new()
}
