//! Asking the operator before writing. Without a terminal there is nobody to ask: the flash is
//! refused unless `--yes` was given.

use std::io::{BufRead, IsTerminal, Write};

use labflash_core::flash::rules::Approved;

use crate::output::Failure;

/// Shows what will be written where and asks; `Err` when the answer is not a yes.
pub fn ask(
    targets: &[Approved],
    what: &[String],
    yes: bool,
    allow_fixed: bool,
) -> Result<(), Failure> {
    let fixed: Vec<&str> = targets
        .iter()
        .filter_map(|t| t.drive.as_ref())
        .filter(|d| d.is_fixed())
        .map(|d| d.path.as_str())
        .collect();
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if yes && (fixed.is_empty() || !interactive) {
        return Ok(());
    }
    if !interactive {
        return Err(Failure::usage(
            "refusing to write without confirmation: there is no terminal to ask on; pass --yes to confirm",
        ));
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "labflash will ERASE and write:");
    for t in targets {
        match &t.drive {
            Some(d) => {
                let _ = writeln!(
                    err,
                    "  {}  {}  {}",
                    d.path,
                    d.describe(),
                    if t.to_unmount.is_empty() {
                        String::new()
                    } else {
                        format!("(will unmount {})", t.to_unmount.join(", "))
                    }
                );
            }
            None => {
                let _ = writeln!(err, "  {}  (file)", t.path.display());
            }
        }
    }
    for line in what {
        let _ = writeln!(err, "{line}");
    }
    if !yes && prompt("Type yes to write: ")? != "yes" {
        return Err(Failure::usage("not confirmed; nothing was written"));
    }
    if allow_fixed {
        for path in fixed {
            if prompt(&format!(
                "{path} is a FIXED disk. Type its path to write to it: "
            ))? != path
            {
                return Err(Failure::usage(format!(
                    "{path} was not confirmed; nothing was written"
                )));
            }
        }
    }
    Ok(())
}

fn prompt(question: &str) -> Result<String, Failure> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::usage(format!("no answer: {e}")))?;
    Ok(answer.trim().to_string())
}
