//! `labflash verify FILE|DEVICE`: does it hold the expected image? Writes nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Args};
use labflash_core::fetch::digest::Sha256Digest;
use labflash_core::flash::record::Record;
use labflash_core::progress::ProgressSink;
use labflash_core::verify::{self, Expectation, Expected, Resolver, Verification};
use labflash_core::CancellationToken;

use crate::fetch::{parse_sha256, parse_size};
use crate::net::NetArgs;
use crate::output::{Failure, Output, EXIT_MISMATCH};

#[derive(Args)]
#[command(group(ArgGroup::new("expected").required(true).args(["sha256", "image", "sidecar", "record"])))]
pub struct VerifyArgs {
    /// The image file or drive to check.
    pub path: PathBuf,

    /// The expected SHA-256 (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub sha256: Option<Sha256Digest>,

    /// How many bytes to hash (the image's size); required for a drive unless --image or an
    /// archive's checksum file gives it.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, conflicts_with_all = ["image", "record"])]
    pub size: Option<u64>,

    /// Take the expected digest and size from this image file (of the image inside it when it
    /// is compressed: .xz, .gz, .zst).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,

    /// Take the expected digest from a .sha256 checksum file (URL or path). A checksum of a
    /// compressed archive (….raw.xz.sha256) proves the archive (fetched beside it, or found
    /// beside the file), and the drive is compared with the image inside it.
    #[arg(long, value_name = "URL|FILE")]
    pub sidecar: Option<String>,

    /// Take the expected digest and size from a flash record (`flash --record FILE`): its line
    /// whose path is the one checked, or --stick's.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// The record's line to compare with, by the path it names (when the stick has another name
    /// now, or is checked through an image of it).
    #[arg(long, value_name = "PATH", requires = "record")]
    pub stick: Option<String>,

    /// Cache folder for an archive fetched to verify against [default: $LABFLASH_CACHE_DIR,
    /// else the platform's cache folder].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Largest decompressed image accepted, in bytes (suffixes K, M, G, KiB, MiB, GiB allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4GiB")]
    pub max_image_size: u64,

    #[command(flatten)]
    pub net: NetArgs,
}

pub async fn run(args: VerifyArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match verify(args, out, cancel).await {
        Ok(v) => {
            let code = if v.matches { 0 } else { EXIT_MISMATCH };
            out.result(&v, || human(&v), code)
        }
        Err(failure) => out.fail(failure),
    }
}

async fn verify(
    args: VerifyArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Verification, Failure> {
    if !args.path.exists() {
        return Err(Failure::usage(format!(
            "{} does not exist",
            args.path.display()
        )));
    }
    if let Some(record) = &args.record {
        if !record.is_file() {
            return Err(Failure::usage(format!(
                "the record {} does not exist",
                record.display()
            )));
        }
        let expectation = Record::read(record)?.expectation(&args.path, args.stick.as_deref())?;
        let progress = crate::progress::sink(out.show_progress());
        return read_and_compare(args.path, expectation, progress, cancel).await;
    }
    let expected = match (args.sha256, args.image, args.sidecar) {
        (Some(d), _, _) => Expected::Digest(d),
        (_, Some(image), _) => Expected::Image(image),
        (_, _, Some(sidecar)) => Expected::Sidecar(sidecar),
        _ => unreachable!("clap requires one of them"),
    };
    let http = args.net.http()?;
    let progress = crate::progress::sink(out.show_progress());
    let with = Resolver {
        http: &http,
        cache_dir: args.cache_dir.clone(),
        max_image_size: args.max_image_size,
    };
    let expectation =
        verify::resolve_expected(&expected, &args.path, args.size, &with, cancel, &progress)
            .await?;
    read_and_compare(args.path, expectation, progress, cancel).await
}

/// The engine's verify, off the runtime's threads.
async fn read_and_compare(
    path: PathBuf,
    expectation: Expectation,
    progress: Arc<dyn ProgressSink>,
    cancel: &CancellationToken,
) -> Result<Verification, Failure> {
    let cancel = cancel.clone();
    let v = tokio::task::spawn_blocking(move || {
        verify::verify(&path, &expectation, &cancel, progress.as_ref())
    })
    .await
    .map_err(|e| Failure::other(format!("the reader stopped: {e}")))??;
    Ok(v)
}

fn human(v: &Verification) -> String {
    let verdict = if v.matches {
        format!(
            "MATCH     {} ({} bytes): SHA-256 {}\n",
            v.path, v.size, v.sha256
        )
    } else {
        format!(
            "MISMATCH  {} ({} bytes): SHA-256 {}, expected {}\n",
            v.path, v.size, v.sha256, v.expected_sha256
        )
    };
    format!("{verdict}          expected: {}\n", v.expected_from)
}
