//! IncusOS images from its index: the signed `index.sjson`, verified against the IncusOS root
//! (`incus_signed`) as incus-osd verifies it, or, only when asked and only over https (incus-osd's
//! own rule, provider_images.go), the unsigned `index.json`. Pick the newest update of a channel
//! with an OS raw image for the arch (or an exact version), fetch it verified against the index's
//! digest (through the same atomic, re-verified cache as every fetch), and optionally write an
//! install seed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::{self, Cache};
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::{self, DigestSource, FetchRequest};
use crate::progress::ProgressSink;
use crate::sources::{incus_seed, incus_signed};
use crate::CancellationToken;

pub const DEFAULT_INDEX: &str = "https://images.linuxcontainers.org/os/index.sjson";
pub const DEFAULT_BASE: &str = "https://images.linuxcontainers.org/os";

#[derive(Debug, serde::Deserialize)]
struct Index {
    updates: Vec<Update>,
}

#[derive(Debug, serde::Deserialize)]
struct Update {
    version: String,
    url: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    files: Vec<IndexFile>,
}

#[derive(Debug, serde::Deserialize)]
struct IndexFile {
    architecture: String,
    component: String,
    #[serde(rename = "type")]
    kind: String,
    filename: String,
    sha256: String,
}

#[derive(Clone, Debug)]
pub struct IncusRequest {
    pub index_url: String,
    pub base_url: String,
    pub channel: String,
    pub arch: String,
    /// An exact version; `None` for the newest in the channel.
    pub version: Option<String>,
    pub max_image_size: u64,
    /// A folder of install seed YAML files to write into the image's seed partition.
    pub seed: Option<PathBuf>,
    /// The root the index's signature must chain to (PEM); `None` for the IncusOS root.
    pub trust_root: Option<PathBuf>,
    /// Read `index_url` as an unsigned `index.json` (https only).
    pub unsigned: bool,
}

/// Where an update was found, and who vouched for the index that names it.
#[derive(Clone, Debug)]
pub struct Located {
    pub version: String,
    pub url: Url,
    /// The file's name as the index gives it (`x86_64/IncusOS_<v>.img.gz`), checked to be a
    /// relative path of plain segments.
    pub filename: String,
    pub sha256: Sha256Digest,
    /// The index signer's subject; `None` for an unsigned index.
    pub signed_by: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct IncusFetched {
    #[serde(rename = "sourceVersion")]
    pub source_version: String,
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    #[serde(rename = "archivePath")]
    pub archive_path: PathBuf,
    #[serde(rename = "archiveSHA256")]
    pub archive_sha256: Sha256Digest,
    #[serde(rename = "imagePath")]
    pub image_path: PathBuf,
    #[serde(rename = "imageSHA256")]
    pub image_sha256: Sha256Digest,
    #[serde(rename = "imageSize")]
    pub image_size: u64,
    /// What the image is (see `image_kind`): a GPT disk for every IncusOS image.
    #[serde(rename = "imageKind")]
    pub image_kind: crate::image_kind::ImageKind,
    /// Who signed the index that gave the image's digest; null when it was read unsigned.
    #[serde(rename = "indexSignedBy")]
    pub index_signed_by: Option<String>,
    /// What the operator should know before flashing: a seed without an install file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub async fn fetch(
    http: &Http,
    cache: &Cache,
    req: &IncusRequest,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<IncusFetched> {
    // Seed problems are the operator's: find them before downloading anything.
    let (seed, warnings) = match req.seed.as_deref().map(seed_tar).transpose()? {
        Some(Seed { tar, warnings }) => (Some(tar), warnings),
        None => (None, Vec::new()),
    };
    let Located {
        version,
        url,
        sha256: expected,
        signed_by,
        ..
    } = locate(http, req, cancel).await?;
    let fetched = fetch::fetch(
        http,
        cache,
        &FetchRequest {
            url: url.clone(),
            sha256: Some(expected),
            sha256_source: DigestSource::Index,
            allow_unverified: false,
            max_image_size: req.max_image_size,
            archive_path: None,
            factory: None,
        },
        cancel,
        progress,
    )
    .await?;
    let (image_path, image_sha256, image_size) = match seed {
        None => (fetched.image_path, fetched.image_sha256, fetched.image_size),
        Some(tar) => {
            let (src, cancel) = (fetched.image_path.clone(), cancel.clone());
            tokio::task::spawn_blocking(move || seeded_copy(&src, &tar, &cancel))
                .await
                .expect("the seeding thread panicked")?
        }
    };
    Ok(IncusFetched {
        source_version: version,
        source_url: url.to_string(),
        archive_path: fetched.archive_path,
        archive_sha256: fetched.archive_sha256,
        image_path,
        image_sha256,
        image_size,
        // A seeded copy keeps the image's partition table.
        image_kind: fetched.image_kind,
        index_signed_by: signed_by,
        warnings,
    })
}

/// The version, image URL and index digest of the release `req` names, and who signed the
/// index: the index is read and its signature verified, nothing else is downloaded.
pub async fn locate(
    http: &Http,
    req: &IncusRequest,
    cancel: &CancellationToken,
) -> Result<Located> {
    let index_url = parse_url(&req.index_url, "index")?;
    let base = parse_url(&req.base_url, "base")?;
    if req.unsigned && req.trust_root.is_some() {
        return Err(Error::BadInput(
            "a trust root checks a signed index; an unsigned index has no signature to check"
                .into(),
        ));
    }
    if req.unsigned && index_url.scheme() != "https" {
        return Err(Error::BadInput(format!(
            "{index_url}: an unsigned IncusOS index is read only over https, as incus-osd reads it; use the signed index.sjson"
        )));
    }
    let root = match &req.trust_root {
        None => incus_signed::INCUS_ROOT.to_vec(),
        Some(path) => std::fs::read(path).map_err(|e| {
            Error::BadInput(format!(
                "cannot read the trust root {}: {e}",
                path.display()
            ))
        })?,
    };
    let text = http.get_text(&index_url, cancel).await?;
    let (text, signed_by) = if req.unsigned {
        (text, None)
    } else {
        let signed = incus_signed::verify(text.as_bytes(), &root, std::time::SystemTime::now())
            .map_err(|e| match (e, &req.trust_root) {
                (Error::BadInput(why), Some(path)) => {
                    Error::BadInput(format!("{}: {why}", path.display()))
                }
                (Error::BadSignature { what, reason }, _) => Error::BadSignature {
                    what: format!("{what} {index_url}"),
                    reason,
                },
                (e, _) => e,
            })?;
        let content = String::from_utf8(signed.content).map_err(|_| Error::Network {
            url: index_url.to_string(),
            detail: "its signed index is not UTF-8 text".into(),
        })?;
        (content, Some(signed.signer))
    };
    let (version, url, sha256, filename) = resolve(&text, &index_url, &base, req)?;
    Ok(Located {
        version,
        url,
        filename,
        sha256,
        signed_by,
    })
}

/// Parses the index text and picks the update for `req`: its version, its image's URL and the
/// digest the index gives it. Pure, so fuzzed.
#[doc(hidden)]
pub fn resolve_index(
    text: &str,
    index_url: &Url,
    base: &Url,
    req: &IncusRequest,
) -> Result<(String, Url, Sha256Digest)> {
    resolve(text, index_url, base, req).map(|(version, url, sha256, _)| (version, url, sha256))
}

/// [`resolve_index`], and the file's name as the index gives it.
fn resolve(
    text: &str,
    index_url: &Url,
    base: &Url,
    req: &IncusRequest,
) -> Result<(String, Url, Sha256Digest, String)> {
    let index: Index = serde_json::from_str(text).map_err(|e| Error::Network {
        url: index_url.to_string(),
        detail: format!("it is not an IncusOS index: {e}"),
    })?;
    let (update, file) = pick(&index, req)?;
    let expected: Sha256Digest = file.sha256.parse().map_err(|_| Error::Network {
        url: index_url.to_string(),
        detail: format!(
            "the digest of {} is not a SHA-256: {:?}",
            file.filename, file.sha256
        ),
    })?;
    let url = file_url(base, &update.url, &file.filename)?;
    Ok((update.version.clone(), url, expected, file.filename.clone()))
}

fn parse_url(text: &str, what: &str) -> Result<Url> {
    Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| Error::BadInput(format!("{text:?} is not an http(s) {what} URL")))
}

/// The newest update (the index lists them newest first) in the channel, or the exact version,
/// that has an OS raw image for the arch.
fn pick<'a>(index: &'a Index, req: &IncusRequest) -> Result<(&'a Update, &'a IndexFile)> {
    let found = index
        .updates
        .iter()
        .filter(|u| u.channels.iter().any(|c| c == &req.channel))
        .filter(|u| req.version.as_deref().is_none_or(|v| u.version == v))
        .find_map(|u| {
            u.files
                .iter()
                .find(|f| {
                    f.architecture == req.arch && f.component == "os" && f.kind == "image-raw"
                })
                .map(|f| (u, f))
        });
    found.ok_or_else(|| {
        let version = req
            .version
            .as_deref()
            .map(|v| format!(" version {v}"))
            .unwrap_or_default();
        Error::BadInput(format!(
            "no IncusOS update{version} in channel {:?} has an OS raw image for {}",
            req.channel, req.arch
        ))
    })
}

/// base + update.url + "/" + filename, with no way to climb out of the base. The publisher
/// writes `url` as `/<version>` and `filename` as `<arch>/<asset>` (lxc/incus-os
/// `cmd/image-publisher`): both must be relative paths of plain segments.
fn file_url(base: &Url, update_path: &str, filename: &str) -> Result<Url> {
    let update = update_path.strip_prefix('/').unwrap_or(update_path);
    for (what, path) in [("update url", update), ("file name", filename)] {
        if let Err(why) = safe_relative(path) {
            return Err(Error::Network {
                url: base.to_string(),
                detail: format!("the index names an unsafe {what} {path:?}: {why}"),
            });
        }
    }
    let text = format!(
        "{}/{update}/{filename}",
        base.as_str().trim_end_matches('/')
    );
    Url::parse(&text).map_err(|e| Error::BadInput(format!("{text:?}: {e}")))
}

/// A relative path of plain segments: no leading `/`, no empty, `.` or `..` segment, no `\`,
/// no control characters, and nothing a URL would read as a query or fragment.
fn safe_relative(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Err("it is empty");
    }
    if path.starts_with('/') {
        return Err("it starts with /");
    }
    if path.contains(|c: char| c == '\\' || c == '?' || c == '#' || c == '%' || c.is_control()) {
        return Err("it holds a backslash, ?, #, % or a control character");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("it has an empty, . or .. segment");
    }
    Ok(())
}

/// A seed checked as incus-osd reads it (`incus_seed`), archived.
#[derive(Debug)]
struct Seed {
    tar: Vec<u8>,
    warnings: Vec<String>,
}

/// A reproducible tar of the seed files in `dir` (sorted, owner 0, mode 0644, time 0), each
/// checked as incus-osd decodes it first.
fn seed_tar(dir: &Path) -> Result<Seed> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::BadInput(format!(
            "cannot read the seed folder {}: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::BadInput(format!(
            "the seed folder {} holds no .yaml, .yml or .json files",
            dir.display()
        )));
    }
    // A misspelt name would be archived and never read; two spellings of one, ambiguous.
    let mut seen = std::collections::BTreeSet::new();
    for path in &files {
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((stem, _)) = incus_seed::seed_name(&file_name) else {
            return Err(Error::BadInput(format!(
                "the seed file {} is not one IncusOS reads (those are {}, as .yaml, .yml or .json)",
                path.display(),
                incus_seed::SEED_NAMES.join(", ")
            )));
        };
        if !seen.insert(stem) {
            return Err(Error::BadInput(format!(
                "the seed folder {} holds {stem} twice, with two extensions",
                dir.display()
            )));
        }
    }
    let mut archived = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        incus_seed::check_file(&name, &bytes)?;
        archived.push((name, bytes));
    }
    let tar = seed_archive(&archived)?;
    let names: Vec<String> = archived.into_iter().map(|(name, _)| name).collect();
    Ok(Seed {
        tar,
        warnings: incus_seed::warnings(&names),
    })
}

/// The seed folder checked as `fetch` checks it first, and what it says to the operator.
pub(crate) fn seed_warnings(dir: &Path) -> Result<Vec<String>> {
    Ok(seed_tar(dir)?.warnings)
}

/// A reproducible ustar archive of seed files, in the order given: owner 0, mode 0644, time 0.
pub(crate) fn seed_archive(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|e| {
                Error::BadInput(format!("the seed file {name} cannot be archived: {e}"))
            })?;
    }
    builder
        .into_inner()
        .map_err(|e| Error::BadInput(format!("the seed cannot be archived: {e}")))
}

/// Where the install seed goes: the GPT partition named `seed-data`, the one incus-osd reads
/// (`/dev/disk/by-partlabel/seed-data`, lxc/incus-os `incus-osd/internal/seed/seed.go:116`;
/// the image's layout names it in `mkosi.repart/01-seed-data.conf`), wherever it is in the table.
pub(crate) fn seed_partition(image: &Path) -> Result<(u64, u64)> {
    let mut start = vec![0u8; 1 << 20];
    let mut f = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
    let n = f.read(&mut start).map_err(|e| Error::io(image, e))?;
    start.truncate(n);
    let size = f.metadata().map_err(|e| Error::io(image, e))?.len();
    let name = incus_seed::SEED_PARTITION;
    let (offset, len) = crate::flash::gpt::partition_named(&start, name).ok_or_else(|| {
        Error::BadInput(format!(
            "the IncusOS image has no GPT partition named {name}, where incus-osd reads its seed, so the seed cannot be written"
        ))
    })?;
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(Error::BadInput(format!(
            "the IncusOS image's {name} partition ends past the image's end ({size} bytes)"
        )));
    }
    Ok((offset, len))
}

/// A copy of the cached image with the seed written at the start of its seed partition, kept
/// beside it in the cache by the seed's digest; returns its path, digest and size.
fn seeded_copy(
    image: &Path,
    tar: &[u8],
    cancel: &CancellationToken,
) -> Result<(PathBuf, Sha256Digest, u64)> {
    let (offset, len) = seed_partition(image)?;
    if tar.len() as u64 > len {
        return Err(Error::BadInput(format!(
            "the seed ({} bytes) does not fit the image's seed-data partition ({len} bytes)",
            tar.len()
        )));
    }
    let tag = hex::encode(&Sha256::digest(tar)[..6]);
    let name = image.file_name().unwrap_or_default().to_string_lossy();
    let out = image.with_file_name(format!("{name}.seed-{tag}.img"));
    let (digest, size) = cache::copy_with_overlay(image, &out, Some((offset, tar)), cancel)?;
    Ok((out, digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_stay_under_the_base() {
        let base = Url::parse("https://images.example/os").unwrap();
        assert_eq!(
            file_url(&base, "/202511250412", "IncusOS_202511250412.img.gz")
                .unwrap()
                .as_str(),
            "https://images.example/os/202511250412/IncusOS_202511250412.img.gz"
        );
        // The publisher's layout: the arch folder is part of the file name.
        assert_eq!(
            file_url(&base, "/202608190802", "x86_64/IncusOS_202608190802.img.gz")
                .unwrap()
                .as_str(),
            "https://images.example/os/202608190802/x86_64/IncusOS_202608190802.img.gz"
        );
        for (update, file) in [
            ("/../etc", "x.gz"),
            ("/1", "../x.gz"),
            ("/1", "x86_64/../../x.gz"),
            ("/1", "/etc/passwd"),
            ("/1", "x86_64//x.gz"),
            ("/1", "./x.gz"),
            ("/1", "x86_64\\x.gz"),
            ("/1", "x.gz?a=b"),
            ("/1", "x\u{7}.gz"),
            ("/1", ""),
            ("//1", "x.gz"),
        ] {
            assert!(file_url(&base, update, file).is_err(), "{update} {file}");
        }
    }

    #[test]
    fn seed_tars_are_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("install.yaml"), "target:\n  id: disk\n").unwrap();
        std::fs::write(dir.path().join("incus.yaml"), "apply_defaults: true\n").unwrap();
        std::fs::write(dir.path().join("network.yml"), "dns: {}\n").unwrap();
        std::fs::write(
            dir.path().join("applications.json"),
            r#"{"applications": [{"name": "incus"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a seed file").unwrap();
        let a = seed_tar(dir.path()).unwrap().tar;
        let b = seed_tar(dir.path()).unwrap().tar;
        assert_eq!(a, b);
        let mut names = Vec::new();
        for entry in tar::Archive::new(a.as_slice()).entries().unwrap() {
            names.push(
                entry
                    .unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        assert_eq!(
            names,
            [
                "applications.json",
                "incus.yaml",
                "install.yaml",
                "network.yml"
            ]
        );

        std::fs::write(dir.path().join("instal.yaml"), "").unwrap();
        let err = seed_tar(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("instal.yaml") && err.contains("not one IncusOS reads"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("instal.yaml")).unwrap();
        std::fs::write(dir.path().join("install.json"), "{}").unwrap();
        let err = seed_tar(dir.path()).unwrap_err().to_string();
        assert!(err.contains("install twice"), "{err}");
    }
}
