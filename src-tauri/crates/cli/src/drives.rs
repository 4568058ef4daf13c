//! `labflash drives`: the drives that could be flashed.

use std::process::ExitCode;

use clap::Args;
use labflash_core::flash::rules;
use labflash_core::io::drives::{self, Drive, SystemRoots};

use crate::output::{Failure, Output};

#[derive(Args)]
pub struct DrivesArgs {
    /// Also list fixed disks and loop devices (marked), not only removable USB/MMC drives.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: DrivesArgs, out: &Output) -> ExitCode {
    let listed = match drives::list(&SystemRoots::default()) {
        Ok(all) => all
            .into_iter()
            .filter(|d| args.all || d.is_removable_media())
            .collect::<Vec<_>>(),
        Err(e) => return out.fail(Failure::from(e)),
    };
    out.success(&listed, || human(&listed, args.all))
}

fn human(drives: &[Drive], all: bool) -> String {
    if drives.is_empty() {
        return if all {
            "no drives found\n".into()
        } else {
            "no removable drives found (--all lists fixed disks and loop devices too)\n".into()
        };
    }
    let mut text = format!(
        "{:<16} {:>9}  {:<7} {:<28} notes\n",
        "PATH", "SIZE", "BUS", "MODEL"
    );
    for d in drives {
        let name = format!("{} {}", d.vendor, d.model).trim().to_string();
        text.push_str(&format!(
            "{:<16} {:>9}  {:<7} {:<28} {}\n",
            d.path,
            drives::human_size(d.size),
            serde_json::to_value(d.bus)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            name,
            notes(d).join(", ")
        ));
    }
    text
}

fn notes(d: &Drive) -> Vec<String> {
    let mut notes = Vec::new();
    // The engine's own rule, as the flash applies it and the app badges it.
    if let Some(never) = rules::unsuitable(d, None) {
        notes.push(format!("{} (never written)", never.badge));
    }
    if d.is_fixed() {
        notes.push("fixed disk".into());
    }
    if let Some(file) = &d.backing_file {
        notes.push(format!("loop on {}", file.display()));
    }
    if !d.mountpoints.is_empty() {
        notes.push(format!("mounted at {}", d.mountpoints.join(" ")));
    }
    notes
}
