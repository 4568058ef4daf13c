//! `labflash flash SOURCE --to TARGET…`: write an image to drives or files and read each back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use labflash_core::flash::lab::Node;
use labflash_core::flash::record::Record;
use labflash_core::flash::rules::{Approved, Chosen, TargetOptions};
use labflash_core::flash::writer::TargetReport;
use labflash_core::flash::{self, Flashed};
use labflash_core::io::drives::human_size;
use labflash_core::io::eject::{eject, Ejected};
use labflash_core::io::identity::{DriveIdentity, Identity};
use labflash_core::{CancellationToken, ErrorKind};

use crate::fetch::SourceArgs;
use crate::net::NetArgs;
use crate::output::{Failure, Output, EXIT_FAILURE, EXIT_MISMATCH};

#[derive(Args)]
pub struct FlashArgs {
    /// The image: a local file (raw, xz, gz, zst) or an http(s) URL, verified as `fetch` does.
    pub source: String,

    /// A drive (/dev/sdX, /dev/mmcblkN, /dev/loopN) or an image file to write; repeat for more.
    #[arg(long = "to", value_name = "TARGET", required = true)]
    pub to: Vec<PathBuf>,

    /// Unmount the targets' mounted filesystems instead of refusing them.
    #[arg(long)]
    pub unmount: bool,

    /// Allow fixed (non-removable) disks; on a terminal you will also type the disk's path.
    #[arg(long)]
    pub allow_fixed: bool,

    /// Skip reading the targets back; results then say unverified (verifiedSHA256 null).
    #[arg(long)]
    pub no_verify: bool,

    /// Write every byte, even where a drive already holds the image (by default each chunk
    /// found equal by reading it first is left as it is; it is still read back).
    #[arg(long)]
    pub write_all: bool,

    /// One stick for both: add a GPT partition named cidata holding this config image (from
    /// `labflash cidata` or `talos build`) after the boot image's partitions. A lab: one per
    /// --to, paired in the order given (`--to A --config a.img --to B --config b.img`).
    #[arg(long, value_name = "CIDATA.img")]
    pub config: Vec<PathBuf>,

    /// Two sticks: write the --config image whole onto this drive instead, beside the boot
    /// stick, in the same run (for Talos releases that do not read cidata on their boot stick).
    /// A lab: one per --to, in the same order.
    #[arg(long, value_name = "TARGET", requires = "config")]
    pub config_to: Vec<PathBuf>,

    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Once the flash has ended, eject every drive written and read back, as the app's Eject
    /// does: a USB drive is powered off, a loop device you set up detached (another's stays
    /// attached, holding the image). Each drive's outcome is in `ejected`.
    #[arg(long)]
    pub eject: bool,

    /// Write a record of the run to FILE (JSON: each stick's drive, the image's digests and
    /// source, the read-back), also when a target failed; `verify --record FILE` checks a stick.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub source_args: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,
}

pub async fn run(args: FlashArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match lab_nodes(&args) {
        Err(failure) => return out.fail(failure),
        Ok(Some(_)) if args.eject => {
            return out.fail(Failure::usage(
                "--eject ejects the drives of one flash, not of a lab (a --config for each --to): flash the lab, then eject its sticks from the app or your desktop",
            ))
        }
        Ok(Some(nodes)) => {
            let options = crate::lab::NodeOptions {
                unmount: args.unmount,
                allow_fixed: args.allow_fixed,
                no_verify: args.no_verify,
                write_all: args.write_all,
                yes: args.yes,
            };
            let done = crate::lab::flash_nodes(
                &args.source,
                None,
                nodes,
                &args.source_args,
                &args.net,
                options,
                args.record.as_deref(),
                out,
                cancel,
            )
            .await;
            return crate::lab::finish(done, out);
        }
        Ok(None) => {}
    }
    match flash(args, out, cancel).await {
        Ok(result) => {
            let mut code = exit_code(&every_report(&result.flashed));
            if code == 0 && result.ejected.iter().any(|e| e.error.is_some()) {
                code = EXIT_FAILURE;
            }
            out.result(&result, || human(&result), code)
        }
        Err(failure) => out.fail(failure),
    }
}

/// What `flash` prints: what the flash did and, with `--eject`, what ejecting each drive did.
#[derive(serde::Serialize)]
struct FlashedAndEjected {
    #[serde(flatten)]
    flashed: Flashed,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ejected: Vec<EjectReport>,
}

/// One drive ejected (`{"path","kind","why"}` as the app's `Ejected`), or why not (`error`).
#[derive(serde::Serialize)]
struct EjectReport {
    path: String,
    #[serde(flatten)]
    ejected: Option<Ejected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Ejects every drive written and read back (a failed one is left for the operator to see),
/// each only if it is still the drive that was flashed.
async fn eject_written(flashed: &Flashed, approved: Vec<Approved>) -> Vec<EjectReport> {
    let written: Vec<(String, DriveIdentity)> = every_report(flashed)
        .into_iter()
        .filter(|r| r.ok)
        .filter_map(|r| {
            let target = approved.iter().find(|a| a.path == Path::new(&r.path))?;
            match &target.identity {
                Identity::Drive(identity) => Some((r.path, identity.clone())),
                _ => None,
            }
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        written
            .into_iter()
            .map(
                |(path, identity)| match eject(Path::new(&path), &identity) {
                    Ok(ejected) => EjectReport {
                        path,
                        ejected: Some(ejected),
                        error: None,
                    },
                    Err(e) => EjectReport {
                        path,
                        ejected: None,
                        error: Some(e.to_string()),
                    },
                },
            )
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// The boot stick's reports, then the config stick's.
fn every_report(result: &Flashed) -> Vec<TargetReport> {
    let mut all = result.targets.clone();
    if let Some(config) = &result.config_stick {
        all.extend(every_report(config));
    }
    all
}

/// 1 when any read-back mismatched, 3 when any target failed otherwise.
pub fn exit_code(targets: &[TargetReport]) -> u8 {
    if targets
        .iter()
        .any(|t| t.error_kind == Some(ErrorKind::DigestMismatch))
    {
        EXIT_MISMATCH
    } else if targets.iter().any(|t| !t.ok) {
        EXIT_FAILURE
    } else {
        0
    }
}

/// Each --to with its own --config (and --config-to), when more than one target has one: a lab.
/// `None` for one stick, two sticks, or targets that all get the image alone.
fn lab_nodes(args: &FlashArgs) -> Result<Option<Vec<Node>>, Failure> {
    let (to, config, config_to) = (&args.to, &args.config, &args.config_to);
    if config.len() <= 1 && config_to.len() <= 1 && !(config.len() == 1 && to.len() > 1) {
        return Ok(None);
    }
    if config.len() != to.len() || !(config_to.is_empty() || config_to.len() == to.len()) {
        return Err(Failure::usage(format!(
            "each --to takes its own --config{}, paired in the order given: {} --to, {} --config{}",
            if config_to.is_empty() {
                ""
            } else {
                " and --config-to"
            },
            to.len(),
            config.len(),
            if config_to.is_empty() {
                String::new()
            } else {
                format!(", {} --config-to", config_to.len())
            }
        )));
    }
    // One config for two nodes would boot two machines as one.
    for (i, c) in config.iter().enumerate() {
        let stem = c.file_stem();
        if config[..i].iter().any(|o| o == c || o.file_stem() == stem) {
            return Err(Failure::usage(format!(
                "{} is given for two nodes (a node is named after its config's file): each --to takes a config of its own",
                c.display()
            )));
        }
    }
    Ok(Some(
        to.iter()
            .zip(config)
            .enumerate()
            .map(|(i, (to, config))| Node {
                // The config image's own name says which node it is (cp-1.img).
                name: config.file_stem().map_or_else(
                    || format!("{}", i + 1),
                    |s| s.to_string_lossy().into_owned(),
                ),
                to: Chosen::path(to.clone()),
                config: Some(config.clone()),
                config_to: config_to.get(i).cloned().map(Chosen::path),
            })
            .collect(),
    ))
}

/// Builds the request, shows the engine's plan, confirms and runs it: every decision (stream or
/// prepare, protected files, helper) is the engine's.
async fn flash(
    args: FlashArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<FlashedAndEjected, Failure> {
    // A record that could not be kept refuses the run before anything is fetched or written.
    if let Some(path) = &args.record {
        Record::check_writable(path)
            .map_err(|e| Failure::usage(format!("the record cannot be written: {e}")))?;
    }
    let cache = args.source_args.cache()?;
    let http = args.net.http()?;
    let request = flash::Request {
        image: args.source_args.request(&args.source),
        targets: args.to.iter().map(|p| Chosen::path(p.clone())).collect(),
        config: args.config.first().cloned(),
        config_to: args.config_to.first().cloned().map(Chosen::path),
        options: TargetOptions {
            unmount: args.unmount,
            allow_fixed: args.allow_fixed,
            ..TargetOptions::default()
        },
        verify: !args.no_verify,
        skip_equal: !args.write_all,
        prepared: None,
    };
    let plan = {
        let progress = crate::progress::sink(out.show_progress());
        flash::plan(&request, &http, &cache, cancel, &progress).await?
    };
    out.warn_then(&plan.warnings);
    let said = plan.warnings.clone();
    crate::confirm::ask(
        &plan.all_targets(),
        &plan.describe(),
        args.yes,
        args.allow_fixed,
    )?;

    let approved = plan.all_targets();
    // The record's lines name the drives as approved; it starts when writing does.
    let record = args
        .record
        .as_ref()
        .map(|path| (path, plan.all_targets(), Record::start()));
    let progress = crate::progress::sink(out.show_progress());
    let cancel = cancel.clone();
    let rt = tokio::runtime::Handle::current();
    let flashed = tokio::task::spawn_blocking(move || {
        flash::run(plan, &http, &cache, &rt, &cancel, Arc::as_ref(&progress))
    })
    .await
    .map_err(|e| Failure::other(format!("the writer stopped: {e}")))??;
    if let Some((path, approved, mut record)) = record {
        record.add(None, &args.source, &flashed, &approved);
        record.finish();
        write_record(&record, path, out)?;
    }
    // What was learnt while writing (a download's image kind) and not said before.
    let learnt: Vec<String> = flashed
        .warnings
        .iter()
        .filter(|w| !said.contains(w))
        .cloned()
        .collect();
    out.warn_then(&learnt);
    let ejected = match args.eject {
        true => eject_written(&flashed, approved).await,
        false => Vec::new(),
    };
    Ok(FlashedAndEjected { flashed, ejected })
}

/// Writes the record, and shows its summary to a person (stdout keeps the flash's result).
pub(crate) fn write_record(record: &Record, path: &Path, out: &Output) -> Result<(), Failure> {
    if let Err(e) = record.write(path) {
        let ok = record.sticks.iter().filter(|s| s.ok).count();
        return Err(Failure::other(format!(
            "{ok} of {} sticks were written, but the record could not be written: {e}",
            record.sticks.len()
        )));
    }
    if !out.json && !out.quiet {
        eprint!("{}", record.summary());
        eprintln!("record written to {}", path.display());
    }
    Ok(())
}

fn human(both: &FlashedAndEjected) -> String {
    let result = &both.flashed;
    let mut text = format!(
        "image {} bytes ({}), SHA-256 {}\n",
        result.image_size, result.image_kind, result.image_sha256
    );
    if let Some(inside) = &result.image_inside {
        text.push_str(&format!("image unwrapped from the archive: {inside}\n"));
    }
    text.push_str(&format!(
        "archive SHA-256 {} (from {})\n",
        result.archive_sha256,
        result.digest_source.origin()
    ));
    if let (Some(config), Some(offset)) = (&result.config_sha256, result.cidata_offset) {
        text.push_str(&format!(
            "config SHA-256 {config}, in partition cidata at byte {offset}\n"
        ));
    }
    if let Some(config) = &result.config_stick {
        text.push_str(&format!(
            "config stick: image {} bytes, SHA-256 {}\n",
            config.image_size, config.image_sha256
        ));
    }
    for t in every_report(result).iter() {
        let line = match (&t.error, &t.verified_sha256) {
            (Some(e), _) => format!("FAILED    {}: {e}\n", t.path),
            (None, Some(d)) => format!(
                "verified  {}: read back SHA-256 {d}{}\n",
                t.path,
                already_held(t)
            ),
            (None, None) => format!("written   {} (UNVERIFIED: not read back)\n", t.path),
        };
        text.push_str(&line);
    }
    for e in &both.ejected {
        text.push_str(&match (&e.ejected, &e.error) {
            (Some(Ejected::PoweredOff), _) => format!("ejected   {}: powered off\n", e.path),
            (Some(Ejected::Detached), _) => format!("ejected   {}: detached\n", e.path),
            (Some(Ejected::Kept(why)), _) => format!("kept      {}: {why}\n", e.path),
            (None, error) => format!(
                "NOT EJECTED {}: {}\n",
                e.path,
                error.as_deref().unwrap_or_default()
            ),
        });
    }
    text
}

/// How much of the image the target already held and was not written again.
fn already_held(t: &TargetReport) -> String {
    if t.bytes_skipped == 0 {
        return String::new();
    }
    format!(
        " ({} already on it, not written again)",
        human_size(t.bytes_skipped)
    )
}
