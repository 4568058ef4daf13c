//! A document's `sops:` mapping (getsops/sops `stores/stores.go` `metadata`): where its data key
//! is sealed, its MAC, and the rules saying which values are encrypted.

use regex::Regex;

use crate::secrets::yaml_tree::{Node, Scalar};

/// One age recipient's sealed copy of the data key.
pub(crate) struct AgeStanza {
    pub recipient: String,
    /// An armored age file holding the 32-byte data key.
    pub enc: String,
}

pub(crate) struct Metadata {
    pub age: Vec<AgeStanza>,
    /// The encrypted MAC and the exact `lastmodified` text it is authenticated with.
    pub mac: String,
    pub last_modified: String,
    pub rules: Rules,
}

/// Which values are encrypted (`sops.go` `shouldBeEncrypted`), from the key path alone.
pub(crate) struct Rules {
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<Regex>,
    pub encrypted_regex: Option<Regex>,
    pub mac_only_encrypted: bool,
}

/// The key types SOPS seals data keys for other than age, as the metadata names them.
const OTHER_KEY_TYPES: [&str; 6] = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

impl Metadata {
    /// Reads the `sops:` mapping; `Err` is a clause saying what labflash cannot read in it.
    pub(crate) fn read(sops: &Node) -> Result<Self, String> {
        let Node::Map(items) = sops else {
            return Err("its sops metadata is not a mapping".into());
        };
        let get = |key: &str| items.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let text = |key: &str| -> Result<Option<String>, String> {
            match get(key) {
                None | Some(Node::Scalar(Scalar::Null)) => Ok(None),
                Some(Node::Scalar(Scalar::Str(s))) if s.is_empty() => Ok(None),
                Some(Node::Scalar(Scalar::Str(s))) => Ok(Some(s.clone())),
                Some(_) => Err(format!("its sops.{key} is not a string")),
            }
        };
        for key in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if text(key)?.is_some() {
                return Err(format!(
                    "it uses sops.{key}, which decides by comments what is encrypted; labflash does not read such documents"
                ));
            }
        }

        let mut age = age_stanzas(get("age"))?;
        match get("key_groups") {
            None | Some(Node::Scalar(Scalar::Null)) => {}
            Some(Node::Seq(groups)) if groups.len() <= 1 => {
                for group in groups {
                    let Node::Map(group) = group else {
                        return Err("a key group in its sops metadata is not a mapping".into());
                    };
                    let age_list = group.iter().find(|(k, _)| k == "age").map(|(_, v)| v);
                    age.extend(age_stanzas(age_list)?);
                }
            }
            Some(Node::Seq(groups)) => {
                return Err(format!(
                    "its data key is split across {} key groups (Shamir secret sharing), which labflash does not read",
                    groups.len()
                ))
            }
            Some(_) => return Err("its sops.key_groups is not a list".into()),
        }
        if age.is_empty() {
            let others: Vec<&str> = OTHER_KEY_TYPES
                .into_iter()
                .filter(|k| get(k).is_some_and(|v| !matches!(v, Node::Scalar(Scalar::Null))))
                .collect();
            return Err(if others.is_empty() {
                "its sops metadata seals the data key for no age recipient".into()
            } else {
                format!(
                    "its data key is sealed only for {} keys; labflash reads SOPS documents through age keys only",
                    others.join(", ")
                )
            });
        }

        let regex = |key: &str| -> Result<Option<Regex>, String> {
            text(key)?
                .map(|r| Regex::new(&r).map_err(|_| format!("its sops.{key} is not a regex")))
                .transpose()
        };
        let mac_only_encrypted = match get("mac_only_encrypted") {
            None | Some(Node::Scalar(Scalar::Null)) => false,
            Some(Node::Scalar(Scalar::Bool(b))) => *b,
            Some(_) => return Err("its sops.mac_only_encrypted is not true or false".into()),
        };
        Ok(Metadata {
            age,
            mac: text("mac")?.ok_or("its sops metadata has no mac")?,
            last_modified: text("lastmodified")?.ok_or("its sops metadata has no lastmodified")?,
            rules: Rules {
                unencrypted_suffix: text("unencrypted_suffix")?,
                encrypted_suffix: text("encrypted_suffix")?,
                unencrypted_regex: regex("unencrypted_regex")?,
                encrypted_regex: regex("encrypted_regex")?,
                mac_only_encrypted,
            },
        })
    }
}

fn age_stanzas(list: Option<&Node>) -> Result<Vec<AgeStanza>, String> {
    let items = match list {
        None | Some(Node::Scalar(Scalar::Null)) => return Ok(Vec::new()),
        Some(Node::Seq(items)) => items,
        Some(_) => return Err("its sops.age is not a list".into()),
    };
    items
        .iter()
        .map(|item| {
            let field = |key: &str| match item {
                Node::Map(fields) => fields.iter().find_map(|(k, v)| match v {
                    Node::Scalar(Scalar::Str(s)) if k == key => Some(s.clone()),
                    _ => None,
                }),
                _ => None,
            };
            match (field("recipient"), field("enc")) {
                (Some(recipient), Some(enc)) => Ok(AgeStanza { recipient, enc }),
                _ => Err("an age entry in its sops metadata lacks a recipient or enc".into()),
            }
        })
        .collect()
}

impl Rules {
    /// Whether the value at `path` (its mapping keys, outermost first) is encrypted: the
    /// metadata's rules applied in SOPS's order, each later one overriding.
    pub(crate) fn encrypts(&self, path: &[&str]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix {
            if path.iter().any(|k| k.ends_with(suffix.as_str())) {
                encrypted = false;
            }
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|k| k.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex {
            if path.iter().any(|k| re.is_match(k)) {
                encrypted = false;
            }
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|k| re.is_match(k));
        }
        encrypted
    }
}
