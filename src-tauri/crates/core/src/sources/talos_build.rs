//! labctl-compatible Talos image builds: the `ImageBuild` YAML labctl reads, unchanged, turned into
//! the boot image (from an Image Factory, verified) and the cidata config image, with labctl's
//! output names, JSON fields and download cache.
//!
//! The fields, their defaults and their rules are labctl's schema (GilmanLab/platform
//! `schemas/lab/talos/schema.cue`): a config labctl accepts is accepted here with the same
//! meaning. Two deliberate differences, both refusals of a config that would build a broken
//! stick: `user-data` must be YAML (labctl copies any bytes), and the two artifacts must not share
//! a name (the config image would overwrite the boot image). One addition: `source.caCert`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::fetch::cache::{self, Cache};
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::{self, ArchiveHome, DigestSource, FetchRequest};
use crate::progress::ProgressSink;
use crate::sources::cidata::{self, CidataRequest, Contents};
use crate::sources::talos_factory::{self, Asset, FactoryUrl};
use crate::CancellationToken;

// Its strict readers are shared with `incus_build` (labctl's other schema, the same CUE reading).
pub(crate) mod yaml_types;

pub const DEFAULT_FACTORY: &str = "https://factory.talos.dev";
/// The schematic of an image without customisation.
pub const DEFAULT_SCHEMATIC: &str =
    "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

// Every field is read as labctl's CUE schema types it (see `yaml_types` below): a number, a
// boolean or null where the schema wants a string, or anything but a mapping where it wants one,
// is refused naming the field, as labctl's validation refuses it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    #[serde(deserialize_with = "yaml_types::name")]
    pub name: String,
    #[serde(deserialize_with = "yaml_types::source")]
    pub source: Source,
    #[serde(deserialize_with = "yaml_types::config")]
    pub config: Config,
    #[serde(default, deserialize_with = "yaml_types::output")]
    pub output: Output,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(
        rename = "factoryURL",
        default = "default_factory",
        deserialize_with = "yaml_types::factory_url"
    )]
    pub factory_url: String,
    #[serde(deserialize_with = "yaml_types::version")]
    pub version: String,
    #[serde(
        rename = "schematicID",
        default = "default_schematic",
        deserialize_with = "yaml_types::schematic_id"
    )]
    pub schematic_id: String,
    #[serde(
        default = "default_platform",
        deserialize_with = "yaml_types::platform"
    )]
    pub platform: String,
    #[serde(default = "default_arch", deserialize_with = "yaml_types::arch")]
    pub arch: String,
    #[serde(
        default = "default_artifact",
        deserialize_with = "yaml_types::artifact"
    )]
    pub artifact: String,
    /// labflash's own: a PEM file of CA certificates the factory's certificate is checked against,
    /// beside the system's (a lab's self-hosted factory). labctl does not know this field.
    #[serde(rename = "caCert", default, deserialize_with = "yaml_types::ca_cert")]
    pub ca_cert: Option<PathRef>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(
        default = "default_delivery",
        deserialize_with = "yaml_types::delivery"
    )]
    pub delivery: String,
    #[serde(deserialize_with = "yaml_types::user_data")]
    pub user_data: PathRef,
    #[serde(deserialize_with = "yaml_types::meta_data")]
    pub meta_data: MetaData,
    #[serde(default, deserialize_with = "yaml_types::network_config")]
    pub network_config: Option<PathRef>,
}

/// labctl's `#FileInput`. Which field it is is known only to the field holding it, so its `path`
/// is checked there (`yaml_types::file_input`).
#[derive(Debug)]
pub struct PathRef {
    pub path: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaData {
    #[serde(
        rename = "localHostname",
        deserialize_with = "yaml_types::local_hostname"
    )]
    pub local_hostname: String,
    #[serde(
        rename = "instanceID",
        default,
        deserialize_with = "yaml_types::instance_id"
    )]
    pub instance_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Output {
    #[serde(default = "default_dir", deserialize_with = "yaml_types::dir")]
    pub dir: PathBuf,
    #[serde(default = "default_format", deserialize_with = "yaml_types::format")]
    pub format: String,
    #[serde(
        default = "default_boot_name",
        deserialize_with = "yaml_types::boot_artifact_name"
    )]
    pub boot_artifact_name: String,
    #[serde(
        default = "default_config_name",
        deserialize_with = "yaml_types::config_artifact_name"
    )]
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
fn default_arch() -> String {
    "amd64".into()
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
    /// The archive as downloaded and where its expected digest came from; not in labctl's JSON.
    #[serde(skip)]
    pub archive_sha256: Sha256Digest,
    #[serde(skip)]
    pub digest_source: DigestSource,
    /// Who signed the expected digest (the factory's key); not in labctl's JSON.
    #[serde(skip)]
    pub signed_by: Option<String>,
    #[serde(rename = "sourceVersion")]
    pub source_version: String,
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    #[serde(rename = "sourceSchematicID")]
    pub source_schematic_id: String,
    pub platform: String,
    pub arch: String,
    pub format: String,
    /// What the operator should know before flashing (absent when there is nothing: labctl's
    /// keys stay exactly its keys).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Parses and checks an ImageBuild document; every error names the field.
pub fn parse(text: &str) -> Result<ImageBuild> {
    let build: ImageBuild = serde_saphyr::from_str_with_options(text, yaml_types::options())
        .map_err(|e| {
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
    /// labctl's rules, field by field, in its words where it has them.
    fn check(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(invalid("name", "must be a non-empty string"));
        }
        let s = &self.source;
        let http = s.factory_url.starts_with("http://") || s.factory_url.starts_with("https://");
        if !http || Url::parse(&s.factory_url).is_err() {
            return Err(invalid(
                "source.factoryURL",
                format!(
                    "{:?} must be an HTTP or HTTPS URL",
                    crate::fetch::credentials::shown(&s.factory_url)
                ),
            ));
        }
        talos_factory::check_exact_version(&s.version).map_err(|e| invalid("source.version", e))?;
        if !talos_factory::is_schematic_id(&s.schematic_id) {
            return Err(invalid(
                "source.schematicID",
                format!(
                    "{:?}: schematic ID must be a 64-character lowercase hex string",
                    s.schematic_id
                ),
            ));
        }
        let one_of = |field: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("{value:?} must be {}", allowed.join(" or ")),
                ))
            }
        };
        one_of("source.platform", &s.platform, &["nocloud"])?;
        one_of("source.arch", &s.arch, &["amd64", "arm64"])?;
        // raw.zst is labflash's addition (the factory serves it; labctl decodes only xz).
        one_of("source.artifact", &s.artifact, &["raw.xz", "raw.zst"])?;
        if let Some(ca) = &s.ca_cert {
            relative_path("source.caCert.path", &ca.path)?;
        }
        let c = &self.config;
        one_of("config.delivery", &c.delivery, &["nocloud-cidata"])?;
        relative_path("config.userData.path", &c.user_data.path)?;
        if let Some(n) = &c.network_config {
            relative_path("config.networkConfig.path", &n.path)?;
        }
        let host = &c.meta_data.local_hostname;
        if cidata::check_hostname(host).is_err() {
            return Err(invalid(
                "config.metaData.localHostname",
                format!("{host:?}: hostname must be a lowercase DNS label"),
            ));
        }
        if c.meta_data.instance_id.as_deref() == Some("") {
            return Err(invalid(
                "config.metaData.instanceID",
                "must be a non-empty string",
            ));
        }
        let o = &self.output;
        relative_path("output.dir", &o.dir)?;
        one_of("output.format", &o.format, &["img"])?;
        for (field, name) in [
            ("output.bootArtifactName", &o.boot_artifact_name),
            ("output.configArtifactName", &o.config_artifact_name),
        ] {
            if name.contains(['/', '\\']) || !name.ends_with(".img") || name == ".img" {
                return Err(invalid(
                    field,
                    format!("{name:?}: artifact name must be an .img filename"),
                ));
            }
        }
        if o.boot_artifact_name == o.config_artifact_name {
            return Err(invalid(
                "output.configArtifactName",
                "must differ from bootArtifactName (the config image would overwrite the boot image)",
            ));
        }
        Ok(())
    }

    /// What the operator should know before flashing what this config builds.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = fat_cidata_warning(&self.source.version)
            .into_iter()
            .collect();
        // Its boot image's name says no release once built (`talos-boot.img`): say here, where
        // the release and architecture are known, which layout the node reads.
        if let Some(Err(_)) = self
            .source_url()
            .ok()
            .map(|url| crate::sources::talos_boot_stick::check_one_stick(url.as_str()))
        {
            warnings.push(format!(
                "Talos {} {} images do not read a cidata partition on the stick they boot from {TWO_STICKS}: write the two artifacts onto two sticks (labflash flash {} --to BOOT --config {} --config-to CONFIG), not one",
                self.source.version,
                self.source.arch,
                self.output.boot_artifact_name,
                self.output.config_artifact_name,
            ));
        }
        let host = &self.config.meta_data.local_hostname;
        if host.len() > 63 {
            warnings.push(format!(
                "the hostname {host:?} is longer than 63 characters, the most a DNS label and a Linux hostname can hold"
            ));
        }
        warnings
    }

    /// `<factory>/image/<schematic>/<version>/<platform>-<arch>.<artifact>`
    pub fn source_url(&self) -> Result<Url> {
        let s = &self.source;
        FactoryUrl::parse(&s.factory_url)?.asset_url(&Asset {
            schematic: s.schematic_id.clone(),
            version: s.version.clone(),
            platform: s.platform.clone(),
            arch: s.arch.clone(),
            secureboot: false,
            format: s.artifact.clone(),
        })
    }

    /// labctl's download cache: `<output dir's parent>/downloads/talos`, holding the archive at
    /// `<schematic>/<version>/<platform>-<arch>.<artifact>` and nothing else
    /// (GilmanLab/platform `tools/labctl/internal/app/talosimage/service.go`: `resolvePaths`,
    /// `Build`, `downloadArchive`), so either tool reuses the other's.
    fn labctl_archive(&self, downloads: &Path) -> ArchiveHome {
        let s = &self.source;
        ArchiveHome {
            root: downloads.to_path_buf(),
            rel: Path::new(&s.schematic_id)
                .join(&s.version)
                .join(format!("{}-{}.{}", s.platform, s.arch, s.artifact)),
        }
    }
}

/// labctl's `#RelativePath`: not empty, no leading `/`, no `..` segment, no backslash.
fn relative_path(field: &str, path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let ok = !text.is_empty()
        && !text.starts_with('/')
        && !text.contains('\\')
        && !text.split('/').any(|segment| segment == "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{text:?}: path must be relative and use forward slashes"),
        ))
    }
}

/// Names the issue in the warning that a build's two artifacts go onto two sticks: a flash that
/// writes them onto two sticks has done what it asks (see [`says_two_sticks`]).
const TWO_STICKS: &str = "(siderolabs/talos issue 12098)";

/// Whether `warning` is the one that says to write a build's artifacts onto two sticks.
pub fn says_two_sticks(warning: &str) -> bool {
    warning.contains(TWO_STICKS) && warning.contains("onto two sticks")
}

/// The Talos release an image's URL or path names in one of its segments
/// (`…/image/<schematic>/v1.12.1/nocloud-amd64.raw.xz`), if any.
pub fn release_named_in(source: &str) -> Option<&str> {
    source
        .split(['/', '?', '#'])
        .find(|segment| talos_factory::check_exact_version(segment).is_ok())
}

/// The Talos releases that cannot mount a FAT cidata volume on read-only media (siderolabs/talos
/// issue 12647): the stick would boot without its machine config. From siderolabs/talos's git
/// history (`git merge-base --is-ancestor` against every tag):
/// - the bug: commit ec3bd878f ("refactor: remove the go-blockdevice v1 completely",
///   2025-10-02) made `ReadFromVolume`
///   (internal/app/machined/pkg/runtime/v1alpha1/platform/internal/blockutils/blockutils.go)
///   mount through `fsopen` without the `ro` parameter; first tag v1.12.0-alpha.2 (alpha.0 and
///   alpha.1 do not contain it);
/// - the fix: commit 782cc507d ("fix: open the filesystem as read-only", PR 12648, adds
///   `fsopen.WithBoolParameter("ro")`), first tag v1.13.0-alpha.1, backported to release-1.12 as
///   commit 8f49dd220, first tag v1.12.3.
///
/// So: v1.12.0-alpha.2 up to v1.12.3 (not included; every 1.12.0 beta and rc, v1.12.0, v1.12.1,
/// v1.12.2), and v1.13.0-alpha.0.
const FAT_CIDATA_BROKEN: [(&str, &str); 2] = [
    ("v1.12.0-alpha.2", "v1.12.3"),
    ("v1.13.0-alpha.0", "v1.13.0-alpha.1"),
];

/// The warning for a Talos release in [`FAT_CIDATA_BROKEN`] (build metadata `+…` ignored).
pub fn fat_cidata_warning(version: &str) -> Option<String> {
    use std::cmp::Ordering::Less;
    let release = version.split('+').next().unwrap_or(version);
    talos_factory::check_exact_version(release).ok()?;
    let affected = FAT_CIDATA_BROKEN.iter().any(|(from, to)| {
        talos_factory::compare_versions(release, from) != Less
            && talos_factory::compare_versions(release, to) == Less
    });
    affected.then(|| {
        format!(
            "Talos {version} cannot mount a FAT cidata volume (siderolabs/talos issue 12647): a node booted from it will not find its machine config; use v1.12.3 or later (v1.13.0-alpha.1 or later for 1.13 pre-releases)"
        )
    })
}

#[derive(Debug)]
pub struct BuildRequest {
    pub build: ImageBuild,
    /// Relative paths in the config are taken from here (the config's folder, or the current
    /// folder for stdin); made absolute and cleaned as labctl does (symlinks are kept).
    pub base_dir: PathBuf,
    pub allow_unverified: bool,
    pub max_image_size: u64,
    /// A download token for the factory, in place of a `?token=` in `source.factoryURL`.
    pub factory_token: Option<crate::fetch::credentials::Secret>,
    /// The factory's public key (PEM), in place of the one pinned for it (see
    /// `fetch::factory_signature`).
    pub factory_key: Option<PathBuf>,
}

/// Builds both artifacts. The archive is kept where labctl keeps it (see `labctl_archive`), and
/// nothing else goes there: the lock and the decoded image are labflash's, in `cache`.
pub async fn build(
    req: &BuildRequest,
    cache: &Cache,
    http: &Http,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Built> {
    let b = &req.build;
    let base_dir = absolute_clean(&req.base_dir)?;
    let out_dir = clean(&base_dir.join(&b.output.dir));
    let boot_path = out_dir.join(&b.output.boot_artifact_name);
    let config_path = out_dir.join(&b.output.config_artifact_name);
    // Bad config input fails before any download.
    let contents = Contents::read(&CidataRequest {
        user_data: clean(&base_dir.join(&b.config.user_data.path)),
        hostname: b.config.meta_data.local_hostname.clone(),
        instance_id: b.config.meta_data.instance_id.clone(),
        network_config: b
            .config
            .network_config
            .as_ref()
            .map(|n| clean(&base_dir.join(&n.path))),
        output: config_path.clone(),
    })?;
    let config_image = cidata::image(&contents)?;

    let url = b.source_url()?;
    let factory = FactoryUrl::parse(&b.source.factory_url)?;
    let downloads = out_dir
        .parent()
        .unwrap_or(&base_dir)
        .join("downloads/talos");
    let archive_path = Some(b.labctl_archive(&downloads));
    let fetched = fetch::fetch(
        &factory_http(req, http)?,
        cache,
        &FetchRequest {
            url: url.clone(),
            sha256: None,
            sha256_source: crate::fetch::DigestSource::Flag,
            allow_unverified: req.allow_unverified,
            max_image_size: req.max_image_size,
            archive_path,
            factory: Some(factory.trust(req.factory_key.clone())),
        },
        cancel,
        progress,
    )
    .await
    .map_err(talos_factory::refused)?;

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
        archive_sha256: fetched.archive_sha256,
        digest_source: fetched.digest_source,
        signed_by: fetched.signed_by,
        config_artifact_size: config_image.len() as u64,
        source_version: b.source.version.clone(),
        source_url: url.to_string(),
        source_schematic_id: b.source.schematic_id.clone(),
        platform: b.source.platform.clone(),
        arch: b.source.arch.clone(),
        format: b.output.format.clone(),
        warnings: fetched.warnings.into_iter().chain(b.warnings()).collect(),
    })
}

/// The client that reaches the build's factory: its credentials, and the CA its config trusts.
pub(crate) fn factory_http(req: &BuildRequest, http: &Http) -> Result<Http> {
    let source = &req.build.source;
    let factory_http =
        FactoryUrl::parse(&source.factory_url)?.http(http, req.factory_token.as_ref());
    match &source.ca_cert {
        Some(ca) => {
            let base_dir = absolute_clean(&req.base_dir)?;
            factory_http.trusting(clean(&base_dir.join(&ca.path)))
        }
        None => Ok(factory_http),
    }
}

/// `path` made absolute against the current folder, and cleaned.
fn absolute_clean(path: &Path) -> Result<PathBuf> {
    let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    Ok(clean(&path))
}

/// `path` without `.` segments and with `..` taken back lexically (Go's `filepath.Clean`, which
/// labctl's paths go through): `/a/./b/../c` is `/a/c`.
pub(crate) fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
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

    /// labctl's own configs (GilmanLab/platform; sources named in each fixture's header).
    const MINIMAL: &str = include_str!("../../../../../tests/fixtures/labctl/talos-minimal.yaml");
    const FULL: &str = include_str!("../../../../../tests/fixtures/labctl/talos-full.yaml");
    const VALID: &str = include_str!("../../../../../tests/fixtures/labctl/talos-valid.yaml");

    #[test]
    fn labctl_minimal_config_gets_labctl_defaults() {
        let b = parse(MINIMAL).unwrap();
        assert_eq!(b.source.factory_url, DEFAULT_FACTORY);
        assert_eq!(b.source.schematic_id, DEFAULT_SCHEMATIC);
        assert_eq!(
            (
                b.source.platform.as_str(),
                b.source.arch.as_str(),
                b.source.artifact.as_str()
            ),
            ("nocloud", "amd64", "raw.xz")
        );
        assert_eq!(b.config.delivery, "nocloud-cidata");
        assert_eq!(
            b.config.meta_data.instance_id, None,
            "defaults to the hostname"
        );
        assert_eq!(b.output.dir, Path::new(".state/images"));
        assert_eq!(b.output.format, "img");
        assert_eq!(b.output.boot_artifact_name, "talos-boot.img");
        assert_eq!(b.output.config_artifact_name, "talos-cidata.img");
        assert_eq!(
            b.source_url().unwrap().as_str(),
            format!(
                "https://factory.talos.dev/image/{DEFAULT_SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"
            )
        );
        assert!(b.warnings().is_empty());
    }

    /// labctl's ImageBuild source has no overlay (its schema is closed): a board overlay is
    /// `talos fetch --overlay`'s, and a config naming one is refused as labctl refuses it.
    #[test]
    fn an_overlay_in_a_labctl_config_is_refused() {
        let text = MINIMAL.replacen("source:\n", "source:\n  overlay: rpi_generic\n", 1);
        assert_ne!(text, MINIMAL, "the fixture has a source block");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("overlay"), "{err}");
    }

    #[test]
    fn labctl_full_and_valid_configs_parse_with_their_values() {
        let b = parse(FULL).unwrap();
        // service_test.go expects exactly this source URL for testConfig().
        assert_eq!(
            b.source_url().unwrap().as_str(),
            format!("https://factory.example.test/image/{DEFAULT_SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz")
        );
        assert_eq!(
            b.config.meta_data.instance_id.as_deref(),
            Some("bootstrap-instance-1")
        );
        assert_eq!(
            b.config.network_config.unwrap().path,
            Path::new("network.yaml")
        );
        assert!(parse(VALID).is_ok());
    }

    #[test]
    fn labctl_downloads_layout() {
        let b = parse(MINIMAL).unwrap();
        assert_eq!(
            b.labctl_archive(Path::new("/w/.state/downloads/talos"))
                .path(),
            Path::new(&format!(
                "/w/.state/downloads/talos/{DEFAULT_SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"
            ))
        );
    }

    /// Each rule of labctl's schema, with the field it names. The invalid fixtures are rejected
    /// for the reason labctl gives (validator_test.go, talos_image_build.txtar).
    #[test]
    fn invalid_configs_name_the_field_and_labctl_s_reason() {
        let fixtures = [
            (
                include_str!("../../../../../tests/fixtures/labctl/talos-invalid-format.yaml"),
                "output.format",
            ),
            (
                include_str!(
                    "../../../../../tests/fixtures/labctl/talos-invalid-version-latest.yaml"
                ),
                "exact release like v1.13.0",
            ),
            (
                include_str!(
                    "../../../../../tests/fixtures/labctl/talos-invalid-platform-metal.yaml"
                ),
                "source.platform",
            ),
            (
                include_str!("../../../../../tests/fixtures/labctl/talos-invalid-parent-path.yaml"),
                "path must be relative and use forward slashes",
            ),
        ];
        for (text, expected) in fixtures {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let with_source = |line: &str| {
            MINIMAL.replace(
                "  version: v1.13.0\n",
                &format!("  version: v1.13.0\n{line}\n"),
            )
        };
        let cases = [
            (with_source("  arch: riscv64"), "source.arch"),
            (with_source("  schematicID: ABC"), "source.schematicID"),
            (
                with_source(&format!(
                    "  schematicID: {}",
                    DEFAULT_SCHEMATIC.to_uppercase()
                )),
                "lowercase",
            ),
            (with_source("  factoryURL: ftp://x"), "source.factoryURL"),
            (with_source("  surprise: 1"), "surprise"),
            (
                MINIMAL.replace(
                    "localHostname: bootstrap-controlplane-1",
                    "localHostname: CP_1",
                ),
                "config.metaData.localHostname",
            ),
            (format!("{MINIMAL}output:\n  dir: /abs\n"), "output.dir"),
            (format!("{MINIMAL}output:\n  dir: a\\\\b\n"), "output.dir"),
            (
                format!("{MINIMAL}output:\n  bootArtifactName: boot.raw\n"),
                ".img filename",
            ),
            (
                format!(
                    "{MINIMAL}output:\n  bootArtifactName: x.img\n  configArtifactName: x.img\n"
                ),
                "must differ",
            ),
            (FULL.replace("  version: v1.13.0\n", ""), "version"),
        ];
        for (text, field) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    /// labctl's schema types every ImageBuild value as a string or a struct (schema.cue); CUE
    /// keeps YAML's types, so a number, boolean or null there fails labctl's validation. Each
    /// case is FULL (service_test.go's testConfig, every field set) with one value retyped.
    #[test]
    fn values_the_schema_types_as_strings_must_be_yaml_strings() {
        let retype = |from: &str, to: &str| {
            assert_eq!(FULL.matches(from).count(), 1, "{from}");
            FULL.replace(from, to)
        };
        let cases = [
            ("name: talos-test", "name: 123", "name", "the number 123"),
            (
                "  factoryURL: https://factory.example.test",
                "  factoryURL: 8080",
                "source.factoryURL",
                "number",
            ),
            ("  version: v1.13.0", "  version: 1.13", "source.version", "number"),
            (
                "  schematicID: 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
                "  schematicID: null",
                "source.schematicID",
                "null",
            ),
            ("  platform: nocloud", "  platform: ~", "source.platform", "null"),
            ("  arch: amd64", "  arch: 64", "source.arch", "number"),
            ("  artifact: raw.xz", "  artifact: true", "source.artifact", "boolean"),
            ("  delivery: nocloud-cidata", "  delivery:", "config.delivery", "null"),
            (
                "    path: controlplane.yaml",
                "    path: 42",
                "config.userData.path",
                "number",
            ),
            (
                "    localHostname: bootstrap-controlplane-1",
                "    localHostname: 123",
                "config.metaData.localHostname",
                "the number 123",
            ),
            (
                "    instanceID: bootstrap-instance-1",
                "    instanceID: null",
                "config.metaData.instanceID",
                "null",
            ),
            (
                "    path: network.yaml",
                "    path: [network.yaml]",
                "config.networkConfig.path",
                "a list",
            ),
            ("  dir: .state/images", "  dir: 0.5", "output.dir", "number"),
            ("  format: img", "  format: FALSE", "output.format", "boolean"),
            (
                "  bootArtifactName: talos-boot.img",
                "  bootArtifactName: 1e3",
                "output.bootArtifactName",
                "number",
            ),
            (
                "  configArtifactName: talos-cidata.img",
                "  configArtifactName: 0x1f",
                "output.configArtifactName",
                "number",
            ),
            (
                "  networkConfig:\n    path: network.yaml\n",
                "  networkConfig:\n",
                "config.networkConfig",
                "null",
            ),
            (
                "  metaData:\n    localHostname: bootstrap-controlplane-1\n    instanceID: bootstrap-instance-1\n",
                "  metaData: bootstrap-controlplane-1\n",
                "config.metaData",
                "a string",
            ),
        ];
        for (from, to, field, what) in cases {
            let err = parse(&retype(from, to)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{field} is ")) && err.contains(what),
                "{to}: {err}"
            );
            assert!(err.contains("line "), "{to}: the line is given: {err}");
        }
        let output_null = FULL.split("output:").next().unwrap().to_owned() + "output:\n";
        let err = parse(&output_null).unwrap_err().to_string();
        assert!(err.contains("output is null"), "{err}");
        // The same values as YAML strings are what labctl reads (and then checks as usual).
        let quoted = retype("name: talos-test", "name: \"123\"");
        assert_eq!(parse(&quoted).unwrap().name, "123");
        let host = retype(
            "    localHostname: bootstrap-controlplane-1",
            "    localHostname: '123'",
        );
        assert_eq!(parse(&host).unwrap().config.meta_data.local_hostname, "123");
        // go-yaml v3 (CUE's YAML reader) has only true/false booleans: `on` is text.
        let on = retype("name: talos-test", "name: on");
        assert_eq!(parse(&on).unwrap().name, "on");
    }

    #[test]
    fn what_labctl_accepts_is_accepted() {
        let with_source =
            |line: &str| MINIMAL.replace("  version: v1.13.0\n", &format!("{line}\n"));
        for version in ["v1.13.0-alpha-1", "v1.13.0+build.5", "v2.0.0-rc.0"] {
            assert!(
                parse(&with_source(&format!("  version: {version}"))).is_ok(),
                "{version}"
            );
        }
        let long = "x".repeat(70);
        let b = parse(&MINIMAL.replace("bootstrap-controlplane-1", &long)).unwrap();
        assert!(
            b.warnings()[0].contains("longer than 63"),
            "{:?}",
            b.warnings()
        );
        let odd_id = MINIMAL.replace(
            "    localHostname: bootstrap-controlplane-1\n",
            "    localHostname: cp\n    instanceID: \"id with: spaces\"\n",
        );
        assert!(parse(&odd_id).is_ok());
    }

    #[test]
    fn a_build_for_a_release_that_cannot_read_its_boot_stick_says_two_sticks() {
        let build = |version: &str, arch: Option<&str>| {
            let mut yaml = MINIMAL.replace("version: v1.13.0", &format!("version: {version}"));
            if let Some(arch) = arch {
                yaml = yaml.replace("  version:", &format!("  arch: {arch}\n  version:"));
            }
            parse(&yaml).unwrap().warnings().join("\n")
        };
        let said = build("v1.11.2", None);
        assert!(
            said.contains("12098") && said.contains("--config-to"),
            "{said}"
        );
        assert!(!build("v1.11.2", Some("arm64")).contains("12098"));
        assert!(!build("v1.13.0", None).contains("12098"));
    }

    #[test]
    fn talos_1_12_0_to_1_12_2_warn_about_fat_cidata() {
        // Every tag of siderolabs/talos containing ec3bd878f and neither 782cc507d nor 8f49dd220,
        // and the boundaries on each side (see FAT_CIDATA_BROKEN).
        for v in [
            "v1.12.0-alpha.2",
            "v1.12.0-beta.0",
            "v1.12.0-beta.1",
            "v1.12.0-rc.0",
            "v1.12.0-rc.1",
            "v1.12.0",
            "v1.12.1",
            "v1.12.2",
            "v1.12.2+build.1",
            "v1.12.2-rc.1",
            "v1.13.0-alpha.0",
        ] {
            assert!(
                fat_cidata_warning(v).is_some_and(|w| w.contains("12647")),
                "{v}"
            );
        }
        for v in [
            "v1.11.5",
            "v1.12.0-alpha.0",
            "v1.12.0-alpha.1",
            "v1.12.3",
            "v1.12.10",
            "v1.13.0-alpha.1",
            "v1.13.0-alpha.2",
            "v1.13.0-beta.0",
            "v1.13.0",
            "v1.14.0-alpha.0",
            "latest",
        ] {
            assert_eq!(fat_cidata_warning(v), None, "{v}");
        }
    }

    #[test]
    fn the_release_is_read_from_a_factory_url() {
        let url =
            format!("https://f.example/image/{DEFAULT_SCHEMATIC}/v1.12.1/nocloud-amd64.raw.xz");
        assert_eq!(release_named_in(&url), Some("v1.12.1"));
        assert_eq!(release_named_in("talos.raw.xz"), None);
    }

    #[test]
    fn paths_are_cleaned_as_labctl_cleans_them() {
        assert_eq!(clean(Path::new("/w/./cfg/../img")), Path::new("/w/img"));
        assert_eq!(
            clean(Path::new("/w/cfg/./.state/images")),
            Path::new("/w/cfg/.state/images")
        );
    }
}
