//! The system asking labflash to stop: Ctrl-C, and on Linux SIGTERM, on Windows Ctrl-Break and
//! the console window closing. Front ends trip their cancel token when [`interrupted`] returns.

pub use crate::io::sys::signals::interrupted;
