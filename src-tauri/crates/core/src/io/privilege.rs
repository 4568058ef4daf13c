//! Writing what this user may not: a privileged helper, started with the rights to write drives
//! behind the system's own prompt (Linux: pkexec asks for a password; Windows: a UAC prompt), and
//! talked to over two byte streams of its own, never a socket. `flash::helper` says what goes
//! over them; this module starts the helper and gives it its streams.

use std::io::{Read, Write};

pub use crate::io::sys::privilege::{is_root, serving_streams, start_helper, HelperProcess};

/// A started helper: the request and the image go in, its answer lines come out.
pub struct Helper {
    pub input: Box<dyn Write + Send>,
    pub output: Box<dyn Read + Send>,
    /// What the launcher said (pkexec's stderr), kept for an error's details.
    pub said: Box<dyn Read + Send>,
    pub process: HelperProcess,
}
