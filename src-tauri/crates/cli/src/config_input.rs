//! A build config named on the command line: a file, or `-` for standard input, read as labctl
//! reads it (GilmanLab/platform `tools/labctl/internal/cli/bootstrap.go`, `readImageBuildInput`).

use std::io::Read;
use std::path::PathBuf;

use crate::output::Failure;

/// The config's name as labctl gives it in errors (the path as given, or `stdin.yaml`), its
/// text, and the folder its relative paths are taken from (its own, or the current one).
pub fn read(arg: &str) -> Result<(String, String, PathBuf), Failure> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::usage(format!("cannot read the config from standard input: {e}"))
        })?;
        return Ok(("stdin.yaml".into(), text, PathBuf::from(".")));
    }
    let path = PathBuf::from(arg);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::usage(format!("cannot read the config {}: {e}", path.display())))?;
    let base = labflash_core::io::device::folder_of(&path).to_path_buf();
    Ok((arg.to_string(), text, base))
}
