//! Reading input with a cancel, on Windows: the token is looked at before each read. (A pipe
//! read cannot be abandoned midway here: the elevated helper's read of its request pipe ends
//! when the app stops feeding it, closes it or goes away.)

use std::io::{self, Read};

use crate::error::{into_io, Error};
use crate::CancellationToken;

pub struct CancellableInput<R> {
    inner: R,
    cancel: CancellationToken,
}

impl<R: Read> CancellableInput<R> {
    pub fn new(inner: R, cancel: CancellationToken) -> Self {
        Self { inner, cancel }
    }
}

impl<R: Read> Read for CancellableInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(into_io(Error::Cancelled));
        }
        self.inner.read(buf)
    }
}
