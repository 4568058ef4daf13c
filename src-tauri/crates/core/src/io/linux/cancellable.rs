//! Reading a pipe that may stall (the privileged helper's stdin) without missing a cancel: the
//! read waits at most a tenth of a second at a time for data, and a cancelled token ends it.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::error::{into_io, Error};
use crate::CancellationToken;

/// How long one wait for data lasts before the token is looked at again.
const TICK: Duration = Duration::from_millis(100);

pub struct CancellableInput<R> {
    inner: R,
    cancel: CancellationToken,
}

impl<R: Read + AsFd> CancellableInput<R> {
    pub fn new(inner: R, cancel: CancellationToken) -> Self {
        Self { inner, cancel }
    }
}

impl<R: Read + AsFd> Read for CancellableInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: TICK.as_nanos() as _,
        };
        loop {
            if self.cancel.is_cancelled() {
                return Err(into_io(Error::Cancelled));
            }
            let mut fds = [PollFd::new(&self.inner, PollFlags::IN)];
            match poll(&mut fds, Some(&tick)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                // Readable, closed or failed: the read itself says which.
                Ok(_) => return self.inner.read(buf),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_stalled_pipe_ends_within_a_tick_of_the_cancel() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let cancel = CancellationToken::new();
        let mut input = CancellableInput::new(reader, cancel.clone());
        let later = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            later.cancel();
        });
        let started = Instant::now();
        let err = input.read(&mut [0u8; 16]).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(crate::error::carried(err), Some(Error::Cancelled)));
    }

    #[test]
    fn data_and_the_end_pass_through() {
        use std::io::Write;
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"abc").unwrap();
        drop(writer);
        let mut input = CancellableInput::new(reader, CancellationToken::new());
        let mut got = Vec::new();
        input.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc");
    }
}
