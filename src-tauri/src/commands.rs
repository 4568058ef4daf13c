//! The window's commands: each validates its arguments, calls labflash-core, and translates the
//! result. No flashing logic lives here; progress goes out through a Channel, cancellation comes in
//! through `cancel` (a whole job) and `cancel_target` (one drive of a flash), and long work runs
//! off the main thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use labflash_core::fetch::cache::Cache;
use labflash_core::fetch::credentials::Secret;
use labflash_core::fetch::digest::{self, Sha256Digest};
use labflash_core::fetch::factory_signature::FactoryTrust;
use labflash_core::fetch::http::{Http, HttpPolicy};
use labflash_core::fetch::{DigestSource, DEFAULT_MAX_IMAGE_SIZE};
use labflash_core::flash::probe::{self, Probed};
use labflash_core::flash::record::Record;
use labflash_core::flash::rules::{self, Approved, Chosen, TargetOptions, Unsuitable};
use labflash_core::flash::writer::TargetReport;
use labflash_core::flash::{self, lab};
use labflash_core::io::drives::{self, Drive, DriveEvent, SystemRoots};
use labflash_core::io::eject::Ejected;
use labflash_core::io::identity::{DriveIdentity, Identity};
use labflash_core::progress::{Progress, ProgressSink};
use labflash_core::sources::cidata::{self, Cidata, CidataRequest};
use labflash_core::sources::incus::IncusRequest;
use labflash_core::sources::talos_build::{self, BuildRequest};
use labflash_core::sources::talos_factory::{
    AssetRequest, Customization, Extension, Factory, Overlay, Version,
};
use labflash_core::sources::{self, lab_file, talos_boot_stick, Prepared, Source, SourceRequest};
use labflash_core::verify::{self, Expected, Verification};
use labflash_core::{CancellationToken, Error, ErrorKind};
use tauri::ipc::Channel;
use tauri::State;

use crate::jobs::Jobs;
use crate::settings::Settings;

pub struct App {
    pub jobs: Jobs,
    /// Flashes planned and shown, waiting for the operator's answer, by job id.
    /// Each with the client its source is fetched through (an Enterprise factory's credentials).
    plans: std::sync::Mutex<std::collections::HashMap<u32, (flash::Plan, Arc<Http>)>>,
    /// Images checked in this window, by the `prepare` job that checked them: a flash names
    /// one by its job, and the engine writes what it proved, nothing the window says of it.
    prepared: std::sync::Mutex<std::collections::HashMap<u32, Prepared>>,
    /// Lab files loaded in this window, by the job that loaded them, and labs planned and shown.
    labs: std::sync::Mutex<std::collections::HashMap<u32, LoadedLab>>,
    lab_plans: std::sync::Mutex<std::collections::HashMap<u32, lab::LabPlan>>,
    /// Which loaded lab each lab plan is of (its record goes beside that lab's file).
    lab_of_plan: std::sync::Mutex<std::collections::HashMap<u32, u32>>,
    /// Every drive shown to this window (path and identity, from `list_drives` and
    /// `watch_drives`): the only targets it may name, so it cannot write a file or a drive it was
    /// never shown. One listed once stays nameable: the engine re-checks its identity at open.
    listed: std::sync::Mutex<Vec<(String, DriveIdentity)>>,
    /// Drives this window flashed and may eject, by path, with the identity they were flashed
    /// with: the window cannot power off any other drive, nor one that changed since.
    flashed: std::sync::Mutex<std::collections::HashMap<String, DriveIdentity>>,
    pub cache_dir: PathBuf,
    settings: Settings,
    /// Rebuilt when the trusted CA changes; jobs keep the client they started with.
    http: RwLock<Arc<Http>>,
}

impl App {
    /// Removes the loaded labs' config images: Tauri ends the process without dropping its
    /// state, so the app calls this on its way out.
    pub fn forget_labs(&self) {
        self.labs.lock().expect("labs lock").clear();
    }

    pub fn new(settings: Settings) -> Result<Self, Error> {
        Self::with_cache(Cache::resolve_dir(None)?, settings)
    }

    pub fn with_cache(cache_dir: PathBuf, settings: Settings) -> Result<Self, Error> {
        // A CA file that has gone since it was chosen must not keep the app from starting:
        // downloads then trust the system's store only, and Settings shows the file's error.
        let http = Http::new(http_policy(settings.ca_cert()))
            .or_else(|_| Http::new(HttpPolicy::default()))?;
        Ok(Self {
            jobs: Jobs::default(),
            plans: Default::default(),
            prepared: Default::default(),
            labs: Default::default(),
            lab_plans: Default::default(),
            lab_of_plan: Default::default(),
            listed: Default::default(),
            flashed: Default::default(),
            cache_dir,
            settings,
            http: RwLock::new(Arc::new(http)),
        })
    }

    /// Remembers drives shown to the window, as targets it may name.
    fn shown<'d>(&self, drives: impl IntoIterator<Item = &'d Drive>) {
        let mut listed = self.listed.lock().expect("listed lock");
        for d in drives {
            let drive = (d.path.clone(), d.identity.clone());
            if !listed.contains(&drive) {
                listed.push(drive);
            }
        }
    }

    /// Refuses, before anything is written, a target that is not a drive shown to this window
    /// under that path with that identity (a file, or a drive it never listed).
    fn check_shown(&self, targets: &[Chosen]) -> Reply<()> {
        let listed = self.listed.lock().expect("listed lock");
        for t in targets {
            let refuse = |reason: &str| -> CommandError {
                Error::Refused {
                    target: t.path.display().to_string(),
                    reason: reason.into(),
                }
                .into()
            };
            let Some(identity) = &t.identity else {
                return Err(refuse(
                    "the window sent it without the identity it was listed with",
                ));
            };
            if !listed
                .iter()
                // The very spelling listed: `Path` equality would take `/dev//sdb` and `/dev/sdb/`,
                // which eject's records (kept by string) would not match.
                .any(|(path, id)| path.as_str() == t.path.as_os_str() && id == identity)
            {
                return Err(refuse(
                    "it is not a drive this window listed; choose one from the list",
                ));
            }
        }
        Ok(())
    }

    /// Remembers the drives a flash wrote (its config stick's too), with the identity they were
    /// written with, so the window may eject them.
    fn may_eject(&self, written: &flash::Flashed, targets: &[Approved]) {
        self.remember(&written.targets, targets);
        if let Some(config) = &written.config_stick {
            self.remember(&config.targets, targets);
        }
    }

    fn remember(&self, reports: &[TargetReport], targets: &[Approved]) {
        let mut flashed = self.flashed.lock().expect("flashed lock");
        for r in reports.iter().filter(|r| r.ok) {
            let approved = targets.iter().find(|t| t.path == Path::new(&r.path));
            if let Some(Identity::Drive(identity)) = approved.map(|t| &t.identity) {
                flashed.insert(r.path.clone(), identity.clone());
            }
        }
    }

    /// A flash starting on drives: they are not to be ejected by an earlier flash's end.
    fn writing(&self, targets: &[Chosen]) {
        let mut flashed = self.flashed.lock().expect("flashed lock");
        for t in targets {
            flashed.remove(&*t.path.to_string_lossy());
        }
    }

    /// The image the `prepare` job `job` checked in this window.
    fn checked(&self, job: u32) -> Reply<Prepared> {
        let prepared = self
            .prepared
            .lock()
            .expect("prepared lock")
            .get(&job)
            .cloned();
        prepared.ok_or_else(|| bad("this image was not checked in this window: check it again"))
    }

    fn cache(&self) -> Result<Cache, Error> {
        Cache::open(self.cache_dir.clone())
    }

    fn http(&self) -> Arc<Http> {
        self.http.read().expect("not poisoned").clone()
    }
}

fn http_policy(ca_cert: Option<PathBuf>) -> HttpPolicy {
    HttpPolicy {
        ca_certs: ca_cert.into_iter().collect(),
        ..HttpPolicy::default()
    }
}

/// A failure as the UI shows it: one sentence, and its kind for the wording around it.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandError {
    message: String,
    kind: ErrorKind,
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        Self {
            message: e.to_string(),
            kind: e.kind(),
        }
    }
}

type Reply<T> = Result<T, CommandError>;

fn bad(message: impl Into<String>) -> CommandError {
    Error::BadInput(message.into()).into()
}

fn digest_arg(text: &Option<String>) -> Reply<Option<Sha256Digest>> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => Ok(Some(digest::parse_typed(t)?)),
    }
}

fn absolute(path: &str, what: &str) -> Reply<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(bad(format!("the {what} {path:?} is not an absolute path")))
    }
}

/// Forwards progress to the window's channel; a closed window just stops listening.
fn sink(channel: Channel<Progress>) -> Arc<dyn ProgressSink> {
    Arc::new(move |p: Progress| {
        let _ = channel.send(p);
    })
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    version: &'static str,
    cache_dir: PathBuf,
    /// The extra CA certificate file trusted beside the system's store, if one was chosen.
    ca_cert: Option<PathBuf>,
    /// Where every flash's record is written, if Settings keep records.
    records_dir: Option<PathBuf>,
    /// The root IncusOS indexes are checked against instead of IncusOS's own, if one was chosen.
    incus_root: Option<PathBuf>,
}

#[tauri::command]
pub fn app_info(app: State<'_, App>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        cache_dir: app.cache_dir.clone(),
        ca_cert: app.settings.ca_cert(),
        records_dir: app.settings.records_dir(),
        incus_root: app.settings.incus_root(),
    }
}

/// Checks IncusOS indexes against the root certificate in a PEM file (a private mirror's), or
/// against IncusOS's own again (`None`). A file that is not a certificate is refused and the
/// setting stays as it was.
#[tauri::command]
pub fn set_incus_root(app: State<'_, App>, path: Option<String>) -> Reply<()> {
    let path = path.map(|p| absolute(&p, "root certificate")).transpose()?;
    if let Some(path) = &path {
        let pem =
            std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        labflash_core::sources::incus_signed::root_subject(&pem)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    }
    app.settings.set_incus_root(path)?;
    Ok(())
}

/// Trusts the CA certificates of a PEM file beside the system's store (as `--ca-cert` does), or
/// stops trusting the one chosen before (`None`). A file that holds no certificate is refused
/// and the setting stays as it was.
#[tauri::command]
pub fn set_ca_cert(app: State<'_, App>, path: Option<String>) -> Reply<()> {
    let path = path
        .map(|p| absolute(&p, "CA certificate file"))
        .transpose()?;
    let http = Http::new(http_policy(path.clone()))?;
    app.settings.set_ca_cert(path)?;
    *app.http.write().expect("not poisoned") = Arc::new(http);
    Ok(())
}

#[tauri::command]
pub fn cancel(app: State<'_, App>, job: u32) -> bool {
    app.jobs.cancel(job)
}

/// Stops one drive of the running flash or lab `job` (its path as progress reports name it)
/// while the others go on: its first MiB stays wiped and its result says `cancelled`. False when
/// no such job runs or it writes no such drive; refused for drives the privileged helper writes.
#[tauri::command]
pub fn cancel_target(app: State<'_, App>, job: u32, path: String) -> Reply<bool> {
    Ok(app.jobs.cancel_target(job, Path::new(&path))?)
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveRow {
    #[serde(flatten)]
    drive: Drive,
    /// Why this drive cannot take the image (listed disabled), if it cannot.
    unsuitable: Option<Unsuitable>,
    fixed: bool,
}

/// The drives to offer: removable ones, or every drive when `show_all` (fixed disks and loop
/// devices, marked). A drive holding `source` (the chosen image file) or the cache is marked too.
#[tauri::command]
pub fn list_drives(
    app: State<'_, App>,
    show_all: bool,
    image_size: Option<u64>,
    source: Option<String>,
) -> Reply<Vec<DriveRow>> {
    let roots = SystemRoots::default();
    let all = drives::list(&roots)?;
    let source = source.filter(|s| !s.is_empty()).map(PathBuf::from);
    let cache = app.cache_dir.clone();
    let mut protected: Vec<&Path> = vec![&cache];
    protected.extend(source.as_deref());
    let rows: Vec<DriveRow> = all
        .iter()
        .filter(|d| show_all || d.is_removable_media())
        .map(|d| DriveRow {
            unsuitable: rules::unsuitable(d, image_size)
                .or_else(|| rules::holding(d, &protected, &all, &roots)),
            fixed: d.is_fixed(),
            drive: d.clone(),
        })
        .collect();
    app.shown(rows.iter().map(|r| &r.drive));
    Ok(rows)
}

/// Streams drive added/removed/changed events until the job is cancelled.
#[tauri::command]
pub async fn watch_drives(
    app: State<'_, App>,
    job: u32,
    on_event: Channel<DriveEvent>,
) -> Reply<()> {
    let guard = app.jobs.start(job);
    let (tx, mut rx) = tokio::sync::mpsc::channel(32);
    let watcher = tokio::spawn(drives::watch(
        SystemRoots::default(),
        std::time::Duration::from_secs(1),
        guard.token.clone(),
        tx,
    ));
    while let Some(event) = rx.recv().await {
        if let DriveEvent::Added { drive } | DriveEvent::Changed { drive } = &event {
            app.shown([&**drive]);
        }
        if on_event.send(event).is_err() {
            guard.token.cancel();
        }
    }
    let _ = watcher.await;
    Ok(())
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SourceSpec {
    Url {
        url: String,
        sha256: Option<String>,
        allow_unverified: bool,
    },
    File {
        path: String,
        sha256: Option<String>,
    },
    Talos {
        factory_url: String,
        /// An Enterprise factory's download token (sent as `?token=`, never shown).
        #[cfg_attr(test, ts(as = "Option<String>"))]
        factory_token: Option<Secret>,
        version: String,
        extensions: Vec<String>,
        kernel_args: Vec<String>,
        /// A board overlay by its official name (single-board computers).
        overlay: Option<String>,
        schematic: Option<String>,
        platform: String,
        arch: String,
        secureboot: bool,
        format: String,
        sha256: Option<String>,
        allow_unverified: bool,
    },
    Incus {
        index_url: String,
        base_url: String,
        channel: String,
        arch: String,
        /// A folder of install seed files.
        seed: Option<String>,
    },
    /// A labctl ImageBuild config: the boot image and its cidata config image.
    TalosBuild { config: String },
}

/// Download (or open), verify and decompress the chosen image.
#[tauri::command]
pub async fn prepare(
    app: State<'_, App>,
    job: u32,
    source: SourceSpec,
    max_image_size: Option<u64>,
    on_progress: Channel<Progress>,
) -> Reply<Prepared> {
    let guard = app.jobs.start(job);
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let cache = app.cache()?;
    let source = source_of(
        source,
        image_limit(max_image_size)?,
        app.settings.incus_root(),
    )?;
    let prepared =
        sources::prepare_source(&source, &app.http(), &cache, &cancel, &progress).await?;
    app.prepared
        .lock()
        .expect("prepared lock")
        .insert(job, prepared.clone());
    Ok(prepared)
}

/// The largest image the window allows (the default when it names none).
fn image_limit(max_image_size: Option<u64>) -> Reply<u64> {
    match max_image_size {
        Some(0) => Err(bad("the largest image size must be more than 0 bytes")),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_MAX_IMAGE_SIZE),
    }
}

/// The window's choice as the engine names it, every argument checked.
fn source_of(spec: SourceSpec, max_image_size: u64, incus_root: Option<PathBuf>) -> Reply<Source> {
    let image = |source: String, sha256: Option<Sha256Digest>, allow_unverified: bool| {
        Source::Image(SourceRequest {
            source,
            sha256,
            sha256_source: DigestSource::Flag,
            signed_by: None,
            factory: None,
            allow_unverified,
            max_image_size,
        })
    };
    Ok(match spec {
        SourceSpec::Url {
            url,
            sha256,
            allow_unverified,
        } => {
            if !labflash_core::fetch::is_url(&url) {
                return Err(bad(format!("{url:?} is not an http(s) URL")));
            }
            image(url, digest_arg(&sha256)?, allow_unverified)
        }
        SourceSpec::File { path, sha256 } => {
            let path = absolute(&path, "image file")?;
            image(path.display().to_string(), digest_arg(&sha256)?, false)
        }
        SourceSpec::Talos {
            factory_url,
            factory_token,
            version,
            extensions,
            kernel_args,
            overlay,
            schematic,
            platform,
            arch,
            secureboot,
            format,
            sha256,
            allow_unverified,
        } => Source::TalosFactory(AssetRequest {
            factory_url,
            factory_token: factory_token.filter(|t| !t.expose().trim().is_empty()),
            factory_key: None,
            version,
            schematic: schematic.filter(|s| !s.trim().is_empty()),
            customization: Customization {
                extensions,
                kernel_args,
                overlay: overlay.filter(|o| !o.trim().is_empty()),
            },
            platform,
            arch,
            secureboot,
            format,
            sha256: digest_arg(&sha256)?,
            allow_unverified,
            max_image_size,
        }),
        SourceSpec::Incus {
            index_url,
            base_url,
            channel,
            arch,
            seed,
        } => Source::Incus(IncusRequest {
            index_url,
            base_url,
            channel,
            arch,
            version: None,
            max_image_size,
            seed: seed
                .filter(|s| !s.trim().is_empty())
                .map(|s| absolute(&s, "seed folder"))
                .transpose()?,
            // The signed index, against IncusOS's root or the one Settings name.
            trust_root: incus_root,
            unsigned: false,
        }),
        SourceSpec::TalosBuild { config } => {
            let path = absolute(&config, "ImageBuild config")?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("cannot read the config {}: {e}", path.display())))?;
            Source::TalosBuild(Box::new(BuildRequest {
                build: talos_build::parse(&text)?,
                base_dir: path.parent().unwrap_or(Path::new("/")).to_path_buf(),
                allow_unverified: false,
                max_image_size,
                factory_token: None,
                factory_key: None,
            }))
        }
    })
}

/// What a flash writes: straight from a source (the engine settles the digest that vouches for
/// it), or the image a `prepare` job checked (the engine keeps what it proved: nothing about it
/// is taken from the window).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ImageSpec {
    #[serde(rename_all = "camelCase")]
    Source {
        source: Box<SourceSpec>,
        max_image_size: Option<u64>,
    },
    Prepared {
        job: u32,
    },
}

/// A cidata image and the SHA-256 the operator confirmed for it (the flash is refused if the
/// file is not that image any more).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSpec {
    path: String,
    sha256: String,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlashSpec {
    image: ImageSpec,
    /// Drives as the list gave them: path and identity (a drive that changed is refused).
    targets: Vec<Chosen>,
    unmount: bool,
    allow_fixed: bool,
    verify: bool,
    /// A config image: a partition after the image's own on the one target, or, with
    /// `config_to`, written whole onto that drive of its own.
    config: Option<ConfigSpec>,
    config_to: Option<Chosen>,
}

/// What the chosen source is, learnt when it is chosen (`flash::probe`), and whether it streams.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeView {
    #[serde(flatten)]
    probed: Probed,
    /// Whether it is flashed straight from where it is (`Source::streams`, the engine's rule), or
    /// must be checked first (`prepare`).
    streams: bool,
}

/// Learns what the chosen source is without downloading or writing it: where it is, that its
/// server has it, the digest that vouches for it, its sizes and what a plan would warn about. A
/// source a flash would refuse is refused now, in the flash's words. `on_progress` keeps the
/// shape of the window's other source commands: nothing in a probe is long enough to report.
#[tauri::command]
pub async fn probe_source(
    app: State<'_, App>,
    job: u32,
    source: SourceSpec,
    max_image_size: Option<u64>,
    _on_progress: Channel<Progress>,
) -> Reply<ProbeView> {
    let guard = app.jobs.start(job);
    let source = source_of(
        source,
        image_limit(max_image_size)?,
        app.settings.incus_root(),
    )?;
    let probed = probe::probe(&source, &app.http(), &app.cache()?, &guard.token).await?;
    Ok(ProbeView {
        streams: source.streams(),
        probed,
    })
}

/// What a planned flash will write, for the confirmation: the engine's own lines (the source,
/// the digest that vouches for it and where from, the image's size or why it is not known yet,
/// the config stick) and its warnings.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    /// The plan in the few facts a confirmation says in plain words.
    summary: flash::Summary,
    /// Every detail, in the engine's lines.
    lines: Vec<String>,
    warnings: Vec<String>,
    /// What the image is (`gpt`, `iso9660-hybrid`, `unknown`, …), when known before writing; a
    /// download's is known from its first decoded bytes, and is in the result (`Flashed`).
    image_kind: Option<labflash_core::image_kind::ImageKind>,
}

/// Plans a flash, as the command line's `flash` does: the digest is settled and every drive
/// (the config stick's too) checked now, nothing written; the plan waits under the job's id for
/// `run_flash` or `drop_plan`. A labctl build or an IncusOS seed streams from nowhere: it is
/// `prepare`d first and flashed from that job.
#[tauri::command]
pub async fn plan_flash(
    app: State<'_, App>,
    job: u32,
    spec: FlashSpec,
    on_progress: Channel<Progress>,
) -> Reply<PlanView> {
    let guard = app.jobs.start(job);
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let checked = match spec.image {
        ImageSpec::Prepared { job } => Some(app.checked(job)?),
        ImageSpec::Source { .. } => None,
    };
    let every: Vec<Chosen> = spec
        .targets
        .iter()
        .chain(&spec.config_to)
        .cloned()
        .collect();
    app.check_shown(&every)?;
    app.writing(&every);
    let cache = app.cache()?;
    // The image: located where it is (what vouches for it settled), or the one a check proved.
    let (image, prepared, http) = match spec.image {
        ImageSpec::Source {
            source,
            max_image_size,
        } => {
            let source = source_of(
                *source,
                image_limit(max_image_size)?,
                app.settings.incus_root(),
            )?;
            let (image, http) = located(&source, app.http(), &cancel).await?;
            (image, None, http)
        }
        ImageSpec::Prepared { .. } => {
            let prepared = checked.expect("looked up above");
            let image = SourceRequest {
                source: prepared.origin.clone(),
                sha256: None,
                sha256_source: DigestSource::Flag,
                signed_by: None,
                factory: None,
                allow_unverified: false,
                max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            };
            (image, Some(Box::new(prepared)), app.http())
        }
    };
    let mut request = flash::Request {
        image,
        targets: spec.targets,
        config: None,
        config_to: spec.config_to,
        options: TargetOptions {
            unmount: spec.unmount,
            allow_fixed: spec.allow_fixed,
            ..TargetOptions::default()
        },
        verify: spec.verify,
        skip_equal: true,
        prepared,
    };
    let confirmed = match spec.config {
        Some(config) => {
            request.config = Some(absolute(&config.path, "config image")?);
            Some(digest::parse_typed(&config.sha256)?)
        }
        None => None,
    };
    let plan = flash::plan(&request, &http, &cache, &cancel, &progress).await?;
    if let Some(confirmed) = confirmed {
        check_config_digest(&plan, confirmed)?;
    }
    let view = PlanView {
        summary: plan.summary(),
        lines: plan.describe(),
        warnings: plan.warnings.clone(),
        image_kind: plan.image_kind,
    };
    app.plans
        .lock()
        .expect("plans lock")
        .insert(job, (plan, http));
    Ok(view)
}

/// What the engine settles for a source flashed straight from where it is: where it is, the
/// digest that vouches for it, and the client that reaches it (an Image Factory's carries its
/// credentials).
async fn located(
    source: &Source,
    http: Arc<Http>,
    cancel: &CancellationToken,
) -> Reply<(SourceRequest, Arc<Http>)> {
    let found = sources::locate(source, &http, cancel)
        .await?
        .ok_or_else(|| bad("this image is checked before it is written: prepare it first"))?;
    Ok((found.image, found.http.map_or(http, Arc::new)))
}

/// A plan that writes a config states its digest, which must be the one the operator confirmed:
/// one that does not state it is not compared, so it is not written.
fn check_config_digest(plan: &flash::Plan, confirmed: Sha256Digest) -> Reply<()> {
    let planned = plan
        .config_sha256()
        .ok_or_else(|| bad("the plan does not say which config image it writes"))?;
    if confirmed != planned {
        return Err(Error::DigestMismatch {
            what: "config image",
            expected: confirmed.hex(),
            actual: planned.hex(),
        }
        .into());
    }
    Ok(())
}

/// What a flash did, and where its record was written when Settings keep records (or why not).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlashRun {
    flashed: flash::Flashed,
    record: Option<PathBuf>,
    record_error: Option<String>,
}

/// Runs the flash planned under `plan` (see `plan_flash`), with `job` for its progress and
/// cancel; with a records folder in Settings, the run's record is written there.
#[tauri::command]
pub async fn run_flash(
    app: State<'_, App>,
    job: u32,
    plan: u32,
    on_progress: Channel<Progress>,
) -> Reply<FlashRun> {
    let planned = app.plans.lock().expect("plans lock").remove(&plan);
    let (planned, http) =
        planned.ok_or_else(|| bad("this flash was not planned, or was already run"))?;
    let guard = app.jobs.start_flash(job, planned.target_cancels());
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let cache = app.cache()?;
    let rt = tokio::runtime::Handle::current();
    let targets = planned.all_targets();
    let source = planned.source().to_string();
    let mut record = Record::start();
    let flashed = tokio::task::spawn_blocking(move || {
        flash::run(planned, &http, &cache, &rt, &cancel, progress.as_ref())
    })
    .await
    .map_err(|e| bad(format!("the writer stopped: {e}")))??;
    app.may_eject(&flashed, &targets);
    let (record, record_error) = match app.settings.records_dir() {
        None => (None, None),
        Some(dir) => {
            record.add(None, &source, &flashed, &targets);
            record.finish();
            written(record, &dir, "labflash")
        }
    };
    Ok(FlashRun {
        flashed,
        record,
        record_error,
    })
}

/// Writes a run's record into `dir` as `<stem>-record-<start time>.json` (one file per run: a
/// later run keeps the earlier record): where it went, or why it did not.
fn written(record: Record, dir: &Path, stem: &str) -> (Option<PathBuf>, Option<String>) {
    let path = dir.join(format!(
        "{stem}-record-{}.json",
        record.started.replace(':', "-")
    ));
    match record.write(&path) {
        Ok(()) => (Some(path), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Keeps every flash's record in `dir` (`None`: keeps none; a lab's goes beside its file).
#[tauri::command]
pub fn set_records_dir(app: State<'_, App>, dir: Option<String>) -> Reply<()> {
    let dir = dir.map(|d| absolute(&d, "records folder")).transpose()?;
    if let Some(dir) = &dir {
        if !dir.is_dir() {
            return Err(bad(format!("{} is not a folder", dir.display())));
        }
    }
    app.settings.set_records_dir(dir)?;
    Ok(())
}

/// Forgets a planned flash the operator did not confirm (releasing its hold on the cache).
#[tauri::command]
pub fn drop_plan(app: State<'_, App>, plan: u32) {
    app.plans.lock().expect("plans lock").remove(&plan);
    app.lab_plans.lock().expect("lab plans lock").remove(&plan);
    app.lab_of_plan
        .lock()
        .expect("lab of plan lock")
        .remove(&plan);
}

/// A lab file the window loaded: its image and its nodes with their built config images, which
/// live in a private temporary folder as long as the lab is held (until another lab is loaded, or
/// the app exits: see [`App::forget_labs`]).
struct LoadedLab {
    /// Where the run's record goes: beside the lab file (or in its folder of configs).
    record_dir: PathBuf,
    record_stem: String,
    source: String,
    sha256: Option<Sha256Digest>,
    allow_unverified: bool,
    /// The Image Factory whose signed asset the image is (a lab of ImageBuild configs).
    factory: Option<FactoryTrust>,
    nodes: Vec<(String, Cidata)>,
    _configs: tempfile::TempDir,
}

/// A lab as the window shows it: its image and a row per node.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabView {
    source: String,
    nodes: Vec<LabNodeView>,
    /// Why each node's config must go on a stick of its own (the image's release does not read
    /// cidata on its boot stick), if it must: each row then takes a second drive.
    config_own_stick: Option<String>,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabNodeView {
    hostname: String,
    /// Its config image, built from its machine config, hostname and network config.
    config: Cidata,
}

/// Reads a lab file (or a folder of labctl ImageBuild configs) and builds every node's config
/// image (each checked as Talos reads it); the lab is held under `job` for `plan_lab`. Its drives
/// are chosen in the window, one per node.
#[tauri::command]
pub fn load_lab(app: State<'_, App>, job: u32, path: String) -> Reply<LabView> {
    let path = absolute(&path, "lab file")?;
    // A folder is a folder of labctl ImageBuild configs, one node each.
    let (file, base) = if path.is_dir() {
        (lab_file::from_folder(&path)?, path.as_path())
    } else {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("cannot read the lab file {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        (lab_file::parse(&text, &path)?, base)
    };
    let dir = tempfile::Builder::new()
        .prefix("labflash-lab-")
        .tempdir()
        .map_err(|e| bad(format!("cannot make a folder for the nodes' configs: {e}")))?;
    let configs = file.configs(base, dir.path())?;
    let nodes: Vec<(String, Cidata)> = file
        .nodes
        .iter()
        .map(|n| n.hostname.clone())
        .zip(configs)
        .collect();
    let source = file.source(base);
    let view = LabView {
        config_own_stick: talos_boot_stick::check_one_stick(&source).err(),
        source,
        nodes: nodes
            .iter()
            .map(|(hostname, config)| LabNodeView {
                hostname: hostname.clone(),
                config: config.clone(),
            })
            .collect(),
    };
    let loaded = LoadedLab {
        record_dir: base.to_path_buf(),
        record_stem: path
            .file_stem()
            .map_or_else(|| "lab".into(), |s| s.to_string_lossy().into_owned()),
        source: view.source.clone(),
        sha256: file.sha256()?,
        allow_unverified: file.allow_unverified,
        factory: file.factory.clone(),
        nodes,
        _configs: dir,
    };
    // The window shows one lab: the one it loaded before goes, with its config images.
    let mut labs = app.labs.lock().expect("labs lock");
    labs.clear();
    labs.insert(job, loaded);
    Ok(view)
}

/// A lab to plan: the loaded lab's job and each node's drive, in the nodes' order, as listed.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabSpec {
    lab: u32,
    drives: Vec<Chosen>,
    /// Two sticks: each node's config stick, in the nodes' order (none: configs as partitions).
    config_drives: Option<Vec<Chosen>>,
    unmount: bool,
    allow_fixed: bool,
    verify: bool,
}

/// Plans a lab as `labflash lab` does: the image prepared once, each node planned with its own
/// config on its own drive, every drive approved; the plan waits under `job` for `run_lab`.
#[tauri::command]
pub async fn plan_lab(
    app: State<'_, App>,
    job: u32,
    spec: LabSpec,
    on_progress: Channel<Progress>,
) -> Reply<PlanView> {
    let guard = app.jobs.start(job);
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let config_drives = spec.config_drives.clone().unwrap_or_default();
    let every: Vec<Chosen> = spec.drives.iter().chain(&config_drives).cloned().collect();
    app.check_shown(&every)?;
    let (base, nodes) = {
        let labs = app.labs.lock().expect("labs lock");
        let lab = labs
            .get(&spec.lab)
            .ok_or_else(|| bad("this lab was not loaded in this window: load it again"))?;
        let short = |what: &str, n: usize| {
            bad(format!(
                "each node needs {what} of its own: {} nodes, {n} drives",
                lab.nodes.len()
            ))
        };
        if spec.drives.len() != lab.nodes.len() {
            return Err(short("a drive", spec.drives.len()));
        }
        if spec.config_drives.is_some() && config_drives.len() != lab.nodes.len() {
            return Err(short("a config stick", config_drives.len()));
        }
        let nodes: Vec<lab::Node> = lab
            .nodes
            .iter()
            .zip(spec.drives.iter().cloned())
            .enumerate()
            .map(|(i, ((hostname, config), to))| lab::Node {
                name: hostname.clone(),
                to,
                config: Some(config.path.clone()),
                config_to: config_drives.get(i).cloned(),
            })
            .collect();
        let base = flash::Request {
            image: SourceRequest {
                source: lab.source.clone(),
                sha256: lab.sha256,
                sha256_source: DigestSource::Flag,
                signed_by: None,
                factory: lab.factory.clone(),
                allow_unverified: lab.allow_unverified,
                max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            },
            targets: Vec::new(),
            config: None,
            config_to: None,
            options: TargetOptions {
                unmount: spec.unmount,
                allow_fixed: spec.allow_fixed,
                ..TargetOptions::default()
            },
            verify: spec.verify,
            skip_equal: true,
            prepared: None,
        };
        (base, nodes)
    };
    app.writing(&every);
    let (http, cache) = (app.http(), app.cache()?);
    let plan = lab::plan(&base, &nodes, &http, &cache, &cancel, &progress).await?;
    app.lab_of_plan
        .lock()
        .expect("lab of plan lock")
        .insert(job, spec.lab);
    let view = PlanView {
        summary: plan.summary().ok_or_else(|| bad("the lab has no nodes"))?,
        lines: plan.describe(),
        warnings: plan.warnings(),
        image_kind: None,
    };
    app.lab_plans
        .lock()
        .expect("lab plans lock")
        .insert(job, plan);
    Ok(view)
}

/// What a lab run did: each node's result, and where its record was written (or why not).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabRun {
    nodes: Vec<lab::NodeFlashed>,
    record: Option<PathBuf>,
    record_error: Option<String>,
}

/// Runs the lab planned under `plan`: every node's drives at the same time; the run's record
/// (every stick with its node, drive, digests and read-back) is written beside the lab file.
#[tauri::command]
pub async fn run_lab(
    app: State<'_, App>,
    job: u32,
    plan: u32,
    on_progress: Channel<Progress>,
) -> Reply<LabRun> {
    let planned = app.lab_plans.lock().expect("lab plans lock").remove(&plan);
    let planned = planned.ok_or_else(|| bad("this lab was not planned, or was already run"))?;
    let lab_job = app
        .lab_of_plan
        .lock()
        .expect("lab of plan lock")
        .remove(&plan);
    let (record_dir, stem, source) = {
        let labs = app.labs.lock().expect("labs lock");
        let lab = lab_job
            .and_then(|j| labs.get(&j))
            .ok_or_else(|| bad("this lab is no longer loaded in this window"))?;
        (
            lab.record_dir.clone(),
            lab.record_stem.clone(),
            lab.source.clone(),
        )
    };
    let guard = app.jobs.start_flash(job, planned.target_cancels());
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let (http, cache) = (app.http(), app.cache()?);
    let rt = tokio::runtime::Handle::current();
    let mut record = Record::start();
    let nodes = tokio::task::spawn_blocking(move || {
        lab::run(planned, &http, &cache, &rt, &cancel, progress.as_ref())
    })
    .await
    .map_err(|e| bad(format!("the writers stopped: {e}")))?;
    for node in &nodes {
        if let Some(flashed) = &node.flashed {
            app.may_eject(flashed, &node.approved);
        }
    }
    record.add_lab(&source, &nodes);
    record.finish();
    let (record, record_error) = written(record, &record_dir, &stem);
    Ok(LabRun {
        nodes,
        record,
        record_error,
    })
}

/// Ejects a drive this window flashed so it can be pulled (powered off, or a loop device
/// detached).
#[tauri::command]
pub async fn eject(app: State<'_, App>, path: String) -> Reply<Ejected> {
    let Some(flashed) = app.flashed.lock().expect("flashed lock").remove(&path) else {
        return Err(bad(format!(
            "{path} was not flashed by this window, so it is not ejected from here"
        )));
    };
    let ejected = tokio::task::spawn_blocking(move || {
        labflash_core::io::eject::eject(Path::new(&path), &flashed)
    })
    .await
    .map_err(|e| bad(format!("ejecting stopped: {e}")))??;
    Ok(ejected)
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ExpectedSpec {
    Digest { sha256: String },
    Image { path: String },
    Sidecar { location: String },
}

/// Does this drive or file hold the expected image? Writes nothing.
#[tauri::command]
pub async fn verify(
    app: State<'_, App>,
    job: u32,
    path: String,
    expected: ExpectedSpec,
    size: Option<u64>,
    on_progress: Channel<Progress>,
) -> Reply<Verification> {
    let guard = app.jobs.start(job);
    let (cancel, progress) = (guard.token.clone(), sink(on_progress));
    let path = absolute(&path, "drive or file")?;
    if !path.exists() {
        return Err(bad(format!("{} does not exist", path.display())));
    }
    let expected = match expected {
        ExpectedSpec::Digest { sha256 } => Expected::Digest(digest::parse_typed(&sha256)?),
        ExpectedSpec::Image { path } => Expected::Image(absolute(&path, "image file")?),
        ExpectedSpec::Sidecar { location } => Expected::Sidecar(location),
    };
    let http = app.http();
    let with = verify::Resolver {
        http: &http,
        cache_dir: Some(app.cache()?.root().to_path_buf()),
        max_image_size: DEFAULT_MAX_IMAGE_SIZE,
    };
    let expectation =
        verify::resolve_expected(&expected, &path, size, &with, &cancel, &progress).await?;
    tokio::task::spawn_blocking(move || {
        verify::verify(&path, &expectation, &cancel, progress.as_ref())
    })
    .await
    .map_err(|e| bad(format!("the reader stopped: {e}")))?
    .map_err(CommandError::from)
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheInfo {
    path: PathBuf,
    bytes: u64,
}

#[tauri::command]
pub async fn cache_info(app: State<'_, App>) -> Reply<CacheInfo> {
    let cache = app.cache()?;
    let bytes = tokio::task::spawn_blocking(move || cache.size())
        .await
        .unwrap_or(0);
    Ok(CacheInfo {
        path: app.cache_dir.clone(),
        bytes,
    })
}

#[tauri::command]
pub async fn clear_cache(app: State<'_, App>) -> Reply<()> {
    Ok(app.cache()?.clear()?)
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CidataSpec {
    user_data: String,
    hostname: String,
    instance_id: Option<String>,
    network_config: Option<String>,
    output: String,
}

/// The cidata config image for a Talos machine config.
#[tauri::command]
pub async fn build_cidata(spec: CidataSpec) -> Reply<Cidata> {
    let request = CidataRequest {
        user_data: absolute(&spec.user_data, "machine config")?,
        hostname: spec.hostname,
        instance_id: spec.instance_id.filter(|i| !i.trim().is_empty()),
        network_config: spec
            .network_config
            .filter(|n| !n.trim().is_empty())
            .map(|n| absolute(&n, "network config"))
            .transpose()?,
        output: absolute(&spec.output, "config image")?,
    };
    tokio::task::spawn_blocking(move || cidata::build(&request))
        .await
        .map_err(|e| bad(format!("the builder stopped: {e}")))?
        .map_err(CommandError::from)
}

#[tauri::command]
pub async fn talos_versions(
    app: State<'_, App>,
    factory_url: String,
    factory_token: Option<Secret>,
) -> Reply<Vec<Version>> {
    let cancel = labflash_core::CancellationToken::new();
    Ok(
        Factory::new(&app.http(), &factory_url, factory_token.as_ref())?
            .versions(&cancel)
            .await?,
    )
}

#[tauri::command]
pub async fn talos_extensions(
    app: State<'_, App>,
    factory_url: String,
    factory_token: Option<Secret>,
    version: String,
) -> Reply<Vec<Extension>> {
    let cancel = labflash_core::CancellationToken::new();
    Ok(
        Factory::new(&app.http(), &factory_url, factory_token.as_ref())?
            .extensions(&version, &cancel)
            .await?,
    )
}

/// The board overlays a version offers (single-board computers), for the Talos dialog.
#[tauri::command]
pub async fn talos_overlays(
    app: State<'_, App>,
    factory_url: String,
    factory_token: Option<Secret>,
    version: String,
) -> Reply<Vec<Overlay>> {
    let cancel = labflash_core::CancellationToken::new();
    Ok(
        Factory::new(&app.http(), &factory_url, factory_token.as_ref())?
            .overlays(&version, &cancel)
            .await?,
    )
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
