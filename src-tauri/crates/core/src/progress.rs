//! Progress reporting: the engine reports through a sink the front end supplies, at most ten
//! times a second per stage, plus each stage's final count.
//!
//! The async steps (fetch, prepare a source, plan a flash) take `&Arc<dyn ProgressSink>`: they
//! hand the sink to blocking tasks of their own, which need a handle that outlives the call. The
//! blocking steps (write, read back, verify, hash) take `&dyn ProgressSink`.

use std::time::{Duration, Instant};

/// The stage a report belongs to.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Downloading the archive (bytes received and kept).
    Download,
    /// Re-hashing a cached archive against the expected digest.
    CheckCache,
    /// Decompressing the archive into the image (bytes of image written; when a local archive
    /// streams to the targets, bytes of the archive decoded).
    Decompress,
    /// Re-hashing a cached image.
    CheckImage,
    /// Hashing a local image before writing it.
    HashImage,
    /// Writing the image to a target (bytes the device has accepted).
    Write,
    /// Reading a target back to prove it holds the image.
    ReadBack,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Download => "downloading",
            Stage::CheckCache => "checking cached archive",
            Stage::Decompress => "decompressing",
            Stage::CheckImage => "checking cached image",
            Stage::HashImage => "hashing image",
            Stage::Write => "writing",
            Stage::ReadBack => "reading back",
        }
    }
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    /// Unknown when the server sends no length. Writing a stream: the image's size as its
    /// archive records it exactly (xz, zstd), until the image outgrows it; unknown otherwise.
    pub total: Option<u64>,
    /// The drive or file a write or read-back report is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub target: Option<String>,
    /// Writing: of `done`, the bytes the target already held and were not written again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub skipped: Option<u64>,
    /// Downloading: seconds since the last byte came, said about once a second while the
    /// server has been silent for 2 s or more (a stalled body, a wait before another attempt);
    /// absent again once bytes come.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub waiting: Option<u64>,
}

/// Where progress goes. Called from engine threads; must be cheap and must not block.
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: Progress);
}

impl<F: Fn(Progress) + Send + Sync> ProgressSink for F {
    fn report(&self, progress: Progress) {
        self(progress)
    }
}

/// A sink that drops every report.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _: Progress) {}
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Silence after which [`Reporter::waiting`] says how long it has lasted.
const WAITING_AFTER: Duration = Duration::from_secs(2);

/// Throttles one stage's reports so a fast loop does not flood a GUI channel.
pub(crate) struct Reporter<'a> {
    sink: &'a dyn ProgressSink,
    stage: Stage,
    total: Option<u64>,
    target: Option<String>,
    skipped: Option<u64>,
    last: Option<Instant>,
    /// The last count reported, and when it last moved (the stage started, or bytes came).
    done: u64,
    moved: Instant,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(sink: &'a dyn ProgressSink, stage: Stage, total: Option<u64>) -> Self {
        let r = Self {
            sink,
            stage,
            total,
            target: None,
            skipped: None,
            last: None,
            done: 0,
            moved: Instant::now(),
        };
        // Announce the stage; the first bytes are then reported without waiting out the interval.
        r.emit(0);
        r
    }

    /// The same reporter, its reports naming `target` (announced again with the name).
    pub(crate) fn for_target(mut self, target: &std::path::Path) -> Self {
        self.target = Some(target.display().to_string());
        self.emit(0);
        self
    }

    pub(crate) fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Bytes of `done` the target already held, reported from now on.
    pub(crate) fn set_skipped(&mut self, skipped: u64) {
        self.skipped = Some(skipped);
    }

    pub(crate) fn update(&mut self, done: u64) {
        self.drop_outrun_total(done);
        let now = Instant::now();
        self.done = done;
        self.moved = now;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < MIN_INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        self.emit(done);
    }

    pub(crate) fn finish(&mut self, done: u64) {
        self.drop_outrun_total(done);
        self.emit(done);
    }

    /// Says how long nothing has moved, once that is [`WAITING_AFTER`] or more; the caller
    /// calls it about once a second. Counted in the throttle like any report.
    pub(crate) fn waiting(&mut self) {
        let idle = self.moved.elapsed();
        if idle < WAITING_AFTER {
            return;
        }
        self.last = Some(Instant::now());
        self.send(self.done, Some(idle.as_secs()));
    }

    /// A total announced rather than known (an archive's records) that the bytes outran says
    /// nothing more: no share past 100 %.
    fn drop_outrun_total(&mut self, done: u64) {
        if self.total.is_some_and(|total| done > total) {
            self.total = None;
        }
    }

    fn emit(&self, done: u64) {
        self.send(done, None);
    }

    fn send(&self, done: u64, waiting: Option<u64>) {
        self.sink.report(Progress {
            stage: self.stage,
            done,
            total: self.total,
            target: self.target.clone(),
            skipped: self.skipped.filter(|s| *s > 0),
            waiting,
        });
    }
}
