//! Verified fetch: from a URL to a verified, decompressed image in the cache. Read top to bottom,
//! `fetch` is the whole flow:
//!
//! 1. settle the expected digest (the caller's, else an Image Factory's signature of it, else the
//!    `<url>.sha256` sidecar, …), before any byte of the archive arrives;
//! 2. lock the asset, so a second process waits and then reuses the first one's result;
//! 3. reuse the cached archive if it re-hashes to the expected digest, else download it into a temp
//!    file (cut off when it grows past what an archive of an image within the size limit can
//!    take), hashing exactly the bytes kept, and give it its name only if the digest matches;
//!    an archive whose records say its image is over the limit is refused before decoding;
//! 4. decompress it (format from magic bytes, size bounded; a tar or zip holding one disk image
//!    unwrapped) into a temp file, hashing the image, and rename it into place. A cached image is kept only when decoding the verified archive
//!    again yields it byte for byte: nothing beside it (no record) can vouch for it.
//!
//! Each step has its module here: `http` (retries, timeouts, resume), `tls` (the trust store),
//! `digest` (SHA-256, checksum files), `sha512` (a `.sha512` file), `factory_signature` (an
//! Image Factory's signed assets: `sigstore_bundle`, `factory_key`), `cache` (layout, locks,
//! atomic files), `decompress` (xz, gzip, zstd, raw; bounded), `unwrap` (the one disk image in a
//! tar or zip), `image_size` (an archive's records of its image's size).

pub mod cache;
pub mod credentials;
pub mod decompress;
pub mod digest;
pub mod factory_key;
pub mod factory_signature;
pub mod http;
pub mod image_size;
pub mod sha512;
pub mod sigstore_bundle;
pub mod tls;
pub mod unwrap;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use std::io::{Seek, Write};
use url::Url;

use crate::error::{io_at, Error, Result};
use crate::fetch::http::{BodySink, Http};
use crate::image_kind::ImageKind;
use crate::progress::{ProgressSink, Stage};
use crate::CancellationToken;
use cache::{Cache, CacheTemp};
use decompress::{Decoded, Format};
use digest::Sha256Digest;
use factory_signature::{Checked, FactorySignature, FactoryTrust, PendingPin};
use sha2::Sha512;
use sha512::Sha512Digest;
use unwrap::ImageInside;

/// A URL when it says http(s)://, else a path.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The default bound on a decompressed image.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 4 << 30;

/// Statuses that mean "this server publishes no checksum file here" rather than a failure: a
/// community Image Factory answers 402 for `.sha256`, `.sha512` and `.sigstore.json` (Enterprise
/// features; siderolabs/image-factory `internal/frontend/http/image.go`: NotEnabled) and 400
/// for any other name that is not an asset (and builds before v1.1.0 for `.sha256` too); plain
/// servers 404, 405 or 410. 401 and 403 are authentication, 5xx and 429 are retried: both errors.
const NO_SIDECAR_STATUSES: [u16; 5] = [400, 402, 404, 405, 410];

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub url: Url,
    /// The digest the caller vouches for; replaces the sidecar.
    pub sha256: Option<Sha256Digest>,
    /// Where `sha256` came from (the CLI's flag, an index).
    pub sha256_source: DigestSource,
    /// Accept a download no published digest covers, reporting its computed digest.
    pub allow_unverified: bool,
    pub max_image_size: u64,
    /// Where to keep the archive instead of the cache's own layout (labctl's, for `talos build`).
    /// Only the archive goes there: its lock and its decoded image stay in the cache.
    pub archive_path: Option<ArchiveHome>,
    /// An Image Factory's asset: its signature (`<url>.sigstore.json`) is checked first, and its
    /// `.sha512` is read where it serves no `.sha256`.
    pub factory: Option<FactoryTrust>,
}

/// An archive kept outside the cache: `rel` inside the folder `root`, which is opened as a cache
/// folder of its own (see [`Cache::open`]: this user's alone, walked by descriptor, no link
/// followed), and nothing but the archive and, while it is written, its temp file is put in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveHome {
    pub root: PathBuf,
    pub rel: PathBuf,
}

impl ArchiveHome {
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel)
    }
}

/// The cache, or the folder of its own an archive is kept in.
pub(crate) enum ArchiveStore<'a> {
    Cache(&'a Cache),
    Own(Cache),
}

impl std::ops::Deref for ArchiveStore<'_> {
    type Target = Cache;

    fn deref(&self) -> &Cache {
        match self {
            ArchiveStore::Cache(cache) => cache,
            ArchiveStore::Own(own) => own,
        }
    }
}

impl FetchRequest {
    /// A request for `url` checked against the caller's digest (else the published one), or
    /// accepted unverified if the caller allows it.
    pub fn verified(
        url: Url,
        sha256: Option<Sha256Digest>,
        allow_unverified: bool,
        max_image_size: u64,
    ) -> Self {
        Self {
            sha256,
            allow_unverified,
            max_image_size,
            ..Self::new(url)
        }
    }

    /// The fetch of a source's URL, vouched for as the source request says.
    pub fn of(url: Url, req: &crate::sources::SourceRequest) -> Self {
        Self {
            sha256_source: req.sha256_source,
            factory: req.factory.clone(),
            ..Self::verified(url, req.sha256, req.allow_unverified, req.max_image_size)
        }
    }

    /// Where the archive is kept: the request's own path, else the cache's layout.
    pub fn archive_in(&self, cache: &Cache) -> PathBuf {
        match &self.archive_path {
            Some(home) => home.path(),
            None => cache.archive_path(&self.url),
        }
    }

    /// The folder the archive is opened, written and removed in, and its path.
    pub(crate) fn archive_store<'a>(
        &self,
        cache: &'a Cache,
    ) -> Result<(ArchiveStore<'a>, PathBuf)> {
        Ok(match &self.archive_path {
            Some(home) => (
                ArchiveStore::Own(Cache::open(home.root.clone())?),
                home.path(),
            ),
            None => (ArchiveStore::Cache(cache), cache.archive_path(&self.url)),
        })
    }

    pub fn new(url: Url) -> Self {
        Self {
            url,
            sha256: None,
            sha256_source: DigestSource::Flag,
            allow_unverified: false,
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            archive_path: None,
            factory: None,
        }
    }
}

/// Where the expected digest came from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestSource {
    /// The `<url>.sha256` file the publisher serves beside the archive.
    Sidecar,
    /// The `<url>.sha256sum` file.
    Sha256sum,
    /// The line naming the file in a `SHA256SUMS` file in the same folder.
    Sha256sums,
    /// The publisher's index (IncusOS `index.json`).
    Index,
    /// An Image Factory's signature of the asset (`<url>.sigstore.json`), verified with its key.
    Signature,
    /// The `<url>.sha512` file (an Image Factory's, where it serves no `.sha256`).
    Sha512,
    /// Given by the caller (the CLI's `--sha256`).
    Flag,
    /// None was available and the caller accepted that.
    Unverified,
}

impl DigestSource {
    /// Where the expected digest came from, for people.
    pub fn origin(self) -> &'static str {
        match self {
            DigestSource::Sidecar => "the publisher's .sha256 file",
            DigestSource::Sha256sum => "the publisher's .sha256sum file",
            DigestSource::Sha256sums => "the publisher's SHA256SUMS file",
            DigestSource::Index => "the publisher's index",
            DigestSource::Signature => "the factory's signature",
            DigestSource::Sha512 => "the publisher's .sha512 file",
            DigestSource::Flag => "the digest you gave",
            DigestSource::Unverified => "nothing: UNVERIFIED",
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fetched {
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    /// Where the redirects of `source_url` led, when this fetch followed any: the URL whose
    /// response ended the archive's body. Absent when nothing was downloaded (the cached archive
    /// matched) or nothing redirected.
    #[serde(rename = "finalURL", skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    pub archive_path: PathBuf,
    #[serde(rename = "archiveSHA256")]
    pub archive_sha256: Sha256Digest,
    pub digest_source: DigestSource,
    pub image_path: PathBuf,
    #[serde(rename = "imageSHA256")]
    pub image_sha256: Sha256Digest,
    pub image_size: u64,
    /// What the decoded image is (`gpt`, `iso9660-hybrid`, `qcow2`, …): a kind `flash` refuses
    /// (see `ImageKind::refusal`) is fetched all the same, for what else it is for.
    pub image_kind: ImageKind,
    /// The tar or zip entry the image was unwrapped from (`{"archive":"tar","name":"disk.raw"}`);
    /// absent when the decoded archive is the image itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_inside: Option<ImageInside>,
    /// Who signed the expected digest, for people: "the factory key sha256:…".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// An Image Factory's signature that held, and how its key is trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factory_signature: Option<FactorySignature>,
    /// What the operator should know: a factory key pinned now, a signature that was not checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What vouches for a download, settled before its first byte.
pub(crate) struct Settled {
    pub sha256: Option<Sha256Digest>,
    /// The `.sha512` file's digest, when that is what vouches for it (then `sha256` is `None`).
    pub sha512: Option<Sha512Digest>,
    pub source: DigestSource,
    pub signature: Option<FactorySignature>,
    /// A factory key first seen now: pinned once the download matched what it signed.
    pub pin: Option<PendingPin>,
    pub warnings: Vec<String>,
}

impl Settled {
    fn new(sha256: Option<Sha256Digest>, source: DigestSource) -> Self {
        Self {
            sha256,
            sha512: None,
            source,
            signature: None,
            pin: None,
            warnings: Vec::new(),
        }
    }
}

pub async fn fetch(
    http: &Http,
    cache: &Cache,
    req: &FetchRequest,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Fetched> {
    let settled = expected_digest(http, cache, req, cancel).await?;
    let expected = settled.sha256;

    let (store, archive_path) = req.archive_store(cache)?;
    let _lock = cache.lock(&archive_path, cancel).await?;

    let cached = match expected {
        Some(expected) => reuse_archive(&store, &archive_path, expected, cancel, progress).await?,
        None => None,
    };
    // From here on the archive is this descriptor, the one its digest was computed through.
    let (archive_sha256, archive, redirected_to) = match cached {
        Some((digest, file)) => (digest, file, None),
        None => {
            let sink = HashingFile::new(
                store.temp_beside(&archive_path)?,
                archive_cap(req.max_image_size),
            )
            .with_sha512(settled.sha512);
            download(http, sink, &req.url, expected, cancel, progress).await?
        }
    };
    // The archive hashed to the signed digest: only now is a key first seen pinned.
    if let Some(pin) = &settled.pin {
        pin.commit(cache)?;
    }
    let size = image_size::of_open_file(&archive, &archive_path).map_err(io_at(&archive_path))?;
    if let Err(too_large) = image_size::check_limit(size, req.max_image_size) {
        // Nothing is left behind by a fetch over the limit, as when decoding finds it.
        store.discard(&archive_path)?;
        return Err(too_large);
    }

    // Archives of one image in several formats (`os.raw.xz`, `os.raw.gz`) decode to one path:
    // its own lock keeps two fetches from decoding into it at once.
    let image_path = cache.image_path(&req.url);
    let _image_lock = cache.lock(&image_path, cancel).await?;
    let decoded = image(
        cache,
        image_path,
        Proven {
            file: archive,
            path: archive_path.clone(),
            sha256: archive_sha256,
        },
        req.max_image_size,
        cancel,
        progress,
    )
    .await;
    if let Err(Error::ImageTooLarge { .. }) = decoded {
        // An archive that recorded no size is found over the limit only while decoding: it
        // goes too, as when its records tell.
        store.discard(&archive_path)?;
    }
    let (image_path, decoded) = decoded?;
    let image_kind = crate::image_kind::of_file(&image_path).map_err(io_at(&image_path))?;

    Ok(Fetched {
        source_url: credentials::redact(&req.url).to_string(),
        final_url: redirected_to.map(String::from),
        archive_path,
        archive_sha256,
        digest_source: settled.source,
        image_path,
        image_sha256: decoded.sha256,
        image_size: decoded.size,
        image_kind,
        image_inside: decoded.inside,
        signed_by: settled.signature.as_ref().map(FactorySignature::signer),
        factory_signature: settled.signature,
        warnings: settled.warnings,
    })
}

/// The caller's digest, else what the server publishes, first found first: an Image Factory's
/// signature of the asset (`<url>.sigstore.json`, verified with the factory's key), `<url>.sha256`,
/// a factory's `<url>.sha512`, `<url>.sha256sum`, then the line naming the file in `SHA256SUMS`
/// beside it. A server that publishes none is an error unless the caller allows unverified
/// downloads; a checksum file that exists but cannot be read always is, and so is a signature
/// that does not hold.
pub(crate) async fn expected_digest(
    http: &Http,
    cache: &Cache,
    req: &FetchRequest,
    cancel: &CancellationToken,
) -> Result<Settled> {
    if let Some(digest) = req.sha256 {
        return Ok(Settled::new(Some(digest), req.sha256_source));
    }
    let mut tried = Vec::new();
    let mut statuses = Vec::new();
    let mut warnings = Vec::new();
    if let Some(trust) = &req.factory {
        match factory_signature::check(http, cache, trust, &req.url, cancel).await? {
            Checked::Signed {
                digest,
                signature,
                pin,
            } => {
                return Ok(Settled {
                    warnings: signature.warning().into_iter().collect(),
                    signature: Some(signature),
                    pin: pin.map(|pin| *pin),
                    ..Settled::new(Some(digest), DigestSource::Signature)
                });
            }
            Checked::Keyless => warnings.push(
                "the factory signs keyless (with a Sigstore certificate), which labflash cannot check without Sigstore's online trust roots: the signature was NOT checked, and the factory's checksum file vouches for the image instead".to_string(),
            ),
            Checked::NotServed(status) => {
                let bundle = shown_suffix(&req.url, ".sigstore.json");
                tried.push(format!("{bundle}: HTTP {status}"));
                statuses.push(status);
                // Said in the result (`digestSource` names the checksum file that vouches), not
                // as a warning: an Enterprise factory that does not sign is not a fault, and a
                // factory known to sign (a key pinned or given) never gets here.
                tracing::info!("the factory served no signature ({bundle}: HTTP {status})");
            }
        }
    }
    let mut checksum_files = vec![(".sha256", DigestSource::Sidecar)];
    if req.factory.is_some() {
        checksum_files.push((".sha512", DigestSource::Sha512));
    }
    checksum_files.push((".sha256sum", DigestSource::Sha256sum));
    for (suffix, source) in checksum_files {
        let sidecar = with_suffix(&req.url, suffix);
        match published(http, &sidecar, cancel).await? {
            Ok(text) => {
                let shown = credentials::redact(&sidecar).to_string();
                let mut settled = match source {
                    DigestSource::Sha512 => Settled {
                        sha512: Some(sha512::parse_sidecar(&text, &shown, &file_name(&req.url))?),
                        ..Settled::new(None, source)
                    },
                    _ => Settled::new(Some(digest::parse_sidecar(&text, &shown)?), source),
                };
                settled.warnings = warnings;
                return Ok(settled);
            }
            Err(status) => {
                tried.push(format!("{}: HTTP {status}", credentials::redact(&sidecar)));
                statuses.push(status);
            }
        }
    }
    let name = file_name(&req.url);
    let sums = req
        .url
        .join("SHA256SUMS")
        .expect("a sibling of an http(s) URL");
    let mut listed_elsewhere = false;
    match published(http, &sums, cancel).await? {
        Ok(text) => match digest::parse_sha256sums(&text, &name) {
            Some(digest) => {
                return Ok(Settled {
                    warnings,
                    ..Settled::new(Some(digest), DigestSource::Sha256sums)
                })
            }
            None => {
                tried.push(format!("{sums} has no line for {name}"));
                listed_elsewhere = true;
            }
        },
        Err(status) => tried.push(format!("{}: HTTP {status}", credentials::redact(&sums))),
    }
    let tried = tried.join("; ");
    if req.allow_unverified {
        tracing::warn!(url = %req.url, "no checksum published ({tried}); continuing unverified as asked");
        return Ok(Settled {
            warnings,
            ..Settled::new(None, DigestSource::Unverified)
        });
    }
    tracing::info!(url = %req.url, "no checksum published: {tried}");
    // A server with no checksum for a file it does not have either: say that, not the former.
    if http.is_missing(&req.url, cancel).await {
        return Err(Error::NotFound {
            url: req.url.to_string(),
        });
    }
    let why = if statuses.contains(&402) {
        "this Image Factory is a community build, which serves no checksum files (HTTP 402)".into()
    } else if listed_elsewhere {
        format!("the SHA256SUMS beside it has no line for {name}")
    } else {
        "its server serves no .sha256, .sha256sum or SHA256SUMS file beside it".into()
    };
    Err(Error::NoExpectedDigest {
        url: req.url.to_string(),
        why,
    })
}

/// `url` with `suffix`, as it may be shown.
fn shown_suffix(url: &Url, suffix: &str) -> Url {
    credentials::redact(&with_suffix(url, suffix))
}

/// A checksum document's text, or the status with which the server says it has none.
async fn published(
    http: &Http,
    url: &Url,
    cancel: &CancellationToken,
) -> Result<std::result::Result<String, u16>> {
    match http.get_text(url, cancel).await {
        Ok(text) => Ok(Ok(text)),
        Err(Error::HttpStatus { status, .. }) if NO_SIDECAR_STATUSES.contains(&status) => {
            Ok(Err(status))
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn with_suffix(url: &Url, suffix: &str) -> Url {
    let mut u = url.clone();
    u.set_path(&format!("{}{suffix}", url.path()));
    u
}

/// The URL's last path segment, decoded: the name checksum files use.
fn file_name(url: &Url) -> String {
    let raw = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    percent_decode(raw)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `<url>.sha256`, with any query string kept after the new path.
pub fn sidecar_url(url: &Url) -> Url {
    with_suffix(url, ".sha256")
}

/// Re-hashes a cached archive through the descriptor it returns: a match is reused (those very
/// bytes), a mismatch deleted so it is downloaded again.
pub(crate) async fn reuse_archive(
    cache: &Cache,
    path: &Path,
    expected: Sha256Digest,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Option<(Sha256Digest, File)>> {
    let Some(file) = cache.open_file(path)? else {
        return Ok(None);
    };
    let (actual, _, file) = blocking_hash(file, path, Stage::CheckCache, cancel, progress).await?;
    if actual == expected {
        tracing::info!(path = %path.display(), "reusing the cached archive: its digest matches");
        return Ok(Some((actual, file)));
    }
    tracing::warn!(path = %path.display(), %expected, %actual, "the cached archive does not match; downloading it again");
    cache.discard(path)?;
    Ok(None)
}

/// The most bytes an archive of an image of at most `limit` bytes can take: no format's overhead
/// on incompressible data comes near 0.1 % (xz and gzip store such data in blocks of 64 KiB with
/// a few bytes of header each, zstd in blocks of 128 KiB), plus room for headers and indexes.
pub fn archive_cap(limit: u64) -> u64 {
    limit.saturating_add(limit / 1024).saturating_add(1 << 20)
}

/// Downloads into `sink`'s temp file and gives it its name only if it matches; returns its
/// descriptor, and where `url`'s redirects led, if they led anywhere.
pub(crate) async fn download(
    http: &Http,
    mut sink: HashingFile,
    url: &Url,
    expected: Option<Sha256Digest>,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<(Sha256Digest, File, Option<Url>)> {
    let served_by = http
        .download(url, &mut sink, cancel, progress.as_ref())
        .await?;
    sink.check_sha512()?;
    let actual = Sha256Digest::of_hasher(sink.hasher);
    if let Some(expected) = expected {
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: "download",
                expected: expected.hex(),
                actual: actual.hex(),
            });
        }
    }
    let file = sink.tmp.commit()?;
    // The URL that served it comes redacted: compare it so, or every URL with credentials would
    // look redirected.
    let redirected = served_by != credentials::redact(url);
    Ok((actual, file, redirected.then_some(served_by)))
}

/// The download's temp file and the hash of exactly the bytes in it, which may not grow past
/// `cap` (see [`archive_cap`]): an endless body fills no disk.
pub(crate) struct HashingFile {
    pub(crate) tmp: CacheTemp,
    pub(crate) hasher: Sha256,
    pub(crate) kept: u64,
    cap: u64,
    /// The SHA-512 the bytes must have, and their hash so far: only when a `.sha512` file is
    /// what vouches for them.
    sha512: Option<(Sha512Digest, Sha512)>,
}

impl HashingFile {
    pub(crate) fn new(tmp: CacheTemp, cap: u64) -> Self {
        Self {
            tmp,
            hasher: Sha256::new(),
            kept: 0,
            cap,
            sha512: None,
        }
    }

    /// Also hashes the bytes with SHA-512, for [`HashingFile::check_sha512`].
    pub(crate) fn with_sha512(mut self, expected: Option<Sha512Digest>) -> Self {
        self.sha512 = expected.map(|e| (e, Sha512::new()));
        self
    }

    /// The bytes kept against the `.sha512` file's digest, if that vouches for them.
    pub(crate) fn check_sha512(&mut self) -> Result<()> {
        let Some((expected, hasher)) = self.sha512.take() else {
            return Ok(());
        };
        let actual = Sha512Digest::of_hasher(hasher);
        if actual != expected {
            return Err(Error::Sha512Mismatch {
                expected: expected.hex(),
                actual: actual.hex(),
            });
        }
        Ok(())
    }
}

impl BodySink for HashingFile {
    fn kept(&self) -> u64 {
        self.kept
    }

    fn cap(&self) -> Option<u64> {
        Some(self.cap)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.kept + bytes.len() as u64 > self.cap {
            return Err(Error::ArchiveTooLarge { cap: self.cap });
        }
        self.tmp.write_all(bytes).map_err(io_at(self.tmp.path()))?;
        self.hasher.update(bytes);
        if let Some((_, sha512)) = &mut self.sha512 {
            sha512.update(bytes);
        }
        self.kept += bytes.len() as u64;
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        let file = self.tmp.as_file_mut();
        file.set_len(0)
            .and_then(|_| file.rewind())
            .map_err(io_at(self.tmp.path()))?;
        self.hasher = Sha256::new();
        if let Some((_, sha512)) = &mut self.sha512 {
            *sha512 = Sha512::new();
        }
        self.kept = 0;
        Ok(())
    }
}

/// An archive whose SHA-256 was computed through `file`: what is decoded from it is read from
/// that descriptor, never from its path again.
pub(crate) struct Proven {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) sha256: Sha256Digest,
}

/// The verified archive's image: the archive itself when it is its own image (not compressed,
/// not a tar or zip), else the cached image if decoding the archive again yields it byte for
/// byte (no disk writes), else a fresh decode into a temp file renamed into place.
pub(crate) async fn image(
    cache: &Cache,
    image_path: PathBuf,
    archive: Proven,
    limit: u64,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<(PathBuf, Decoded)> {
    let format = Format::of_open(&archive.file, &archive.path)?;
    if decompress::is_own_image(&archive.file, &archive.path)? {
        let size = archive.file.metadata().map_err(io_at(&archive.path))?.len();
        if size > limit {
            return Err(Error::ImageTooLarge { limit });
        }
        let decoded = Decoded {
            sha256: archive.sha256,
            size,
            inside: None,
        };
        return Ok((archive.path, decoded));
    }
    let src = archive.file.try_clone().map_err(io_at(&archive.path))?;
    if let Some(hit) = reuse_image(
        cache,
        &image_path,
        src,
        &archive.path,
        format,
        limit,
        cancel,
        progress,
    )
    .await?
    {
        return Ok(hit);
    }

    let mut tmp = cache.temp_beside(&image_path)?;
    let (cancel, progress) = (cancel.clone(), progress.clone());
    // On any error `tmp` is dropped here, which removes it.
    let decoded = tokio::task::spawn_blocking(move || {
        let out = tmp.path().to_path_buf();
        let output = decompress::Output {
            to: tmp.as_file_mut(),
            path: &out,
            stage: Stage::Decompress,
        };
        let decoded = decompress::decompress(
            archive.file,
            &archive.path,
            format,
            output,
            limit,
            &cancel,
            progress.as_ref(),
        )?;
        tmp.commit()?;
        Ok::<_, Error>(decoded)
    })
    .await
    .expect("the decompression thread panicked")?;
    tracing::info!(path = %image_path.display(), "decoded the verified archive");
    Ok((image_path, decoded))
}

/// The cached image, when decoding the verified archive yields exactly its bytes.
#[allow(clippy::too_many_arguments)]
async fn reuse_image(
    cache: &Cache,
    image_path: &Path,
    archive: File,
    archive_path: &Path,
    format: Format,
    limit: u64,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Option<(PathBuf, Decoded)>> {
    // Only a regular file, not followed through a link (nor a FIFO, which would block): the
    // decode then renames a fresh image over whatever is there.
    let Ok(Some(cached)) = cache.open_file(image_path) else {
        return Ok(None);
    };
    let (src, path) = (archive_path.to_path_buf(), image_path.to_path_buf());
    let (cancel, progress) = (cancel.clone(), progress.clone());
    let proven = tokio::task::spawn_blocking(move || {
        let mut same = decompress::SameAs::new(cached);
        let output = decompress::Output {
            to: &mut same,
            path: &path,
            stage: Stage::CheckImage,
        };
        let decoded = decompress::decompress(
            archive,
            &src,
            format,
            output,
            limit,
            &cancel,
            progress.as_ref(),
        );
        match decoded {
            Ok(decoded) if same.at_end() => Ok(Some(decoded)),
            Ok(_) => Ok(None),
            Err(e) if decompress::SameAs::differed(&e) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .expect("the comparing thread panicked")?;
    match proven {
        Some(decoded) => {
            tracing::info!(path = %image_path.display(), "reusing the cached image: the verified archive decodes to it");
            Ok(Some((image_path.to_path_buf(), decoded)))
        }
        None => {
            tracing::warn!(path = %image_path.display(), "the cached image is not what the verified archive decodes to; decoding it again");
            Ok(None)
        }
    }
}

/// Hashes `file` from its start on a blocking thread and hands it back for the bytes' next use.
pub(crate) async fn blocking_hash(
    mut file: File,
    path: &Path,
    stage: Stage,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<(Sha256Digest, u64, File)> {
    let (path, cancel, progress) = (path.to_path_buf(), cancel.clone(), progress.clone());
    tokio::task::spawn_blocking(move || {
        let (digest, size) =
            digest::hash_open(&mut file, &path, stage, &cancel, progress.as_ref())?;
        Ok((digest, size, file))
    })
    .await
    .expect("the hashing thread panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_sits_beside_the_asset() {
        let url = Url::parse("https://f.example/image/s/v1.13.0/nocloud-amd64.raw.xz").unwrap();
        assert_eq!(
            sidecar_url(&url).as_str(),
            "https://f.example/image/s/v1.13.0/nocloud-amd64.raw.xz.sha256"
        );
        let signed = Url::parse("https://cdn.example/os.img.gz?sig=abc").unwrap();
        assert_eq!(
            sidecar_url(&signed).as_str(),
            "https://cdn.example/os.img.gz.sha256?sig=abc"
        );
    }
}
