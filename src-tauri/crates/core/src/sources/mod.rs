//! What to write: an image fetched from a URL (verified as `fetch` does), or a local file, hashed,
//! checked against a digest if one is given, and decompressed into the cache if it is compressed.
//! The named sources have their modules here: `talos_factory` (the Image Factory's catalog and
//! assets), `talos_build` (labctl's ImageBuild), `incus` (IncusOS's index and install seed),
//! `cidata` (the NoCloud config image).

pub mod cidata;
pub mod incus;
pub mod incus_build;
pub mod incus_seed;
pub mod incus_signed;
pub mod lab_file;
pub mod talos_boot_stick;
pub mod talos_build;
pub mod talos_factory;
pub mod talos_platform;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::decompress;
use crate::fetch::digest::Sha256Digest;
use crate::fetch::factory_signature::FactoryTrust;
use crate::fetch::http::Http;
use crate::fetch::is_url;
use crate::fetch::unwrap::ImageInside;
use crate::fetch::{self, DigestSource, FetchRequest};
use crate::image::Image;
use crate::progress::{ProgressSink, Stage};
use crate::CancellationToken;

/// What to fetch (or open) and who vouches for it: the one request every source comes down to,
/// that a flash, a prepare and a streamed flash start from.
#[derive(Clone, Debug)]
pub struct SourceRequest {
    /// An http(s) URL or a local path.
    pub source: String,
    pub sha256: Option<Sha256Digest>,
    /// Where `sha256` came from: the operator (`Flag`), or the publisher's index.
    pub sha256_source: DigestSource,
    /// Who signed the index `sha256` came from (an IncusOS index's signer), when it was signed.
    pub signed_by: Option<String>,
    /// An Image Factory's asset: what its signature is checked with (see `FetchRequest`).
    pub factory: Option<FactoryTrust>,
    pub allow_unverified: bool,
    pub max_image_size: u64,
}

/// Everything that can be flashed, as a front end names it.
#[derive(Debug)]
pub enum Source {
    /// A URL or a local image file.
    Image(SourceRequest),
    /// An Image Factory asset by version and extensions (or schematic).
    TalosFactory(talos_factory::AssetRequest),
    /// A labctl ImageBuild: the boot image and its cidata config image.
    TalosBuild(Box<talos_build::BuildRequest>),
    /// The newest IncusOS image of a channel, optionally with an install seed.
    Incus(incus::IncusRequest),
}

/// The image ready to write, whatever its source, and how its digest was established.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub image: Image,
    /// The archive as served (or the local file) and where its expected digest came from.
    pub archive_sha256: Sha256Digest,
    pub digest_source: DigestSource,
    /// Who signed the index the expected digest came from, when it was signed.
    pub signed_by: Option<String>,
    /// A labctl build's config image, written beside the boot image (or as its partition).
    pub config: Option<cidata::Cidata>,
    /// What the operator should know before writing it: an IncusOS seed without an install
    /// file, a Talos release that cannot read a FAT cidata.
    pub warnings: Vec<String>,
    /// Where the image came from, as its publisher named it (the asset's URL, or the local
    /// file): a built boot image's own name (`talos-boot.img`) says no platform or release, this
    /// does, so the flash decides from it what a config beside the image needs.
    pub origin: String,
    /// The tar or zip entry the image was unwrapped from, if it was.
    pub image_inside: Option<ImageInside>,
}

/// A prepared image as front ends receive it.
#[derive(serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "Prepared"))]
#[serde(rename_all = "camelCase")]
pub struct PreparedView<'a> {
    image_path: &'a Path,
    #[serde(rename = "imageSHA256")]
    image_sha256: Sha256Digest,
    image_size: u64,
    #[serde(rename = "archiveSHA256")]
    archive_sha256: Sha256Digest,
    digest_source: DigestSource,
    /// Who signed the index the expected digest came from (`CN=…, O=…`), when it was signed.
    signed_by: Option<&'a str>,
    /// A labctl build's config image.
    config: Option<&'a cidata::Cidata>,
    warnings: &'a [String],
    /// Why a config beside this image must go on a stick of its own (its release does not read
    /// cidata on its boot stick), if it must: the flash refuses the one-stick layout then.
    config_own_stick: Option<String>,
}

impl serde::Serialize for Prepared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PreparedView {
            image_path: &self.image.path,
            image_sha256: self.image.sha256,
            image_size: self.image.size,
            archive_sha256: self.archive_sha256,
            digest_source: self.digest_source,
            signed_by: self.signed_by.as_deref(),
            config: self.config.as_ref(),
            warnings: &self.warnings,
            config_own_stick: talos_boot_stick::check_one_stick(&self.origin).err(),
        }
        .serialize(s)
    }
}

impl Source {
    /// Whether it can be written straight from where it is (streamed): not what must be prepared
    /// as files before writing, a labctl build (two artifacts) or an IncusOS image with an
    /// install seed (written into a copy).
    pub fn streams(&self) -> bool {
        !matches!(self, Source::TalosBuild(_))
            && !matches!(self, Source::Incus(req) if req.seed.is_some())
    }
}

/// Locates what `source` names (a factory schematic is created, an index read). `None` for
/// what does not stream (`Source::streams`).
pub async fn locate(
    source: &Source,
    http: &Http,
    cancel: &CancellationToken,
) -> Result<Option<Found>> {
    if !source.streams() {
        return Ok(None);
    }
    Ok(Some(find(source, http, cancel).await?))
}

/// Where a source's image is and who vouches for it, found without downloading it.
pub struct Found {
    /// What a flash fetches (or opens), vouched for as a flash vouches for it.
    pub image: SourceRequest,
    /// The client that reaches it, when not the caller's: an Image Factory's (a labctl build's
    /// or a Talos source's), with its credentials and, for a build, the CA its config trusts.
    pub http: Option<Http>,
    /// The release it is (an IncusOS version).
    pub version: Option<String>,
    /// An Image Factory's schematic ID, created or given.
    pub schematic: Option<String>,
    /// What the source says to the operator before anything is fetched: an IncusOS seed
    /// without an install file, a labctl build's release.
    pub warnings: Vec<String>,
}

/// Finds what `source` names, whether it streams or not: `locate`, and for what is prepared as
/// files first (an IncusOS seed is checked, a labctl build's asset named), the image it starts
/// from.
pub async fn find(source: &Source, http: &Http, cancel: &CancellationToken) -> Result<Found> {
    let found = |image, version, schematic, warnings| Found {
        image,
        http: None,
        version,
        schematic,
        warnings,
    };
    Ok(match source {
        Source::Image(req) => found(req.clone(), None, None, Vec::new()),
        Source::TalosFactory(req) => {
            let (url, schematic) = talos_factory::locate_asset(http, req, cancel).await?;
            let image = SourceRequest {
                source: url.to_string(),
                sha256: req.sha256,
                sha256_source: DigestSource::Flag,
                signed_by: None,
                factory: Some(req.trust()?),
                allow_unverified: req.allow_unverified,
                max_image_size: req.max_image_size,
            };
            // Its checksum and asset go to the factory with the credentials its schematic did.
            let client = talos_factory::FactoryUrl::parse(&req.factory_url)?
                .http(http, req.factory_token.as_ref());
            Found {
                http: Some(client),
                ..found(
                    image,
                    Some(req.version.clone()),
                    Some(schematic),
                    Vec::new(),
                )
            }
        }
        Source::Incus(req) => {
            // Seed problems are the operator's: found before the index is read, as `fetch` does.
            let warnings = match &req.seed {
                Some(seed) => incus::seed_warnings(seed)?,
                None => Vec::new(),
            };
            let located = incus::locate(http, req, cancel).await?;
            let image = SourceRequest {
                source: located.url.to_string(),
                sha256: Some(located.sha256),
                sha256_source: DigestSource::Index,
                signed_by: located.signed_by,
                factory: None,
                allow_unverified: false,
                max_image_size: req.max_image_size,
            };
            found(image, Some(located.version), None, warnings)
        }
        Source::TalosBuild(req) => {
            let b = &req.build;
            let image = SourceRequest {
                source: b.source_url()?.to_string(),
                sha256: None,
                sha256_source: DigestSource::Flag,
                signed_by: None,
                factory: Some(
                    talos_factory::FactoryUrl::parse(&b.source.factory_url)?
                        .trust(req.factory_key.clone()),
                ),
                allow_unverified: req.allow_unverified,
                max_image_size: req.max_image_size,
            };
            Found {
                http: Some(talos_build::factory_http(req, http)?),
                ..found(
                    image,
                    Some(b.source.version.clone()),
                    Some(b.source.schematic_id.clone()),
                    b.warnings(),
                )
            }
        }
    })
}

/// Downloads (or opens), verifies and decompresses what `source` names: one entry point, one
/// result, whatever the source.
pub async fn prepare_source(
    source: &Source,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Prepared> {
    let image = |path, sha256, size| Image {
        path,
        sha256,
        size,
        tail: None,
    };
    Ok(match source {
        Source::Image(req) => prepare(req, http, cache, cancel, progress).await?,
        Source::TalosFactory(req) => {
            let f = talos_factory::fetch_asset(http, cache, req, cancel, progress).await?;
            let f = f.fetched;
            Prepared {
                origin: f.source_url.clone(),
                image: image(f.image_path, f.image_sha256, f.image_size),
                archive_sha256: f.archive_sha256,
                digest_source: f.digest_source,
                signed_by: f.signed_by,
                config: None,
                warnings: f.warnings,
                image_inside: f.image_inside,
            }
        }
        Source::Incus(req) => {
            let f = incus::fetch(http, cache, req, cancel, progress).await?;
            Prepared {
                origin: f.source_url.clone(),
                image: image(f.image_path, f.image_sha256, f.image_size),
                archive_sha256: f.archive_sha256,
                digest_source: DigestSource::Index,
                signed_by: f.index_signed_by.clone(),
                config: None,
                warnings: f.warnings,
                image_inside: None,
            }
        }
        Source::TalosBuild(req) => {
            let b = talos_build::build(req, cache, http, cancel, progress).await?;
            Prepared {
                origin: b.source_url.clone(),
                image: image(
                    b.boot_artifact_path,
                    b.boot_artifact_sha256,
                    b.boot_artifact_size,
                ),
                archive_sha256: b.archive_sha256,
                digest_source: b.digest_source,
                signed_by: b.signed_by,
                config: Some(cidata::Cidata {
                    path: b.config_artifact_path,
                    sha256: b.config_artifact_sha256,
                    size: b.config_artifact_size,
                }),
                warnings: b.warnings,
                image_inside: None,
            }
        }
    })
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
        let fetched =
            fetch::fetch(http, cache, &FetchRequest::of(url, req), cancel, progress).await?;
        return Ok(Prepared {
            image: Image {
                path: fetched.image_path,
                sha256: fetched.image_sha256,
                size: fetched.image_size,
                tail: None,
            },
            archive_sha256: fetched.archive_sha256,
            digest_source: fetched.digest_source,
            signed_by: fetched.signed_by.or_else(|| req.signed_by.clone()),
            config: None,
            warnings: fetched.warnings,
            origin: req.source.clone(),
            image_inside: fetched.image_inside,
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
        file,
        path,
        sha256: archive_sha256,
        size,
        digest_source,
    } = hash_local(path, req.sha256, cancel, progress).await?;
    let (image, image_inside) = if decompress::is_own_image(&file, &path)? {
        let image = Image {
            path,
            sha256: archive_sha256,
            size,
            tail: None,
        };
        (image, None)
    } else {
        let image_path = cache.local_image_path(&archive_sha256);
        let _lock = cache.lock(&image_path, cancel).await?;
        let (path, decoded) = fetch::image(
            cache,
            image_path,
            fetch::Proven {
                file,
                path,
                sha256: archive_sha256,
            },
            req.max_image_size,
            cancel,
            progress,
        )
        .await?;
        let image = Image {
            path,
            sha256: decoded.sha256,
            size: decoded.size,
            tail: None,
        };
        (image, decoded.inside)
    };
    Ok(Prepared {
        image,
        archive_sha256,
        digest_source,
        signed_by: req.signed_by.clone(),
        config: None,
        warnings: Vec::new(),
        origin: req.source.clone(),
        image_inside,
    })
}

/// A local image file, hashed and checked against the digest the operator gave, if any.
pub(crate) struct LocalFile {
    /// The descriptor it was hashed through, for whatever reads it next.
    pub file: std::fs::File,
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
    let Opened { file, path, .. } = open_local(path)?;
    let (sha256, size, file) =
        fetch::blocking_hash(file, &path, Stage::HashImage, cancel, progress).await?;
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
        file,
        path,
        sha256,
        size,
        digest_source,
    })
}

/// A local image file opened, not yet hashed.
pub(crate) struct Opened {
    pub file: std::fs::File,
    /// Canonical: what the targets are checked against.
    pub path: PathBuf,
    pub size: u64,
}

/// Opens a local image file: a regular file, named by its canonical path, that is not empty.
pub(crate) fn open_local(path: &Path) -> Result<Opened> {
    let unreadable = |e: std::io::Error| {
        Error::BadInput(format!("cannot read the image {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(Error::BadInput(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(Error::BadInput(format!("{} is empty", path.display())));
    }
    let path: PathBuf = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    Ok(Opened {
        file,
        path,
        size: meta.len(),
    })
}
