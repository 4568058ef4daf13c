//! Reading a pipe that may stall (the privileged helper's stdin) without missing a cancel.

pub use crate::io::sys::cancellable::CancellableInput;
