//! The privileged helper on Linux: run through pkexec, from a path only root may change, over its
//! stdin and stdout.

use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};
use crate::io::cancellable::CancellableInput;
use crate::io::privilege::Helper;
use crate::CancellationToken;

/// Where the package installs the helper (the `labflash` binary), and the path its polkit action
/// names.
pub const INSTALLED: &str = "/usr/libexec/labflash/labflash";

/// Starts the installed helper under pkexec (which asks for the password) with `args` (the
/// helper's subcommand and the targets polkit's prompt shows).
pub fn start_helper(args: &[String]) -> Result<Helper> {
    let program = installed()?;
    tracing::info!("no direct or UDisks2 access to the targets; asking pkexec to run the helper");
    let mut child = Command::new("pkexec")
        .arg(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Permission {
            target: "the drives".into(),
            detail: format!("pkexec could not be started: {e}"),
        })?;
    Ok(Helper {
        input: Box::new(child.stdin.take().expect("piped")),
        output: Box::new(child.stdout.take().expect("piped")),
        said: Box::new(child.stderr.take().expect("piped")),
        process: HelperProcess { child, program },
    })
}

pub struct HelperProcess {
    child: Child,
    program: PathBuf,
}

impl HelperProcess {
    /// Waits for the helper to end: its exit status (none when a signal ended it).
    pub fn wait(mut self) -> Result<Option<i32>> {
        let status = self.child.wait().map_err(|e| Error::io(&self.program, e))?;
        Ok(status.code())
    }

    /// Why no answer came, and what to do, from the exit status and the words on stderr (which
    /// follow, as details). pkexec exits 126 or 127 when it did not run the helper; any other
    /// status is the helper's own.
    pub fn no_answer(code: Option<i32>, said: &str) -> String {
        let first = said.lines().next();
        let what = if said.contains("authentication agent") {
            "no polkit authentication agent is running, so nobody can be asked for the password: log in to a desktop session, or run labflash as root"
        } else if code == Some(126) {
            "the password prompt was dismissed or the password was wrong: try again"
        } else if code == Some(127) {
            "pkexec could not ask for authorization: log in to a desktop session, or run labflash as root"
        } else {
            let status = code.map_or("killed by a signal".into(), |c| format!("exit status {c}"));
            let said = first.map(|f| format!("; it said: {f}")).unwrap_or_default();
            return format!("the helper ran but ended without an answer ({status}{said})");
        };
        match first {
            Some(first) => format!("{what} (pkexec: {first})"),
            None => what.into(),
        }
    }
}

/// The helper's own side: it reads its stdin and answers on its stdout. Named pipes are how the
/// Windows helper is reached; here pkexec gives it its streams.
pub fn serving_streams(
    pipe: Option<&str>,
    cancel: &CancellationToken,
) -> Result<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
    if pipe.is_some() {
        return Err(Error::BadInput(
            "--pipe is how Windows reaches its elevated helper; on Linux the helper reads its stdin"
                .into(),
        ));
    }
    Ok((
        // A stalled pipe must not outlast a cancel (SIGTERM).
        Box::new(CancellableInput::new(std::io::stdin(), cancel.clone())),
        Box::new(std::io::stdout()),
    ))
}

/// The helper to run under pkexec: `/usr/libexec/labflash/labflash` (or `$LABFLASH_HELPER`), only
/// if it and every folder above it belong to root and neither group nor others can write them.
/// Otherwise any process of the user could replace it before the next password prompt.
fn installed() -> Result<PathBuf> {
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
        if !root_alone_controls(&meta) || meta.file_type().is_symlink() {
            return Err(not_installed(format!(
                "{} is not root's alone",
                p.display()
            )));
        }
        at = p.parent();
    }
    Ok(path)
}

/// Whether only root may change the file or folder `meta` describes: root's, and neither group
/// nor others may write it.
fn root_alone_controls(meta: &Metadata) -> bool {
    meta.uid() == 0 && meta.mode() & 0o022 == 0
}

/// Whether this process runs as root (a WebKitGTK window must not).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkexec_failures_say_what_to_do_then_what_pkexec_said() {
        let no_answer = HelperProcess::no_answer;
        let no_agent = no_answer(
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
        let dismissed = no_answer(Some(126), "");
        assert!(dismissed.contains("dismissed"), "{dismissed}");
        // Any other status is the helper's: pkexec ran it.
        let silent = no_answer(Some(2), "labflash: something");
        assert_eq!(
            silent,
            "the helper ran but ended without an answer (exit status 2; it said: labflash: something)"
        );
    }

    #[test]
    fn the_linux_helper_takes_no_pipe() {
        let err = serving_streams(Some("/tmp/fifo"), &CancellationToken::new())
            .err()
            .unwrap();
        assert!(matches!(err, Error::BadInput(_)), "{err}");
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
