//! `labflash talos …`: Talos Linux images. `build` takes labctl's ImageBuild YAML unchanged.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use labflash_core::http::{Http, HttpPolicy};
use labflash_core::talos::{self, BuildRequest, Built};
use labflash_core::CancellationToken;

use crate::fetch::parse_size;
use crate::output::{Failure, Output};

#[derive(Subcommand)]
pub enum TalosCommand {
    /// Build the boot image and the cidata config image from a labctl ImageBuild config.
    Build(BuildArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// The ImageBuild YAML, or - for standard input (paths are then relative to the current folder).
    #[arg(value_name = "CONFIG.yaml | -")]
    pub config: String,

    /// Download cache [default: labctl's <output dir's parent>/downloads/talos].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Accept a factory that publishes no .sha256 files (self-hosted community builds).
    #[arg(long)]
    pub allow_unverified: bool,

    /// Largest decompressed boot image accepted, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4GiB")]
    pub max_image_size: u64,
}

pub async fn run(command: TalosCommand, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match command {
        TalosCommand::Build(args) => match build(args, out, cancel).await {
            Ok(b) => out.success(&b, || {
                format!(
                    "{}\n{}\n",
                    b.boot_artifact_path.display(),
                    b.config_artifact_path.display()
                )
            }),
            Err(f) => out.fail(f),
        },
    }
}

async fn build(
    args: BuildArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Built, Failure> {
    let (text, base_dir) = if args.config == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::usage(format!("cannot read the config from standard input: {e}"))
        })?;
        (
            text,
            std::env::current_dir().map_err(|e| Failure::other(e.to_string()))?,
        )
    } else {
        let path = PathBuf::from(&args.config);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::usage(format!("cannot read the config {}: {e}", path.display()))
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = std::fs::canonicalize(&dir).map_err(|e| Failure::other(e.to_string()))?;
        (text, dir)
    };
    let request = BuildRequest {
        build: talos::parse(&text)?,
        base_dir,
        cache_dir: args.cache_dir,
        allow_unverified: args.allow_unverified,
        max_image_size: args.max_image_size,
    };
    let http = Http::new(HttpPolicy::default())?;
    let progress = crate::progress::sink(out.show_progress());
    Ok(talos::build(&request, &http, cancel, &progress).await?)
}
