//! `labflash incus fetch`: an IncusOS image by channel and arch, verified against the index, whose
//! signature is verified against the IncusOS root. `labflash incus build`: labctl's IncusOS
//! image build, from its config unchanged.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use labflash_core::fetch::cache::Cache;
use labflash_core::sources::incus::{self, IncusFetched, IncusRequest};
use labflash_core::sources::incus_build::{self, BuildRequest, Built};
use labflash_core::CancellationToken;

use crate::fetch::parse_size;
use crate::net::NetArgs;
use crate::output::{Failure, Output};

#[derive(Subcommand)]
pub enum IncusCommand {
    /// Fetch the newest IncusOS image of a channel (or an exact version), verified against the index.
    Fetch(IncusFetchArgs),
    /// Build labctl's seeded IncusOS image from its image build config (labctl bootstrap incusos
    /// image build).
    Build(IncusBuildArgs),
}

#[derive(Args)]
pub struct IncusBuildArgs {
    /// labctl's IncusOS image build YAML, or - for standard input (paths are then relative to the
    /// current folder).
    #[arg(value_name = "CONFIG.yaml | -")]
    pub config: String,
    /// The root certificate (PEM) the signature of index.sjson (beside the config's indexURL)
    /// must chain to, for a private mirror [default: IncusOS's own "Root E1", built in].
    #[arg(long, value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// Read the config's indexURL unsigned, as labctl does (only over https, as incus-osd allows it).
    #[arg(long, conflicts_with = "trust_root")]
    pub unsigned_index: bool,
    #[command(flatten)]
    pub secrets: crate::secrets::SecretsArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Args)]
pub struct IncusFetchArgs {
    /// The IncusOS index: its signed index.sjson (or, with --unsigned-index, an index.json).
    #[arg(long, value_name = "URL", default_value = incus::DEFAULT_INDEX)]
    pub index_url: String,
    /// The root certificate (PEM) the index's signature must chain to, for a private mirror
    /// [default: IncusOS's own "Root E1", built in].
    #[arg(long, value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// Read --index-url as an unsigned index.json (only over https, as incus-osd allows it).
    #[arg(long)]
    pub unsigned_index: bool,
    /// Where the index's update paths are rooted.
    #[arg(long, value_name = "URL", default_value = incus::DEFAULT_BASE)]
    pub base_url: String,
    #[arg(long, default_value = "stable")]
    pub channel: String,
    #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "aarch64"])]
    pub arch: String,
    /// An exact version, or latest.
    #[arg(long, default_value = "latest")]
    pub version: String,
    /// Cache folder [default: $LABFLASH_CACHE_DIR, else the platform's cache folder].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Largest decompressed image accepted, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4GiB")]
    pub max_image_size: u64,
    /// A folder of install seed files (install.yaml, incus.yaml, …) to write into the image.
    #[arg(long, value_name = "DIR")]
    pub seed: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
}

pub async fn run(command: IncusCommand, out: &Output, cancel: &CancellationToken) -> ExitCode {
    let args = match command {
        IncusCommand::Fetch(args) => args,
        IncusCommand::Build(args) => return build_command(&args, out, cancel).await,
    };
    match fetch(args, out, cancel).await {
        Ok(f) => out.warn_then(&f.warnings).success(&f, || {
            let index = match &f.index_signed_by {
                Some(signer) => format!("signed by {signer}"),
                None => "unsigned: read over https only".into(),
            };
            format!(
                "image          {}\nimage sha256   {}\nversion        {}\narchive sha256 {} (matches the index)\nindex          {index}\n",
                f.image_path.display(),
                f.image_sha256,
                f.source_version,
                f.archive_sha256
            )
        }),
        Err(failure) => out.fail(failure),
    }
}

async fn fetch(
    args: IncusFetchArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<IncusFetched, Failure> {
    let cache = Cache::open(Cache::resolve_dir(args.cache_dir.as_deref())?)?;
    let http = args.net.http()?;
    let request = IncusRequest {
        index_url: args.index_url,
        base_url: args.base_url,
        channel: args.channel,
        arch: args.arch,
        version: (args.version != "latest").then_some(args.version),
        max_image_size: args.max_image_size,
        seed: args.seed,
        trust_root: args.trust_root,
        unsigned: args.unsigned_index,
    };
    let progress = crate::progress::sink(out.show_progress());
    Ok(incus::fetch(&http, &cache, &request, cancel, &progress).await?)
}

async fn build_command(
    args: &IncusBuildArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> ExitCode {
    match build(args, out, cancel).await {
        // labctl prints one compact line, and the artifact's path for people; labflash adds
        // each seeded client certificate's fingerprint, for the operator to check.
        Ok(b) => {
            let notes: Vec<String> = b
                .client_certificates
                .iter()
                .map(|c| {
                    format!(
                        "trusted client certificate {:?}: sha256 {}, subject {}",
                        c.name, c.sha256, c.subject
                    )
                })
                .collect();
            out.warn_then(&b.warnings)
                .note_then(&notes)
                .success_line(&b, || format!("{}\n", b.artifact_path.display()))
        }
        Err(f) => out.fail(f),
    }
}

async fn build(
    args: &IncusBuildArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Built, Failure> {
    // labctl names the config in its errors as given, or stdin.yaml; relative paths are the
    // config's folder's (the current folder for standard input).
    let (name, text, base_dir) = crate::config_input::read(&args.config)?;
    let request = BuildRequest {
        build: incus_build::parse(&name, &text)?,
        base_dir,
        trust_root: args.trust_root.clone(),
        unsigned_index: args.unsigned_index,
    };
    let secrets = args.secrets.resolver()?;
    let http = args.net.http()?;
    let progress = crate::progress::sink(out.show_progress());
    Ok(incus_build::build(&request, secrets.as_ref(), &http, cancel, &progress).await?)
}
