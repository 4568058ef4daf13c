//! labctl's `secretRef`s read from a local checkout of the secrets repository (GilmanLab/platform
//! `tools/labctl/internal/adapters/secretslocal/source.go`: `--secrets-repo-dir` or
//! `$GLAB_SECRETS_DIR`, which the front end resolves): the path checked as labctl checks it
//! (`internal/app/secrets/types.go` `CleanPath`) and the pointer parsed, both before any file is
//! read; then the document decrypted and the string selected.

use std::io::Read;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::fetch::credentials::Secret;
use crate::secrets::age_identities::AgeIdentities;
use crate::secrets::{pointer, SecretResolver};

/// The largest document read: far more than a secrets file holds.
const MAX_DOCUMENT: u64 = 16 << 20;

/// A secrets checkout at `dir` and the age keys to open its documents.
#[derive(Debug)]
pub struct LocalSecrets {
    dir: PathBuf,
    identities: AgeIdentities,
}

impl LocalSecrets {
    pub fn new(dir: impl Into<PathBuf>, identities: AgeIdentities) -> Self {
        Self {
            dir: dir.into(),
            identities,
        }
    }
}

impl SecretResolver for LocalSecrets {
    fn resolve(&self, path: &str, pointer: &str) -> Result<Secret> {
        let clean = clean_path(path)?;
        // The pointer is checked before the file is read, as the path is.
        pointer::tokens(pointer).map_err(|why| Error::SecretPointer {
            path: clean.clone(),
            pointer: pointer.to_string(),
            why,
        })?;
        let refuse = |why: String| Error::SecretPath {
            path: clean.clone(),
            why,
        };
        let checkout = match self.dir.canonicalize() {
            Ok(checkout) => checkout,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "names no file: the secrets checkout {} does not exist",
                    self.dir.display()
                )))
            }
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let file = clean
            .split('/')
            .fold(self.dir.clone(), |p, part| p.join(part));
        // Links are resolved, and where they lead must still be in the checkout: the checkout
        // decides which documents a build reads, not what its links point at.
        let real = match file.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "names no file in the secrets checkout {}",
                    self.dir.display()
                )))
            }
            Err(e) => return Err(Error::io(file, e)),
        };
        if !real.starts_with(&checkout) {
            return Err(refuse(format!(
                "leads out of the secrets checkout {} (through a link)",
                self.dir.display()
            )));
        }
        // Checked before opening (a FIFO would block the open) and again on the open file.
        let not_a_file = || refuse("is not a regular file".into());
        if !std::fs::metadata(&real)
            .map_err(|e| Error::io(&real, e))?
            .is_file()
        {
            return Err(not_a_file());
        }
        let opened = std::fs::File::open(&real).map_err(|e| Error::io(&real, e))?;
        if !opened
            .metadata()
            .map_err(|e| Error::io(&real, e))?
            .is_file()
        {
            return Err(not_a_file());
        }
        let mut bytes = Vec::new();
        opened
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&real, e))?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(refuse(format!(
                "is larger than {} MiB; labflash reads smaller SOPS documents",
                MAX_DOCUMENT >> 20
            )));
        }
        super::string_in_document(&clean, &bytes, pointer, &self.identities)
    }
}

/// `path` as labctl accepts it: repository-relative, `/`-separated, no `..`; cleaned of `.` and
/// doubled slashes.
pub fn clean_path(path: &str) -> Result<String> {
    let refuse = |why: &str| {
        Err(Error::SecretPath {
            path: path.to_string(),
            why: why.to_string(),
        })
    };
    if path.trim().is_empty() {
        return refuse("is empty; a secretRef names a document in the secrets repository");
    }
    if path.starts_with('/') {
        return refuse("is absolute; it must be relative to the secrets repository");
    }
    if path.contains('\\') {
        return refuse("has a backslash; it must use forward slashes");
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if path.split('/').any(|p| p == "..") {
        return refuse("has '..'; it must stay inside the secrets repository");
    }
    // Each part must be one plain name on every system: a `:` (a Windows drive `C:x`, or a
    // stream `x:y`) or a device name would make the join leave the checkout on Windows.
    if path.contains(':') {
        return refuse("has a ':'; each part must be a plain file or folder name");
    }
    if parts.iter().any(|p| is_windows_device(p)) {
        return refuse("names a Windows device (CON, PRN, AUX, NUL, COM1-9 or LPT1-9)");
    }
    if parts.is_empty() {
        return refuse("names the secrets repository itself, not a document in it");
    }
    Ok(parts.join("/"))
}

/// Whether Windows reads `part` as a device: `CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
/// `LPT1`-`LPT9` (also with superscript digits), in any case, with or without an extension,
/// trailing dots or spaces.
fn is_windows_device(part: &str) -> bool {
    let stem = part.split('.').next().unwrap_or(part);
    let stem = stem.trim_end_matches([' ', '.']).to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => ["COM", "LPT"].iter().any(|prefix| {
            stem.strip_prefix(prefix).is_some_and(|n| {
                matches!(
                    n,
                    "1" | "2"
                        | "3"
                        | "4"
                        | "5"
                        | "6"
                        | "7"
                        | "8"
                        | "9"
                        | "\u{b9}"
                        | "\u{b2}"
                        | "\u{b3}"
                )
            })
        }),
    }
}
