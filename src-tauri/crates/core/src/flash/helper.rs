//! The privileged helper, for machines where the user may neither open a drive nor reach UDisks2:
//! the front end starts `labflash helper --target DRIVE …` behind the system's prompt (Linux:
//! `pkexec /usr/libexec/labflash/labflash`; Windows: UAC, see `io::privilege`) and the two talk
//! over two byte streams of the helper's own (its stdin and stdout; Windows' named pipes), never a
//! socket. First line in: the request (JSON); then the image's bytes. Lines out: progress, then
//! the result.
//!
//! It runs as root (administrator) on an unprivileged process's word, so it trusts nothing of it:
//! it writes only whole disks named by their own path (no regular file, no missing path, no
//! symlink, no partition), each matched by identity (device number, diskseq, serial, size) and
//! re-approved with every rule; the targets on its command line (which polkit's prompt shows)
//! must be the request's; it reads the image from its input, so it opens no file on the user's
//! behalf, and checks the bytes against the digest while writing them. On Linux the front end
//! starts it only from a root-owned path that neither group nor others can write.
//!
//! The request carries the front end's [`PROTOCOL`] and labflash version. A request of another
//! protocol, or with a field this helper does not know (at any depth), is refused before anything
//! is opened, naming both versions: a helper that skipped what it does not understand would write
//! a drive on half a request. Every refusal is answered as a `failed` message, so the front end
//! tells the helper's word from its launcher's.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::fetch::digest::Sha256Digest;
use crate::flash::rules::{Chosen, TargetOptions};
use crate::flash::writer::{FlashOptions, TargetReport};
use crate::flash::{self, Privilege, Writing};
use crate::image::{Image, Tail};
use crate::io::device::Access;
use crate::io::drives::SystemRoots;
use crate::io::privilege::HelperProcess;
use crate::progress::{Progress, ProgressSink};
use crate::CancellationToken;

/// The subcommand the front end runs behind the system's prompt.
pub const SUBCOMMAND: &str = "helper";

/// The version of the request and the answers. Whole numbers from 1 (a request without one
/// predates numbering: 0), one more with any change to [`Request`] or the answers (a field added,
/// removed, renamed or given another meaning). The helper serves its own number only: the app and
/// the helper ship in one package, so two numbers mean a half-done install or upgrade.
pub const PROTOCOL: u64 = 1;

/// The labflash version, named beside the protocol when the two sides disagree.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The front end's [`PROTOCOL`].
    pub protocol: u64,
    /// The front end's labflash version.
    pub version: String,
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

/// The helper's side: serves one flash over `input`/`output` (its stdin and stdout) and answers
/// with its reports or its refusal (returned too, for the exit status). `argv_targets` are the
/// targets on its command line: the request must name exactly those. Cancelling (SIGTERM, SIGINT)
/// stops the writing with each drive's first MiB wiped.
pub fn serve(
    input: impl Read + Send,
    output: impl Write + Send,
    argv_targets: &[PathBuf],
    cancel: &CancellationToken,
) -> Result<Vec<TargetReport>> {
    let output = Mutex::new(output);
    let send = |m: &Message| {
        let mut out = output.lock().expect("helper output");
        let _ = serde_json::to_writer(&mut *out, m);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let mut input = BufReader::new(input);
    let result = read_request(&mut input).and_then(|request| {
        check_targets(&request, argv_targets)?;
        serve_request(
            &request,
            &mut input,
            &|p| send(&Message::Progress(p)),
            cancel,
        )
    });
    match &result {
        Ok(reports) => send(&Message::Done {
            targets: reports
                .iter()
                .map(|r| Outcome {
                    kind: r.error_kind,
                    report: r.clone(),
                })
                .collect(),
        }),
        Err(e) => send(&Message::Failed {
            message: e.to_string(),
            kind: e.kind(),
        }),
    }
    result
}

fn read_request(input: &mut impl BufRead) -> Result<Request> {
    let mut line = Vec::new();
    input
        .take(1 << 20)
        .read_until(b'\n', &mut line)
        .map_err(|e| match crate::error::wraps(&e) {
            true => crate::error::from_io(Path::new("the request"), e),
            false => Error::BadInput(format!("the helper got no request: {e}")),
        })?;
    parse_request(&line)
}

/// The request line the front end sends first (JSON), as the helper reads it: of this
/// [`PROTOCOL`], with no field the helper does not know. Pure, so fuzzed.
pub fn parse_request(bytes: &[u8]) -> Result<Request> {
    let malformed =
        |e: &dyn std::fmt::Display| Error::BadInput(format!("a malformed request: {e}"));
    let sent: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    let protocol = match sent.get("protocol") {
        None => 0,
        Some(p) => p
            .as_u64()
            .ok_or_else(|| malformed(&"its protocol is not a whole number"))?,
    };
    if protocol != PROTOCOL {
        return Err(disagree(&sent, protocol, ""));
    }
    let request: Request = serde_json::from_value(sent.clone()).map_err(|e| malformed(&e))?;
    let known = serde_json::to_value(&request).expect("the request serializes");
    if let Some(field) = unknown_field(&sent, &known) {
        return Err(disagree(
            &sent,
            protocol,
            &format!(", which does not know the request's field {field:?}"),
        ));
    }
    Ok(request)
}

/// The refusal of a request from a front end of another labflash: one sentence naming both
/// versions; `more` ends the helper's clause.
fn disagree(sent: &serde_json::Value, protocol: u64, more: &str) -> Error {
    let app = match sent.get("version").and_then(serde_json::Value::as_str) {
        Some(v) => format!(
            "labflash {}",
            v.chars()
                .filter(|c| !c.is_control())
                .take(40)
                .collect::<String>()
        ),
        None => "a labflash from before helper protocols".into(),
    };
    Error::BadInput(format!(
        "the app and the installed helper disagree: the app is {app} (helper protocol {protocol}) and the helper is labflash {VERSION} (protocol {PROTOCOL}){more}; install the same labflash version for both"
    ))
}

/// The first field of `sent` that `known` (the request as read, written back) lacks, as a path
/// (`targets[0].identity.model`).
fn unknown_field(sent: &serde_json::Value, known: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (sent, known) {
        (Value::Object(sent), Value::Object(known)) => sent.iter().find_map(|(key, value)| {
            let Some(known) = known.get(key) else {
                return Some(key.clone());
            };
            unknown_field(value, known).map(|inner| match inner.starts_with('[') {
                true => format!("{key}{inner}"),
                false => format!("{key}.{inner}"),
            })
        }),
        (Value::Array(sent), Value::Array(known)) => sent
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (s, k))| unknown_field(s, k).map(|inner| format!("[{i}].{inner}"))),
        _ => None,
    }
}

/// The request must name exactly the drives on the command line (which polkit's prompt showed),
/// each by identity and by the kernel's own name in /dev: a path through a link or a user's folder
/// (`/tmp/u/d/sdb`, `d` → `/dev`) would show the prompt one path and write another.
fn check_targets(request: &Request, argv_targets: &[PathBuf]) -> Result<()> {
    let named: Vec<&Path> = request.targets.iter().map(|t| t.path.as_path()).collect();
    if named
        != argv_targets
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>()
    {
        return Err(Error::BadInput(
            "the request names other targets than the command line (which the system's prompt showed)".into(),
        ));
    }
    if request.targets.iter().any(|t| t.identity.is_none()) {
        return Err(Error::BadInput(
            "the helper writes drives by identity only".into(),
        ));
    }
    argv_targets
        .iter()
        .try_for_each(|path| crate::io::device::check_own_name(path))
}

fn serve_request(
    request: &Request,
    image_bytes: &mut (dyn Read + Send),
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
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
        cancel,
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
        cancel,
        &progress,
    )
}

/// The front end's side: starts the helper behind the system's prompt, feeds it the image file,
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
    let request = request_for(plan, privilege, flash_options);
    let mut args = vec![SUBCOMMAND.to_string()];
    for t in &request.targets {
        args.push("--target".into());
        args.push(t.path.display().to_string());
    }
    let helper = crate::io::privilege::start_helper(&args).map_err(|e| match e {
        Error::Permission { detail, .. } => Error::Permission {
            target: describe_targets(plan),
            detail,
        },
        e => e,
    })?;
    let request_line = serde_json::to_string(&request).expect("the request serializes");
    let (input, output, mut said) = (helper.input, helper.output, helper.said);

    let (result, said) = std::thread::scope(|scope| {
        // The launcher's own words (no agent, dismissed prompt), kept for the error's details.
        let said = scope.spawn(move || {
            let mut text = String::new();
            let _ = (&mut said).take(64 << 10).read_to_string(&mut text);
            text
        });
        scope.spawn(move || feed(input, &request_line, image, cancel));
        let outcome = read_answer(output, plan, progress);
        (outcome, said.join().unwrap_or_default())
    });
    let status = helper.process.wait()?;
    if !said.trim().is_empty() {
        tracing::info!("the helper's launcher and the helper said: {}", said.trim());
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
            detail: HelperProcess::no_answer(status, said.trim()),
        }),
    }
}

/// What the helper is asked to do: the plan's image and targets (each with the identity it was
/// approved with), and the operator's options, which the helper checks again as root.
fn request_for(plan: &Writing, privilege: &Privilege, flash_options: &FlashOptions) -> Request {
    Request {
        protocol: PROTOCOL,
        version: VERSION.into(),
        sha256: plan.image.sha256,
        size: plan.image.size,
        targets: plan
            .targets
            .iter()
            .map(|t| Chosen {
                path: t.path.clone(),
                identity: t.drive.as_ref().map(|d| d.identity.clone()),
            })
            .collect(),
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
    }
}

/// Sends the helper its request, then the image, until the image ends or the flash is cancelled.
fn feed(
    mut stdin: Box<dyn Write + Send>,
    request_line: &str,
    image: &mut (dyn Read + Send),
    cancel: &CancellationToken,
) {
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
}

/// Relays the helper's progress and returns its last word: the reports, or its failure; none
/// when it said nothing (it was never run, or it died).
fn read_answer(
    stdout: Box<dyn Read + Send>,
    plan: &Writing,
    progress: &dyn ProgressSink,
) -> Option<Result<Vec<TargetReport>>> {
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
            // The helper's own sentence (a refusal, another version's request), as it said it.
            Ok(Message::Failed { message, kind }) => {
                outcome = Some(Err(match kind {
                    ErrorKind::BadInput => Error::BadInput(message),
                    ErrorKind::Cancelled => Error::Cancelled,
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

    fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/helper_request");
        let mut seeds: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty());
        seeds
    }

    #[test]
    fn the_fuzz_seeds_are_requests_the_helper_serves() {
        for (path, seed) in seeds() {
            let request =
                parse_request(&seed).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(request.protocol, PROTOCOL);
        }
    }

    /// Another protocol, or a field the helper does not know at any depth: refused, naming both
    /// labflash versions and protocols.
    #[test]
    fn a_request_of_another_labflash_is_refused_naming_both_versions() {
        let seed: serde_json::Value = serde_json::from_slice(&seeds().remove(0).1).unwrap();
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut request = seed.clone();
            request["version"] = "9.8.7".into();
            edit(&mut request);
            parse_request(&serde_json::to_vec(&request).unwrap())
                .unwrap_err()
                .to_string()
        };
        let ours = format!("the helper is labflash {VERSION} (protocol {PROTOCOL})");
        let newer = refused(&|r| r["protocol"] = (PROTOCOL + 1).into());
        assert_eq!(
            newer,
            format!("the app and the installed helper disagree: the app is labflash 9.8.7 (helper protocol {}) and {ours}; install the same labflash version for both", PROTOCOL + 1)
        );
        let older = refused(&|r| {
            let map = r.as_object_mut().unwrap();
            map.remove("protocol");
            map.remove("version");
        });
        assert!(
            older
                .contains("the app is a labflash from before helper protocols (helper protocol 0)")
                && older.contains(&ours),
            "{older}"
        );
        let extra = refused(&|r| r["wipeAfter"] = true.into());
        assert!(
            extra.contains("labflash 9.8.7 (helper protocol 1)")
                && extra.contains(&ours)
                && extra.contains(r#"does not know the request's field "wipeAfter""#),
            "{extra}"
        );
        let nested = refused(&|r| r["targets"][0]["identity"]["model"] = "X".into());
        assert!(
            nested.contains(r#"field "targets[0].identity.model""#),
            "{nested}"
        );
        let malformed = refused(&|r| r["protocol"] = "1".into());
        assert!(malformed.starts_with("a malformed request"), "{malformed}");
    }

    /// Whatever goes wrong is answered, so the front end never mistakes it for polkit's refusal.
    #[test]
    fn a_refused_request_is_answered() {
        let mut answer = Vec::new();
        let err = serve(
            &b"{\"protocol\": 7}\n"[..],
            &mut answer,
            &[PathBuf::from("/dev/sdb")],
            &CancellationToken::new(),
        )
        .unwrap_err();
        let said: Message = serde_json::from_slice(&answer).unwrap();
        let Message::Failed { message, kind } = said else {
            panic!("{said:?}")
        };
        assert_eq!(message, err.to_string());
        assert!(message.contains("protocol 7"), "{message}");
        assert_eq!(kind, ErrorKind::BadInput);
    }
}
