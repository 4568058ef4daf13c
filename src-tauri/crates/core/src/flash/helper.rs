//! The privileged helper, for machines where the user may neither open a drive nor reach UDisks2:
//! the front end starts `pkexec /usr/libexec/labflash/labflash helper --target /dev/sdb …` and the
//! two talk over the helper's stdin and stdout only, never a socket. First line in: the request
//! (JSON); then the image's bytes. Lines out: progress, then the result.
//!
//! It runs as root on an unprivileged process's word, so it trusts nothing of it: it writes only
//! whole-disk block devices named by their own path (no regular file, no missing path, no
//! symlink, no partition), each matched by identity (device number, diskseq, serial, size) and
//! re-approved with every rule; the targets on its command line (which polkit's prompt shows)
//! must be the request's; it reads the image from its stdin, so it opens no file on the user's
//! behalf, and checks the bytes against the digest while writing them. The front end starts it
//! only from a root-owned path that neither group nor others can write (see [`installed`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::fetch::digest::Sha256Digest;
use crate::flash::rules::{Chosen, TargetOptions};
use crate::flash::writer::{FlashOptions, TargetReport};
use crate::flash::{self, Privilege, Writing};
use crate::image::{Image, Tail};
use crate::io::device::Access;
use crate::io::drives::SystemRoots;
use crate::progress::{Progress, ProgressSink};
use crate::CancellationToken;

/// The subcommand the front end runs under pkexec.
pub const SUBCOMMAND: &str = "helper";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// Drives by identity: one that is not the drive the user chose is refused.
    pub targets: Vec<Chosen>,
    /// Files whose drives must not be written (the source, the cache folder).
    pub protected: Vec<PathBuf>,
    pub unmount: bool,
    pub allow_fixed: bool,
    pub verify: bool,
    pub skip_equal: bool,
    /// The backup GPT of a one-stick flash: where, and its bytes in hex.
    pub tail_offset: Option<u64>,
    pub tail_hex: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Message {
    Progress(Progress),
    Done { targets: Vec<Outcome> },
    Failed { message: String, kind: ErrorKind },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Outcome {
    report: TargetReport,
    kind: Option<ErrorKind>,
}

/// Where the package installs the helper (the `labflash` binary), and the path its polkit action
/// names.
pub const INSTALLED: &str = "/usr/libexec/labflash/labflash";

/// The helper to run under pkexec: `/usr/libexec/labflash/labflash` (or `$LABFLASH_HELPER`), only
/// if it and every folder above it belong to root and neither group nor others can write them.
/// Otherwise any process of the user could replace it before the next password prompt.
pub fn installed() -> Result<PathBuf> {
    let path = std::env::var_os("LABFLASH_HELPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(INSTALLED));
    let not_installed = |why: String| {
        Error::Permission {
        target: "the drives".into(),
        detail: format!(
            "labflash's privileged helper is not installed safely ({why}): install the labflash package, which puts it in {INSTALLED}, or run labflash as root"
        ),
    }
    };
    if !path.is_absolute() {
        return Err(not_installed(format!(
            "{} is not an absolute path",
            path.display()
        )));
    }
    let mut at = Some(path.as_path());
    while let Some(p) = at {
        let meta = std::fs::symlink_metadata(p)
            .map_err(|e| not_installed(format!("{}: {e}", p.display())))?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 || meta.file_type().is_symlink() {
            return Err(not_installed(format!(
                "{} is not root's alone",
                p.display()
            )));
        }
        at = p.parent();
    }
    Ok(path)
}

/// The helper's side: serves one flash over `input`/`output` (its stdin and stdout). `argv_targets`
/// are the targets on its command line: the request must name exactly those.
pub fn serve(
    input: impl Read + Send,
    output: impl Write + Send,
    argv_targets: &[PathBuf],
) -> Result<()> {
    let output = Mutex::new(output);
    let send = |m: &Message| {
        let mut out = output.lock().expect("helper output");
        let _ = serde_json::to_writer(&mut *out, m);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let mut input = BufReader::new(input);
    let mut line = String::new();
    (&mut input)
        .take(1 << 20)
        .read_line(&mut line)
        .map_err(|e| Error::BadInput(format!("no request: {e}")))?;
    let request = parse_request(line.as_bytes())?;
    let named: Vec<&Path> = request.targets.iter().map(|t| t.path.as_path()).collect();
    let result = if named
        != argv_targets
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>()
    {
        Err(Error::BadInput(
            "the request names other targets than the command line (which polkit showed)".into(),
        ))
    } else if request.targets.iter().any(|t| t.identity.is_none()) {
        Err(Error::BadInput(
            "the helper writes drives by identity only".into(),
        ))
    } else {
        serve_request(&request, &mut input, &|p| send(&Message::Progress(p)))
    };
    match result {
        Ok(reports) => send(&Message::Done {
            targets: reports
                .into_iter()
                .map(|r| Outcome {
                    kind: r.error_kind,
                    report: r,
                })
                .collect(),
        }),
        Err(e) => send(&Message::Failed {
            message: e.to_string(),
            kind: e.kind(),
        }),
    }
    Ok(())
}

/// The request line the front end sends first (JSON), as the helper reads it. Pure, so fuzzed.
pub fn parse_request(bytes: &[u8]) -> Result<Request> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadInput(format!("a malformed request: {e}")))
}

fn serve_request(
    request: &Request,
    image_bytes: &mut (dyn Read + Send),
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<TargetReport>> {
    let tail = match (request.tail_offset, &request.tail_hex) {
        (Some(offset), Some(hex_bytes)) => Some(Tail {
            offset,
            bytes: hex::decode(hex_bytes)
                .map_err(|e| Error::BadInput(format!("a malformed tail: {e}")))?,
        }),
        _ => None,
    };
    let image = Image {
        path: PathBuf::from("(standard input)"),
        sha256: request.sha256,
        size: request.size,
        tail,
    };
    let protected: Vec<&Path> = request.protected.iter().map(PathBuf::as_path).collect();
    let options = TargetOptions {
        unmount: request.unmount,
        allow_fixed: request.allow_fixed,
        whole_drives_only: true,
    };
    let roots = SystemRoots::default();
    // The rules again, as root: the unprivileged side's checks are not trusted.
    let plan = flash::plan_writing(
        image,
        &request.targets,
        None,
        &options,
        &protected,
        &roots,
        &CancellationToken::new(),
    )?;
    let flash_options = FlashOptions {
        verify: request.verify,
        skip_equal: request.skip_equal,
    };
    flash::execute_from(
        &plan,
        image_bytes,
        &flash_options,
        &roots,
        &CancellationToken::new(),
        &progress,
    )
}

/// The front end's side: runs the installed helper through pkexec, feeds it the image file,
/// relays its progress, and returns its reports. Cancelling stops feeding the image; the helper
/// then stops.
pub fn run_privileged(
    plan: &Writing,
    image: &mut (dyn Read + Send),
    privilege: &Privilege,
    flash_options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    let program = installed()?;
    let targets: Vec<Chosen> = plan
        .targets
        .iter()
        .map(|t| Chosen {
            path: t.path.clone(),
            identity: t.drive.as_ref().map(|d| d.identity.clone()),
        })
        .collect();
    let request = Request {
        sha256: plan.image.sha256,
        size: plan.image.size,
        targets: targets.clone(),
        protected: privilege
            .protected
            .iter()
            .map(|p| p.to_path_buf())
            .collect(),
        unmount: privilege.options.unmount,
        allow_fixed: privilege.options.allow_fixed,
        verify: flash_options.verify,
        skip_equal: flash_options.skip_equal,
        tail_offset: plan.image.tail.as_ref().map(|t| t.offset),
        tail_hex: plan.image.tail.as_ref().map(|t| hex::encode(&t.bytes)),
    };
    tracing::info!("no direct or UDisks2 access to the targets; asking pkexec to run the helper");
    let mut command = Command::new("pkexec");
    command.arg(&program).arg(SUBCOMMAND);
    for t in &targets {
        command.arg("--target").arg(&t.path);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Permission {
            target: describe_targets(plan),
            detail: format!("pkexec could not be started: {e}"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let request_line = serde_json::to_string(&request).expect("the request serializes");

    let (result, said) = std::thread::scope(|scope| {
        // pkexec's own words (no agent, dismissed prompt), kept for the error's details.
        let said = scope.spawn(move || {
            let mut text = String::new();
            let _ = (&mut stderr).take(64 << 10).read_to_string(&mut text);
            text
        });
        scope.spawn(move || {
            // A write error means the helper is gone; its own message says why.
            let _ = writeln!(stdin, "{request_line}");
            let mut buf = vec![0u8; 1 << 20];
            while !cancel.is_cancelled() {
                match image.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stdin.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut outcome = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Message>(&line) {
                Ok(Message::Progress(p)) => progress.report(p),
                Ok(Message::Done { targets }) => {
                    outcome = Some(Ok(targets
                        .into_iter()
                        .map(|o| TargetReport {
                            error_kind: o.kind,
                            access: Some(Access::Helper),
                            ..o.report
                        })
                        .collect::<Vec<_>>()))
                }
                Ok(Message::Failed { message, kind }) => {
                    outcome = Some(Err(match kind {
                        ErrorKind::BadInput => Error::BadInput(message),
                        _ => Error::Permission {
                            target: describe_targets(plan),
                            detail: format!("the helper failed: {message}"),
                        },
                    }))
                }
                Err(e) => tracing::warn!("unexpected helper output: {e}"),
            }
        }
        (outcome, said.join().unwrap_or_default())
    });
    let status = child.wait().map_err(|e| Error::io(&program, e))?;
    if !said.trim().is_empty() {
        tracing::info!("pkexec and the helper said: {}", said.trim());
    }
    match result {
        Some(Ok(mut reports)) => {
            if cancel.is_cancelled() {
                for r in reports.iter_mut().filter(|r| !r.ok) {
                    r.error = Some(Error::Cancelled.to_string());
                    r.error_kind = Some(ErrorKind::Cancelled);
                }
            }
            Ok(reports)
        }
        Some(Err(e)) => Err(e),
        None => Err(Error::Permission {
            target: describe_targets(plan),
            detail: pkexec_failure(status.code(), said.trim()),
        }),
    }
}

/// What went wrong when pkexec did not run the helper, and what to do, from its exit status and
/// its words (which follow, as details).
fn pkexec_failure(code: Option<i32>, said: &str) -> String {
    let what = if said.contains("authentication agent") {
        "no polkit authentication agent is running, so nobody can be asked for the password: log in to a desktop session, or run labflash as root"
    } else if code == Some(126) {
        "the password prompt was dismissed or the password was wrong: try again"
    } else if code == Some(127) {
        "pkexec could not ask for authorization: log in to a desktop session, or run labflash as root"
    } else {
        "pkexec did not run the helper: it needs polkit's consent, usually a password prompt"
    };
    if said.is_empty() {
        what.to_string()
    } else {
        format!("{what} (pkexec: {})", said.lines().next().unwrap_or(said))
    }
}

fn describe_targets(plan: &Writing) -> String {
    plan.targets
        .iter()
        .map(|t| t.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkexec_failures_say_what_to_do_then_what_pkexec_said() {
        let no_agent = pkexec_failure(
            Some(127),
            "Error creating textual authentication agent: Error opening current controlling terminal",
        );
        assert!(
            no_agent.starts_with("no polkit authentication agent is running"),
            "{no_agent}"
        );
        assert!(
            no_agent.contains("(pkexec: Error creating textual"),
            "{no_agent}"
        );
        let dismissed = pkexec_failure(Some(126), "");
        assert!(dismissed.contains("dismissed"), "{dismissed}");
    }

    #[test]
    fn a_helper_in_a_folder_others_can_write_is_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("labflash");
        std::fs::write(&helper, b"").unwrap();
        std::env::set_var("LABFLASH_HELPER", &helper);
        let err = installed().unwrap_err().to_string();
        std::env::remove_var("LABFLASH_HELPER");
        assert!(err.contains("install the labflash package"), "{err}");
    }
}
