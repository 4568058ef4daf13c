//! The document's data key: 32 bytes SOPS seals, as an armored age file, for each age recipient
//! (getsops/sops `age/keysource.go` `Encrypt`/`Decrypt`). The first copy one of our keys opens
//! is used, as SOPS does.

use std::io::Read;

use age::armor::ArmoredReader;
use age::{DecryptError, Decryptor};

use super::metadata::AgeStanza;
use crate::secrets::age_identities::AgeIdentities;

pub(crate) enum Unseal {
    /// None of the keys is a recipient.
    NoMatch,
    /// A recipient's copy is not an age file, or opens to something other than a data key.
    Malformed(String),
    /// A copy one of the keys matches fails its MAC: it was changed.
    Tampered(String),
}

pub(crate) fn unseal(stanzas: &[AgeStanza], ids: &AgeIdentities) -> Result<[u8; 32], Unseal> {
    let mut failure = Unseal::NoMatch;
    for stanza in stanzas {
        match open(stanza, ids) {
            Ok(key) => return Ok(key),
            Err(Unseal::NoMatch) => {}
            Err(other) => failure = other,
        }
    }
    Err(failure)
}

fn open(stanza: &AgeStanza, ids: &AgeIdentities) -> Result<[u8; 32], Unseal> {
    // Document text, printed escaped.
    let whose = format!("{:?}", stanza.recipient);
    let reason = |e: DecryptError| match e {
        DecryptError::NoMatchingKeys => Unseal::NoMatch,
        DecryptError::InvalidMac | DecryptError::DecryptionFailed => Unseal::Tampered(format!(
            "the data key sealed for {whose} fails its age authentication"
        )),
        other => Unseal::Malformed(format!(
            "the data key sealed for {whose} cannot be read as an age file ({other})"
        )),
    };
    let decryptor = Decryptor::new(ArmoredReader::new(stanza.enc.as_bytes())).map_err(reason)?;
    let mut reader = decryptor.decrypt(ids.identities()).map_err(reason)?;
    let mut key = Vec::with_capacity(32);
    reader
        .by_ref()
        .take(33)
        .read_to_end(&mut key)
        .map_err(|_| {
            Unseal::Tampered(format!(
                "the data key sealed for {whose} fails its age authentication"
            ))
        })?;
    key.try_into()
        .map_err(|_| Unseal::Malformed(format!("the data key sealed for {whose} is not 32 bytes")))
}
