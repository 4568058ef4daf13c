//! One SOPS value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` (getsops/sops `aes/cipher.go`),
//! AES-256-GCM under the document's data key with a 32-byte IV, authenticated with additional
//! data (a value's key path, or the MAC's `lastmodified`).

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::secrets::yaml_tree::Scalar;

/// What went wrong with a value, for its caller to name the value.
pub(crate) enum ValueError {
    /// Not of SOPS's value format (or of a type SOPS does not write).
    Malformed(&'static str),
    /// The GCM tag does not hold: the value or its place was changed.
    Tag,
}

/// SOPS's nonce: 32 bytes, not GCM's usual 12 (`aes/cipher.go` `nonceSize`).
type SopsGcm = AesGcm<Aes256, U32>;

/// The plaintext of `value` under `key`, typed by its `type:` field. An empty string is SOPS's
/// encryption of an empty string (it leaves those as they are).
pub(crate) fn decrypt(value: &str, key: &[u8; 32], aad: &str) -> Result<Scalar, ValueError> {
    if value.is_empty() {
        return Ok(Scalar::Str(String::new()));
    }
    let fields = parse(value)?;
    let cipher = SopsGcm::new_from_slice(key).map_err(|_| ValueError::Malformed("bad key"))?;
    let mut sealed = fields.data;
    sealed.extend_from_slice(&fields.tag);
    let plain = cipher
        .decrypt(
            Nonce::<U32>::from_slice(&fields.iv),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| ValueError::Tag)?;
    typed(plain, fields.datatype)
}

struct Fields<'a> {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    datatype: &'a str,
}

fn parse(value: &str) -> Result<Fields<'_>, ValueError> {
    const MALFORMED: ValueError =
        ValueError::Malformed("it is not of SOPS's ENC[AES256_GCM,…] form");
    let inner = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|v| v.strip_suffix(']'))
        .ok_or(MALFORMED)?;
    let mut parts = inner.split(',');
    let mut field = |name: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .and_then(|p| p.strip_prefix(':'))
            .ok_or(MALFORMED)
    };
    let (data, iv, tag, datatype) = (field("data")?, field("iv")?, field("tag")?, field("type")?);
    if parts.next().is_some() {
        return Err(MALFORMED);
    }
    let b64 = |s: &str| {
        STANDARD
            .decode(s)
            .map_err(|_| ValueError::Malformed("a field of it is not base64"))
    };
    let fields = Fields {
        data: b64(data)?,
        iv: b64(iv)?,
        tag: b64(tag)?,
        datatype,
    };
    if fields.iv.len() != 32 || fields.tag.len() != 16 {
        return Err(ValueError::Malformed(
            "its IV is not 32 bytes or its tag not 16 bytes",
        ));
    }
    Ok(fields)
}

/// The plaintext as the type SOPS recorded (`aes/cipher.go` `Decrypt`'s switch).
fn typed(plain: Vec<u8>, datatype: &str) -> Result<Scalar, ValueError> {
    if datatype == "bytes" {
        return Ok(Scalar::Bytes(plain));
    }
    let text = String::from_utf8(plain).map_err(|_| ValueError::Malformed("it is not UTF-8"))?;
    let wrong = ValueError::Malformed("its plaintext is not of its recorded type");
    Ok(match datatype {
        "str" => Scalar::Str(text),
        "int" => Scalar::Int(text.parse().map_err(|_| wrong)?),
        "float" => Scalar::Float(text.parse().map_err(|_| wrong)?),
        "bool" => Scalar::Bool(go_parse_bool(&text).ok_or(wrong)?),
        "time" => Scalar::Time(text),
        _ => return Err(ValueError::Malformed("its type is not one SOPS writes")),
    })
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_values_not_of_sops_form() {
        let key = [0u8; 32];
        for bad in [
            "plain",
            "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]",
            "ENC[AES256_GCM,data:%%,iv:AA==,tag:AA==,type:str]",
            "ENC[AES256_GCM,data:AA==]",
        ] {
            assert!(matches!(
                decrypt(bad, &key, "a:"),
                Err(ValueError::Malformed(_))
            ));
        }
    }
}
