//! What to write: an image fetched from a URL (verified as `fetch` does), or a local file, hashed,
//! checked against a digest if one is given, and decompressed into the cache if it is compressed.
//! The named sources have their modules here: `talos_factory` (the Image Factory's catalog and
//! assets), `talos_build` (labctl's ImageBuild), `incus` (IncusOS's index and install seed),
//! `cidata` (the NoCloud config image).

pub mod cidata;
pub mod incus;
pub mod talos_build;
pub mod talos_factory;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::decompress::Format;
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::{self, DigestSource, FetchRequest};
use crate::flash::writer::Image;
use crate::progress::{ProgressSink, Stage};
use crate::CancellationToken;

#[derive(Clone, Debug)]
pub struct SourceRequest {
    /// An http(s) URL or a local path.
    pub source: String,
    pub sha256: Option<Sha256Digest>,
    pub allow_unverified: bool,
    pub max_image_size: u64,
}

/// The image ready to write, and how its digest was established.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub image: Image,
    pub archive_sha256: Sha256Digest,
    pub digest_source: DigestSource,
}

/// A URL when it says http(s)://, else a path.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

pub async fn prepare(
    req: &SourceRequest,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Prepared> {
    if is_url(&req.source) {
        let url = Url::parse(&req.source)
            .map_err(|e| Error::BadInput(format!("{:?} is not a valid URL: {e}", req.source)))?;
        let fetched = fetch::fetch(
            http,
            cache,
            &FetchRequest {
                url,
                sha256: req.sha256,
                sha256_source: DigestSource::Flag,
                allow_unverified: req.allow_unverified,
                max_image_size: req.max_image_size,
                archive_path: None,
            },
            cancel,
            progress,
        )
        .await?;
        return Ok(Prepared {
            image: Image {
                path: fetched.image_path,
                sha256: fetched.image_sha256,
                size: fetched.image_size,
                tail: None,
            },
            archive_sha256: fetched.archive_sha256,
            digest_source: fetched.digest_source,
        });
    }
    local(Path::new(&req.source), req, cache, cancel, progress).await
}

async fn local(
    path: &Path,
    req: &SourceRequest,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Prepared> {
    let LocalFile {
        path,
        sha256: archive_sha256,
        size,
        digest_source,
    } = hash_local(path, req.sha256, cancel, progress).await?;
    let image = if Format::of_file(&path)? == Format::Raw {
        Image {
            path,
            sha256: archive_sha256,
            size,
            tail: None,
        }
    } else {
        let image_path = cache.local_image_path(&archive_sha256);
        let _lock = cache.lock(&image_path, cancel).await?;
        let (path, sha256, size) = fetch::image(
            cache,
            image_path,
            &path,
            archive_sha256,
            req.max_image_size,
            cancel,
            progress,
        )
        .await?;
        Image {
            path,
            sha256,
            size,
            tail: None,
        }
    };
    Ok(Prepared {
        image,
        archive_sha256,
        digest_source,
    })
}

/// A local image file, hashed and checked against the digest the operator gave, if any.
pub(crate) struct LocalFile {
    /// Canonical: what the targets are checked against.
    pub path: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub digest_source: DigestSource,
}

/// Hashes a local image file (before any target is touched) and checks it against `expected`.
pub(crate) async fn hash_local(
    path: &Path,
    expected: Option<Sha256Digest>,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<LocalFile> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::BadInput(format!("cannot read the image {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::BadInput(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let path: PathBuf = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let (sha256, size) = fetch::blocking_hash(&path, Stage::HashImage, cancel, progress).await?;
    let digest_source = match expected {
        Some(expected) if expected != sha256 => {
            return Err(Error::DigestMismatch {
                what: "image file",
                expected: expected.hex(),
                actual: sha256.hex(),
            })
        }
        Some(_) => DigestSource::Flag,
        None => DigestSource::Unverified,
    };
    if size == 0 {
        return Err(Error::BadInput(format!("{} is empty", path.display())));
    }
    Ok(LocalFile {
        path,
        sha256,
        size,
        digest_source,
    })
}
