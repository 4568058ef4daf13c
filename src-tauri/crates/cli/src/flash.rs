//! `labflash flash SOURCE --to TARGET…`: write an image to drives or files and read each back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use labflash_core::cache::Cache;
use labflash_core::drives::{human_size, SystemRoots};
use labflash_core::fetch::{DigestSource, FetchRequest};
use labflash_core::flash;
use labflash_core::http::Http;
use labflash_core::pipeline;
use labflash_core::source::{self, SourceRequest};
use labflash_core::target::TargetOptions;
use labflash_core::write::{FlashOptions, TargetReport};
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

    /// One stick for both: add a GPT partition named cidata holding this config image (from
    /// `labflash cidata` or `talos build`) after the boot image's partitions. One target only.
    #[arg(long, value_name = "CIDATA.img")]
    pub config: Option<PathBuf>,

    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    #[command(flatten)]
    pub source_args: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FlashResult {
    #[serde(rename = "imageSHA256")]
    image_sha256: String,
    image_size: u64,
    /// One stick: the config image's digest, where its partition starts, and the digest of the
    /// whole laid-out stream the targets' read-back must reproduce.
    #[serde(rename = "configSHA256", skip_serializing_if = "Option::is_none")]
    config_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cidata_offset: Option<u64>,
    #[serde(rename = "stickSHA256", skip_serializing_if = "Option::is_none")]
    stick_sha256: Option<String>,
    /// From a URL: the archive's verified digest and where the expected digest came from.
    #[serde(rename = "archiveSHA256", skip_serializing_if = "Option::is_none")]
    archive_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest_source: Option<DigestSource>,
    targets: Vec<TargetReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

pub async fn run(args: FlashArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match flash(args, out, cancel).await {
        Ok(result) => {
            let code = exit_code(&result.targets);
            out.result(&result, || human(&result), code)
        }
        Err(failure) => out.fail(failure),
    }
}

/// 1 when any read-back mismatched, 3 when any target failed otherwise.
fn exit_code(targets: &[TargetReport]) -> u8 {
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

async fn flash(
    args: FlashArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<FlashResult, Failure> {
    let cache = args.source_args.cache()?;
    let http = args.net.http()?;
    if args.config.is_some() && args.to.len() != 1 {
        return Err(Failure::usage(
            "--config writes one stick at a time: give exactly one --to",
        ));
    }
    // A URL or a compressed file streams to the targets in one pass, unless it must go through
    // the privileged helper (which takes a file) or carries a config partition (laid out from a
    // file). A raw file is written as it is.
    let (cache, http) = if pipeline::streams(&args.source) && args.config.is_none() {
        match stream(&args, cache, http, out, cancel).await? {
            Streaming::Done(result) => return Ok(result),
            Streaming::NotPossible(cache, http) => (cache, http),
        }
    } else {
        (cache, http)
    };
    let request = SourceRequest {
        source: args.source.clone(),
        sha256: args.source_args.sha256,
        allow_unverified: args.source_args.allow_unverified,
        max_image_size: args.source_args.max_image_size,
    };
    let prepared = {
        let progress = crate::progress::sink(out.show_progress());
        source::prepare(&request, &http, &cache, cancel, &progress).await?
    };

    let local_source = (!source::is_url(&args.source)).then(|| PathBuf::from(&args.source));
    let mut protected: Vec<&Path> = vec![prepared.image.path.as_path(), cache.root()];
    protected.extend(local_source.as_deref());
    let roots = SystemRoots::default();
    let options = TargetOptions {
        unmount: args.unmount,
        allow_fixed: args.allow_fixed,
    };
    let plan = flash::plan(
        prepared.image.clone(),
        &args.to,
        args.config.as_deref(),
        &options,
        &protected,
        &roots,
        cancel,
    )?;
    let one_stick = plan.layout.as_ref().map(|l| {
        (
            l.config_sha256().hex(),
            l.cidata_offset(),
            l.image.sha256.hex(),
        )
    });
    // Where the image names its Talos release, a cidata that release cannot read is said first.
    let warnings: Vec<String> = args
        .config
        .as_ref()
        .and_then(|_| labflash_core::talos::release_named_in(&args.source))
        .and_then(labflash_core::talos::fat_cidata_warning)
        .into_iter()
        .collect();
    out.warn_then(&warnings);
    let what = crate::confirm::describe_plan(&plan);
    crate::confirm::ask(&plan.targets, &what, args.yes, args.allow_fixed)?;

    let flash_options = FlashOptions {
        verify: !args.no_verify,
    };
    let progress = crate::progress::sink(out.show_progress());
    let cancel = cancel.clone();
    let protected: Vec<PathBuf> = protected.iter().map(|p| p.to_path_buf()).collect();
    let helper = std::env::current_exe().ok();
    let targets = tokio::task::spawn_blocking(move || {
        let protected: Vec<&Path> = protected.iter().map(PathBuf::as_path).collect();
        let privilege = flash::Privilege {
            helper: helper.as_deref(),
            protected: &protected,
            options: &options,
        };
        let progress = Arc::as_ref(&progress);
        flash::execute(&plan, &flash_options, &roots, &privilege, &cancel, progress)
    })
    .await
    .map_err(|e| Failure::other(format!("the writer stopped: {e}")))??;
    let (config_sha256, cidata_offset, stick_sha256) = match one_stick {
        Some((c, o, s)) => (Some(c), Some(o), Some(s)),
        None => (None, None, None),
    };
    Ok(FlashResult {
        image_sha256: prepared.image.sha256.hex(),
        image_size: prepared.image.size,
        config_sha256,
        cidata_offset,
        stick_sha256,
        archive_sha256: Some(prepared.archive_sha256.hex()),
        digest_source: Some(prepared.digest_source),
        targets,
        warnings,
    })
}

enum Streaming {
    Done(FlashResult),
    /// The targets need the privileged helper: prepare the image as a file instead.
    NotPossible(Cache, Http),
}

/// URL or compressed file → verified targets in one streaming pass (see labflash_core::pipeline).
async fn stream(
    args: &FlashArgs,
    cache: Cache,
    http: Http,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Streaming, Failure> {
    let sha256 = args.source_args.sha256;
    let max_image_size = args.source_args.max_image_size;
    let opened = if source::is_url(&args.source) {
        let url = url::Url::parse(&args.source)
            .map_err(|e| Failure::usage(format!("{:?} is not a valid URL: {e}", args.source)))?;
        let request = FetchRequest {
            sha256,
            allow_unverified: args.source_args.allow_unverified,
            max_image_size,
            ..FetchRequest::new(url)
        };
        pipeline::open(&http, &cache, &request, cancel).await?
    } else {
        let progress = crate::progress::sink(out.show_progress());
        let path = Path::new(&args.source);
        pipeline::open_file(path, sha256, max_image_size, cancel, &progress).await?
    };
    let roots = SystemRoots::default();
    let options = TargetOptions {
        unmount: args.unmount,
        allow_fixed: args.allow_fixed,
    };
    let Some(approved) = pipeline::approve(&opened, &args.to, &options, &cache, &roots)? else {
        return Ok(Streaming::NotPossible(cache, http));
    };
    let what = vec![
        format!("image: {}", opened.source),
        match (opened.expected, opened.digest_source) {
            (Some(digest), DigestSource::Unverified) => format!(
                "file SHA-256 {digest}: UNVERIFIED (compare it with the publisher's, or pass --sha256)"
            ),
            (Some(digest), source) => format!(
                "archive SHA-256 {digest} (from {}), checked before any target is finished",
                crate::fetch::digest_origin(source)
            ),
            (None, _) => "archive: UNVERIFIED (no published checksum; --allow-unverified)".into(),
        },
        match opened.image_size {
            Some(size) => format!("image: {size} bytes ({}), cached", human_size(size)),
            None => {
                "image: size and SHA-256 known when decoded; every target is read back against them"
                    .into()
            }
        },
    ];
    crate::confirm::ask(&approved, &what, args.yes, args.allow_fixed)?;

    let flash_options = FlashOptions {
        verify: !args.no_verify,
    };
    let progress = crate::progress::sink(out.show_progress());
    let cancel = cancel.clone();
    let rt = tokio::runtime::Handle::current();
    let streamed = tokio::task::spawn_blocking(move || {
        pipeline::run(
            opened,
            &approved,
            &roots,
            &http,
            &cache,
            &rt,
            &flash_options,
            &cancel,
            Arc::as_ref(&progress),
        )
    })
    .await
    .map_err(|e| Failure::other(format!("the writer stopped: {e}")))??;
    Ok(Streaming::Done(FlashResult {
        image_sha256: streamed.image_sha256.hex(),
        image_size: streamed.image_size,
        config_sha256: None,
        cidata_offset: None,
        stick_sha256: None,
        archive_sha256: Some(streamed.archive_sha256.hex()),
        digest_source: Some(streamed.digest_source),
        targets: streamed.targets,
        warnings: Vec::new(),
    }))
}

fn human(result: &FlashResult) -> String {
    let mut text = format!(
        "image {} bytes, SHA-256 {}\n",
        result.image_size, result.image_sha256
    );
    if let (Some(archive), Some(source)) = (&result.archive_sha256, result.digest_source) {
        text.push_str(&format!(
            "archive SHA-256 {archive} (from {})\n",
            crate::fetch::digest_origin(source)
        ));
    }
    if let (Some(config), Some(offset)) = (&result.config_sha256, result.cidata_offset) {
        text.push_str(&format!(
            "config SHA-256 {config}, in partition cidata at byte {offset}\n"
        ));
    }
    for t in &result.targets {
        let line = match (&t.error, &t.verified_sha256) {
            (Some(e), _) => format!("FAILED    {}: {e}\n", t.path),
            (None, Some(d)) => format!("verified  {}: read back SHA-256 {d}\n", t.path),
            (None, None) => format!("written   {} (UNVERIFIED: not read back)\n", t.path),
        };
        text.push_str(&line);
    }
    text
}
