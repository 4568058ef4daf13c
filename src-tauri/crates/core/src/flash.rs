//! A flash, top to bottom, for every front end: check every target against the rules before
//! anything is touched (one refusal refuses all), let the front end confirm, unmount, open every
//! target exclusively, then write and read back (see `write`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::device;
use crate::drives::SystemRoots;
use crate::error::{Error, Result};
use crate::helper;
use crate::onestick::{self, Layout};
use crate::progress::ProgressSink;
use crate::target::{self, Approved, TargetOptions};
use crate::write::{self, FlashOptions, Image, TargetReport};
use crate::CancellationToken;

/// What is about to happen, for the front end to show and confirm.
pub struct Plan {
    /// What is written: the boot image, or for one stick the whole laid-out stream.
    pub image: Image,
    pub targets: Vec<Approved>,
    /// One stick for both: the boot image with a cidata partition added.
    pub layout: Option<Layout>,
}

impl Plan {
    fn open_source(&self) -> Result<Box<dyn Read + Send + '_>> {
        Ok(match &self.layout {
            Some(layout) => Box::new(layout.reader()?),
            None => Box::new(
                std::fs::File::open(&self.image.path)
                    .map_err(|e| Error::io(&self.image.path, e))?,
            ),
        })
    }
}

/// Checks every target; any refusal refuses the whole flash, before a byte is written.
/// `protected`: files that must survive (the source, the cache folder). With `config`, one stick
/// for both: exactly one target, carrying the image and a cidata partition holding `config`.
pub fn plan(
    image: Image,
    targets: &[PathBuf],
    config: Option<&Path>,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
    cancel: &CancellationToken,
) -> Result<Plan> {
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
    Ok(Plan {
        targets: approve_all(targets, Some(image.size), options, protected, roots)?,
        image,
        layout: None,
    })
}

/// Checks every target for an image of `size` bytes (unknown for a stream); any refusal refuses
/// them all.
pub fn approve_all(
    targets: &[PathBuf],
    size: Option<u64>,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
) -> Result<Vec<Approved>> {
    if targets.is_empty() {
        return Err(Error::BadInput("no target given".into()));
    }
    let mut approved: Vec<Approved> = Vec::new();
    for path in targets {
        let a = target::approve(path, size, protected, options, roots)?;
        if approved.iter().any(|b| b.path == a.path) {
            return Err(Error::Refused {
                target: path.display().to_string(),
                reason: "it is named twice".into(),
            });
        }
        approved.push(a);
    }
    Ok(approved)
}

/// `plan` for one stick carrying the boot image and a cidata partition holding `config`.
fn plan_one_stick(
    boot: Image,
    config: &Path,
    target: &Path,
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
    cancel: &CancellationToken,
) -> Result<Plan> {
    let mut protected = protected.to_vec();
    protected.push(config);
    let approved = target::approve(target, Some(boot.size), &protected, options, roots)?;
    let (size, sector) = match &approved.drive {
        Some(d) => (d.size, u64::from(d.logical_block_size)),
        // A VM disk file: as large as it is, or just large enough.
        None => {
            let cidata_len = std::fs::metadata(config).map(|m| m.len()).unwrap_or(0);
            let needed = (boot.size + cidata_len + (4 << 20)).div_ceil(1 << 20) << 20;
            let existing = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
            (existing.max(needed), 512)
        }
    };
    let layout = onestick::layout(&boot, config, size, sector, cancel)?;
    Ok(Plan {
        image: layout.image.clone(),
        targets: vec![approved],
        layout: Some(layout),
    })
}

/// Where the privileged helper comes from, when neither direct access nor UDisks2 is possible:
/// the `labflash` binary to run under pkexec.
pub struct Privilege<'a> {
    pub helper: Option<&'a Path>,
    /// The files the helper must protect too (the source, the cache folder).
    pub protected: &'a [&'a Path],
    pub options: &'a TargetOptions,
}

/// Unmounts and opens every target (a busy one refuses the flash, nothing written yet), then
/// writes them all from one read of the image. Blocking. When this user can reach the targets
/// neither directly nor through UDisks2, the whole flash goes to the privileged helper.
pub fn execute(
    plan: &Plan,
    options: &FlashOptions,
    roots: &SystemRoots,
    privilege: &Privilege,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    let mut source = plan.open_source()?;
    if let Some(program) = privilege.helper {
        if needs_helper(&plan.targets) {
            return helper::run_privileged(
                program,
                plan,
                &mut *source,
                privilege,
                options,
                cancel,
                progress,
            );
        }
    }
    execute_from(plan, &mut *source, options, roots, cancel, progress)
}

/// `execute` with the image read from `source`.
pub fn execute_from(
    plan: &Plan,
    source: &mut (dyn Read + Send),
    options: &FlashOptions,
    roots: &SystemRoots,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    let opened = open_targets(&plan.targets, roots)?;
    Ok(write::flash(
        &plan.image,
        source,
        opened,
        options,
        cancel,
        progress,
    ))
}

/// Unmounts and opens every target exclusively; a busy one refuses the flash before any byte.
pub fn open_targets(targets: &[Approved], roots: &SystemRoots) -> Result<Vec<device::Target>> {
    let mut opened = Vec::new();
    for approved in targets {
        target::unmount(approved, roots)?;
        opened.push(device::open_for_write(&approved.path)?);
    }
    Ok(opened)
}

/// A drive this user may not write, with nobody (UDisks2) to ask: only the privileged helper can
/// write it.
pub fn needs_helper(targets: &[Approved]) -> bool {
    let denied = targets.iter().any(|t| {
        t.kind == crate::device::TargetKind::BlockDevice && !device::writable_by_me(&t.path)
    });
    denied && !crate::udisks::available()
}
