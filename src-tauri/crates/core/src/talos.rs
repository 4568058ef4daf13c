//! labctl-compatible Talos image builds: the `ImageBuild` YAML labctl reads, unchanged, turned into
//! the boot image (from an Image Factory, verified) and the cidata config image, with labctl's
//! output names and JSON fields.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use url::Url;

use crate::cache::{self, Cache};
use crate::cidata::{self, CidataRequest, Contents};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::fetch::{self, FetchRequest};
use crate::http::Http;
use crate::progress::ProgressSink;
use crate::CancellationToken;

pub const DEFAULT_FACTORY: &str = "https://factory.talos.dev";
/// The schematic of an image without customisation.
pub const DEFAULT_SCHEMATIC: &str =
    "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    pub name: String,
    pub source: Source,
    pub config: Config,
    #[serde(default)]
    pub output: Output,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(rename = "factoryURL", default = "default_factory")]
    pub factory_url: String,
    pub version: String,
    #[serde(rename = "schematicID", default = "default_schematic")]
    pub schematic_id: String,
    #[serde(default = "default_platform")]
    pub platform: String,
    pub arch: String,
    #[serde(default = "default_artifact")]
    pub artifact: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default = "default_delivery")]
    pub delivery: String,
    pub user_data: PathRef,
    pub meta_data: MetaData,
    pub network_config: Option<PathRef>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRef {
    pub path: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaData {
    #[serde(rename = "localHostname")]
    pub local_hostname: String,
    #[serde(rename = "instanceID")]
    pub instance_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Output {
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default = "default_boot_name")]
    pub boot_artifact_name: String,
    #[serde(default = "default_config_name")]
    pub config_artifact_name: String,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            format: default_format(),
            boot_artifact_name: default_boot_name(),
            config_artifact_name: default_config_name(),
        }
    }
}

fn default_factory() -> String {
    DEFAULT_FACTORY.into()
}
fn default_schematic() -> String {
    DEFAULT_SCHEMATIC.into()
}
fn default_platform() -> String {
    "nocloud".into()
}
fn default_artifact() -> String {
    "raw.xz".into()
}
fn default_delivery() -> String {
    "nocloud-cidata".into()
}
fn default_dir() -> PathBuf {
    PathBuf::from(".state/images")
}
fn default_format() -> String {
    "img".into()
}
fn default_boot_name() -> String {
    "talos-boot.img".into()
}
fn default_config_name() -> String {
    "talos-cidata.img".into()
}

/// The result, with labctl's field names.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Built {
    pub name: String,
    #[serde(rename = "bootArtifactPath")]
    pub boot_artifact_path: PathBuf,
    #[serde(rename = "bootArtifactSHA256")]
    pub boot_artifact_sha256: Sha256Digest,
    #[serde(rename = "configArtifactPath")]
    pub config_artifact_path: PathBuf,
    #[serde(rename = "configArtifactSHA256")]
    pub config_artifact_sha256: Sha256Digest,
    /// Sizes for the front ends; not in labctl's JSON.
    #[serde(skip)]
    pub boot_artifact_size: u64,
    #[serde(skip)]
    pub config_artifact_size: u64,
    #[serde(rename = "sourceVersion")]
    pub source_version: String,
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    #[serde(rename = "sourceSchematicID")]
    pub source_schematic_id: String,
    pub platform: String,
    pub arch: String,
    pub format: String,
}

/// Parses and checks an ImageBuild document; every error names the field.
pub fn parse(text: &str) -> Result<ImageBuild> {
    let build: ImageBuild = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or(&message);
        let first = first.split(" --> ").next().unwrap_or(first);
        Error::BadInput(format!(
            "invalid ImageBuild config: {}",
            first.trim_start_matches("error: ")
        ))
    })?;
    build.check()?;
    Ok(build)
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("invalid ImageBuild config: {field}: {why}"))
}

impl ImageBuild {
    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let s = &self.source;
        match Url::parse(&s.factory_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(invalid(
                    "source.factoryURL",
                    format!("{:?} is not an http(s) URL", s.factory_url),
                ))
            }
        }
        if !is_exact_release(&s.version) {
            return Err(invalid(
                "source.version",
                format!("{:?} is not an exact release such as v1.13.0", s.version),
            ));
        }
        if s.schematic_id.len() != 64
            || !s
                .schematic_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "source.schematicID",
                format!("{:?} is not 64 lowercase hex digits", s.schematic_id),
            ));
        }
        if s.platform != "nocloud" {
            return Err(invalid(
                "source.platform",
                format!(
                    "{:?} is not supported; cidata delivery needs nocloud",
                    s.platform
                ),
            ));
        }
        if !matches!(s.arch.as_str(), "amd64" | "arm64") {
            return Err(invalid(
                "source.arch",
                format!("{:?} is not amd64 or arm64", s.arch),
            ));
        }
        if !matches!(s.artifact.as_str(), "raw.xz" | "raw.zst") {
            return Err(invalid(
                "source.artifact",
                format!("{:?} is not raw.xz or raw.zst", s.artifact),
            ));
        }
        if self.config.delivery != "nocloud-cidata" {
            return Err(invalid(
                "config.delivery",
                format!("{:?} is not nocloud-cidata", self.config.delivery),
            ));
        }
        cidata::check_hostname(&self.config.meta_data.local_hostname)
            .map_err(|e| invalid("config.metaData.localHostname", e))?;
        let o = &self.output;
        if o.dir.is_absolute()
            || o.dir
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(invalid(
                "output.dir",
                format!(
                    "{} must be a relative path inside the config's folder",
                    o.dir.display()
                ),
            ));
        }
        if o.format != "img" {
            return Err(invalid(
                "output.format",
                format!("{:?} is not img", o.format),
            ));
        }
        for (field, name) in [
            ("output.bootArtifactName", &o.boot_artifact_name),
            ("output.configArtifactName", &o.config_artifact_name),
        ] {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(invalid(field, format!("{name:?} is not a file name")));
            }
        }
        if o.boot_artifact_name == o.config_artifact_name {
            return Err(invalid(
                "output.configArtifactName",
                "must differ from bootArtifactName",
            ));
        }
        Ok(())
    }

    /// `<factory>/image/<schematic>/<version>/<platform>-<arch>.<artifact>`
    pub fn source_url(&self) -> Result<Url> {
        let s = &self.source;
        let base = s.factory_url.trim_end_matches('/');
        let text = format!(
            "{base}/image/{}/{}/{}-{}.{}",
            s.schematic_id, s.version, s.platform, s.arch, s.artifact
        );
        Url::parse(&text).map_err(|e| invalid("source.factoryURL", e))
    }
}

/// `v1.13.0`, or a pre-release such as `v1.13.0-beta.1`; never `latest`.
fn is_exact_release(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
}

pub struct BuildRequest {
    pub build: ImageBuild,
    /// Relative paths in the config are taken from here (the config's folder, or the current
    /// folder for stdin).
    pub base_dir: PathBuf,
    /// Defaults to labctl's `<output dir's parent>/downloads/talos`.
    pub cache_dir: Option<PathBuf>,
    pub allow_unverified: bool,
    pub max_image_size: u64,
}

pub async fn build(
    req: &BuildRequest,
    http: &Http,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Built> {
    let b = &req.build;
    let out_dir = req.base_dir.join(&b.output.dir);
    let boot_path = out_dir.join(&b.output.boot_artifact_name);
    let config_path = out_dir.join(&b.output.config_artifact_name);
    // Bad config input fails before any download.
    let contents = Contents::read(&CidataRequest {
        user_data: req.base_dir.join(&b.config.user_data.path),
        hostname: b.config.meta_data.local_hostname.clone(),
        instance_id: b.config.meta_data.instance_id.clone(),
        network_config: b
            .config
            .network_config
            .as_ref()
            .map(|n| req.base_dir.join(&n.path)),
        output: config_path.clone(),
    })?;
    let config_image = cidata::image(&contents)?;

    let url = b.source_url()?;
    let cache_dir = req.cache_dir.clone().unwrap_or_else(|| {
        out_dir
            .parent()
            .unwrap_or(&req.base_dir)
            .join("downloads/talos")
    });
    let cache = Cache::open(cache_dir)?;
    let fetched = fetch::fetch(
        http,
        &cache,
        &FetchRequest {
            url: url.clone(),
            sha256: None,
            sha256_source: crate::fetch::DigestSource::Flag,
            allow_unverified: req.allow_unverified,
            max_image_size: req.max_image_size,
        },
        cancel,
        progress,
    )
    .await?;

    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let (src, dst, expected) = (
        fetched.image_path.clone(),
        boot_path.clone(),
        fetched.image_sha256,
    );
    let cancel_copy = cancel.clone();
    tokio::task::spawn_blocking(move || copy_private(&src, &dst, expected, &cancel_copy))
        .await
        .expect("the copying thread panicked")?;
    cidata::write_private(&config_path, &config_image)?;

    Ok(Built {
        name: b.name.clone(),
        boot_artifact_path: boot_path,
        boot_artifact_sha256: fetched.image_sha256,
        config_artifact_path: config_path,
        config_artifact_sha256: Sha256Digest::of_hasher(Sha256::new_with_prefix(&config_image)),
        boot_artifact_size: fetched.image_size,
        config_artifact_size: config_image.len() as u64,
        source_version: b.source.version.clone(),
        source_url: url.to_string(),
        source_schematic_id: b.source.schematic_id.clone(),
        platform: b.source.platform.clone(),
        arch: b.source.arch.clone(),
        format: b.output.format.clone(),
    })
}

/// Copies the verified image to its artifact path (0600, atomic), checking the copy's digest.
fn copy_private(
    src: &Path,
    dst: &Path,
    expected: Sha256Digest,
    cancel: &CancellationToken,
) -> Result<()> {
    let (actual, _) = cache::copy_with_overlay(src, dst, None, cancel)?;
    if actual != expected {
        // The copy is already in place; it must not stay there under the artifact's name.
        cache::discard(dst)?;
        return Err(Error::DigestMismatch {
            what: "cached image (it changed while being copied)",
            expected: expected.hex(),
            actual: actual.hex(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name: cp-1\nsource:\n  version: v1.13.0\n  arch: amd64\nconfig:\n  userData:\n    path: cp.yaml\n  metaData:\n    localHostname: cp-1\n";

    #[test]
    fn defaults_follow_labctl() {
        let b = parse(MINIMAL).unwrap();
        assert_eq!(b.source.factory_url, DEFAULT_FACTORY);
        assert_eq!(b.source.schematic_id, DEFAULT_SCHEMATIC);
        assert_eq!(
            (b.source.platform.as_str(), b.source.artifact.as_str()),
            ("nocloud", "raw.xz")
        );
        assert_eq!(b.output.dir, Path::new(".state/images"));
        assert_eq!(b.output.boot_artifact_name, "talos-boot.img");
        assert_eq!(b.output.config_artifact_name, "talos-cidata.img");
        assert_eq!(
            b.source_url().unwrap().as_str(),
            format!(
                "https://factory.talos.dev/image/{DEFAULT_SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"
            )
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (MINIMAL.replace("v1.13.0", "latest"), "source.version"),
            (MINIMAL.replace("amd64", "riscv64"), "source.arch"),
            (
                MINIMAL.replace("localHostname: cp-1", "localHostname: CP_1"),
                "config.metaData.localHostname",
            ),
            (format!("{MINIMAL}output:\n  dir: /abs\n"), "output.dir"),
            (
                format!("{MINIMAL}output:\n  format: iso\n"),
                "output.format",
            ),
            (
                MINIMAL.replace("  arch: amd64\n", "  arch: amd64\n  schematicID: xyz\n"),
                "source.schematicID",
            ),
            (
                MINIMAL.replace("  arch: amd64\n", "  arch: amd64\n  surprise: 1\n"),
                "surprise",
            ),
            (MINIMAL.replace("  version: v1.13.0\n", ""), "version"),
        ];
        for (text, field) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn releases() {
        for good in ["v1.13.0", "v1.9.12", "v1.13.0-beta.1", "v2.0.0-rc.0"] {
            assert!(is_exact_release(good), "{good}");
        }
        for bad in ["latest", "1.13.0", "v1.13", "v1.13.x", "v1.13.0-", ""] {
            assert!(!is_exact_release(bad), "{bad}");
        }
    }
}
