//! Reading a drive or file back and hashing exactly the image's length, from the device itself
//! (O_DIRECT after dropping the page cache), and locating the first difference when it mismatches.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{io_at, Error, Result};
use crate::fetch::digest::Sha256Digest;
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
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    #[serde(rename = "expectedSHA256")]
    pub expected_sha256: Sha256Digest,
    #[serde(rename = "match")]
    pub matches: bool,
}

/// Hashes exactly `size` bytes of a drive or file and compares them with `expected`.
pub fn verify(
    path: &Path,
    size: u64,
    expected: Sha256Digest,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Verification> {
    let (file, _direct) = device::open_for_read(path)?;
    let available = device::size_of(&file).map_err(io_at(path))?;
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
        expected_sha256: expected,
        matches: sha256 == expected,
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

/// Where the expected digest of a verify comes from.
#[derive(Clone, Debug)]
pub enum Expected {
    /// Typed or pasted.
    Digest(Sha256Digest),
    /// The digest and size of this image file.
    Image(std::path::PathBuf),
    /// A `.sha256` checksum file, by URL or path.
    Sidecar(String),
}

/// The expected digest and the number of bytes to hash. Without an image file to take the size
/// from, it is `size`, else the whole target when the target is a regular file.
pub async fn resolve_expected(
    expected: &Expected,
    target: &Path,
    size: Option<u64>,
    http: &crate::fetch::http::Http,
    cancel: &CancellationToken,
    progress: &std::sync::Arc<dyn ProgressSink>,
) -> Result<(Sha256Digest, u64)> {
    let digest = match expected {
        Expected::Digest(d) => *d,
        Expected::Image(image) => {
            let (digest, len) =
                crate::fetch::blocking_hash(image, Stage::HashImage, cancel, progress).await?;
            return Ok((digest, size.unwrap_or(len)));
        }
        Expected::Sidecar(source) if crate::fetch::is_url(source) => {
            let url = url::Url::parse(source)
                .map_err(|e| Error::BadInput(format!("{source:?} is not a valid URL: {e}")))?;
            crate::fetch::digest::parse_sidecar(&http.get_text(&url, cancel).await?, source)?
        }
        Expected::Sidecar(source) => {
            let text = std::fs::read_to_string(source).map_err(|e| {
                Error::BadInput(format!("cannot read the checksum file {source}: {e}"))
            })?;
            crate::fetch::digest::parse_sidecar(&text, source)?
        }
    };
    if let Some(size) = size {
        return Ok((digest, size));
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_file() => Ok((digest, m.len())),
        Ok(_) => Err(Error::BadInput(format!(
            "{} is a device: give the number of bytes to verify (the image's size)",
            target.display()
        ))),
        Err(e) => Err(Error::BadInput(format!(
            "cannot read {}: {e}",
            target.display()
        ))),
    }
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
