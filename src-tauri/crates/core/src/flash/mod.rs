//! A flash, top to bottom, for every front end. A front end builds a [`Request`] (what to write,
//! onto which drives, with which options), asks for its [`plan`], shows it and confirms, then
//! [`run`]s it. Every decision is made here, once:
//!
//! 1. [`plan`]: a URL or a compressed file streams in one pass (see `stream`) unless a target
//!    can only be reached through the privileged helper (it takes a file) or a config partition
//!    is added (laid out from a file); otherwise the image is prepared as a file (`crate::sources`).
//!    Every target is checked against the rules with the source and the cache protected (one
//!    refusal refuses all) and recorded by identity.
//! 2. [`run`]: check that no other process uses a target, unmount (never lazily), open every
//!    target exclusively and compare it with its identity, then write and read back (see
//!    `writer`) directly, through UDisks2, or through the privileged helper (`helper`).
//!    [`run_all`] runs several plans (a lab's nodes) from one read of their image, each stick
//!    with its own config laid over it (`writer::Overlay`, `one_stick::Layout`).
//!
//! Each target can be cancelled alone while the others go on: take [`Plan::target_cancels`]
//! before running the plan (see `target_cancel`).
//!
//! The rest of this folder: `rules` (which targets may be written), `writer` (wipe, write, read
//! back, first MiB last), `readback` (several targets, one hash), `stream` (the one-pass download
//! and decode), `helper` (pkexec's side and ours), `one_stick` and `gpt` (a cidata partition),
//! `probe` (what a source is, learnt when it is chosen, by the same decisions as `plan`).

pub mod gpt;
pub mod helper;
pub mod lab;
pub mod one_stick;
pub mod probe;
mod readback;
pub mod record;
pub mod rules;
mod skip;
pub mod stream;
mod summary;
pub mod target_cancel;
pub mod writer;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::digest::Sha256Digest;
use crate::fetch::http::Http;
use crate::fetch::unwrap::ImageInside;
use crate::fetch::{DigestSource, FetchRequest};
use crate::image::Image;
use crate::image_kind::{self, ImageKind};
use crate::io::device;
use crate::io::drives::SystemRoots;
use crate::io::identity::Identity;
use crate::progress::ProgressSink;
use crate::sources::{self, Prepared, SourceRequest};
use crate::CancellationToken;
use one_stick::Layout;
use rules::{Approved, Chosen, TargetOptions};
use stream::Opened;
pub use summary::Summary;
use target_cancel::TargetCancels;
use writer::{FlashOptions, TargetReport};

/// What the operator asks for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The image (an http(s) URL or a local file: raw, xz, gz, zst) and who vouches for it.
    pub image: SourceRequest,
    pub targets: Vec<Chosen>,
    /// One stick for both: a cidata image added as a partition after the image's own.
    pub config: Option<PathBuf>,
    /// Two sticks: `config` is written whole onto this drive, the image onto `targets`, in one
    /// run (every Talos release reads a cidata stick beside its boot stick).
    pub config_to: Option<Chosen>,
    pub options: TargetOptions,
    /// Read every target back (the default).
    pub verify: bool,
    /// Leave alone what a target already holds (the default); off, every byte is written.
    pub skip_equal: bool,
    /// The image as `sources::prepare_source` already fetched, proved and decoded it (a front
    /// end that checked first): written as it is, and its origin, not the file's name, says
    /// which platform and release it is for. `source` then names it in messages only.
    pub prepared: Option<Box<Prepared>>,
}

/// What will be written where, for the front end to show and confirm, then to [`run`].
pub struct Plan {
    source: Planned,
    /// Every target, approved and identified.
    pub targets: Vec<Approved>,
    /// What the operator should know first (a Talos release that cannot read a FAT cidata, an
    /// image with no partition table).
    pub warnings: Vec<String>,
    /// What the image is (see `image_kind`), when known before writing: always for a file or an
    /// archive file; a download's is known from its first decoded bytes, before any target is
    /// opened (a kind that is not written is refused then, untouched), and is in [`Flashed`].
    pub image_kind: Option<ImageKind>,
    /// The tar or zip entry the image is unwrapped from, when known with its kind.
    pub image_inside: Option<ImageInside>,
    /// Two sticks: the config image's own plan, written after the boot stick.
    pub config_stick: Option<Box<Plan>>,
    /// Who signed the index the expected digest came from, when it was signed.
    signed_by: Option<String>,
    options: FlashOptions,
}

enum Planned {
    /// Downloaded or decoded as it is written.
    Stream(Box<Opened>),
    /// A prepared image file (or one-stick layout) written as it is.
    Prepared(Box<PreparedWrite>),
}

struct PreparedWrite {
    prepared: Prepared,
    writing: Writing,
    protected: Vec<PathBuf>,
}

/// What a flash did; the CLI prints it as `--json`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flashed {
    #[serde(rename = "imageSHA256")]
    pub image_sha256: Sha256Digest,
    pub image_size: u64,
    /// What the image is, from its decoded bytes: `gpt`, `mbr`, `iso9660-hybrid`, `fat`, or
    /// `iso9660` and `unknown` (written with a warning); any other kind is refused before writing.
    pub image_kind: ImageKind,
    /// The tar or zip entry the image was unwrapped from (`{"archive":"tar","name":"disk.raw"}`);
    /// absent when the decoded archive is the image itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, inline))]
    pub image_inside: Option<ImageInside>,
    /// One stick: the config image's digest, where its partition starts, and the digest of the
    /// whole laid-out stream the targets' read-back reproduces.
    #[serde(rename = "configSHA256", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub config_sha256: Option<Sha256Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub cidata_offset: Option<u64>,
    #[serde(rename = "stickSHA256", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub stick_sha256: Option<Sha256Digest>,
    /// The archive's (or source file's) verified digest and where the expected one came from.
    #[serde(rename = "archiveSHA256")]
    pub archive_sha256: Sha256Digest,
    pub digest_source: DigestSource,
    pub targets: Vec<TargetReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<String>>", optional))]
    pub warnings: Vec<String>,
    /// Two sticks: what the config stick got (absent when the boot stick failed or was
    /// cancelled first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub config_stick: Option<Box<Flashed>>,
}

/// Settles what will be written (its expected digest first) and approves every target.
pub async fn plan(
    req: &Request,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Plan> {
    if let Some(config_to) = &req.config_to {
        return Box::pin(plan_two_sticks(
            req, config_to, http, cache, cancel, progress,
        ))
        .await;
    }
    let mut warnings = match &req.config {
        Some(config) => one_stick_warnings(req, config)?,
        None => Vec::new(),
    };
    let roots = SystemRoots::default();
    if stream::streams(&req.image.source) && req.config.is_none() && req.prepared.is_none() {
        let opened = open_stream(req, http, cache, cancel, progress).await?;
        if let Some(targets) = stream::approve(&opened, &req.targets, &req.options, cache, &roots)?
        {
            let image_kind = opened.image_kind;
            warnings.extend(opened.warnings.iter().cloned());
            warnings.extend(image_kind.and_then(ImageKind::warning));
            let signed_by = opened.signed_by.clone();
            return Ok(Plan {
                image_inside: opened.image_inside.clone(),
                source: Planned::Stream(Box::new(opened)),
                targets,
                warnings,
                image_kind,
                config_stick: None,
                signed_by: signed_by.or_else(|| req.image.signed_by.clone()),
                options: req.flash_options(),
            });
        }
        // A target needs the helper, which takes the image as a file: prepare it below.
    }
    let prepared = match &req.prepared {
        // Its warnings were shown with its digests; the flash says them again below.
        Some(prepared) => Prepared::clone(prepared),
        None => prepare_image(req, http, cache, cancel, progress).await?,
    };
    plan_prepared(req, prepared, warnings, cache, roots, cancel).await
}

/// One stick for both: one target, a config image that is one, beside a boot image that can
/// read it; the warnings are what the names of the image say about that.
fn one_stick_warnings(req: &Request, config: &Path) -> Result<Vec<String>> {
    if req.targets.len() != 1 {
        return Err(Error::BadInput(
            "one stick for both writes exactly one target at a time".into(),
        ));
    }
    crate::sources::cidata::check_image(config)?;
    let mut warnings = config_warnings(req.origin())?;
    // A release that cannot read cidata on its own boot stick is refused (two sticks are
    // offered); a name that says no release is said so.
    warnings.extend(
        crate::sources::talos_boot_stick::check_one_stick(req.origin()).map_err(Error::BadInput)?,
    );
    Ok(warnings)
}

/// The source opened to be decoded as it is written: downloaded, or read from its file.
async fn open_stream(
    req: &Request,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Opened> {
    let image = &req.image;
    if let Some(fetch) = fetch_of(image)? {
        stream::open(http, cache, &fetch, cancel, progress).await
    } else {
        let path = Path::new(&image.source);
        stream::open_file(path, image.sha256, image.max_image_size, cancel, progress).await
    }
}

/// The fetch of a URL source, vouched for as the source says; `None` for a local file.
fn fetch_of(image: &SourceRequest) -> Result<Option<FetchRequest>> {
    if !crate::fetch::is_url(&image.source) {
        return Ok(None);
    }
    let url = url::Url::parse(&image.source)
        .map_err(|e| Error::BadInput(format!("{:?} is not a valid URL: {e}", image.source)))?;
    Ok(Some(FetchRequest::of(url, image)))
}

/// The source fetched, verified and decoded to an image file.
async fn prepare_image(
    req: &Request,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Prepared> {
    sources::prepare(&req.image, http, cache, cancel, progress).await
}

/// The plan for a prepared image file: its kind checked before any target is touched, and every
/// target approved with the image, the cache and the source protected.
async fn plan_prepared(
    req: &Request,
    prepared: Prepared,
    mut warnings: Vec<String>,
    cache: &Cache,
    roots: SystemRoots,
    cancel: &CancellationToken,
) -> Result<Plan> {
    let image_kind = written_kind(&prepared.image.path, &req.image.source)?;
    warnings.extend(image_kind.warning());
    warnings.extend(prepared.warnings.iter().cloned());
    let mut protected = vec![prepared.image.path.clone(), cache.root().to_path_buf()];
    if !crate::fetch::is_url(&req.image.source) {
        protected.push(PathBuf::from(&req.image.source));
    }
    // Laying a one-stick stream out reads the config image (its digest): off the runtime's
    // threads, so that a lab's nodes are laid out at the same time.
    let writing = {
        let (image, targets, config) = (
            prepared.image.clone(),
            req.targets.clone(),
            req.config.clone(),
        );
        let (options, guarded, cancel) = (req.options.clone(), protected.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || {
            let guarded: Vec<&Path> = guarded.iter().map(PathBuf::as_path).collect();
            let config = config.as_deref();
            plan_writing(image, &targets, config, &options, &guarded, &roots, &cancel)
        })
        .await
        .expect("the planning thread panicked")?
    };
    Ok(Plan {
        targets: writing.targets.clone(),
        image_inside: prepared.image_inside.clone(),
        signed_by: prepared.signed_by.clone(),
        source: Planned::Prepared(Box::new(PreparedWrite {
            prepared,
            writing,
            protected,
        })),
        warnings,
        image_kind: Some(image_kind),
        config_stick: None,
        options: req.flash_options(),
    })
}

/// What an image file is, before any target is touched: a kind that is not written is refused
/// (naming the image as `source` names it), any other is said (with its warning, if it has one).
fn written_kind(path: &Path, source: &str) -> Result<ImageKind> {
    let kind = image_kind::of_file(path).map_err(|e| Error::io(path, e))?;
    match kind.refusal(source) {
        Some(refusal) => Err(Error::BadInput(refusal)),
        None => Ok(kind),
    }
}

/// A config goes only beside an image whose platform reads cidata (nocloud): a metal image is
/// refused before anything is fetched, an image whose name says no platform is said so; where
/// the name says a release that cannot read a FAT cidata, that is said too.
fn config_warnings(source: &str) -> Result<Vec<String>> {
    let mut warnings: Vec<String> = crate::sources::talos_platform::check_cidata_reader(source)?
        .into_iter()
        .collect();
    warnings.extend(
        crate::sources::talos_build::release_named_in(source)
            .and_then(crate::sources::talos_build::fat_cidata_warning),
    );
    Ok(warnings)
}

/// Two sticks in one run: the boot image onto `req.targets`, the cidata image `req.config` whole
/// onto `config_to`. Each is planned as a flash of its own (the config image is the operator's
/// file: its digest is shown, and its stick is read back against it); one drive cannot be both.
async fn plan_two_sticks(
    req: &Request,
    config_to: &Chosen,
    http: &Http,
    cache: &Cache,
    cancel: &CancellationToken,
    progress: &Arc<dyn ProgressSink>,
) -> Result<Plan> {
    let Some(config) = &req.config else {
        return Err(Error::BadInput(
            "a config stick needs the config image to write onto it (--config CIDATA.img)".into(),
        ));
    };
    // The operator's cidata file, checked as Talos reads it (never a URL or another image).
    crate::sources::cidata::check_image(config)?;
    let mut warnings = config_warnings(req.origin())?;
    let boot_req = Request {
        config: None,
        config_to: None,
        ..req.clone()
    };
    let config_req = Request {
        // The operator's own file: its digest is the one shown when it was built.
        image: SourceRequest {
            source: config.display().to_string(),
            sha256: None,
            sha256_source: DigestSource::Flag,
            signed_by: None,
            factory: None,
            allow_unverified: true,
            ..req.image.clone()
        },
        targets: vec![config_to.clone()],
        config: None,
        config_to: None,
        prepared: None,
        ..req.clone()
    };
    let mut boot = Box::pin(plan(&boot_req, http, cache, cancel, progress)).await?;
    let config_stick = Box::pin(plan(&config_req, http, cache, cancel, progress)).await?;
    for c in &config_stick.targets {
        if boot.targets.iter().any(|b| {
            b.path == c.path || (c.identity != Identity::NewFile && b.identity == c.identity)
        }) {
            return Err(Error::Refused {
                target: c.path.display().to_string(),
                reason:
                    "it is named as the boot stick and as the config stick; they must be two drives"
                        .into(),
            });
        }
    }
    // Neither stick may be the other's source file (each half protects only its own).
    let mut sources = vec![config.clone()];
    if !crate::fetch::is_url(&req.image.source) {
        sources.push(PathBuf::from(&req.image.source));
    }
    for t in boot.targets.iter().chain(&config_stick.targets) {
        if sources
            .iter()
            .any(|s| crate::io::identity::is_file(s, &t.identity))
        {
            return Err(Error::Refused {
                target: t.path.display().to_string(),
                reason: "it is the boot image or the config image this run writes".into(),
            });
        }
    }
    // Two sticks is what a build's "write them onto two sticks" asks for: said, and done.
    boot.warnings
        .retain(|w| !crate::sources::talos_build::says_two_sticks(w));
    warnings.append(&mut boot.warnings);
    warnings.extend(
        config_stick
            .warnings
            .iter()
            .map(|w| format!("config stick: {w}")),
    );
    boot.warnings = warnings;
    boot.config_stick = Some(Box::new(config_stick));
    Ok(boot)
}

impl Request {
    /// The name that says what the image is for (platform, release, architecture).
    fn origin(&self) -> &str {
        self.prepared
            .as_ref()
            .map_or(&self.image.source, |p| &p.origin)
    }

    fn flash_options(&self) -> FlashOptions {
        FlashOptions {
            verify: self.verify,
            skip_equal: self.skip_equal,
        }
    }
}

impl Plan {
    /// One stick: the digest of the config image the plan lays out beside the boot image (as
    /// read when planning), for the front end to compare with the one the operator confirmed.
    /// Two sticks: the digest of the config image its own stick gets.
    pub fn config_sha256(&self) -> Option<Sha256Digest> {
        if let Some(config) = &self.config_stick {
            return config.written().1;
        }
        match &self.source {
            Planned::Prepared(p) => p
                .writing
                .layouts
                .first()
                .and_then(Option::as_ref)
                .map(|l| l.config_sha256()),
            Planned::Stream(_) => None,
        }
    }

    /// The image this plan writes, as its source names it (a URL, a file, an asset's URL).
    pub fn source(&self) -> &str {
        self.written().0
    }

    /// What this plan writes, as its source names it, and its digest when known before writing.
    fn written(&self) -> (&str, Option<Sha256Digest>) {
        match &self.source {
            Planned::Prepared(p) => (&p.prepared.origin, Some(p.prepared.image.sha256)),
            Planned::Stream(opened) => (&opened.source, opened.expected),
        }
    }

    /// What will be written, in lines for the confirmation.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = self.describe_source();
        lines.push(match (self.image_kind, &self.image_inside) {
            (Some(kind), Some(inside)) => format!("image kind: {kind}, unwrapped from the archive: {inside}"),
            (Some(kind), None) => format!("image kind: {kind}"),
            (None, _) => "image kind: known from its first decoded bytes, before any drive is opened (an image that is not a disk or an ISO is refused then; a tar or zip holding one disk image is written from inside it)".into(),
        });
        if let Some(config) = &self.config_stick {
            let onto: Vec<String> = config
                .targets
                .iter()
                .map(|t| t.path.display().to_string())
                .collect();
            // The operator's own cidata image: its digest is the one shown when it was built.
            let (name, sha256) = config.written();
            lines.push(format!(
                "config stick {}: the config image {name}{}, written after the boot stick",
                onto.join(", "),
                sha256.map(|d| format!(", SHA-256 {d}")).unwrap_or_default(),
            ));
        }
        lines
    }

    /// Each target's own cancel (the config stick's too), by path: taken before [`run`], to
    /// stop one drive while the others go on.
    pub fn target_cancels(&self) -> TargetCancels {
        TargetCancels::new(self.all_targets().into_iter().map(|t| (t.path, t.cancel)))
    }

    /// Every drive this plan writes, the config stick's too: what the operator confirms.
    pub fn all_targets(&self) -> Vec<Approved> {
        let mut all = self.targets.clone();
        if let Some(config) = &self.config_stick {
            all.extend(config.all_targets());
        }
        all
    }

    fn describe_source(&self) -> Vec<String> {
        use crate::io::drives::human_size;
        let origin = |source: DigestSource| match &self.signed_by {
            Some(signer) => format!("{}, signed by {signer}", source.origin()),
            None => source.origin().to_string(),
        };
        match &self.source {
            Planned::Stream(opened) => vec![
                format!("image: {}", opened.source),
                match (opened.expected, opened.digest_source) {
                    (Some(digest), DigestSource::Unverified) => format!(
                        "file SHA-256 {digest}: UNVERIFIED (compare it with the publisher's)"
                    ),
                    (Some(digest), source) => format!(
                        "archive SHA-256 {digest} (from {}), checked before any target is finished",
                        origin(source)
                    ),
                    (None, source) => match opened.expected_sha512 {
                        Some(sha512) => format!(
                            "archive SHA-512 {sha512} (from {}), checked before any target is finished",
                            origin(source)
                        ),
                        None => "archive: UNVERIFIED (no published checksum)".into(),
                    },
                },
                match opened.image_size {
                    Some(size) if size.exact => format!(
                        "image: {}, as its archive records; its SHA-256 is known when decoded and every target is read back against it",
                        size.describe()
                    ),
                    Some(size) => format!(
                        "image: {}; its whole size is known only when decoded: a drive smaller than it fails at its end, with its first MiB wiped",
                        size.describe()
                    ),
                    None => "image: its size is known only when decoded (the archive does not record it where it can be read first): a drive smaller than the image fails at its end, with its first MiB wiped".into(),
                },
            ],
            Planned::Prepared(p) => {
                let writing = &p.writing;
                let boot = &writing.image;
                let prepared = &p.prepared;
                let mut lines = vec![format!(
                    "image: {}, {} bytes ({}), SHA-256 {}",
                    prepared.origin,
                    boot.size,
                    human_size(boot.size),
                    boot.sha256
                )];
                lines.push(match prepared.digest_source {
                    DigestSource::Unverified => format!(
                        "file SHA-256 {}: UNVERIFIED (compare it with the publisher's)",
                        prepared.archive_sha256
                    ),
                    DigestSource::Sha512 => format!(
                        "archive SHA-256 {}, its SHA-512 checked against {} before it was decoded",
                        prepared.archive_sha256,
                        origin(DigestSource::Sha512)
                    ),
                    source => format!(
                        "archive SHA-256 {} (from {}), checked before it was decoded",
                        prepared.archive_sha256,
                        origin(source)
                    ),
                });
                if let Some(layout) = writing.layouts.first().and_then(Option::as_ref) {
                    lines.push(format!(
                        "config: SHA-256 {}, added as partition cidata on the same stick",
                        layout.config_sha256()
                    ));
                }
                lines
            }
        }
    }
}

/// Writes the plan onto its targets and reads each back (blocking; `rt` runs a download).
pub fn run(
    plan: Plan,
    http: &Http,
    cache: &Cache,
    rt: &tokio::runtime::Handle,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Flashed> {
    let mut results = run_all(vec![plan], http, cache, rt, cancel, progress);
    results.pop().expect("one plan, one result")
}

/// Runs several plans at once (a lab's nodes), and says what each did. Plans that write one
/// prepared image without the privileged helper share one read of it, every target with its own
/// config laid over it (see `writer::Overlay`); others run side by side. Each plan's config
/// stick is written once its boot sticks are.
pub fn run_all(
    plans: Vec<Plan>,
    http: &Http,
    cache: &Cache,
    rt: &tokio::runtime::Handle,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Vec<Result<Flashed>> {
    let (boots, configs): (Vec<Plan>, Vec<Option<Box<Plan>>>) = plans
        .into_iter()
        .map(|mut plan| {
            let config = plan.config_stick.take();
            (plan, config)
        })
        .unzip();
    let mut results = match shares_one_read(&boots) {
        true => run_shared(boots, cancel, progress),
        false => std::thread::scope(|scope| {
            let running: Vec<_> = boots
                .into_iter()
                .map(|plan| scope.spawn(move || run_one(plan, http, cache, rt, cancel, progress)))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("a flash thread panicked"))
                .collect()
        }),
    };
    // Each plan's config stick, once its boot sticks are written (one that failed would only
    // mislead), all at once.
    let config_runs: Vec<Option<Result<Flashed>>> = std::thread::scope(|scope| {
        let running: Vec<_> = results
            .iter_mut()
            .zip(configs)
            .map(|(result, config)| {
                let (flashed, config) = (result.as_mut().ok()?, config?);
                if !flashed.targets.iter().all(|t| t.ok) {
                    flashed.warnings.push(
                        "the config stick was not written: the boot stick failed or was cancelled"
                            .into(),
                    );
                    return None;
                }
                Some(scope.spawn(move || run_one(*config, http, cache, rt, cancel, progress)))
            })
            .collect();
        running
            .into_iter()
            .map(|run| run.map(|h| h.join().expect("a flash thread panicked")))
            .collect()
    });
    results
        .into_iter()
        .zip(config_runs)
        .map(|(result, config)| match (result, config) {
            (Ok(mut flashed), Some(Ok(config))) => {
                flashed.config_stick = Some(Box::new(config));
                Ok(flashed)
            }
            (Ok(_), Some(Err(e))) => Err(e),
            (result, _) => result,
        })
        .collect()
}

/// Whether the plans write one prepared image, with the same options, each onto drives this
/// user can reach.
fn shares_one_read(plans: &[Plan]) -> bool {
    fn writing(plan: &Plan) -> Option<&Writing> {
        match &plan.source {
            Planned::Prepared(p) => Some(&p.writing),
            Planned::Stream(_) => None,
        }
    }
    let Some(first) = plans.first().and_then(writing) else {
        return false;
    };
    plans.iter().all(|plan| {
        writing(plan).is_some_and(|w| {
            w.image.path == first.image.path
                && w.image.sha256 == first.image.sha256
                && plan.options == plans[0].options
                && !needs_helper(&w.targets)
        })
    })
}

/// Every plan's targets written from one read of their one image; each plan's result from its
/// targets' reports. A plan whose drives are refused when opened (one in use, one that changed)
/// is refused alone, as a flash of its own would be; the others are written.
fn run_shared(
    plans: Vec<Plan>,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Vec<Result<Flashed>> {
    let options = plans[0].options.clone();
    let parts: Vec<(PreparedWrite, Vec<String>, ImageKind)> = plans
        .into_iter()
        .map(|plan| match plan.source {
            Planned::Prepared(p) => (
                *p,
                plan.warnings,
                plan.image_kind.unwrap_or(ImageKind::Unknown),
            ),
            Planned::Stream(_) => unreachable!("checked by shares_one_read"),
        })
        .collect();
    let roots = SystemRoots::default();
    let mut opened: Vec<Result<Vec<device::Target>>> = parts
        .iter()
        .map(|(p, _, _)| open_targets(&p.writing.targets, &roots))
        .collect();
    let onto: Vec<writer::Onto<'_>> = parts
        .iter()
        .zip(opened.iter_mut())
        .filter_map(|((p, _, _), opened)| {
            Some(p.writing.onto(std::mem::take(opened.as_mut().ok()?)))
        })
        .flatten()
        .collect();
    let image = &parts[0].0.writing.image;
    let mut reports = match onto.is_empty() {
        true => Vec::new(),
        false => match std::fs::File::open(&image.path) {
            Ok(mut file) => writer::flash(image, &mut file, onto, &options, cancel, progress),
            Err(e) => {
                let e = Error::io(&image.path, e);
                for o in &onto {
                    o.target.remove_created();
                }
                onto.iter()
                    .map(|o| TargetReport::failed(&o.target.path, &e))
                    .collect()
            }
        },
    }
    .into_iter();
    parts
        .into_iter()
        .zip(opened)
        .map(|((p, warnings, image_kind), opened)| {
            opened?;
            let targets: Vec<TargetReport> =
                reports.by_ref().take(p.writing.targets.len()).collect();
            Ok(p.flashed(targets, warnings, image_kind))
        })
        .collect()
}

fn run_one(
    plan: Plan,
    http: &Http,
    cache: &Cache,
    rt: &tokio::runtime::Handle,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Flashed> {
    let roots = SystemRoots::default();
    let options = plan.options;
    match plan.source {
        Planned::Stream(opened) => {
            let streamed = stream::run(
                *opened,
                &plan.targets,
                &roots,
                http,
                cache,
                rt,
                &options,
                cancel,
                progress,
            )?;
            let mut warnings = plan.warnings;
            // A download's kind is known only now: its warning goes with the result.
            if plan.image_kind.is_none() {
                warnings.extend(streamed.image_kind.warning());
            }
            Ok(Flashed {
                image_sha256: streamed.image_sha256,
                image_size: streamed.image_size,
                image_kind: streamed.image_kind,
                image_inside: streamed.image_inside,
                config_sha256: None,
                cidata_offset: None,
                stick_sha256: None,
                archive_sha256: streamed.archive_sha256,
                digest_source: streamed.digest_source,
                targets: streamed.targets,
                warnings,
                config_stick: None,
            })
        }
        Planned::Prepared(p) => {
            let guarded: Vec<&Path> = p.protected.iter().map(PathBuf::as_path).collect();
            let privilege = Privilege {
                protected: &guarded,
                options: &p.writing.options,
            };
            let targets = execute(&p.writing, &options, &roots, &privilege, cancel, progress)?;
            let image_kind = plan.image_kind.unwrap_or(ImageKind::Unknown);
            Ok(p.flashed(targets, plan.warnings, image_kind))
        }
    }
}

impl PreparedWrite {
    /// What writing it did, from its targets' reports.
    fn flashed(
        self,
        targets: Vec<TargetReport>,
        warnings: Vec<String>,
        image_kind: ImageKind,
    ) -> Flashed {
        let prepared = self.prepared;
        let layout = self.writing.layouts.first().and_then(Option::as_ref);
        Flashed {
            image_sha256: prepared.image.sha256,
            image_size: prepared.image.size,
            image_kind,
            image_inside: prepared.image_inside,
            config_sha256: layout.map(|l| l.config_sha256()),
            cidata_offset: layout.map(|l| l.cidata_offset()),
            stick_sha256: layout.and(targets.first().and_then(|t| t.given_sha256)),
            archive_sha256: prepared.archive_sha256,
            digest_source: prepared.digest_source,
            targets,
            warnings,
            config_stick: None,
        }
    }
}

/// A prepared image and the approved targets it goes onto.
pub struct Writing {
    /// What is read once and written to every target: the image, or for one stick the boot
    /// image its layout lies over.
    pub image: Image,
    pub targets: Vec<Approved>,
    /// What each target gets of its own (one stick for both: a cidata partition), by target.
    pub layouts: Vec<Option<Layout>>,
    options: TargetOptions,
}

impl Writing {
    /// The targets, each with what it gets of its own.
    fn onto<'a>(&'a self, opened: Vec<device::Target>) -> Vec<writer::Onto<'a>> {
        opened
            .into_iter()
            .zip(&self.layouts)
            .zip(&self.targets)
            .map(|((target, layout), approved)| writer::Onto {
                target,
                overlay: layout.as_ref().map(|l| l as &dyn writer::Overlay),
                cancel: approved.cancel.clone(),
            })
            .collect()
    }

    /// The same writing as one stream for every target (what the privileged helper takes), and
    /// that stream: a one-stick layout laid out whole, its digest taken first (one pass).
    fn whole(&self, cancel: &CancellationToken) -> Result<(Writing, Box<dyn Read + Send + '_>)> {
        let (image, source): (Image, Box<dyn Read + Send + '_>) = match self.layouts.as_slice() {
            [Some(layout)] => (layout.image(cancel)?, Box::new(layout.reader()?)),
            layouts if layouts.iter().all(Option::is_none) => (
                self.image.clone(),
                Box::new(
                    std::fs::File::open(&self.image.path)
                        .map_err(|e| Error::io(&self.image.path, e))?,
                ),
            ),
            _ => {
                return Err(Error::BadInput(
                    "sticks that each get a config of their own cannot be written through the privileged helper in one run".into(),
                ))
            }
        };
        let whole = Writing {
            image,
            targets: self.targets.clone(),
            layouts: vec![None; self.targets.len()],
            options: self.options.clone(),
        };
        Ok((whole, source))
    }
}

/// Checks every target; any refusal refuses the whole flash, before a byte is written.
/// `protected`: files that must survive (the source, the cache folder). With `config`, one stick
/// for both: exactly one target, carrying the image and a cidata partition holding `config`.
pub fn plan_writing(
    image: Image,
    targets: &[Chosen],
    config: Option<&Path>,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
    cancel: &CancellationToken,
) -> Result<Writing> {
    if targets.is_empty() {
        return Err(Error::BadInput("no target given".into()));
    }
    if let Some(config) = config {
        let [target] = targets else {
            return Err(Error::BadInput(
                "one stick for both takes exactly one target".into(),
            ));
        };
        return plan_one_stick(image, config, target, options, protected, roots, cancel);
    }
    let targets = approve_all(targets, Some(image.size), options, protected, roots)?;
    Ok(Writing {
        layouts: vec![None; targets.len()],
        targets,
        image,
        options: options.clone(),
    })
}

/// Checks every target for an image of `size` bytes (unknown for a stream); any refusal refuses
/// them all.
pub fn approve_all(
    targets: &[Chosen],
    size: Option<u64>,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
) -> Result<Vec<Approved>> {
    if targets.is_empty() {
        return Err(Error::BadInput("no target given".into()));
    }
    let mut approved: Vec<Approved> = Vec::new();
    for chosen in targets {
        let a = rules::approve(chosen, size, protected, options, roots)?;
        // Two names of one file or drive are one target; two new files differ by name alone.
        let same = |b: &Approved| {
            b.path == a.path || (a.identity != Identity::NewFile && b.identity == a.identity)
        };
        if approved.iter().any(same) {
            return Err(Error::Refused {
                target: chosen.path.display().to_string(),
                reason: "it is named twice".into(),
            });
        }
        approved.push(a);
    }
    Ok(approved)
}

/// `plan_writing` for one stick carrying the boot image and a cidata partition holding `config`.
fn plan_one_stick(
    boot: Image,
    config: &Path,
    target: &Chosen,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
    cancel: &CancellationToken,
) -> Result<Writing> {
    let mut protected = protected.to_vec();
    protected.push(config);
    let approved = rules::approve(target, Some(boot.size), &protected, options, roots)?;
    let (size, sector) = match &approved.drive {
        Some(d) => (d.size, u64::from(d.logical_block_size)),
        // A VM disk file: as large as it is, or just large enough.
        None => {
            let cidata_len = std::fs::metadata(config).map(|m| m.len()).unwrap_or(0);
            let needed = (boot.size + cidata_len + (4 << 20)).div_ceil(1 << 20) << 20;
            let existing = std::fs::metadata(&target.path)
                .map(|m| m.len())
                .unwrap_or(0);
            (existing.max(needed), 512)
        }
    };
    let layout = one_stick::layout(&boot, config, size, sector, cancel)?;
    Ok(Writing {
        image: boot,
        targets: vec![approved],
        layouts: vec![Some(layout)],
        options: options.clone(),
    })
}

/// What the privileged helper needs, when neither direct access nor UDisks2 is possible.
pub struct Privilege<'a> {
    /// The files the helper must protect too (the source, the cache folder).
    pub protected: &'a [&'a Path],
    pub options: &'a TargetOptions,
}

/// Unmounts and opens every target (a busy one refuses the flash, nothing written yet), then
/// writes them all from one read of the image. Blocking. When this user can reach the targets
/// neither directly nor through UDisks2, the whole flash goes to the privileged helper.
pub fn execute(
    plan: &Writing,
    options: &FlashOptions,
    roots: &SystemRoots,
    privilege: &Privilege,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    if needs_helper(&plan.targets) {
        // The helper takes one stream for every drive: none can be dropped alone.
        for target in &plan.targets {
            target.cancel.through_helper()?;
        }
        let (whole, mut source) = plan.whole(cancel)?;
        let mut reports =
            helper::run_privileged(&whole, &mut *source, privilege, options, cancel, progress)?;
        // The helper was given one stream: a one-stick stick's is that stream.
        if plan.layouts.iter().any(Option::is_some) {
            for report in &mut reports {
                report.given_sha256 = Some(whole.image.sha256);
            }
        }
        return Ok(reports);
    }
    let mut source =
        std::fs::File::open(&plan.image.path).map_err(|e| Error::io(&plan.image.path, e))?;
    execute_from(plan, &mut source, options, roots, cancel, progress)
}

/// `execute` with the image read from `source`.
pub fn execute_from(
    plan: &Writing,
    source: &mut (dyn Read + Send),
    options: &FlashOptions,
    roots: &SystemRoots,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    let opened = open_targets(&plan.targets, roots)?;
    Ok(writer::flash(
        &plan.image,
        source,
        plan.onto(opened),
        options,
        cancel,
        progress,
    ))
}

/// Unmounts and opens every target exclusively; a target another process uses refuses the flash
/// before anything is unmounted, and a busy one before any byte.
pub fn open_targets(targets: &[Approved], roots: &SystemRoots) -> Result<Vec<device::Target>> {
    for approved in targets {
        rules::check_unused(approved, roots)?;
    }
    let mut opened: Vec<device::Target> = Vec::new();
    for approved in targets {
        let next = rules::unmount(approved, roots)
            .and_then(|()| device::open_for_write(&approved.path, &approved.identity));
        match next {
            Ok(target) => opened.push(target),
            Err(e) => {
                // A refusal leaves nothing behind: not the image files this flash created.
                for t in &opened {
                    t.remove_created();
                }
                return Err(e);
            }
        }
    }
    Ok(opened)
}

/// A drive this user may not write, with nobody (UDisks2) to ask: only the privileged helper can
/// write it.
pub fn needs_helper(targets: &[Approved]) -> bool {
    let denied = targets.iter().any(|t| {
        t.kind == crate::io::device::TargetKind::BlockDevice && !device::writable_by_me(&t.path)
    });
    denied && !crate::io::udisks::available()
}
