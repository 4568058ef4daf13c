//! labctl-compatible IncusOS image builds: the IncusOS `ImageBuild` YAML labctl reads, unchanged,
//! turned into labctl's artifact: the published image, verified against its index, grown to
//! `output.size`, with the seed (`applications.yaml`, `incus.yaml`) written at `seed.offset`,
//! gzipped to `<output.dir>/<artifactName>` with the raw image beside it; labctl's JSON fields
//! and download cache (`<output.dir>/../downloads/<filename from the index>`).
//!
//! The fields, defaults and rules are labctl's schema (GilmanLab/platform
//! `schemas/lab/incusos/schema.cue`), its errors in its words; what labctl does with them is its
//! `tools/labctl/internal/app/incusosimage/service.go`. labflash refuses what would build a stick
//! that does not boot as meant, where labctl builds it:
//! - the index must be signed (`index.sjson` beside `indexURL`) unless the operator reads it
//!   unsigned, and then only over https (`incus::locate`, as `incus fetch`);
//! - `seed.offset` must be the first byte of the image's `seed-data` partition, the only place
//!   incus-osd reads a seed tar from, and the seed must fit that partition;
//! - each seed file must pass incus-osd's own seed types, and each client certificate must be a
//!   PEM X.509 certificate, checked before anything is downloaded;
//! - a cached download that does not match the index is removed and refused (labctl refuses it
//!   and keeps it); nothing is left half-written in the output folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::error::{io_at, Error, Result};
use crate::fetch::cache::{self, Cache};
use crate::fetch::decompress::{self, Format};
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::{self, HashingFile};
use crate::progress::{ProgressSink, Stage};
use crate::secrets::SecretResolver;
use crate::sources::incus::{self, IncusRequest, Located};
use crate::sources::incus_seed::SEED_PARTITION;
use crate::sources::talos_build::yaml_types::options;
use crate::CancellationToken;

mod seed;
mod yaml_types;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    #[serde(deserialize_with = "yaml_types::name")]
    pub name: String,
    #[serde(deserialize_with = "yaml_types::source")]
    pub source: Source,
    #[serde(deserialize_with = "yaml_types::output")]
    pub output: Output,
    #[serde(deserialize_with = "yaml_types::seed")]
    pub seed: Seed,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(rename = "indexURL", deserialize_with = "yaml_types::index_url")]
    pub index_url: String,
    #[serde(rename = "baseURL", deserialize_with = "yaml_types::base_url")]
    pub base_url: String,
    #[serde(default = "default_channel", deserialize_with = "yaml_types::channel")]
    pub channel: String,
    #[serde(default = "default_arch", deserialize_with = "yaml_types::arch")]
    pub arch: String,
    #[serde(default = "default_version", deserialize_with = "yaml_types::version")]
    pub version: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(deserialize_with = "yaml_types::dir")]
    pub dir: PathBuf,
    #[serde(
        rename = "artifactName",
        deserialize_with = "yaml_types::artifact_name"
    )]
    pub artifact_name: String,
    #[serde(deserialize_with = "yaml_types::size")]
    pub size: String,
    #[serde(default = "default_format", deserialize_with = "yaml_types::format")]
    pub format: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(deserialize_with = "yaml_types::offset")]
    pub offset: u64,
    #[serde(deserialize_with = "yaml_types::applications")]
    pub applications: ApplicationsSeed,
    #[serde(deserialize_with = "yaml_types::incus")]
    pub incus: IncusSeed,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationsSeed {
    #[serde(
        default = "default_seed_version",
        deserialize_with = "yaml_types::applications_version"
    )]
    pub version: String,
    #[serde(deserialize_with = "yaml_types::application_list")]
    pub applications: Vec<Application>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    #[serde(deserialize_with = "yaml_types::application_name")]
    pub name: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncusSeed {
    #[serde(
        default = "default_seed_version",
        deserialize_with = "yaml_types::incus_version"
    )]
    pub version: String,
    #[serde(
        default = "default_true",
        deserialize_with = "yaml_types::apply_defaults"
    )]
    pub apply_defaults: bool,
    #[serde(deserialize_with = "yaml_types::preseed")]
    pub preseed: IncusPreseed,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncusPreseed {
    #[serde(default, deserialize_with = "yaml_types::config")]
    pub config: BTreeMap<String, String>,
    #[serde(deserialize_with = "yaml_types::certificate_list")]
    pub certificates: Vec<Certificate>,
}

/// labctl's `#TrustedClientCertificate`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    #[serde(deserialize_with = "yaml_types::certificate_name")]
    pub name: String,
    #[serde(
        rename = "type",
        default = "default_certificate_type",
        deserialize_with = "yaml_types::certificate_type"
    )]
    pub kind: String,
    #[serde(deserialize_with = "yaml_types::certificate")]
    pub certificate: SecretString,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretString {
    #[serde(rename = "secretRef", deserialize_with = "yaml_types::secret_ref")]
    pub secret_ref: SecretStringRef,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretStringRef {
    #[serde(deserialize_with = "yaml_types::secret_path")]
    pub path: String,
    #[serde(deserialize_with = "yaml_types::secret_pointer")]
    pub pointer: String,
}

fn default_channel() -> String {
    "stable".into()
}
fn default_arch() -> String {
    "x86_64".into()
}
fn default_version() -> String {
    "latest".into()
}
fn default_format() -> String {
    "img.gz".into()
}
fn default_seed_version() -> String {
    "1".into()
}
fn default_true() -> bool {
    true
}
fn default_certificate_type() -> String {
    "client".into()
}

/// The result: labctl's fields (its `imageBuildOutput`), then labflash's own.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Built {
    pub name: String,
    #[serde(rename = "artifactPath")]
    pub artifact_path: PathBuf,
    #[serde(rename = "sourceVersion")]
    pub source_version: String,
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    #[serde(rename = "sourceSHA256")]
    pub source_sha256: Sha256Digest,
    /// labflash's: who signed the index that gave the digest; null when it was read unsigned.
    #[serde(rename = "indexSignedBy")]
    pub index_signed_by: Option<String>,
    /// labflash's: each trusted client certificate seeded into the image, by name, with its
    /// fingerprint, for the operator to compare with the one they expect (the secrets' checks
    /// prove the document was sealed for a key they hold, not who wrote it).
    #[serde(rename = "clientCertificates")]
    pub client_certificates: Vec<ClientCertificate>,
    /// labflash's: what the operator should know before flashing (absent when nothing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A trusted client certificate the seed holds: its name in the config, the SHA-256 of its DER
/// (lowercase hex: `openssl x509 -noout -fingerprint -sha256` without the colons) and its
/// subject.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientCertificate {
    pub name: String,
    pub sha256: String,
    pub subject: String,
}

/// Parses and checks an IncusOS ImageBuild document. `name` is what labctl calls it in its
/// errors: the path as given, or `stdin.yaml`.
pub fn parse(name: &str, text: &str) -> Result<ImageBuild> {
    let build: ImageBuild = serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or(&message);
        let first = first.split(" --> ").next().unwrap_or(first);
        let first = first.trim_start_matches("error: ");
        // labctl's (CUE's) words for the two structural failures, beside serde's.
        let labctl = if first.contains("unknown field") {
            ": field not allowed"
        } else if first.contains("missing field") {
            ": field is required but not present"
        } else {
            ""
        };
        Error::BadInput(format!("validate {name}: {first}{labctl}"))
    })?;
    build
        .check()
        .map_err(|(field, why)| Error::BadInput(format!("validate {name}: {field}: {why}")))?;
    Ok(build)
}

impl ImageBuild {
    /// labctl's rules, field by field, in its schema's words; then labflash's path rules.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let rule = |ok: bool, field: &'static str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err((field, why.to_string()))
            }
        };
        rule(!self.name.is_empty(), "name", "must be a non-empty string")?;
        let s = &self.source;
        for (field, url) in [
            ("source.indexURL", &s.index_url),
            ("source.baseURL", &s.base_url),
        ] {
            let http = url.starts_with("http://") || url.starts_with("https://");
            rule(
                http && Url::parse(url).is_ok(),
                field,
                "must be an HTTP or HTTPS URL",
            )?;
        }
        rule(
            !s.channel.is_empty(),
            "source.channel",
            "channel must be stable or a non-empty channel name",
        )?;
        rule(
            !s.arch.is_empty(),
            "source.arch",
            "architecture must be x86_64 or a non-empty architecture name",
        )?;
        rule(
            !s.version.is_empty(),
            "source.version",
            "version must be latest or a non-empty version string",
        )?;
        let o = &self.output;
        rule(
            !o.dir.as_os_str().is_empty(),
            "output.dir",
            "must be a non-empty string",
        )?;
        rule(
            !o.artifact_name.is_empty(),
            "output.artifactName",
            "must be a non-empty string",
        )?;
        rule(
            parse_size(&o.size).is_some(),
            "output.size",
            "size must be a positive whole number with a K, M, G, or T suffix",
        )?;
        rule(
            o.format == "img.gz",
            "output.format",
            "format must be img.gz",
        )?;
        let apps = &self.seed.applications;
        rule(
            apps.version == "1",
            "seed.applications.version",
            "applications seed version must be 1",
        )?;
        rule(
            !apps.applications.is_empty(),
            "seed.applications.applications",
            "must list at least one application",
        )?;
        for app in &apps.applications {
            rule(
                !app.name.is_empty(),
                "seed.applications.applications.name",
                "must be a non-empty string",
            )?;
        }
        let incus = &self.seed.incus;
        rule(
            incus.version == "1",
            "seed.incus.version",
            "Incus seed version must be 1",
        )?;
        rule(
            !incus.preseed.certificates.is_empty(),
            "seed.incus.preseed.certificates",
            "must list at least one certificate",
        )?;
        for cert in &incus.preseed.certificates {
            rule(
                !cert.name.is_empty(),
                "seed.incus.preseed.certificates.name",
                "must be a non-empty string",
            )?;
            rule(
                cert.kind == "client",
                "seed.incus.preseed.certificates.type",
                "trusted certificate type must be client",
            )?;
            let r = &cert.certificate.secret_ref;
            let relative = !r.path.is_empty()
                && !r.path.starts_with('/')
                && !r.path.contains('\\')
                && !r.path.split('/').any(|segment| segment == "..");
            rule(
                relative,
                "seed.incus.preseed.certificates.certificate.secretRef.path",
                "secret path must be repository-relative and use forward slashes",
            )?;
            rule(
                r.pointer.starts_with('/'),
                "seed.incus.preseed.certificates.certificate.secretRef.pointer",
                "secret string pointer must be an RFC 6901 JSON Pointer",
            )?;
        }
        // labctl's build requires the `.gz` (service.go, resolvePaths); labflash also keeps the
        // two files in the output folder.
        let raw = o.artifact_name.strip_suffix(".gz").unwrap_or("");
        rule(
            !o.artifact_name.contains(['/', '\\']) && !matches!(raw, "" | "." | ".."),
            "output.artifactName",
            "must be a file name ending in .gz, without a path separator (the raw image is written beside it without the .gz)",
        )
    }

    /// The URL labflash reads the index from: `index.sjson` beside `indexURL`, or `indexURL`
    /// itself when the operator reads it unsigned.
    pub fn index_to_read(&self, unsigned: bool) -> Result<String> {
        if unsigned {
            return Ok(self.source.index_url.clone());
        }
        let url = Url::parse(&self.source.index_url)
            .and_then(|u| u.join("index.sjson"))
            .map_err(|e| Error::BadInput(format!("source.indexURL: {e}")))?;
        Ok(url.to_string())
    }
}

/// labctl's `parseSize`: a positive whole number with a K, M, G or T suffix (powers of 1024), as
/// the schema allows it (`^[1-9][0-9]*[KMGT]$`); `None` if not, or past 2^63 bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let shift = match unit {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = digits.parse::<u64>().ok()?.checked_mul(1 << shift)?;
    (bytes <= i64::MAX as u64).then_some(bytes)
}

#[derive(Debug)]
pub struct BuildRequest {
    pub build: ImageBuild,
    /// Relative paths in the config are taken from here (the config's folder, or the current
    /// folder for stdin); made absolute and cleaned as labctl does.
    pub base_dir: PathBuf,
    /// The root the index signature must chain to (PEM); `None` for IncusOS's own.
    pub trust_root: Option<PathBuf>,
    /// Read `indexURL` as labctl does, unsigned (https only).
    pub unsigned_index: bool,
}

/// Where labctl puts everything for a build.
struct Paths {
    out_dir: PathBuf,
    raw: PathBuf,
    artifact: PathBuf,
    downloads: PathBuf,
}

impl BuildRequest {
    fn paths(&self) -> Result<Paths> {
        let o = &self.build.output;
        let base = std::path::absolute(&self.base_dir).map_err(io_at(&self.base_dir))?;
        let out_dir = crate::sources::talos_build::clean(&base.join(&o.dir));
        let artifact = out_dir.join(&o.artifact_name);
        let raw = out_dir.join(o.artifact_name.trim_end_matches(".gz"));
        let downloads = out_dir.parent().unwrap_or(&out_dir).join("downloads");
        Ok(Paths {
            out_dir,
            raw,
            artifact,
            downloads,
        })
    }
}

/// Builds the artifact: seed first (secrets, certificates, incus-osd's checks), then the index
/// and the download, then the image, each step refusing before anything is written.
pub async fn build(
    req: &BuildRequest,
    secrets: &dyn SecretResolver,
    http: &Http,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Built> {
    let b = &req.build;
    let paths = req.paths()?;
    let size = parse_size(&b.output.size).ok_or_else(|| {
        Error::BadInput(format!(
            "output.size {:?}: size must be a positive whole number with a K, M, G, or T suffix",
            b.output.size
        ))
    })?;
    let seed = seed::archive(&b.seed, secrets)?;

    let located = incus::locate(
        http,
        &IncusRequest {
            index_url: b.index_to_read(req.unsigned_index)?,
            base_url: b.source.base_url.clone(),
            channel: b.source.channel.clone(),
            arch: b.source.arch.clone(),
            version: (b.source.version != "latest").then(|| b.source.version.clone()),
            max_image_size: size,
            seed: None,
            trust_root: req.trust_root.clone(),
            unsigned: req.unsigned_index,
        },
        cancel,
    )
    .await?;
    let archive = download(http, &paths.downloads, &located, size, cancel, progress).await?;

    std::fs::create_dir_all(&paths.out_dir).map_err(io_at(&paths.out_dir))?;
    let image = Image {
        archive,
        archive_path: paths.downloads.join(&located.filename),
        size,
        size_text: b.output.size.clone(),
        offset: b.seed.offset,
        seed: seed.tar,
    };
    let (raw, artifact) = (paths.raw.clone(), paths.artifact.clone());
    let (cancel, progress) = (cancel.clone(), progress.clone());
    tokio::task::spawn_blocking(move || image.write(&raw, &artifact, &cancel, progress.as_ref()))
        .await
        .expect("the image thread panicked")?;

    Ok(Built {
        name: b.name.clone(),
        artifact_path: paths.artifact,
        source_version: located.version,
        source_url: located.url.to_string(),
        source_sha256: located.sha256,
        index_signed_by: located.signed_by,
        client_certificates: seed.certificates,
        warnings: seed.warnings,
    })
}

/// The archive at labctl's `<downloads>/<filename>`: a cached one is used only if it matches the
/// index (a mismatch is removed and refused), else it is downloaded into a temp file beside it
/// that gets its name only if it matches.
async fn download(
    http: &Http,
    downloads: &Path,
    located: &Located,
    size: u64,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<File> {
    // Opened as a cache folder: this user's alone, walked by descriptor, no link followed.
    let store = Cache::open(downloads.to_path_buf())?;
    let path = downloads.join(&located.filename);
    if let Some(file) = store.open_file(&path)? {
        let (actual, _, file) =
            fetch::blocking_hash(file, &path, Stage::CheckCache, cancel, progress).await?;
        if actual != located.sha256 {
            store.discard(&path)?;
            return Err(Error::DigestMismatch {
                what: "cached download (removed)",
                expected: located.sha256.hex(),
                actual: actual.hex(),
            });
        }
        return Ok(file);
    }
    let sink = HashingFile::new(store.temp_beside(&path)?, fetch::archive_cap(size));
    let (_, file, _) = fetch::download(
        http,
        sink,
        &located.url,
        Some(located.sha256),
        cancel,
        progress,
    )
    .await?;
    Ok(file)
}

/// What goes into the raw image and the artifact.
struct Image {
    archive: File,
    archive_path: PathBuf,
    size: u64,
    size_text: String,
    offset: u64,
    seed: Vec<u8>,
}

impl Image {
    /// Decompresses the verified archive into a temp raw image (at most `size` bytes), checks
    /// the seed's place, grows it to `size`, writes the seed, gzips it into a temp artifact, and
    /// only then gives both their names (blocking).
    fn write(
        self,
        raw_path: &Path,
        artifact_path: &Path,
        cancel: &CancellationToken,
        progress: &dyn ProgressSink,
    ) -> Result<()> {
        let mut raw = cache::temp_file_beside(raw_path)?;
        let format = Format::of_open(&self.archive, &self.archive_path)?;
        if format != Format::Gzip {
            return Err(Error::Corrupt {
                format: "gzip",
                path: self.archive_path,
                detail: format!("it is {} data, not gzip", format.name()),
            });
        }
        let raw_tmp = raw.path().to_path_buf();
        let output = decompress::Output {
            to: raw.as_file_mut(),
            path: &raw_tmp,
            stage: Stage::Decompress,
        };
        decompress::decompress(
            self.archive,
            &self.archive_path,
            format,
            output,
            self.size,
            cancel,
            progress,
        )
        .map_err(|e| match e {
            Error::ImageTooLarge { .. } => Error::BadInput(format!(
                "output.size {} ({} bytes) is smaller than the IncusOS image it must hold; raise it (labctl refuses this too)",
                self.size_text, self.size
            )),
            e => e,
        })?;
        let (start, len) = incus::seed_partition(&raw_tmp)?;
        if start != self.offset {
            return Err(Error::BadInput(format!(
                "seed.offset is {}, but this image's {SEED_PARTITION} partition, where incus-osd reads its seed, starts at byte {start}: set seed.offset: {start}, or the seed would never be read",
                self.offset
            )));
        }
        if self.seed.len() as u64 > len {
            return Err(Error::BadInput(format!(
                "the seed ({} bytes) does not fit the image's {SEED_PARTITION} partition ({len} bytes)",
                self.seed.len()
            )));
        }
        let file = raw.as_file_mut();
        file.set_len(self.size).map_err(io_at(&raw_tmp))?;
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.write_all(&self.seed))
            .map_err(io_at(&raw_tmp))?;

        let artifact = gzip(raw.as_file_mut(), &raw_tmp, artifact_path, cancel)?;
        cache::commit(raw, raw_path)?;
        if let Err(e) = cache::commit(artifact, artifact_path) {
            // Neither or both: the raw image goes too.
            cache::discard(raw_path)?;
            return Err(e);
        }
        Ok(())
    }
}

/// labctl's artifact: gzip at its fastest level, no name, time 0, into a temp file beside
/// `artifact_path` (kept unnamed until the caller commits it).
fn gzip(
    raw: &mut File,
    raw_path: &Path,
    artifact_path: &Path,
    cancel: &CancellationToken,
) -> Result<tempfile::NamedTempFile> {
    let tmp = cache::temp_file_beside(artifact_path)?;
    let tmp_path = tmp.path().to_path_buf();
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(tmp, flate2::Compression::fast());
    raw.rewind().map_err(io_at(raw_path))?;
    let mut buf = vec![0u8; crate::IO_CHUNK];
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = raw.read(&mut buf).map_err(io_at(raw_path))?;
        if n == 0 {
            break;
        }
        encoder.write_all(&buf[..n]).map_err(io_at(&tmp_path))?;
    }
    encoder.finish().map_err(io_at(&tmp_path))
}

#[cfg(test)]
mod tests;
