//! A SOPS-encrypted YAML document decrypted as `sops decrypt` (and labctl's `decrypt.Data`) does
//! it, for age recipients (getsops/sops `decrypt/decrypt.go`, `sops.go` `Tree.Decrypt`):
//!
//! 1. the `sops:` mapping is taken out of the document ([`metadata`]);
//! 2. the data key is unsealed with one of the age keys ([`data_key`]);
//! 3. every value the metadata's rules say is encrypted is opened ([`cipher`]) with its key path
//!    (`a:b:`) as additional data, so a value moved elsewhere does not open;
//! 4. a SHA-512 over the values in document order (encrypted or not, or only the encrypted
//!    ones under `mac_only_encrypted`) must equal the MAC stored encrypted under
//!    `lastmodified`: a value changed, added, removed or reordered in plain text is caught.
//!
//! labflash reads the age recipients only: a document sealed for PGP, KMS or Vault keys alone
//! is refused with a sentence saying so.

mod cipher;
mod data_key;
mod metadata;

use sha2::{Digest, Sha512};

use crate::error::{Error, Result};
use crate::secrets::age_identities::AgeIdentities;
use crate::secrets::yaml_tree::{self, Node, Scalar};
use cipher::ValueError;
use data_key::Unseal;
use metadata::{Metadata, Rules};

/// The key of a document's SOPS metadata (`stores.SopsMetadataKey`).
const METADATA_KEY: &str = "sops";

/// `sops.go` `MACOnlyEncryptedInitialization`: hashed first under `mac_only_encrypted`, so such
/// a MAC never equals one over every value.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A decrypted document: its values (metadata removed) and the rule that says which of them
/// were encrypted.
pub(crate) struct Decrypted {
    pub items: Vec<(String, Node)>,
    rules: Rules,
}

impl Decrypted {
    /// Whether the value at the mapping keys `keys` (outermost first) was stored encrypted:
    /// one the rule leaves in plain text is not covered by a GCM tag, and under
    /// `mac_only_encrypted` not by the MAC either, and the MAC never covers key names.
    pub(crate) fn was_encrypted(&self, keys: &[&str]) -> bool {
        self.rules.encrypts(keys)
    }
}

/// The plaintext of the document `text` (named `name` in errors), its metadata removed. Errors
/// never quote a value; key names and recipients are printed escaped.
pub(crate) fn decrypt(text: &str, name: &str, ids: &AgeIdentities) -> Result<Decrypted> {
    let document = |why: String| Error::SopsDocument {
        path: name.to_string(),
        why,
    };
    let tampered = |why: String| Error::SopsTampered {
        path: name.to_string(),
        why,
    };
    let mut items = yaml_tree::parse(text).map_err(document)?;
    let at = items
        .iter()
        .position(|(k, _)| k == METADATA_KEY)
        .ok_or_else(|| {
            document("it has no sops metadata (it is not encrypted with SOPS)".into())
        })?;
    let meta = Metadata::read(&items.remove(at).1).map_err(document)?;
    if ids.is_empty() {
        return Err(Error::NoAgeKey {
            path: name.to_string(),
            looked: ids.looked(),
        });
    }
    let key = data_key::unseal(&meta.age, ids).map_err(|e| match e {
        Unseal::NoMatch => Error::AgeKeyMismatch {
            path: name.to_string(),
            count: ids.len(),
            recipients: meta
                .age
                .iter()
                .map(|s| format!("{:?}", s.recipient))
                .collect::<Vec<_>>()
                .join(", "),
        },
        Unseal::Malformed(why) => document(why),
        Unseal::Tampered(why) => tampered(why),
    })?;

    let mut walk = Walk {
        key: &key,
        rules: &meta.rules,
        mac: Sha512::new(),
        keys: Vec::new(),
        place: Vec::new(),
    };
    if meta.rules.mac_only_encrypted {
        walk.mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    for (k, v) in &mut items {
        walk.enter(k, |w| w.node(v))
            .map_err(|(place, problem)| match problem {
                Problem::Tag => tampered(format!(
                    "the value at {place} does not decrypt (its GCM tag does not hold)"
                )),
                Problem::Malformed(why) => document(format!("the value at {place}: {why}")),
                Problem::NotEncrypted => document(format!(
                    "the value at {place} is not encrypted, though its sops rules say it is"
                )),
            })?;
    }
    let computed = hex::encode_upper(walk.mac.finalize());
    let stored = match cipher::decrypt(&meta.mac, &key, &meta.last_modified) {
        Ok(Scalar::Str(mac)) => mac,
        Ok(_) => return Err(document("its MAC is not a string".into())),
        Err(ValueError::Tag) => {
            return Err(tampered(
                "its MAC does not decrypt (its GCM tag does not hold)".into(),
            ))
        }
        Err(ValueError::Malformed(why)) => return Err(document(format!("its MAC: {why}"))),
    };
    if stored != computed {
        return Err(tampered(
            "its MAC does not match its values (one was changed, added, removed or moved)".into(),
        ));
    }
    Ok(Decrypted {
        items,
        rules: meta.rules,
    })
}

enum Problem {
    Tag,
    Malformed(&'static str),
    NotEncrypted,
}

/// The walk over the values (`sops.go` `walkBranch`/`walkSlice`): `keys` is the mapping-key
/// path the rules and the additional data use (sequence positions are not part of it), `place`
/// the same with positions, a JSON pointer for messages.
struct Walk<'a> {
    key: &'a [u8; 32],
    rules: &'a Rules,
    mac: Sha512,
    keys: Vec<String>,
    place: Vec<String>,
}

type Step = std::result::Result<(), (String, Problem)>;

impl Walk<'_> {
    fn enter(&mut self, key: &str, f: impl FnOnce(&mut Self) -> Step) -> Step {
        self.keys.push(key.to_string());
        // Escaped: a key name is document text, printed in errors.
        self.place.push(
            key.replace('~', "~0")
                .replace('/', "~1")
                .escape_debug()
                .to_string(),
        );
        let step = f(self);
        self.keys.pop();
        self.place.pop();
        step
    }

    fn node(&mut self, node: &mut Node) -> Step {
        match node {
            Node::Map(items) => {
                for (k, v) in items {
                    self.enter(k, |w| w.node(v))?;
                }
                Ok(())
            }
            Node::Seq(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.place.push(i.to_string());
                    let step = self.node(v);
                    self.place.pop();
                    step?;
                }
                Ok(())
            }
            Node::Scalar(scalar) => self.leaf(scalar),
        }
    }

    fn leaf(&mut self, scalar: &mut Scalar) -> Step {
        // SOPS walks past nulls: neither decrypted nor hashed.
        if *scalar == Scalar::Null {
            return Ok(());
        }
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        let encrypted = self.rules.encrypts(&keys);
        if encrypted {
            let Scalar::Str(sealed) = &*scalar else {
                return Err(self.problem(Problem::NotEncrypted));
            };
            let aad = format!("{}:", keys.join(":"));
            *scalar = cipher::decrypt(sealed, self.key, &aad).map_err(|e| {
                self.problem(match e {
                    ValueError::Tag => Problem::Tag,
                    ValueError::Malformed(why) => Problem::Malformed(why),
                })
            })?;
        }
        if encrypted || !self.rules.mac_only_encrypted {
            self.mac.update(go_bytes(scalar));
        }
        Ok(())
    }

    fn problem(&self, problem: Problem) -> (String, Problem) {
        (format!("/{}", self.place.join("/")), problem)
    }
}

/// A value as SOPS hashes it (`sops.go` `ToBytes`: Go's renderings of each type).
fn go_bytes(scalar: &Scalar) -> Vec<u8> {
    match scalar {
        Scalar::Null => Vec::new(),
        Scalar::Str(s) | Scalar::Time(s) => s.as_bytes().to_vec(),
        Scalar::Bytes(b) => b.clone(),
        Scalar::Int(i) => i.to_string().into_bytes(),
        Scalar::Bool(b) => if *b { "True" } else { "False" }.as_bytes().to_vec(),
        Scalar::Float(f) => go_float(*f).into_bytes(),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read back, never an
/// exponent; Rust's `Display` for `f64` is the same but for infinities.
fn go_float(f: f64) -> String {
    match f {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        _ => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_render_as_go_does() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1e21), "1000000000000000000000");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(go_float(f64::NAN), "NaN");
    }
}
