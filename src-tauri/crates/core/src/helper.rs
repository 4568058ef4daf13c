//! The privileged helper, for machines where the user may neither open a drive nor reach UDisks2:
//! the front end starts `pkexec labflash helper` and the two talk over the helper's stdin and
//! stdout only, never a socket. First line in: the request (JSON); then the image's bytes. Lines
//! out: progress, then the result. The helper applies the target rules itself and reads the image
//! from its stdin, so it never opens a file on the user's behalf, and checks the bytes against the
//! digest while writing them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::digest::Sha256Digest;
use crate::drives::SystemRoots;
use crate::error::{Error, ErrorKind, Result};
use crate::flash::{self, Plan, Privilege};
use crate::progress::{Progress, ProgressSink};
use crate::target::TargetOptions;
use crate::write::{FlashOptions, Image, Tail, TargetReport};
use crate::CancellationToken;

/// The subcommand the front end runs under pkexec.
pub const SUBCOMMAND: &str = "helper";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub targets: Vec<PathBuf>,
    /// Files whose drives must not be written (the source, the cache folder).
    pub protected: Vec<PathBuf>,
    pub unmount: bool,
    pub allow_fixed: bool,
    pub verify: bool,
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

/// The helper's side: serves one flash over `input`/`output` (its stdin and stdout).
pub fn serve(input: impl Read + Send, output: impl Write + Send) -> Result<()> {
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
    let request: Request = serde_json::from_str(&line)
        .map_err(|e| Error::BadInput(format!("a malformed request: {e}")))?;
    let result = serve_request(&request, &mut input, &|p| send(&Message::Progress(p)));
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
    };
    let roots = SystemRoots::default();
    // The rules again, as root: the unprivileged side's checks are not trusted.
    let plan = flash::plan(
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

/// The front end's side: runs the helper through pkexec, feeds it the image file, relays its
/// progress, and returns its reports. Cancelling stops feeding the image; the helper then stops.
pub fn run_privileged(
    program: &Path,
    plan: &Plan,
    image: &mut (dyn Read + Send),
    privilege: &Privilege,
    flash_options: &FlashOptions,
    cancel: &CancellationToken,
    progress: &dyn ProgressSink,
) -> Result<Vec<TargetReport>> {
    let request = Request {
        sha256: plan.image.sha256,
        size: plan.image.size,
        targets: plan.targets.iter().map(|t| t.path.clone()).collect(),
        protected: privilege
            .protected
            .iter()
            .map(|p| p.to_path_buf())
            .collect(),
        unmount: privilege.options.unmount,
        allow_fixed: privilege.options.allow_fixed,
        verify: flash_options.verify,
        tail_offset: plan.image.tail.as_ref().map(|t| t.offset),
        tail_hex: plan.image.tail.as_ref().map(|t| hex::encode(&t.bytes)),
    };
    tracing::info!("no direct or UDisks2 access to the targets; asking pkexec to run the helper");
    let mut child = Command::new("pkexec")
        .arg(program)
        .arg(SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Permission {
            target: describe_targets(plan),
            detail: format!("pkexec could not be started: {e}"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let request_line = serde_json::to_string(&request).expect("the request serializes");

    let result = std::thread::scope(|scope| {
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
        outcome
    });
    let status = child.wait().map_err(|e| Error::io(program, e))?;
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
            detail: format!(
                "pkexec did not run the helper ({status}); it needs polkit's consent, usually a password prompt"
            ),
        }),
    }
}

fn describe_targets(plan: &Plan) -> String {
    plan.targets
        .iter()
        .map(|t| t.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
