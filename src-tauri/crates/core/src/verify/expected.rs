//! What a verify-only check compares a drive or file with: a digest typed, an image file's, or a
//! publisher's checksum file's. A checksum of a compressed archive (the file its line names, else
//! its own name: `….raw.xz.sha256`) vouches for the archive, not for what a drive holds: the
//! archive is then fetched into the cache as `fetch` does (or taken from there), or taken from
//! beside a local checksum file and decoded hashing only, proven against it, and its image's
//! digest and size are what the drive is compared with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::decompress::{self, Format};
use crate::fetch::digest::{self, Sha256Digest};
use crate::fetch::http::Http;
use crate::fetch::{self, DigestSource, FetchRequest};
use crate::progress::{ProgressSink, Stage};
use crate::CancellationToken;

/// Where the expected digest of a verify comes from.
#[derive(Clone, Debug)]
pub enum Expected {
    /// Typed or pasted.
    Digest(Sha256Digest),
    /// The digest and size of this image file; of the image inside it when it is compressed or
    /// a tar or zip holding one disk image.
    Image(PathBuf),
    /// A `.sha256` checksum file, by URL or path.
    Sidecar(String),
}

/// What a drive or file must hold: `size` bytes hashing to `sha256`.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// What vouches for `sha256`, for people.
    pub from: String,
    /// The compressed archive the image came from, as proven.
    pub archive_sha256: Option<Sha256Digest>,
}

/// What a verify needs besides the expected digest: where to fetch and cache an archive, and
/// how large its image may be.
pub struct Resolver<'a> {
    pub http: &'a Http,
    /// The caller's cache folder (see `Cache::resolve_dir`), opened only when an archive is
    /// fetched.
    pub cache_dir: Option<PathBuf>,
    pub max_image_size: u64,
}

/// Settles what `target` is compared with. The size is the image's when an image or archive
/// gives one, else `size`, else the whole target when it is a regular file.
pub async fn resolve_expected(
    expected: &Expected,
    target: &Path,
    size: Option<u64>,
    with: &Resolver<'_>,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Expectation> {
    let (sha256, from) = match expected {
        Expected::Digest(d) => (*d, "the digest you gave".to_string()),
        Expected::Image(image) => return of_image(image, None, with, cancel, progress).await,
        Expected::Sidecar(source) if crate::fetch::is_url(source) => {
            let url = Url::parse(source)
                .map_err(|e| Error::BadInput(format!("{source:?} is not a valid URL: {e}")))?;
            let text = with.http.get_text(&url, cancel).await?;
            let sha256 = digest::parse_sidecar(&text, source)?;
            if let Some(name) = archive_named(&text, url.path()) {
                no_size(size)?;
                let archive = url.join(&name).map_err(|e| {
                    Error::BadInput(format!(
                        "{source} names {name:?}, which is no file beside it: {e}"
                    ))
                })?;
                return of_published_archive(archive, sha256, source, with, cancel, progress).await;
            }
            (sha256, format!("the checksum file {source}"))
        }
        Expected::Sidecar(source) => {
            let text = std::fs::read_to_string(source).map_err(|e| {
                Error::BadInput(format!("cannot read the checksum file {source}: {e}"))
            })?;
            let sha256 = digest::parse_sidecar(&text, source)?;
            if let Some(name) = archive_named(&text, source) {
                no_size(size)?;
                let archive = crate::io::device::folder_of(Path::new(source)).join(&name);
                if !archive.is_file() {
                    return Err(Error::BadInput(format!(
                        "the checksum file {source} is of the compressed archive {}, which is not beside it: give that archive with --image, or the checksum file's URL",
                        archive.display()
                    )));
                }
                let vouched = (sha256, source.as_str());
                return of_image(&archive, Some(vouched), with, cancel, progress).await;
            }
            (sha256, format!("the checksum file {source}"))
        }
    };
    Ok(Expectation {
        sha256,
        size: size_to_check(target, size)?,
        from,
        archive_sha256: None,
    })
}

/// The compressed archive a checksum file is of, by file name: the one its line names, else its
/// own name without `.sha256` / `.sha256sum` (`os.raw.xz.sha256` → `os.raw.xz`). `None` when
/// that is no compressed archive's name (the checksum is then of the image itself).
fn archive_named(text: &str, checksum: &str) -> Option<String> {
    let own = checksum.rsplit('/').next().unwrap_or(checksum);
    let name = match digest::sidecar_names(text) {
        Some(named) => named.rsplit('/').next().unwrap_or(named).to_string(),
        None => [".sha256", ".sha256sum"]
            .iter()
            .find_map(|ext| own.strip_suffix(ext))?
            .to_string(),
    };
    [".xz", ".gz", ".zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
        .then_some(name)
}

/// An archive's image gives the size: one typed as well is refused, not ignored.
fn no_size(size: Option<u64>) -> Result<()> {
    match size {
        Some(_) => Err(Error::BadInput(
            "the checksum is of a compressed archive, whose image gives the size: leave out the size".into(),
        )),
        None => Ok(()),
    }
}

/// The image a published archive holds: fetched into the cache (or found there) and proven
/// against the checksum file's digest, exactly as `fetch` does.
async fn of_published_archive(
    archive: Url,
    sha256: Sha256Digest,
    checksum: &str,
    with: &Resolver<'_>,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Expectation> {
    let mut req = FetchRequest::verified(archive.clone(), Some(sha256), false, with.max_image_size);
    req.sha256_source = DigestSource::Sidecar;
    let cache = Cache::open(Cache::resolve_dir(with.cache_dir.as_deref())?)?;
    let fetched = fetch::fetch(with.http, &cache, &req, cancel, progress).await?;
    Ok(Expectation {
        sha256: fetched.image_sha256,
        size: fetched.image_size,
        from: format!("the image in {archive}, whose SHA-256 matches {checksum}"),
        archive_sha256: Some(fetched.archive_sha256),
    })
}

/// An image file's digest and size; for a compressed file, its image's (decoded, hashing only,
/// after the file itself is proven against `vouched`, a checksum file's digest, if given).
async fn of_image(
    image: &Path,
    vouched: Option<(Sha256Digest, &str)>,
    with: &Resolver<'_>,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Expectation> {
    let file = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
    let (file_sha256, len, file) =
        fetch::blocking_hash(file, image, Stage::HashImage, cancel, progress).await?;
    if let Some((expected, checksum)) = vouched {
        if expected != file_sha256 {
            return Err(Error::DigestMismatch {
                what: "archive beside the checksum file",
                expected: expected.hex(),
                actual: format!("{file_sha256} ({checksum} is not of this file)"),
            });
        }
    }
    let format = Format::of_open(&file, image)?;
    if decompress::is_own_image(&file, image)? {
        return Ok(Expectation {
            sha256: file_sha256,
            size: len,
            from: format!("the image file {}", image.display()),
            archive_sha256: None,
        });
    }
    let (src, limit) = (image.to_path_buf(), with.max_image_size);
    let (cancel, progress) = (cancel.clone(), progress.clone());
    let decoded = tokio::task::spawn_blocking(move || {
        let output = decompress::Output {
            to: &mut std::io::sink(),
            path: Path::new("the decoded image"),
            stage: Stage::Decompress,
        };
        decompress::decompress(
            file,
            &src,
            format,
            output,
            limit,
            &cancel,
            progress.as_ref(),
        )
    })
    .await
    .expect("the decoding thread panicked")?;
    let from = match vouched {
        Some((_, checksum)) => format!(
            "the image in {}, whose SHA-256 matches {checksum}",
            image.display()
        ),
        None => format!("the image in {}", image.display()),
    };
    Ok(Expectation {
        sha256: decoded.sha256,
        size: decoded.size,
        from,
        archive_sha256: Some(file_sha256),
    })
}

/// How many bytes of `target` to hash when no image gives the size.
fn size_to_check(target: &Path, size: Option<u64>) -> Result<u64> {
    if let Some(size) = size {
        return Ok(size);
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_file() => Ok(m.len()),
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
    fn a_checksum_of_a_compressed_archive_names_it() {
        let hex = "ab".repeat(32);
        let bare = format!("{hex}\n");
        assert_eq!(
            archive_named(&bare, "/image/s/v1.13.0/nocloud-amd64.raw.xz.sha256").as_deref(),
            Some("nocloud-amd64.raw.xz")
        );
        assert_eq!(
            archive_named(&bare, "x86_64/IncusOS_1.img.gz.sha256sum").as_deref(),
            Some("IncusOS_1.img.gz")
        );
        assert_eq!(archive_named(&bare, "os.raw.sha256"), None);
        assert_eq!(archive_named(&bare, "os.raw.xz"), None);
        // The line's own name wins over the checksum file's name.
        let named = format!("{hex} *img.raw.xz\n");
        assert_eq!(
            archive_named(&named, "CHECKSUM").as_deref(),
            Some("img.raw.xz")
        );
        assert_eq!(
            archive_named(&format!("{hex}  img.raw\n"), "img.raw.xz.sha256"),
            None
        );
    }
}
