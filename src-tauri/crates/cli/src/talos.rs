//! `labflash talos …`: Talos Linux images. `build` takes labctl's ImageBuild YAML unchanged.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use labflash_core::fetch::credentials::Secret;
use labflash_core::fetch::http::Http;
use labflash_core::sources::talos_build::{self, BuildRequest, Built};
use labflash_core::sources::talos_factory::{
    self, AssetRequest, Customization, Factory, FetchedAsset,
};
use labflash_core::CancellationToken;

use crate::fetch::{parse_size, SourceArgs};
use crate::net::NetArgs;
use crate::output::{Failure, Output};

#[derive(Subcommand)]
pub enum TalosCommand {
    /// Build the boot image and the cidata config image from a labctl ImageBuild config.
    Build(BuildArgs),
    /// The Talos versions the factory offers, newest first, pre-releases marked.
    Versions(FactoryArgs),
    /// The official system extensions of a version.
    Extensions(ExtensionsArgs),
    /// The official board overlays of a version (single-board computers: Raspberry Pi, …).
    Overlays(ExtensionsArgs),
    /// Create (or look up) the schematic for extensions and kernel arguments; prints its ID.
    Schematic(SchematicArgs),
    /// Fetch and verify an image by version, extensions, platform, arch and format.
    // Boxed: its paths make it the largest variant by far (more so on Windows).
    Fetch(Box<TalosFetchArgs>),
}

#[derive(Args)]
pub struct FactoryArgs {
    /// The Image Factory; an Enterprise one's credentials may be in it: https://USER:PASSWORD@host
    /// (HTTP Basic) or ?token=TOKEN (a download token). They are never printed.
    #[arg(long, value_name = "URL", default_value = talos_factory::DEFAULT_FACTORY)]
    pub factory_url: String,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Args)]
pub struct TokenArgs {
    /// An Enterprise Image Factory's download token, sent as ?token= and never printed; in place
    /// of a ?token= in the factory URL.
    // The value is a secret: --help must not show it from the environment.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LABFLASH_FACTORY_TOKEN",
        hide_env_values = true
    )]
    pub factory_token: Option<String>,
}

impl TokenArgs {
    fn secret(&self) -> Option<Secret> {
        self.factory_token.as_deref().map(Secret::new)
    }
}

#[derive(Args)]
pub struct ExtensionsArgs {
    /// The Talos version, e.g. v1.13.0.
    #[arg(long, value_name = "V")]
    pub version: String,
    #[command(flatten)]
    pub factory: FactoryArgs,
}

#[derive(Args)]
pub struct CustomArgs {
    /// An official extension (siderolabs/iscsi-tools or just iscsi-tools); repeat for more.
    #[arg(long = "extension", value_name = "NAME")]
    pub extensions: Vec<String>,
    /// An extra kernel argument; repeat for more.
    #[arg(long = "kernel-arg", value_name = "ARG")]
    pub kernel_args: Vec<String>,
}

#[derive(Args)]
pub struct SchematicArgs {
    #[command(flatten)]
    pub custom: CustomArgs,
    #[command(flatten)]
    pub factory: FactoryArgs,
}

#[derive(Args)]
pub struct TalosFetchArgs {
    /// The Talos version, e.g. v1.13.0.
    #[arg(long, value_name = "V")]
    pub version: String,
    #[command(flatten)]
    pub custom: CustomArgs,
    /// A board overlay by its official name (see `talos overlays`), for a single-board computer.
    #[arg(long, value_name = "NAME")]
    pub overlay: Option<String>,
    /// A schematic ID instead of extensions, kernel arguments and an overlay.
    #[arg(long, value_name = "ID", conflicts_with_all = ["extensions", "kernel_args", "overlay"])]
    pub schematic: Option<String>,
    /// nocloud (the default, as labctl's: the platform that reads the cidata config labflash
    /// builds; with no config it boots to maintenance mode as metal does), metal, aws, …
    #[arg(long, default_value = "nocloud")]
    pub platform: String,
    #[arg(long, default_value = "amd64", value_parser = ["amd64", "arm64"])]
    pub arch: String,
    /// The secure boot variant of the asset.
    #[arg(long)]
    pub secureboot: bool,
    /// raw.xz, raw.zst, iso, …
    #[arg(long, default_value = "raw.xz")]
    pub format: String,
    #[command(flatten)]
    pub factory: FactoryArgs,
    #[command(flatten)]
    pub key: FactoryKeyArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Args)]
pub struct FactoryKeyArgs {
    /// An Enterprise Image Factory's public key (PEM), to check its signed assets with in place
    /// of the key it serves (which is otherwise pinned on first use); no key is fetched.
    #[arg(long, value_name = "FILE")]
    pub factory_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The ImageBuild YAML, or - for standard input (paths are then relative to the current folder).
    #[arg(value_name = "CONFIG.yaml | -")]
    pub config: String,

    /// labflash's cache, for the decoded boot image and the locks [default: $LABFLASH_CACHE_DIR,
    /// else the platform's cache folder]. The archive is kept where labctl keeps it,
    /// <output dir's parent>/downloads/talos, and nothing else is put there.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Accept a factory that publishes no .sha256 files (self-hosted community builds).
    #[arg(long)]
    pub allow_unverified: bool,

    /// Largest decompressed boot image accepted, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4GiB")]
    pub max_image_size: u64,

    #[command(flatten)]
    pub token: TokenArgs,

    #[command(flatten)]
    pub key: FactoryKeyArgs,

    #[command(flatten)]
    pub net: NetArgs,
}

pub async fn run(command: TalosCommand, out: &Output, cancel: &CancellationToken) -> ExitCode {
    let net = match &command {
        // A build's config may name a CA of its own: it makes its client after reading it.
        TalosCommand::Build(args) => return build_command(args, out, cancel).await,
        TalosCommand::Versions(a) => &a.net,
        TalosCommand::Extensions(a) | TalosCommand::Overlays(a) => &a.factory.net,
        TalosCommand::Schematic(a) => &a.factory.net,
        TalosCommand::Fetch(a) => &a.factory.net,
    };
    let http = match net.http() {
        Ok(h) => h,
        Err(f) => return out.fail(f),
    };
    match command {
        TalosCommand::Versions(args) => {
            let listed = async {
                Factory::new(&http, &args.factory_url, args.token.secret().as_ref())?
                    .versions(cancel)
                    .await
            }
            .await;
            match listed {
                Ok(v) => out.success(&v, || {
                    v.iter()
                        .map(|v| {
                            format!(
                                "{}{}\n",
                                v.version,
                                if v.prerelease { "  (pre-release)" } else { "" }
                            )
                        })
                        .collect()
                }),
                Err(e) => out.fail(e.into()),
            }
        }
        TalosCommand::Extensions(args) => {
            let listed = async {
                Factory::new(
                    &http,
                    &args.factory.factory_url,
                    args.factory.token.secret().as_ref(),
                )?
                    .extensions(&args.version, cancel)
                    .await
            }
            .await;
            match listed {
                Ok(list) => out.success(&list, || {
                    list.iter()
                        .map(|e| format!("{:<40} {}\n", e.name, e.description))
                        .collect()
                }),
                Err(e) => out.fail(e.into()),
            }
        }
        TalosCommand::Overlays(args) => {
            let listed = async {
                Factory::new(
                    &http,
                    &args.factory.factory_url,
                    args.factory.token.secret().as_ref(),
                )?
                .overlays(&args.version, cancel)
                .await
            }
            .await;
            match listed {
                Ok(list) => out.success(&list, || {
                    list.iter()
                        .map(|o| format!("{:<24} {}\n", o.name, o.image))
                        .collect()
                }),
                Err(e) => out.fail(e.into()),
            }
        }
        TalosCommand::Schematic(args) => {
            let custom = Customization {
                extensions: args.custom.extensions,
                kernel_args: args.custom.kernel_args,
                overlay: None,
            };
            let made = async {
                Factory::new(
                    &http,
                    &args.factory.factory_url,
                    args.factory.token.secret().as_ref(),
                )?
                    .schematic(&custom, None, cancel)
                    .await
            }
            .await;
            match made {
                Ok(id) => out.success(&serde_json::json!({ "id": id }), || format!("{id}\n")),
                Err(e) => out.fail(e.into()),
            }
        }
        TalosCommand::Fetch(args) => match talos_fetch(*args, &http, out, cancel).await {
            Ok(f) => out.warn_then(&crate::fetch::not_flashable(&f.fetched)).success(&f, || {
                let signed = f
                    .fetched
                    .signed_by
                    .as_ref()
                    .map(|by| format!("signed by      {by}\n"))
                    .unwrap_or_default();
                format!(
                    "image          {}\nimage sha256   {}\nimage kind     {}\nschematic      {}\nversion        {}\n{signed}",
                    f.fetched.image_path.display(),
                    f.fetched.image_sha256,
                    f.fetched.image_kind,
                    f.schematic,
                    f.version,
                )
            }),
            Err(failure) => out.fail(failure),
        },
        TalosCommand::Build(_) => unreachable!("handled above"),
    }
}

async fn build_command(args: &BuildArgs, out: &Output, cancel: &CancellationToken) -> ExitCode {
    match build(args, out, cancel).await {
        // labctl prints one compact line, and its users match it line by line.
        Ok(b) => out.warn_then(&b.warnings).success_line(&b, || {
            format!(
                "{}\n{}\n",
                b.boot_artifact_path.display(),
                b.config_artifact_path.display()
            )
        }),
        Err(f) => out.fail(f),
    }
}

async fn talos_fetch(
    args: TalosFetchArgs,
    http: &Http,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<FetchedAsset, Failure> {
    let cache = args.source.cache()?;
    let request = AssetRequest {
        factory_token: args.factory.token.secret(),
        factory_url: args.factory.factory_url,
        factory_key: args.key.factory_key,
        version: args.version,
        schematic: args.schematic,
        customization: Customization {
            extensions: args.custom.extensions,
            kernel_args: args.custom.kernel_args,
            overlay: args.overlay,
        },
        platform: args.platform,
        arch: args.arch,
        secureboot: args.secureboot,
        format: args.format,
        sha256: args.source.sha256,
        allow_unverified: args.source.allow_unverified,
        max_image_size: args.source.max_image_size,
    };
    let progress = crate::progress::sink(out.show_progress());
    Ok(talos_factory::fetch_asset(http, &cache, &request, cancel, &progress).await?)
}

async fn build(
    args: &BuildArgs,
    out: &Output,
    cancel: &CancellationToken,
) -> Result<Built, Failure> {
    // Relative paths in the config are the config file's (labctl: its folder, or the current
    // folder for standard input); the engine makes them absolute and clean.
    let (_, text, base_dir) = crate::config_input::read(&args.config)?;
    let request = BuildRequest {
        build: talos_build::parse(&text)?,
        base_dir,
        allow_unverified: args.allow_unverified,
        max_image_size: args.max_image_size,
        factory_token: args.token.secret(),
        factory_key: args.key.factory_key.clone(),
    };
    let http = args.net.http()?;
    let progress = crate::progress::sink(out.show_progress());
    let cache = labflash_core::fetch::cache::Cache::open(
        labflash_core::fetch::cache::Cache::resolve_dir(args.cache_dir.as_deref())?,
    )?;
    Ok(talos_build::build(&request, &cache, &http, cancel, &progress).await?)
}
