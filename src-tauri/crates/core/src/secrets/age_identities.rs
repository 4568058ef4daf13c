//! The age keys SOPS would use (getsops/sops `age/keysource.go` `loadIdentities`): every key in
//! `$SOPS_AGE_KEY` (several to a line allowed), in the file `$SOPS_AGE_KEY_FILE` names, and in
//! `sops/age/keys.txt` under the user's config folder when that file exists; SOPS reads all
//! three, not the first found. The engine reads no environment: the front end passes those
//! values in. SOPS's other sources (`$SOPS_AGE_KEY_CMD`, SSH keys, age plugins) are not read.

use std::path::{Path, PathBuf};

use age::x25519;

use crate::error::{Error, Result};

/// Where SOPS keeps age keys under the user's config folder (`SopsAgeKeyUserConfigPath`).
const KEYS_IN_CONFIG_DIR: &str = "sops/age/keys.txt";

/// Age identities, and the places looked in for them (for the sentence saying where keys go).
/// Never shows a key: `{:?}` gives the count.
pub struct AgeIdentities {
    keys: Vec<x25519::Identity>,
    looked: Vec<String>,
}

impl std::fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeIdentities({} keys)", self.keys.len())
    }
}

impl AgeIdentities {
    /// SOPS's default key file under `config_dir`, the user's config folder as Go's
    /// `os.UserConfigDir` gives it (`$XDG_CONFIG_HOME` or `~/.config` on Linux, `%AppData%` on
    /// Windows; SOPS also honours `$XDG_CONFIG_HOME` on macOS).
    pub fn default_file(config_dir: &Path) -> PathBuf {
        config_dir.join(KEYS_IN_CONFIG_DIR)
    }

    /// The keys in `inline` (`$SOPS_AGE_KEY`), in the file `key_file` (`$SOPS_AGE_KEY_FILE`,
    /// which must exist) and in `default_file` (see [`Self::default_file`]; skipped when
    /// absent). None found is no error here: a document asking for a key says where none was.
    pub fn from_sources(
        inline: Option<&str>,
        key_file: Option<&Path>,
        default_file: Option<&Path>,
    ) -> Result<Self> {
        let mut ids = AgeIdentities {
            keys: Vec::new(),
            looked: Vec::new(),
        };
        match inline {
            Some(text) => ids.add("$SOPS_AGE_KEY", text, true)?,
            None => ids.looked.push("$SOPS_AGE_KEY (not set)".into()),
        }
        match key_file {
            Some(path) => {
                let name = format!("$SOPS_AGE_KEY_FILE ({})", path.display());
                let text = read_keys(path, &name)?.ok_or_else(|| Error::AgeKeySource {
                    source_name: name.clone(),
                    why: "there is no such file".into(),
                })?;
                ids.add(&name, &text, false)?;
            }
            None => ids.looked.push("$SOPS_AGE_KEY_FILE (not set)".into()),
        }
        match default_file {
            Some(path) => {
                let name = path.display().to_string();
                match read_keys(path, &name)? {
                    Some(text) => ids.add(&name, &text, false)?,
                    None => ids.looked.push(format!("{name} (no such file)")),
                }
            }
            None => ids
                .looked
                .push(format!("{KEYS_IN_CONFIG_DIR} (no user config folder)")),
        }
        Ok(ids)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The places looked in, as one phrase ("A, B and C").
    pub(crate) fn looked(&self) -> String {
        match self.looked.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    pub(crate) fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k as &dyn age::Identity)
    }

    /// The keys in `text` (lines; blank ones and `#` comments skipped; several keys to a line
    /// only for `$SOPS_AGE_KEY`, as SOPS allows). The error names the line, never its text.
    fn add(&mut self, source: &str, text: &str, several_per_line: bool) -> Result<()> {
        let bad = |why: String| Error::AgeKeySource {
            source_name: source.to_string(),
            why,
        };
        if text.starts_with("age-encryption") || text.starts_with("-----BEGIN AGE") {
            return Err(bad(
                "it is a passphrase-protected age file, which labflash cannot unlock".into(),
            ));
        }
        let before = self.keys.len();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = if several_per_line {
                line.split_whitespace().collect()
            } else {
                vec![line]
            };
            for word in words {
                let key = word.parse::<x25519::Identity>().map_err(|_| {
                    bad(format!(
                        "line {} {}",
                        n + 1,
                        if word.starts_with("AGE-PLUGIN-") || word.starts_with("AGE-SECRET-KEY-PQ-")
                        {
                            "holds an age plugin or post-quantum key; labflash reads X25519 keys (AGE-SECRET-KEY-1…) only"
                        } else {
                            "is not an age secret key (AGE-SECRET-KEY-1…)"
                        }
                    ))
                })?;
                self.keys.push(key);
            }
        }
        if self.keys.len() == before {
            self.looked.push(format!("{source} (no key in it)"));
        }
        Ok(())
    }
}

/// The text of a key file, or `None` if there is none.
fn read_keys(path: &Path, name: &str) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::AgeKeySource {
                source_name: name.to_string(),
                why: "it is not UTF-8 text".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
