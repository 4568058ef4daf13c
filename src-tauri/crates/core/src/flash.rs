//! A flash, top to bottom, for every front end: check every target against the rules before
//! anything is touched (one refusal refuses all), let the front end confirm, unmount, open every
//! target exclusively, then write and read back (see `write`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::device;
use crate::drives::SystemRoots;
use crate::error::{Error, Result};
use crate::helper;
use crate::progress::ProgressSink;
use crate::target::{self, Approved, TargetOptions};
use crate::write::{self, FlashOptions, Image, TargetReport};
use crate::CancellationToken;

/// What is about to happen, for the front end to show and confirm.
#[derive(Clone, Debug)]
pub struct Plan {
    pub image: Image,
    pub targets: Vec<Approved>,
}

/// Checks every target; any refusal refuses the whole flash, before a byte is written.
/// `protected`: files that must survive (the source, the cache folder).
pub fn plan(
    image: Image,
    targets: &[PathBuf],
    options: &TargetOptions,
    protected: &[&Path],
    roots: &SystemRoots,
) -> Result<Plan> {
    if targets.is_empty() {
        return Err(Error::BadInput("no target given".into()));
    }
    let mut approved: Vec<Approved> = Vec::new();
    for path in targets {
        let a = target::approve(path, image.size, protected, options, roots)?;
        if approved.iter().any(|b| b.path == a.path) {
            return Err(Error::Refused {
                target: path.display().to_string(),
                reason: "it is named twice".into(),
            });
        }
        approved.push(a);
    }
    Ok(Plan {
        image,
        targets: approved,
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
    if let Some(program) = privilege.helper {
        if needs_helper(plan) {
            return helper::run_privileged(
                program,
                plan,
                privilege.protected,
                privilege.options,
                options,
                cancel,
                progress,
            );
        }
    }
    let mut source =
        std::fs::File::open(&plan.image.path).map_err(|e| Error::io(&plan.image.path, e))?;
    execute_from(plan, &mut source, options, roots, cancel, progress)
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
    let mut opened = Vec::new();
    for approved in &plan.targets {
        target::unmount(approved, roots)?;
        opened.push(device::open_for_write(&approved.path)?);
    }
    Ok(write::flash(
        &plan.image,
        source,
        opened,
        options,
        cancel,
        progress,
    ))
}

/// A drive this user may not write, with nobody (UDisks2) to ask.
fn needs_helper(plan: &Plan) -> bool {
    let denied = plan.targets.iter().any(|t| {
        t.kind == crate::device::TargetKind::BlockDevice && !device::writable_by_me(&t.path)
    });
    denied && !crate::udisks::available()
}
