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

use crate::error::Result;
use crate::fetch::credentials::Secret;

/// Where a build's secrets come from. A build asks for each string it needs through this, so
/// it never knows how the documents are stored or decrypted.
pub trait SecretResolver: Send + Sync {
    /// The string at `pointer` in the document at `path` (relative to the repository's root).
    fn resolve(&self, path: &str, pointer: &str) -> Result<Secret>;
}
