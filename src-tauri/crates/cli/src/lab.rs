//! A lab in one run: `labflash lab LAB.yaml`, and `labflash flash IMAGE --to A --config a.img --to B
//! --config b.img …`. The image is fetched and decoded once, every node's drives are planned and
//! confirmed together, and all are written at the same time (the engine's `flash::lab`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use labflash_core::fetch::factory_signature::FactoryTrust;
use labflash_core::flash::lab::{self, Node, NodeFlashed};
use labflash_core::flash::record::Record;
use labflash_core::flash::rules::TargetOptions;
use labflash_core::flash::{self, writer::TargetReport};
use labflash_core::sources::{lab_file, SourceRequest};
use labflash_core::{CancellationToken, ErrorKind};

use crate::fetch::SourceArgs;
use crate::net::NetArgs;
use crate::output::{Failure, Output, EXIT_FAILURE, EXIT_MISMATCH, EXIT_USAGE};

#[derive(Args)]
pub struct LabArgs {
    /// The lab file: its image, and each node's hostname, machine config and drives (see the
    /// README's "A lab in one run"); or a folder of labctl ImageBuild configs naming one image.
    pub file: PathBuf,

    /// Drives for the nodes that name none in the file, in the nodes' order.
    #[arg(long = "to", value_name = "TARGET")]
    pub to: Vec<PathBuf>,

    /// Write a record of the run to FILE: every stick with its node, drive, digests and
    /// read-back; `verify --record FILE` checks a stick against it.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// The Image Factory's public key (PEM) that must have signed the image of a lab of labctl
    /// ImageBuild configs, in place of the one pinned for that factory.
    #[arg(long, value_name = "FILE")]
    pub factory_key: Option<PathBuf>,

    #[command(flatten)]
    pub options: NodeOptions,

    #[command(flatten)]
    pub source_args: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,
}

/// What `flash` and `lab` share for writing drives.
#[derive(Args, Clone, Copy)]
pub struct NodeOptions {
    /// Unmount the targets' mounted filesystems instead of refusing them.
    #[arg(long)]
    pub unmount: bool,

    /// Allow fixed (non-removable) disks; on a terminal you will also type the disk's path.
    #[arg(long)]
    pub allow_fixed: bool,

    /// Skip reading the targets back; results then say unverified (verifiedSHA256 null).
    #[arg(long)]
    pub no_verify: bool,

    /// Write every byte, even where a drive already holds the image.
    #[arg(long)]
    pub write_all: bool,

    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// What a lab run did, node by node.
#[derive(serde::Serialize)]
pub struct LabFlashed {
    pub nodes: Vec<NodeFlashed>,
}

pub async fn run(args: LabArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    // A folder is a folder of labctl ImageBuild configs, one node each.
    let text = match std::fs::read_to_string(&args.file) {
        _ if args.file.is_dir() => None,
        Ok(text) => Some(text),
        Err(e) => {
            return out.fail(Failure::usage(format!(
                "cannot read the lab file {}: {e}",
                args.file.display()
            )))
        }
    };
    let built = (|| {
        let file = match &text {
            Some(text) => lab_file::parse(text, &args.file)?,
            None => lab_file::from_folder(&args.file)?,
        };
        if args.factory_key.is_some() && file.factory.is_none() {
            return Err(Failure::usage(
                "--factory-key is for a lab of labctl ImageBuild configs, whose image an Image Factory signs",
            ));
        }
        let base = args
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let out_dir = tempfile_dir()?;
        let lab = file.build(base, &args.to, out_dir.path())?;
        Ok::<_, Failure>((lab, out_dir))
    })();
    let (lab, _configs_live_until_written) = match built {
        Ok(built) => built,
        Err(failure) => return out.fail(failure),
    };
    let mut source_args = args.source_args;
    if lab.sha256.is_some() {
        source_args.sha256 = lab.sha256;
    }
    source_args.allow_unverified |= lab.allow_unverified;
    // A lab of ImageBuild configs writes an Image Factory's asset: its signature is checked
    // as `talos build` checks it.
    let factory = lab.factory.map(|trust| FactoryTrust {
        given_key: args.factory_key.or(trust.given_key),
        ..trust
    });
    let result = flash_nodes(
        &lab.source,
        factory,
        lab.nodes,
        &source_args,
        &args.net,
        args.options,
        args.record.as_deref(),
        out,
        cancel,
    )
    .await;
    finish(result, out)
}

/// Prints a lab's result with the exit code its worst node earns.
pub fn finish(result: Result<LabFlashed, Failure>, out: &Output) -> ExitCode {
    match result {
        Ok(lab) => {
            let code = exit_code(&lab);
            out.result(&lab, || human(&lab), code)
        }
        Err(failure) => out.fail(failure),
    }
}

/// The folder each node's config image is built in, for this run only.
fn tempfile_dir() -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix("labflash-lab-")
        .tempdir()
        .map_err(|e| Failure::other(format!("cannot make a folder for the nodes' configs: {e}")))
}

/// Plans every node from the one image, asks once for all their drives, and writes them at the
/// same time; with `record`, writes the run's record there (also when a node failed).
#[allow(clippy::too_many_arguments)]
pub async fn flash_nodes(
    source: &str,
    factory: Option<FactoryTrust>,
    nodes: Vec<Node>,
    source_args: &SourceArgs,
    net: &NetArgs,
    options: NodeOptions,
    record: Option<&Path>,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<LabFlashed, Failure> {
    // A record that could not be kept refuses the run before anything is fetched or written.
    if let Some(path) = record {
        Record::check_writable(path)
            .map_err(|e| Failure::usage(format!("the record cannot be written: {e}")))?;
    }
    let cache = source_args.cache()?;
    let http = net.http()?;
    let base = flash::Request {
        image: SourceRequest {
            factory,
            ..source_args.request(source)
        },
        targets: Vec::new(),
        config: None,
        config_to: None,
        options: TargetOptions {
            unmount: options.unmount,
            allow_fixed: options.allow_fixed,
            ..TargetOptions::default()
        },
        verify: !options.no_verify,
        skip_equal: !options.write_all,
        prepared: None,
    };
    let plan = {
        let progress = crate::progress::sink(out.show_progress());
        lab::plan(&base, &nodes, &http, &cache, cancel, &progress).await?
    };
    out.warn_then(&plan.warnings());
    crate::confirm::ask(
        &plan.all_targets(),
        &plan.describe(),
        options.yes,
        options.allow_fixed,
    )?;
    // The record starts when writing does.
    let mut started = record.map(|path| (path, Record::start()));
    let progress = crate::progress::sink(out.show_progress());
    let cancel = cancel.clone();
    let rt = tokio::runtime::Handle::current();
    let nodes = tokio::task::spawn_blocking(move || {
        lab::run(plan, &http, &cache, &rt, &cancel, Arc::as_ref(&progress))
    })
    .await
    .map_err(|e| Failure::other(format!("the writers stopped: {e}")))?;
    if let Some((path, record)) = started.as_mut() {
        record.add_lab(source, &nodes);
        record.finish();
        crate::flash::write_record(record, path, out)?;
    }
    Ok(LabFlashed { nodes })
}

/// Every target report of a node, its config stick's too.
fn reports(node: &NodeFlashed) -> Vec<&TargetReport> {
    let mut all = Vec::new();
    let mut next = node.flashed.as_ref();
    while let Some(flashed) = next {
        all.extend(&flashed.targets);
        next = flashed.config_stick.as_deref();
    }
    all
}

/// 1 when any read-back mismatched, 2 when every failed node was refused as bad input, 3 when
/// any failed otherwise, else 0.
fn exit_code(lab: &LabFlashed) -> u8 {
    let kinds: Vec<ErrorKind> = lab
        .nodes
        .iter()
        .flat_map(|n| {
            n.error_kind
                .into_iter()
                .chain(reports(n).into_iter().filter_map(|t| t.error_kind))
                .chain(
                    reports(n)
                        .into_iter()
                        .filter(|t| !t.ok && t.error_kind.is_none())
                        .map(|_| ErrorKind::Failure),
                )
        })
        .collect();
    if kinds.is_empty() {
        0
    } else if kinds.contains(&ErrorKind::DigestMismatch) {
        EXIT_MISMATCH
    } else if kinds.iter().all(|k| *k == ErrorKind::BadInput) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

fn human(lab: &LabFlashed) -> String {
    let mut text = String::new();
    for node in &lab.nodes {
        match (&node.flashed, &node.error) {
            (_, Some(e)) => text.push_str(&format!("node {}: FAILED: {e}\n", node.node)),
            (Some(f), None) => {
                text.push_str(&format!(
                    "node {}: image SHA-256 {}{}\n",
                    node.node,
                    f.image_sha256,
                    f.config_sha256
                        .or(f.config_stick.as_ref().map(|c| c.image_sha256))
                        .map(|c| format!(", config SHA-256 {c}"))
                        .unwrap_or_default()
                ));
                for t in reports(node) {
                    text.push_str(&match (&t.error, &t.verified_sha256) {
                        (Some(e), _) => format!("  FAILED    {}: {e}\n", t.path),
                        (None, Some(d)) => {
                            format!("  verified  {}: read back SHA-256 {d}\n", t.path)
                        }
                        (None, None) => {
                            format!("  written   {} (UNVERIFIED: not read back)\n", t.path)
                        }
                    });
                }
            }
            (None, None) => {}
        }
    }
    text
}
