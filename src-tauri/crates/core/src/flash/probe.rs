//! What a source is, learnt when it is chosen, without writing or downloading the image: where it
//! is (a factory's schematic, an IncusOS index read and its signature checked), that its server
//! has it (one HEAD), how large the download is and the image as its archive records it, which
//! digest vouches for it and where that came from, what the image is when its file is here, and
//! what a plan would warn about. Each of these is the flash's own decision (`sources::find`,
//! `fetch::expected_digest`, `stream::Records`, `written_kind`), so a source a flash would refuse
//! is refused here, in the same sentence, before any drive is chosen.
//!
//! A probe takes no cache lock and writes nothing into the cache (a factory key first seen is
//! pinned only by a download that matched it); a local file is not hashed (its digest, if given,
//! is checked when it is flashed). Every request is asked once (`Http::once`): a probe answers
//! now, and the flash that follows asks again with its retries.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::credentials;
use crate::fetch::decompress;
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::image_size::ImageSize;
use crate::fetch::unwrap::ImageInside;
use crate::fetch::{self, DigestSource};
use crate::flash::stream::Records;
use crate::image_kind::ImageKind;
use crate::sources::{self, Source, SourceRequest};
use crate::CancellationToken;

/// What a source is, as far as it can be known before it is downloaded.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probed {
    /// The image's URL (without credentials), or its file's canonical path.
    pub source: String,
    /// The release it is: the Talos version asked for, the newest IncusOS of the channel.
    pub version: Option<String>,
    /// An Image Factory's schematic ID, created for the extensions asked for or given.
    pub schematic: Option<String>,
    /// Bytes of the archive: the download as its server announces it (`Content-Length`; `null`
    /// when it does not say), or the local file.
    pub archive_size: Option<u64>,
    /// The SHA-256 the archive must have (`null`: a `.sha512` file vouches, or nothing does).
    #[serde(rename = "expectedSHA256")]
    pub expected_sha256: Option<Sha256Digest>,
    /// Where the expected digest comes from; a local file's given digest is checked when it is
    /// flashed (it is not hashed here).
    pub digest_source: DigestSource,
    /// Who signed the index or the asset the digest comes from, when it is signed.
    pub signed_by: Option<String>,
    /// The image's size as its archive records it (`null`: known only when decoded).
    pub image_size: Option<ImageSize>,
    /// What the image is, when its first bytes are here (a local file); a download's is known
    /// from its first decoded bytes, when it is flashed.
    pub image_kind: Option<ImageKind>,
    /// The tar or zip entry the image is unwrapped from, when known with its kind.
    #[cfg_attr(feature = "ts", ts(inline))]
    pub image_inside: Option<ImageInside>,
    /// What a plan of it would warn about (a seed without an install file, an image without a
    /// partition table, a signature that could not be checked).
    pub warnings: Vec<String>,
}

/// Learns what `source` is (see the module's comment); cancelled at once through `cancel`.
pub async fn probe(
    source: &Source,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
) -> Result<Probed> {
    let http = http.once();
    tokio::select! {
        probed = probe_found(source, &http, cache, cancel) => probed,
        _ = cancel.cancelled() => Err(Error::Cancelled),
    }
}

async fn probe_found(
    source: &Source,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
) -> Result<Probed> {
    let found = sources::find(source, http, cancel).await?;
    let http = found.http.as_ref().unwrap_or(http);
    let mut probed = match super::fetch_of(&found.image)? {
        Some(fetch) => of_url(&found.image, fetch, http, cache, cancel).await?,
        None => {
            let image = found.image.clone();
            tokio::task::spawn_blocking(move || of_file(&image))
                .await
                .expect("the probing thread panicked")?
        }
    };
    probed.version = found.version;
    probed.schematic = found.schematic;
    let kind_warning = probed.image_kind.and_then(ImageKind::warning);
    probed.warnings = found
        .warnings
        .into_iter()
        .chain(std::mem::take(&mut probed.warnings))
        .chain(kind_warning)
        .collect();
    Ok(probed)
}

/// A download: its asset asked for first (a server that is not there, or has no such file, is
/// said before what vouches for it is looked for), then its digest settled and its records read
/// as a streamed flash settles and reads them.
async fn of_url(
    image: &SourceRequest,
    fetch: fetch::FetchRequest,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
) -> Result<Probed> {
    let archive_size = http.head(&fetch.url, cancel).await?;
    // A download larger than any archive of an image within the limit is refused now, as the
    // flash would refuse it once it started.
    if let Some(size) = archive_size {
        let cap = fetch::archive_cap(fetch.max_image_size);
        if size > cap {
            return Err(Error::ArchiveTooLarge { cap });
        }
    }
    let settled = fetch::expected_digest(http, cache, &fetch, cancel).await?;
    let records = Records::of_url(http, &fetch.url, fetch.max_image_size, cancel).await?;
    Ok(Probed {
        source: credentials::redact(&fetch.url).to_string(),
        version: None,
        schematic: None,
        archive_size,
        expected_sha256: settled.sha256,
        digest_source: settled.source,
        signed_by: settled
            .signature
            .as_ref()
            .map(|s| s.signer())
            .or_else(|| image.signed_by.clone()),
        image_size: records.size,
        image_kind: records.kind,
        image_inside: records.inside,
        warnings: settled.warnings,
    })
}

/// A local file: opened as a flash opens it, not hashed; its records read as a flash reads them
/// (an archive's by `stream`, an image that is its own file's as `plan` judges a prepared one).
fn of_file(image: &SourceRequest) -> Result<Probed> {
    let opened = sources::open_local(Path::new(&image.source))?;
    let source = opened.path.display().to_string();
    let records = if decompress::is_own_image(&opened.file, &opened.path)? {
        Records {
            size: Some(ImageSize {
                bytes: opened.size,
                exact: true,
            }),
            kind: Some(super::written_kind(&opened.path, &image.source)?),
            inside: None,
        }
    } else {
        Records::of_file(&opened.file, &opened.path, &source, image.max_image_size)?
    };
    let digest_source = match image.sha256 {
        Some(_) => image.sha256_source,
        None => DigestSource::Unverified,
    };
    Ok(Probed {
        source,
        version: None,
        schematic: None,
        archive_size: Some(opened.size),
        expected_sha256: image.sha256,
        digest_source,
        signed_by: image.signed_by.clone(),
        image_size: records.size,
        image_kind: records.kind,
        image_inside: records.inside,
        warnings: Vec::new(),
    })
}
