//! Reading a drive or file back and hashing exactly the image's length, from the device itself
//! (O_DIRECT after dropping the page cache), and locating the first difference when it mismatches.
//! `expected` settles what a verify-only check compares with.

pub mod expected;

pub use expected::{resolve_expected, Expectation, Expected, Resolver};

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{io_at, Error, Result};
use crate::fetch::digest::Sha256Digest;
use crate::io::block;
use crate::io::device::{self, AlignedBuf, ALIGN};
use crate::io::medium::Medium;
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::CancellationToken;

/// Read size for read-back: large enough for full device speed.
pub const READ_CHUNK: usize = 4 << 20;
const MIB: u64 = 1 << 20;

/// Feeds bytes `[start, start + len)` of `file` into `hasher`. Reads are aligned for O_DIRECT;
/// only the bytes inside the range are hashed.
pub(crate) fn hash_range(
    file: &dyn Medium,
    path: &Path,
    start: u64,
    len: u64,
    hasher: &mut Sha256,
    cancel: &CancellationToken,
    reporter: &mut Reporter<'_>,
) -> Result<()> {
    debug_assert_eq!(start % ALIGN as u64, 0);
    let mut buf = AlignedBuf::zeroed(READ_CHUNK);
    let mut done = 0u64;
    while done < len {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let want = (len - done).min(READ_CHUNK as u64);
        read_chunk(file, path, &mut buf, start + done, want)?;
        hasher.update(&buf[..want as usize]);
        done += want;
        reporter.update(done);
    }
    Ok(())
}

/// Reads `want` bytes at `offset` into `buf` (aligned for O_DIRECT); a device that ends first is
/// an error.
pub(crate) fn read_chunk(
    file: &dyn Medium,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    want: u64,
) -> Result<()> {
    let aligned = device::round_up(want, ALIGN as u64) as usize;
    let got = file
        .read_full_at(&mut buf[..aligned], offset)
        .map_err(io_at(path))?;
    if (got as u64) < want {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "it ends after {} bytes, before the image's end",
                    offset + got as u64
                ),
            ),
        ));
    }
    Ok(())
}

/// What `verify` found.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    #[serde(rename = "expectedSHA256")]
    pub expected_sha256: Sha256Digest,
    /// What vouches for the expected digest, for people.
    pub expected_from: String,
    /// The compressed archive whose image was expected: its verified digest.
    #[serde(rename = "archiveSHA256", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub archive_sha256: Option<Sha256Digest>,
    #[serde(rename = "match")]
    pub matches: bool,
}

/// Hashes exactly the expected image's length of a drive or file and compares.
pub fn verify(
    path: &Path,
    expected: &Expectation,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Verification> {
    let size = expected.size;
    let (file, _direct) = device::open_for_read(path)?;
    let available = block::size_of(&file).map_err(io_at(path))?;
    if available < size {
        return Err(Error::BadInput(format!(
            "{} holds {available} bytes, fewer than the {size} to verify",
            path.display()
        )));
    }
    let mut reporter = Reporter::new(progress, Stage::ReadBack, Some(size)).for_target(path);
    let mut hasher = Sha256::new();
    hash_range(&file, path, 0, size, &mut hasher, cancel, &mut reporter)?;
    reporter.finish(size);
    let sha256 = Sha256Digest::of_hasher(hasher);
    Ok(Verification {
        path: path.display().to_string(),
        size,
        sha256,
        expected_sha256: expected.sha256,
        expected_from: expected.from.clone(),
        archive_sha256: expected.archive_sha256,
        matches: sha256 == expected.sha256,
    })
}

/// The first MiB (counted from 0) in `[start, end)` whose content on the target does not match
/// the image's CRC-32 of that MiB.
pub(crate) fn first_different_mib(
    target: &dyn Medium,
    mib_crcs: &[u32],
    start: u64,
    end: u64,
) -> std::io::Result<Option<u64>> {
    let mut buf = AlignedBuf::zeroed(MIB as usize);
    let mut mib = start / MIB;
    while mib * MIB < end {
        let offset = mib * MIB;
        let want = (end - offset).min(MIB) as usize;
        let aligned = device::round_up(want as u64, ALIGN as u64) as usize;
        let got = target.read_full_at(&mut buf[..aligned], offset)?;
        let same =
            got >= want && mib_crcs.get(mib as usize) == Some(&crc32fast::hash(&buf[..want]));
        if !same {
            return Ok(Some(mib));
        }
        mib += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_different_mib_is_found_from_per_mib_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut image = vec![7u8; 5 * MIB as usize + 300];
        let digests: Vec<u32> = image.chunks(MIB as usize).map(crc32fast::hash).collect();
        std::fs::write(&path, &image).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(
            first_different_mib(&file, &digests, MIB, image.len() as u64).unwrap(),
            None
        );
        image[3 * MIB as usize + 5] ^= 1;
        std::fs::write(&path, &image).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(
            first_different_mib(&file, &digests, MIB, image.len() as u64).unwrap(),
            Some(3)
        );
        std::fs::write(&path, &image[..4 * MIB as usize]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let end = 5 * MIB + 300;
        assert_eq!(
            first_different_mib(&file, &digests, 4 * MIB, end).unwrap(),
            Some(4),
            "a short target"
        );
    }
}
