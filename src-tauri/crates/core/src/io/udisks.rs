//! UDisks2, which opens and unmounts drives for a desktop user on Linux (polkit asks). Windows has
//! no such service: there it is never available.

pub use crate::io::sys::udisks::available;
