//! When to read a target's chunk before writing it, to leave alone what it already holds.
//!
//! A try reads the chunk's first MiB, and the rest only when that MiB is equal (on a USB stick,
//! reading a chunk costs a third of writing it). It pays where the drive holds the image already:
//! a stick re-flashed with the same or the next version of a layout, zeros where a new stick has
//! zeros. On a drive of unrelated data every try is lost, so after each miss the writer waits
//! before the next, four times longer each time (1, 4, 16, then 64 chunks). A run of zeros in
//! the image is where a previous version or a new stick most likely matches: its first chunk is
//! tried at once, unless two such tries in a row missed too. A chunk found partly equal starts
//! trying every chunk again.
//!
//! Skipping only saves writes: every byte is still read back after the last write, so a chunk
//! found equal and changed later is caught like any other.

/// The longest wait between two tries, in chunks: on a drive of unrelated data, after the first
/// few, one chunk in 64 is tried.
const MAX_WAIT: u32 = 64;

/// The decision for one target, chunk after chunk.
#[derive(Debug, Default)]
pub(crate) struct Skipper {
    /// Pre-reads in a row that found nothing equal.
    misses: u32,
    /// Chunks still to be written without a pre-read.
    wait: u32,
    /// Tries at the start of a zero run in a row that found nothing equal.
    zero_misses: u32,
    /// The previous chunk of the image was all zeros.
    after_zeros: bool,
    /// A try was made at this chunk because it starts a zero run.
    zero_try: bool,
}

impl Skipper {
    /// Whether to pre-read the next chunk, whose image bytes are all zeros or not.
    pub(crate) fn should_read(&mut self, zeros: bool) -> bool {
        let starts_zero_run = zeros && !self.after_zeros;
        self.after_zeros = zeros;
        self.zero_try = false;
        if self.wait == 0 {
            return true;
        }
        self.wait -= 1;
        if starts_zero_run && self.zero_misses < 2 {
            self.zero_try = true;
            return true;
        }
        false
    }

    /// What the pre-read found: whether any part of the chunk was already equal.
    pub(crate) fn found(&mut self, any_equal: bool) {
        if any_equal {
            *self = Self {
                after_zeros: self.after_zeros,
                ..Self::default()
            };
            return;
        }
        if self.zero_try {
            self.zero_misses += 1;
        }
        self.misses += 1;
        self.wait = 4u32.saturating_pow(self.misses - 1).min(MAX_WAIT);
    }
}

/// Whether `bytes` are all zeros (the image's zero runs), 64 bytes at a time so it vectorizes.
pub(crate) fn all_zeros(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    blocks
        .by_ref()
        .all(|block| block.iter().fold(0, |acc, b| acc | b) == 0)
        && blocks.remainder().iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a drive: `equal[i]` is whether chunk i is found equal when read.
    fn replay(image_zeros: &[bool], equal: &[bool]) -> Vec<usize> {
        let mut skipper = Skipper::default();
        let mut read = Vec::new();
        for (i, zeros) in image_zeros.iter().enumerate() {
            if skipper.should_read(*zeros) {
                read.push(i);
                skipper.found(equal[i]);
            }
        }
        read
    }

    #[test]
    fn a_drive_that_holds_the_image_is_read_chunk_by_chunk() {
        let n = 256;
        assert_eq!(replay(&vec![false; n], &vec![true; n]).len(), n);
    }

    #[test]
    fn a_drive_of_unrelated_data_is_tried_ever_less_often() {
        let n = 256; // a 1 GiB image in 4 MiB chunks
        let read = replay(&vec![false; n], &vec![false; n]);
        assert_eq!(read, vec![0, 2, 7, 24, 89, 154, 219]);
        // Zero runs in the image are tried twice, then no more than the rest.
        let zeros: Vec<bool> = (0..n).map(|i| i % 8 == 7).collect();
        let read = replay(&zeros, &vec![false; n]);
        assert!(read.len() <= 10, "{read:?}");
    }

    #[test]
    fn after_a_changed_region_the_next_zero_run_is_tried_at_once() {
        // The previous version: chunks 10..40 changed, then a zero run the drive holds too.
        let n = 64;
        let zeros: Vec<bool> = (0..n).map(|i| i >= 40).collect();
        let equal: Vec<bool> = (0..n).map(|i| !(10..40).contains(&i)).collect();
        let read = replay(&zeros, &equal);
        assert!(read.contains(&40), "{read:?}");
        assert!((40..n).all(|i| read.contains(&i)), "{read:?}");
        assert!(read.iter().filter(|i| (10..40).contains(*i)).count() <= 6);
    }

    #[test]
    fn zeros_are_found_word_by_word_and_in_the_tail() {
        assert!(all_zeros(&[0; 4099]));
        let mut bytes = vec![0; 4099];
        bytes[4098] = 1;
        assert!(!all_zeros(&bytes));
        bytes[4098] = 0;
        bytes[7] = 1;
        assert!(!all_zeros(&bytes));
        assert!(all_zeros(&[]));
    }
}
