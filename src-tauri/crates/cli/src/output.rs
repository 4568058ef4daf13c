//! Results and errors as the CLI contract wants them: with `--json`, exactly one JSON object on
//! stdout (also for failures); otherwise human text. Exit codes: 0 success, 1 digest mismatch,
//! 2 bad input or usage, 3 any other failure.

use std::io::IsTerminal;
use std::process::ExitCode;

use labflash_core::{Error, ErrorKind};

pub const EXIT_MISMATCH: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_FAILURE: u8 = 3;

pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

/// A failure ready to print: one sentence and an exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::DigestMismatch => EXIT_MISMATCH,
            ErrorKind::BadInput => EXIT_USAGE,
            ErrorKind::Cancelled | ErrorKind::Failure => EXIT_FAILURE,
        };
        // Hints name CLI flags, so they belong here rather than in the engine.
        let hint = match &e {
            Error::NoExpectedDigest { .. } => {
                "; pass the digest you expect with --sha256 HEX, or accept the download unverified with --allow-unverified"
            }
            Error::ImageTooLarge { .. } => " (--max-image-size)",
            Error::FactoryUnauthorized { .. } => {
                ": give --factory-token or user:password in --factory-url (in source.factoryURL for a build)"
            }
            _ => "",
        };
        Self {
            message: format!("{e}{hint}"),
            code,
        }
    }
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// Whether a progress bar may be drawn: only for a person watching stderr.
    pub fn show_progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// Prints a success: the JSON object, or the human lines.
    pub fn success<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> ExitCode {
        self.result(value, human, 0)
    }

    /// Like `success`, with the JSON object on one line (labctl's `--json`).
    pub fn success_line<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> ExitCode {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(value).expect("results serialize")
            );
            ExitCode::SUCCESS
        } else {
            self.success(value, human)
        }
    }

    /// Prints each warning on stderr (also with `--json`, whose object carries them too).
    pub fn warn_then(&self, warnings: &[String]) -> &Self {
        if !self.quiet {
            for w in warnings {
                eprintln!("labflash: warning: {w}");
            }
        }
        self
    }

    /// Prints each note on stderr for a person (not with `--json`, whose object carries them,
    /// nor with `--quiet`).
    pub fn note_then(&self, notes: &[String]) -> &Self {
        if !self.quiet && !self.json {
            for n in notes {
                eprintln!("labflash: {n}");
            }
        }
        self
    }

    /// Prints a result that carries its own exit code (a verify mismatch, a failed target).
    pub fn result<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
        code: u8,
    ) -> ExitCode {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("results serialize")
            );
        } else {
            print!("{}", human());
        }
        ExitCode::from(code)
    }

    pub fn fail(&self, failure: Failure) -> ExitCode {
        eprintln!("labflash: {}", failure.message);
        if self.json {
            print_json_error(&failure);
        }
        ExitCode::from(failure.code)
    }
}

fn print_json_error(failure: &Failure) {
    let value = serde_json::json!({ "error": failure.message, "exitCode": failure.code });
    println!("{value}");
}

/// clap's errors: help and version exit 0 as usual; anything else is a usage error (exit 2),
/// reported as JSON too when `--json` was among the arguments.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    if std::env::args().any(|a| a == "--json") {
        let message = e.kind().as_str().unwrap_or("invalid usage").to_string();
        let detail = e.to_string();
        let first = detail.lines().next().unwrap_or(&message);
        let first = first.trim_start_matches("error: ").to_string();
        print_json_error(&Failure::usage(first));
    }
    ExitCode::from(EXIT_USAGE)
}
