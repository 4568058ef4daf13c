//! Secrets a build config names but does not hold: labctl's `secretRef`, a document in the
//! operator's secrets repository and an RFC 6901 JSON pointer to one string in it
//! (GilmanLab/platform `schemas/lab/incusos/schema.cue`, `#SecretStringRef`).

mod age_identities;
mod local_repo;
mod pointer;
mod sops;
mod yaml_tree;

#[cfg(test)]
mod tests;

pub use age_identities::AgeIdentities;
pub use local_repo::{clean_path, LocalSecrets};

use crate::error::{Error, Result};
use crate::fetch::credentials::Secret;

/// Where a build's secrets come from. A build asks for each string it needs through this, so
/// it never knows how the documents are stored or decrypted.
pub trait SecretResolver: Send + Sync {
    /// The string at `pointer` in the document at `path` (relative to the repository's root).
    fn resolve(&self, path: &str, pointer: &str) -> Result<Secret>;
}

/// The string at `pointer` in the SOPS document `bytes` (named `name` in errors), decrypted with
/// `identities`: what [`LocalSecrets`] does once it has read the file.
pub fn string_in_document(
    name: &str,
    bytes: &[u8],
    pointer: &str,
    identities: &AgeIdentities,
) -> Result<Secret> {
    let refuse_pointer = |why| Error::SecretPointer {
        path: name.to_string(),
        pointer: pointer.to_string(),
        why,
    };
    let tokens = pointer::tokens(pointer).map_err(refuse_pointer)?;
    let text = std::str::from_utf8(bytes).map_err(|_| Error::SopsDocument {
        path: name.to_string(),
        why: "it is not UTF-8 text".into(),
    })?;
    let document = sops::decrypt(text, name, identities)?;
    let (value, keys) = pointer::select_string(&document.items, &tokens).map_err(refuse_pointer)?;
    // A plain value has no GCM tag, and the MAC may not cover it (or its key's name): anyone
    // who can write the file could have put it there.
    if !document.was_encrypted(&keys) {
        return Err(Error::SecretPlaintext {
            path: name.to_string(),
            pointer: pointer.to_string(),
        });
    }
    Ok(Secret::new(value))
}
