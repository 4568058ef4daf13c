//! Talos Image Factory as a catalog: its versions, the official extensions of a version, schematics
//! made from extensions and kernel arguments, and asset URLs by platform, arch, secure boot and
//! format, so operators pick "v1.13 with iscsi-tools for amd64" instead of typing a schematic ID.

use std::cmp::Ordering;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::credentials::{self, Credentials, Secret};
use crate::fetch::factory_signature::FactoryTrust;
use crate::fetch::http::Http;
use crate::CancellationToken;

pub use crate::sources::talos_build::{DEFAULT_FACTORY, DEFAULT_SCHEMATIC};

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub version: String,
    pub prerelease: bool,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extension {
    pub name: String,
    #[serde(rename = "ref", default)]
    pub reference: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub description: String,
}

/// An official board overlay of a version, as `GET /version/<v>/overlays/official` lists it
/// (siderolabs/image-factory README: `name`, `image`, `ref`, `digest`): what a single-board
/// computer needs in its schematic to boot.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overlay {
    pub name: String,
    pub image: String,
    #[serde(rename = "ref", default)]
    pub reference: String,
    #[serde(default)]
    pub digest: String,
}

/// What a schematic customises.
#[derive(Clone, Debug, Default)]
pub struct Customization {
    /// Official extension names (`siderolabs/iscsi-tools`; a bare `iscsi-tools` gets the prefix).
    pub extensions: Vec<String>,
    pub kernel_args: Vec<String>,
    /// A board overlay by its official name (`rpi_generic`), checked against the version's list.
    pub overlay: Option<String>,
}

impl Customization {
    fn is_empty(&self) -> bool {
        self.extensions.is_empty() && self.kernel_args.is_empty() && self.overlay.is_none()
    }
}

/// An asset of a schematic and version.
#[derive(Clone, Debug)]
pub struct Asset {
    pub schematic: String,
    pub version: String,
    /// metal, nocloud, aws, …
    pub platform: String,
    /// amd64 or arm64
    pub arch: String,
    pub secureboot: bool,
    /// raw.xz, raw.zst, iso, …
    pub format: String,
}

/// A factory's address, and the URLs of its API and assets; the credentials its URL carried
/// (`user:password@`, `?token=`) are kept apart, out of every URL made here.
pub struct FactoryUrl {
    base: Url,
    credentials: Credentials,
}

impl FactoryUrl {
    pub fn parse(base: &str) -> Result<Self> {
        let url = Url::parse(base)
            .map_err(|e| Error::BadInput(format!("the factory URL is not a URL: {e}")))?;
        let (mut base, credentials) = credentials::split(&url);
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::BadInput(format!(
                "{:?} is not an http(s) factory URL",
                base.as_str()
            )));
        }
        // A query would be dropped by every join below (the token was taken out above).
        base.set_query(None);
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self { base, credentials })
    }

    /// A client that sends the factory its credentials: the URL's, with `token` (the caller's
    /// `--factory-token`) in place of the URL's `?token=`.
    pub fn http(&self, http: &Http, token: Option<&Secret>) -> Http {
        let mut credentials = self.credentials.clone();
        if let Some(token) = token {
            credentials.token = Some(token.clone());
        }
        http.with_credentials(&self.base, credentials)
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("factory paths are relative")
    }

    /// What its assets' signatures are checked with: `key`, the operator's PEM file, else its
    /// own key (`GET /oci/cosign/signing-key.pub`, pinned on first use).
    pub fn trust(&self, key: Option<std::path::PathBuf>) -> FactoryTrust {
        FactoryTrust {
            factory: self.base.clone(),
            key_url: self.url("oci/cosign/signing-key.pub"),
            given_key: key,
        }
    }

    /// `image/<schematic>/<version>/<platform>-<arch>[-secureboot].<format>`; the UKI is
    /// `<platform>-<arch>[-secureboot]-uki.efi` (image-factory's `ParseFromPath`).
    pub fn asset_url(&self, a: &Asset) -> Result<Url> {
        check_exact_version(&a.version).map_err(Error::BadInput)?;
        let safe = |field: &str, v: &str| {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                Ok(())
            } else {
                Err(Error::BadInput(format!("{v:?} is not a valid {field}")))
            }
        };
        if !is_schematic_id(&a.schematic) {
            return Err(Error::BadInput(format!(
                "{:?} is not a schematic ID (64 lowercase hex digits)",
                a.schematic
            )));
        }
        safe("platform", &a.platform)?;
        safe("format", &a.format)?;
        if !matches!(a.arch.as_str(), "amd64" | "arm64") {
            return Err(Error::BadInput(format!(
                "{:?} is not amd64 or arm64",
                a.arch
            )));
        }
        let sb = if a.secureboot { "-secureboot" } else { "" };
        let dot = if a.format == "uki.efi" { '-' } else { '.' };
        Ok(self.url(&format!(
            "image/{}/{}/{}-{}{sb}{dot}{}",
            a.schematic, a.version, a.platform, a.arch, a.format
        )))
    }
}

pub struct Factory {
    http: Http,
    at: FactoryUrl,
}

impl Factory {
    /// The factory at `base`; `token` replaces a `?token=` in it (see [`FactoryUrl::http`]).
    pub fn new(http: &Http, base: &str, token: Option<&Secret>) -> Result<Self> {
        let at = FactoryUrl::parse(base)?;
        Ok(Self {
            http: at.http(http, token),
            at,
        })
    }

    fn url(&self, path: &str) -> Url {
        self.at.url(path)
    }

    pub fn asset_url(&self, a: &Asset) -> Result<Url> {
        self.at.asset_url(a)
    }

    /// `GET /versions`, newest first, pre-releases marked.
    pub async fn versions(&self, cancel: &CancellationToken) -> Result<Vec<Version>> {
        let url = self.url("versions");
        let text = self.http.get_text(&url, cancel).await.map_err(refused)?;
        let list: Vec<String> = serde_json::from_str(&text).map_err(|e| bad_answer(&url, e))?;
        let mut versions: Vec<Version> = list
            .into_iter()
            .map(|v| Version {
                prerelease: v.contains('-'),
                version: v,
            })
            .collect();
        versions.sort_by(|a, b| compare_versions(&b.version, &a.version));
        Ok(versions)
    }

    /// `GET /version/<v>/extensions/official`.
    pub async fn extensions(
        &self,
        version: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<Extension>> {
        check_version(version)?;
        let url = self.url(&format!("version/{version}/extensions/official"));
        let text = self.http.get_text(&url, cancel).await.map_err(refused)?;
        serde_json::from_str(&text).map_err(|e| bad_answer(&url, e))
    }

    /// `GET /version/<v>/overlays/official`.
    pub async fn overlays(
        &self,
        version: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<Overlay>> {
        check_version(version)?;
        let url = self.url(&format!("version/{version}/overlays/official"));
        let text = self.http.get_text(&url, cancel).await.map_err(refused)?;
        serde_json::from_str(&text).map_err(|e| bad_answer(&url, e))
    }

    /// `POST /schematics`; the same customisation always gives the same ID (extensions sorted and
    /// deduplicated, kernel arguments kept in order). `overlay` is `custom.overlay` resolved.
    pub async fn schematic(
        &self,
        custom: &Customization,
        overlay: Option<&Overlay>,
        cancel: &CancellationToken,
    ) -> Result<String> {
        if custom.is_empty() {
            return Ok(DEFAULT_SCHEMATIC.to_string());
        }
        let url = self.url("schematics");
        let text = self
            .http
            .post_json(&url, &schematic_body(custom, overlay), cancel)
            .await
            .map_err(refused)?;
        #[derive(serde::Deserialize)]
        struct Created {
            id: String,
        }
        let created: Created = serde_json::from_str(&text).map_err(|e| bad_answer(&url, e))?;
        if created.id.len() != 64 || !created.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_answer(
                &url,
                format!("{:?} is not a schematic ID", created.id),
            ));
        }
        Ok(created.id.to_ascii_lowercase())
    }
}

/// The request body of `POST /schematics`: siderolabs/image-factory `pkg/schematic/schematic.go`'s
/// `Schematic`, whose `overlay` (`image`, `name`) sits beside `customization`.
pub fn schematic_body(custom: &Customization, overlay: Option<&Overlay>) -> serde_json::Value {
    let mut extensions: Vec<String> = custom
        .extensions
        .iter()
        .map(|e| {
            if e.contains('/') {
                e.clone()
            } else {
                format!("siderolabs/{e}")
            }
        })
        .collect();
    extensions.sort();
    extensions.dedup();
    let mut customization = serde_json::Map::new();
    if !custom.kernel_args.is_empty() {
        customization.insert(
            "extraKernelArgs".into(),
            serde_json::json!(custom.kernel_args),
        );
    }
    if !extensions.is_empty() {
        customization.insert(
            "systemExtensions".into(),
            serde_json::json!({ "officialExtensions": extensions }),
        );
    }
    match overlay {
        Some(o) => serde_json::json!({
            "overlay": { "image": o.image, "name": o.name },
            "customization": customization,
        }),
        None => serde_json::json!({ "customization": customization }),
    }
}

/// The official overlay named `wanted` (a board, as `rpi_generic`); an unknown one is refused
/// naming the version's overlays.
pub fn resolve_overlay(wanted: &str, official: &[Overlay]) -> Result<Overlay> {
    official
        .iter()
        .find(|o| o.name == wanted)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = official.iter().map(|o| o.name.as_str()).collect();
            Error::BadInput(match names.is_empty() {
                true => format!("{wanted:?} is not an official overlay: this version has none"),
                false => format!(
                    "{wanted:?} is not an official overlay of this version; its overlays are {}",
                    names.join(", ")
                ),
            })
        })
}

/// Checks wanted extensions against a version's official list; unknown ones are named.
pub fn resolve_extensions(wanted: &[String], official: &[Extension]) -> Result<Vec<String>> {
    wanted
        .iter()
        .map(|w| {
            let full = if w.contains('/') {
                w.clone()
            } else {
                format!("siderolabs/{w}")
            };
            if official.iter().any(|e| e.name == full) {
                Ok(full)
            } else {
                let short = full.rsplit('/').next().unwrap_or(&full);
                let near: Vec<&str> = official
                    .iter()
                    .map(|e| e.name.as_str())
                    .filter(|n| {
                        n.contains(short) || short.contains(n.rsplit('/').next().unwrap_or(n))
                    })
                    .take(5)
                    .collect();
                Err(Error::BadInput(if near.is_empty() {
                    format!("{w:?} is not an official extension of this version")
                } else {
                    format!(
                        "{w:?} is not an official extension of this version; did you mean {}?",
                        near.join(", ")
                    )
                }))
            }
        })
        .collect()
}

fn check_version(v: &str) -> Result<()> {
    check_exact_version(v).map_err(Error::BadInput)
}

/// An exact Talos release, by labctl's `#TalosVersion`:
/// `^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$` (never `latest`).
pub fn check_exact_version(v: &str) -> std::result::Result<(), String> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
    };
    let ok = v.strip_prefix('v').is_some_and(|rest| {
        let (rest, build) = match rest.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (rest, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && pre.is_none_or(ident)
            && build.is_none_or(ident)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?}: Talos version must be an exact release like v1.13.0"
        ))
    }
}

/// 64 lowercase hex digits: the SHA-256 the factory names a schematic by.
pub fn is_schematic_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A factory's 401 or 403 as its operator reads it (whichever route answered); other errors as
/// they are.
pub(crate) fn refused(e: Error) -> Error {
    match e {
        Error::Unauthorized { status, sent, .. } => Error::FactoryUnauthorized { status, sent },
        e => e,
    }
}

fn bad_answer(url: &Url, e: impl std::fmt::Display) -> Error {
    Error::Network {
        url: url.to_string(),
        detail: format!("an unexpected answer: {e}"),
    }
}

/// Semantic-version order: numbers numerically; a pre-release sorts before its release.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<u64>, Option<&str>) {
        let v = v.trim_start_matches('v');
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v, None),
        };
        (
            core.split('.').map(|n| n.parse().unwrap_or(0)).collect(),
            pre,
        )
    }
    let (ca, pa) = split(a);
    let (cb, pb) = split(b);
    ca.cmp(&cb).then_with(|| match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_prerelease(x, y),
    })
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    for (x, y) in a.split('.').zip(b.split('.')) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.split('.').count().cmp(&b.split('.').count())
}

/// An asset to fetch: by schematic, or by the extensions and kernel arguments that make one.
#[derive(Clone, Debug)]
pub struct AssetRequest {
    /// May carry `user:password@` (HTTP Basic) and `?token=`.
    pub factory_url: String,
    /// A download token, in place of the URL's `?token=`.
    pub factory_token: Option<Secret>,
    /// The factory's public key (PEM), in place of the one pinned for it.
    pub factory_key: Option<std::path::PathBuf>,
    pub version: String,
    pub schematic: Option<String>,
    pub customization: Customization,
    pub platform: String,
    pub arch: String,
    pub secureboot: bool,
    pub format: String,
    pub sha256: Option<crate::fetch::digest::Sha256Digest>,
    pub allow_unverified: bool,
    pub max_image_size: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FetchedAsset {
    #[serde(flatten)]
    pub fetched: crate::fetch::Fetched,
    #[serde(rename = "sourceVersion")]
    pub version: String,
    #[serde(rename = "sourceSchematicID")]
    pub schematic: String,
}

/// The asset's URL and its schematic ID: the schematic is created on the factory (or the given
/// one used), nothing is downloaded.
impl AssetRequest {
    /// What the asset's signature is checked with.
    pub fn trust(&self) -> Result<FactoryTrust> {
        Ok(FactoryUrl::parse(&self.factory_url)?.trust(self.factory_key.clone()))
    }
}

pub async fn locate_asset(
    http: &Http,
    req: &AssetRequest,
    cancel: &CancellationToken,
) -> Result<(Url, String)> {
    let factory = Factory::new(http, &req.factory_url, req.factory_token.as_ref())?;
    locate(&factory, req, cancel).await
}

async fn locate(
    factory: &Factory,
    req: &AssetRequest,
    cancel: &CancellationToken,
) -> Result<(Url, String)> {
    let custom = &req.customization;
    let schematic = match &req.schematic {
        Some(_) if !custom.is_empty() => return Err(Error::BadInput(
            "give either a schematic ID or extensions, kernel arguments and an overlay, not both"
                .into(),
        )),
        // The factory knows IDs in lower case only; asset_url checks the rest.
        Some(id) => id.to_ascii_lowercase(),
        // The official overlays are single-board computers' (Raspberry Pi, Rockchip, Jetson…):
        // one on an amd64 image makes an image no such board boots.
        None if custom.overlay.is_some() && req.arch != "arm64" => {
            return Err(Error::BadInput(format!(
                "board overlays are for arm64 single-board computers, and this image is for {}: add --arch arm64",
                req.arch
            )))
        }
        None => {
            // Extensions and the overlay by their official names, as the version lists them.
            let overlay = match &custom.overlay {
                Some(name) => Some(resolve_overlay(
                    name,
                    &factory.overlays(&req.version, cancel).await?,
                )?),
                None => None,
            };
            let extensions = match custom.extensions.is_empty() {
                true => Vec::new(),
                false => resolve_extensions(
                    &custom.extensions,
                    &factory.extensions(&req.version, cancel).await?,
                )?,
            };
            let resolved = Customization {
                extensions,
                ..custom.clone()
            };
            factory
                .schematic(&resolved, overlay.as_ref(), cancel)
                .await?
        }
    };
    let url = factory.asset_url(&Asset {
        schematic: schematic.clone(),
        version: req.version.clone(),
        platform: req.platform.clone(),
        arch: req.arch.clone(),
        secureboot: req.secureboot,
        format: req.format.clone(),
    })?;
    Ok((url, schematic))
}

/// From "v1.13.0 with iscsi-tools for amd64" to a verified image: the extensions are checked
/// against the version's official list, the schematic is created, the asset fetched like `fetch`.
pub async fn fetch_asset(
    http: &Http,
    cache: &crate::fetch::cache::Cache,
    req: &AssetRequest,
    cancel: &CancellationToken,
    progress: &std::sync::Arc<dyn crate::progress::ProgressSink>,
) -> Result<FetchedAsset> {
    let factory = Factory::new(http, &req.factory_url, req.factory_token.as_ref())?;
    let (url, schematic) = locate(&factory, req, cancel).await?;
    let fetched = crate::fetch::fetch(
        &factory.http,
        cache,
        &crate::fetch::FetchRequest {
            factory: Some(factory.at.trust(req.factory_key.clone())),
            ..crate::fetch::FetchRequest::verified(
                url,
                req.sha256,
                req.allow_unverified,
                req.max_image_size,
            )
        },
        cancel,
        progress,
    )
    .await
    .map_err(refused)?;
    Ok(FetchedAsset {
        fetched,
        version: req.version.clone(),
        schematic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_follow_labctl_s_pattern() {
        for good in [
            "v1.13.0",
            "v1.9.12",
            "v1.13.0-beta.1",
            "v2.0.0-rc.0",
            "v1.13.0-alpha-1",
            "v1.13.0+x",
        ] {
            assert!(check_exact_version(good).is_ok(), "{good}");
        }
        for bad in [
            "latest", "1.13.0", "v1.13", "v1.13.x", "v1.13.0-", "v1.13.0+", "",
        ] {
            assert!(check_exact_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_uki_is_named_with_a_hyphen() {
        let at = FactoryUrl::parse("https://factory.example").unwrap();
        let mut asset = Asset {
            schematic: "0".repeat(64),
            version: "v1.13.0".into(),
            platform: "metal".into(),
            arch: "amd64".into(),
            secureboot: true,
            format: "uki.efi".into(),
        };
        let url = at.asset_url(&asset).unwrap();
        assert!(
            url.as_str()
                .ends_with("/v1.13.0/metal-amd64-secureboot-uki.efi"),
            "{url}"
        );
        asset.format = "raw.xz".into();
        asset.secureboot = false;
        let url = at.asset_url(&asset).unwrap();
        assert!(
            url.as_str().ends_with("/v1.13.0/metal-amd64.raw.xz"),
            "{url}"
        );
    }

    #[test]
    fn versions_sort_newest_first_with_prereleases_below_their_release() {
        let mut v = vec![
            "v1.9.0",
            "v1.10.0-alpha.2",
            "v1.10.0",
            "v1.10.0-alpha.10",
            "v1.10.0-beta.0",
            "v1.8.3",
        ];
        v.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(
            v,
            [
                "v1.10.0",
                "v1.10.0-beta.0",
                "v1.10.0-alpha.10",
                "v1.10.0-alpha.2",
                "v1.9.0",
                "v1.8.3"
            ]
        );
    }

    #[test]
    fn the_schematic_body_is_canonical() {
        let a = Customization {
            extensions: vec![
                "iscsi-tools".into(),
                "siderolabs/util-linux-tools".into(),
                "siderolabs/iscsi-tools".into(),
            ],
            kernel_args: vec!["console=ttyS0".into()],
            overlay: None,
        };
        let b = Customization {
            extensions: vec!["siderolabs/util-linux-tools".into(), "iscsi-tools".into()],
            kernel_args: vec!["console=ttyS0".into()],
            overlay: None,
        };
        assert_eq!(schematic_body(&a, None), schematic_body(&b, None));
        assert_eq!(
            schematic_body(&a, None),
            serde_json::json!({"customization": {"extraKernelArgs": ["console=ttyS0"], "systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]}}})
        );
        // A board's overlay beside the customisation, as the factory's Schematic has it.
        let rpi = Overlay {
            name: "rpi_generic".into(),
            image: "siderolabs/sbc-raspberrypi".into(),
            reference: String::new(),
            digest: String::new(),
        };
        assert_eq!(
            schematic_body(&Customization::default(), Some(&rpi)),
            serde_json::json!({"overlay": {"image": "siderolabs/sbc-raspberrypi", "name": "rpi_generic"}, "customization": {}})
        );
    }

    #[test]
    fn unknown_extensions_are_named_with_suggestions() {
        let official = vec![Extension {
            name: "siderolabs/iscsi-tools".into(),
            reference: String::new(),
            digest: String::new(),
            author: String::new(),
            description: String::new(),
        }];
        assert_eq!(
            resolve_extensions(&["iscsi-tools".into()], &official).unwrap(),
            ["siderolabs/iscsi-tools"]
        );
        let err = resolve_extensions(&["iscsi".into()], &official)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean siderolabs/iscsi-tools"), "{err}");
    }
}
