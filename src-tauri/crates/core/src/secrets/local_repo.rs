//! labctl's `secretRef`s read from a local checkout of the secrets repository (GilmanLab/platform
//! `tools/labctl/internal/adapters/secretslocal/source.go`: `--secrets-repo-dir` or
//! `$GLAB_SECRETS_DIR`, which the front end resolves): the path checked as labctl checks it
//! (`internal/app/secrets/types.go` `CleanPath`) and the pointer parsed, both before any file is
//! read; then the document decrypted and the string selected.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::fetch::credentials::Secret;
use crate::secrets::age_identities::AgeIdentities;
use crate::secrets::{pointer, SecretResolver};

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
        let file = clean
            .split('/')
            .fold(self.dir.clone(), |p, part| p.join(part));
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::SecretPath {
                    path: clean,
                    why: format!(
                        "names no file in the secrets checkout {}",
                        self.dir.display()
                    ),
                })
            }
            Err(e) => return Err(Error::io(file, e)),
        };
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
    // A Windows drive (`C:x`) would make the join leave the checkout.
    if parts.first().is_some_and(|p| {
        p.len() >= 2 && p.as_bytes()[0].is_ascii_alphabetic() && p.as_bytes()[1] == b':'
    }) {
        return refuse("is absolute; it must be relative to the secrets repository");
    }
    if parts.is_empty() {
        return refuse("names the secrets repository itself, not a document in it");
    }
    Ok(parts.join("/"))
}
