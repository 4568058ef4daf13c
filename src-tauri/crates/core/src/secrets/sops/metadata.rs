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
    /// The encrypted MAC and `lastmodified` as sops authenticates it with: parsed and formatted
    /// again as Go's `time.RFC3339` (`decrypt/decrypt.go`).
    pub mac: String,
    pub last_modified: String,
    pub rules: Rules,
}

/// Which values are encrypted (`sops.go` `shouldBeEncrypted`), from the key path alone: the
/// document's one rule (sops refuses more than one), or sops's default `_unencrypted` suffix
/// when it has none.
pub(crate) struct Rules {
    pub rule: Rule,
    pub mac_only_encrypted: bool,
}

pub(crate) enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

/// `stores.DefaultUnencryptedSuffix`.
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

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

        let regex = |key: &str, r: &str| -> Result<Regex, String> {
            Regex::new(&go_ascii_classes(r)).map_err(|_| format!("its sops.{key} is not a regex"))
        };
        // `stores.go` `ToInternal`: one rule at most, and `_unencrypted` when there is none.
        let mut rules = Vec::new();
        for key in [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
        ] {
            if let Some(value) = text(key)? {
                rules.push(match key {
                    "unencrypted_suffix" => Rule::UnencryptedSuffix(value),
                    "encrypted_suffix" => Rule::EncryptedSuffix(value),
                    "unencrypted_regex" => Rule::UnencryptedRegex(regex(key, &value)?),
                    _ => Rule::EncryptedRegex(regex(key, &value)?),
                });
            }
        }
        if rules.len() > 1 {
            return Err(
                "its sops metadata has more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex and unencrypted_regex, which sops refuses".into(),
            );
        }
        let rule = rules
            .pop()
            .unwrap_or_else(|| Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.into()));
        let last_modified = text("lastmodified")?.ok_or("its sops metadata has no lastmodified")?;
        let last_modified =
            go_rfc3339(&last_modified).ok_or("its sops.lastmodified is not an RFC 3339 time")?;
        let mac_only_encrypted = match get("mac_only_encrypted") {
            None | Some(Node::Scalar(Scalar::Null)) => false,
            Some(Node::Scalar(Scalar::Bool(b))) => *b,
            Some(_) => return Err("its sops.mac_only_encrypted is not true or false".into()),
        };
        Ok(Metadata {
            age,
            mac: text("mac")?.ok_or("its sops metadata has no mac")?,
            last_modified,
            rules: Rules {
                rule,
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
    /// Whether the value at `path` (its mapping keys, outermost first) is encrypted under the
    /// document's rule.
    pub(crate) fn encrypts(&self, path: &[&str]) -> bool {
        match &self.rule {
            Rule::UnencryptedSuffix(suffix) => !path.iter().any(|k| k.ends_with(suffix.as_str())),
            Rule::EncryptedSuffix(suffix) => path.iter().any(|k| k.ends_with(suffix.as_str())),
            Rule::UnencryptedRegex(re) => !path.iter().any(|k| re.is_match(k)),
            Rule::EncryptedRegex(re) => path.iter().any(|k| re.is_match(k)),
        }
    }
}

/// `pattern` with Go's ASCII meanings of `\w \d \s \b` (and `\W \D \S \B`): Rust's regex
/// gives them Unicode ones, so `^\w+$` would match `clé` here and not in sops.
fn go_ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('s') => out.push_str("[\\t\\n\\x0C\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\x0C\\r ]"),
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `text` read as Go's `time.Parse(time.RFC3339, …)` reads it and written back as
/// `Format(time.RFC3339)` writes it: fractional seconds dropped, a zero offset as `Z`. `None`
/// when Go would not parse it.
pub(crate) fn go_rfc3339(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix(['.', ',']) {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        rest = &fraction[digits..];
    }
    let zone = match rest.as_bytes() {
        b"Z" => "Z".to_string(),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let hours = u32::from(h1 - b'0') * 10 + u32::from(h2 - b'0');
            let minutes = u32::from(m1 - b'0') * 10 + u32::from(m2 - b'0');
            if hours > 23 || minutes > 59 {
                return None;
            }
            if hours == 0 && minutes == 0 {
                "Z".to_string()
            } else {
                format!("{}{hours:02}:{minutes:02}", char::from(*sign))
            }
        }
        _ => return None,
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{zone}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_go_does() {
        let go = |t: &str| go_rfc3339(t);
        assert_eq!(
            go("2026-04-30T00:52:23Z").as_deref(),
            Some("2026-04-30T00:52:23Z")
        );
        assert_eq!(
            go("2026-04-30T00:52:23+00:00").as_deref(),
            Some("2026-04-30T00:52:23Z")
        );
        assert_eq!(
            go("2026-04-30T00:52:23-00:00").as_deref(),
            Some("2026-04-30T00:52:23Z")
        );
        assert_eq!(
            go("2026-04-30T00:52:23.123456Z").as_deref(),
            Some("2026-04-30T00:52:23Z")
        );
        assert_eq!(
            go("2026-04-30T02:52:23+02:00").as_deref(),
            Some("2026-04-30T02:52:23+02:00")
        );
        assert_eq!(
            go("2024-02-29T00:00:00Z").as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        for bad in [
            "",
            "2026-04-30",
            "2026-04-30 00:52:23Z",
            "2026-04-30T00:52:23",
            "2026-04-30T00:52:23z",
            "2026-02-30T00:52:23Z",
            "2026-04-30T24:00:00Z",
            "2026-04-30T00:52:60Z",
            "2026-04-30T00:52:23+0000",
            "2026-04-30T00:52:23+24:00",
            "2026-04-30T00:52:23.Z",
            "2026-04-30T00:52:23Z ",
            "２026-04-30T00:52:23Z",
        ] {
            assert_eq!(go(bad), None, "{bad}");
        }
    }

    #[test]
    fn regex_classes_are_ascii_as_go_s() {
        let re = |p: &str| Regex::new(&go_ascii_classes(p)).unwrap();
        assert!(re(r"^\w+$").is_match("plain_key"));
        assert!(!re(r"^\w+$").is_match("clé"));
        assert!(!re(r"^\d$").is_match("٣"));
        assert!(re(r"^\W$").is_match("é"));
        assert!(!re(r"\s").is_match("\u{a0}"));
        assert!(re(r"\bkey\b").is_match("a key"));
        assert!(re(r"^a\.b\\w$").is_match("a.b\\w"));
        assert!(re(r"^[\w-]+$").is_match("a-b"));
        assert!(!re(r"^[\w-]+$").is_match("é"));
    }
}
