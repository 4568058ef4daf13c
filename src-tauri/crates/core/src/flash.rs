//! A flash, top to bottom, for every front end: check every target against the rules before
//! anything is touched (one refusal refuses all), let the front end confirm, unmount, open every
//! target exclusively, then write and read back (see `write`).

use std::path::{Path, PathBuf};

use crate::device;
use crate::drives::SystemRoots;
use crate::error::{Error, Result};
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

/// Unmounts and opens every target (a busy one refuses the flash, nothing written yet), then
/// writes them all from one read of the image. Blocking.
pub fn execute(
    plan: &Plan,
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
    Ok(write::flash(&plan.image, opened, options, cancel, progress))
}
