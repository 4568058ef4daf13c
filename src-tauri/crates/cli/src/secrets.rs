//! Where a build's `secretRef`s are read: a local checkout of the operator's secrets repository,
//! as labctl's `--secrets-source local` reads it (SOPS documents decrypted with the age
//! identities sops itself would use). labctl's GitHub and token-broker sources are not built in.

use std::path::PathBuf;

use clap::Args;
use labflash_core::secrets::{AgeIdentities, LocalSecrets, SecretResolver};

use crate::output::Failure;

#[derive(Args)]
pub struct SecretsArgs {
    /// labctl's secret source: auto and local read --secrets-repo-dir; labctl's github (through
    /// its token broker) is not supported.
    #[arg(long, value_name = "SOURCE", default_value = "auto", value_parser = ["auto", "local", "github"])]
    pub secrets_source: String,
    /// The local checkout of the secrets repository (labctl's $GLAB_SECRETS_DIR).
    #[arg(long, value_name = "DIR", env = "GLAB_SECRETS_DIR")]
    pub secrets_repo_dir: Option<PathBuf>,
}

impl SecretsArgs {
    /// The local checkout with the age keys SOPS would use: `$SOPS_AGE_KEY`, the file
    /// `$SOPS_AGE_KEY_FILE` names, and `sops/age/keys.txt` in the user's config folder.
    pub fn resolver(&self) -> Result<Box<dyn SecretResolver>, Failure> {
        if self.secrets_source == "github" {
            return Err(Failure::usage(
                "--secrets-source github (labctl's GitHub token broker) is not supported: check out the secrets repository and give it with --secrets-repo-dir",
            ));
        }
        let Some(dir) = &self.secrets_repo_dir else {
            return Err(Failure::usage(
                "the config's certificates are secretRefs: give the secrets repository's checkout with --secrets-repo-dir DIR or $GLAB_SECRETS_DIR",
            ));
        };
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let inline = set("SOPS_AGE_KEY").map(|v| v.to_string_lossy().into_owned());
        let key_file = set("SOPS_AGE_KEY_FILE").map(PathBuf::from);
        let default_file = dirs::config_dir().map(|d| AgeIdentities::default_file(&d));
        let identities = AgeIdentities::from_sources(
            inline.as_deref(),
            key_file.as_deref(),
            default_file.as_deref(),
        )?;
        Ok(Box::new(LocalSecrets::new(dir, identities)))
    }
}
