//! `labflash`: the command line over labflash-core. It parses arguments, wires Ctrl-C to the
//! engine's cancel token and a terminal progress bar to its progress sink, and turns results into
//! human text or one JSON object, and errors into the exit codes of the CLI contract.

mod cidata;
mod config_input;
mod confirm;
mod drives;
mod fetch;
mod flash;
mod incus;
mod lab;
mod net;
mod output;
mod progress;
mod secrets;
mod talos;
mod verify;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use labflash_core::CancellationToken;

use crate::output::{Failure, Output};

#[derive(Parser)]
#[command(
    name = "labflash",
    version,
    about = "Fetch, verify and flash OS images (Talos Linux, IncusOS, any image)"
)]
struct Cli {
    /// Print exactly one JSON object on stdout and nothing else there.
    #[arg(long, global = true)]
    json: bool,

    /// No progress and only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// More log detail on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download an image, verify it against its published SHA-256 and decompress it into the cache.
    Fetch(fetch::FetchArgs),
    /// List the drives that can be flashed.
    Drives(drives::DrivesArgs),
    /// Write an image to drives or files and prove each by reading it back.
    Flash(flash::FlashArgs),
    /// Flash a lab in one run: one image, every node's stick with its own Talos config.
    Lab(lab::LabArgs),
    /// Check that a drive or image file holds exactly the expected image. Writes nothing.
    Verify(verify::VerifyArgs),
    /// Talos Linux images from an Image Factory.
    #[command(subcommand)]
    Talos(talos::TalosCommand),
    /// IncusOS images from its index.
    #[command(subcommand)]
    Incus(incus::IncusCommand),
    /// Build the NoCloud config image (FAT, label CIDATA) holding a Talos machine config.
    Cidata(cidata::CidataArgs),
    /// The privileged helper, run by `flash` behind the system's prompt (pkexec, UAC); speaks
    /// over stdin/stdout, or on Windows the named pipes the app made for it.
    #[command(hide = true)]
    Helper {
        /// A drive the request may write (shown in polkit's prompt); repeated for each.
        #[arg(long = "target", value_name = "DRIVE")]
        targets: Vec<std::path::PathBuf>,
        /// Windows: the name of the app's pipes (`NAME-request`, `NAME-answer`).
        #[arg(long, value_name = "NAME")]
        pipe: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::usage_error(e),
    };
    init_logging(cli.quiet, cli.verbose);
    let out = Output::new(cli.json, cli.quiet);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return out.fail(Failure::other(format!("cannot start the runtime: {e}"))),
    };
    let cancel = CancellationToken::new();
    runtime.block_on(async {
        tokio::spawn(cancel_on_signals(cancel.clone()));
        match cli.command {
            Command::Fetch(args) => fetch::run(args, &out, &cancel).await,
            Command::Drives(args) => drives::run(args, &out),
            Command::Flash(args) => flash::run(args, &out, &cancel).await,
            Command::Lab(args) => lab::run(args, &out, &cancel).await,
            Command::Verify(args) => verify::run(args, &out, &cancel).await,
            Command::Cidata(args) => cidata::run(args, &out),
            Command::Talos(command) => talos::run(command, &out, &cancel).await,
            Command::Incus(command) => incus::run(command, &out, &cancel).await,
            Command::Helper { targets, pipe } => {
                let served =
                    labflash_core::io::privilege::serving_streams(pipe.as_deref(), &cancel)
                        .and_then(|(input, output)| {
                            labflash_core::flash::helper::serve(input, output, &targets, &cancel)
                        });
                match served {
                    Ok(reports) => ExitCode::from(flash::exit_code(&reports)),
                    Err(e) => out.fail(e.into()),
                }
            }
        }
    })
}

/// Ctrl-C (and SIGTERM, or Ctrl-Break and closing the console) trips the cancel token; the
/// engine then stops and cleans up.
async fn cancel_on_signals(cancel: CancellationToken) {
    labflash_core::io::signals::interrupted().await;
    tracing::warn!("interrupted; stopping and cleaning up");
    cancel.cancel();
}

fn init_logging(quiet: bool, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    // The platform verifier logs every refused certificate as an error of its own; labflash's
    // error explains the refusal once, so its log is shown only when RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},rustls_platform_verifier=off")));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    /// clap checks its own definitions (unique names, valid defaults) only when asked to.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
