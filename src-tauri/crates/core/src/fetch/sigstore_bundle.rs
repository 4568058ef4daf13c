//! The Sigstore bundle an Enterprise Image Factory serves as `<asset>.sigstore.json`: read, not
//! trusted. What it says is checked against the factory's key in `factory_signature`.
//!
//! The shape is upstream's (siderolabs/image-factory at 26b95ca): `internal/image/signer/key.go`
//! `SignBlob` builds a protobuf-specs `Bundle` with media type v0.3, a
//! `verificationMaterial.publicKey.hint` (standard base64 of the SHA-256 of the key's PKIX DER)
//! and a `messageSignature` (`messageDigest {algorithm: SHA2_256, digest}` over the asset's bytes,
//! and an ASN.1 DER ECDSA `signature`), marshalled with protojson: lowerCamelCase names, bytes in
//! standard base64, enums by name. `enterprise/assetsignature/writer.go` `validateBundle` checks
//! the media type before it serves one. A factory signing keyless (`internal/image/signer/gsa.go`)
//! puts a Fulcio certificate in `verificationMaterial` instead of a key hint.

use base64::Engine as _;
use serde::Deserialize;

use crate::fetch::digest::Sha256Digest;

/// The only media type upstream serves (writer.go `bundleMediaType`).
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// What a bundle says, once it reads as one.
#[derive(Debug, PartialEq, Eq)]
pub enum Bundle {
    /// Signed with a key: what `factory_signature` verifies with the factory's public key.
    Key(KeySigned),
    /// Signed keyless: the signer is a Fulcio certificate, which only Sigstore's trust roots
    /// (and its transparency log) can vouch for. labflash has neither, so it does not check it.
    Keyless,
}

#[derive(Debug, PartialEq, Eq)]
pub struct KeySigned {
    /// The SHA-256 of the signing key's PKIX DER, when the bundle names it.
    pub hint: Option<[u8; 32]>,
    /// The SHA-256 of the asset's bytes, as signed.
    pub digest: Sha256Digest,
    /// ASN.1 DER ECDSA signature over `digest`.
    pub signature: Vec<u8>,
}

/// Reads a bundle; the error is one clause saying what is wrong with it.
pub fn parse(text: &str) -> Result<Bundle, String> {
    let raw: Raw = serde_json::from_str(text)
        .map_err(|e| format!("it is not a Sigstore bundle's JSON ({e})"))?;
    if raw.media_type != MEDIA_TYPE {
        return Err(format!(
            "its media type is {:?}, not {MEDIA_TYPE:?}",
            raw.media_type
        ));
    }
    let material = raw
        .verification_material
        .ok_or("it has no verificationMaterial")?;
    let certified = material.certificate.is_some() || material.x509_certificate_chain.is_some();
    let public_key = match (material.public_key, certified) {
        (Some(_), true) => {
            return Err(
                "its verificationMaterial names both a public key and a certificate, which no signer makes".into(),
            )
        }
        (None, true) => return Ok(Bundle::Keyless),
        (Some(key), false) => key,
        (None, false) => {
            return Err(
                "its verificationMaterial names neither a public key nor a certificate".into(),
            )
        }
    };
    let signed = raw
        .message_signature
        .ok_or("it holds no messageSignature (an asset's bundle signs the asset's digest)")?;
    let digest = signed
        .message_digest
        .ok_or("its messageSignature has no messageDigest")?;
    if digest.algorithm != "SHA2_256" {
        return Err(format!(
            "its digest algorithm is {:?}, not SHA2_256",
            digest.algorithm
        ));
    }
    let digest_bytes = bytes("messageDigest.digest", &digest.digest)?;
    let digest: [u8; 32] = digest_bytes.as_slice().try_into().map_err(|_| {
        format!(
            "its SHA-256 digest is {} bytes long, not 32",
            digest_bytes.len()
        )
    })?;
    let hint = match public_key.hint.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(hint) => {
            let hint_bytes = bytes("publicKey.hint", hint)?;
            Some(hint_bytes.as_slice().try_into().map_err(|_| {
                format!(
                    "its key hint is {} bytes long, not a 32-byte SHA-256",
                    hint_bytes.len()
                )
            })?)
        }
    };
    let signature = bytes("messageSignature.signature", &signed.signature)?;
    if signature.is_empty() {
        return Err("its signature is empty".into());
    }
    Ok(Bundle::Key(KeySigned {
        hint,
        digest: Sha256Digest::from_bytes(digest),
        signature,
    }))
}

/// A protojson bytes field: standard base64, as protojson writes it.
fn bytes(field: &str, text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("its {field} is not base64 ({e})"))
}

// protojson writes lowerCamelCase names and reads the proto names too: both are accepted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(alias = "media_type", default)]
    media_type: String,
    #[serde(alias = "verification_material")]
    verification_material: Option<Material>,
    #[serde(alias = "message_signature")]
    message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(alias = "public_key")]
    public_key: Option<PublicKey>,
    certificate: Option<serde_json::Value>,
    #[serde(alias = "x509_certificate_chain")]
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct PublicKey {
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    #[serde(alias = "message_digest")]
    message_digest: Option<HashOutput>,
    #[serde(default)]
    signature: String,
}

#[derive(Deserialize)]
struct HashOutput {
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; // SHA-256 of nothing
    const HINT: &str = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
    const SIG: &str = "MEUCIQDu";

    /// A bundle shaped as `SignBlob` marshals it (key.go), with `field` replaced.
    fn bundle(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::json!({
            "mediaType": MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": HINT}},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": DIGEST},
                "signature": SIG
            }
        });
        edit(&mut v);
        v.to_string()
    }

    fn refusal(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        parse(&bundle(edit)).unwrap_err()
    }

    #[test]
    fn a_key_signed_bundle_reads_as_signed_blob_writes_it() {
        let Bundle::Key(signed) = parse(&bundle(|_| {})).unwrap() else {
            panic!("key-signed")
        };
        assert_eq!(signed.digest, Sha256Digest::of_bytes(b""));
        assert_eq!(signed.hint.unwrap()[..2], [0x9f, 0x86]);
        assert_eq!(signed.signature, [0x30, 0x45, 0x02, 0x21, 0x00, 0xee]);
    }

    #[test]
    fn proto_field_names_are_read_too() {
        let text = bundle(|_| {})
            .replace("mediaType", "media_type")
            .replace("messageDigest", "message_digest");
        assert!(matches!(parse(&text), Ok(Bundle::Key(_))));
    }

    #[test]
    fn a_certificate_makes_it_keyless() {
        let keyless = bundle(|v| {
            v["verificationMaterial"] = serde_json::json!({"certificate": {"rawBytes": "MIIB"}})
        });
        assert_eq!(parse(&keyless), Ok(Bundle::Keyless));
    }

    #[test]
    fn a_public_key_beside_a_certificate_is_refused() {
        for field in ["certificate", "x509CertificateChain"] {
            let why = refusal(|v| v["verificationMaterial"][field] = serde_json::json!({}));
            assert!(why.contains("both a public key and a certificate"), "{why}");
        }
    }

    #[test]
    fn each_broken_part_is_named() {
        assert!(refusal(|v| v["mediaType"] = "application/json".into()).contains("media type"));
        assert!(refusal(|v| v["messageSignature"]["signature"] = "".into())
            .contains("signature is empty"));
        assert!(refusal(|v| {
            v["messageSignature"]
                .as_object_mut()
                .unwrap()
                .remove("signature");
        })
        .contains("signature is empty"));
        assert!(refusal(|v| {
            v.as_object_mut().unwrap().remove("messageSignature");
        })
        .contains("no messageSignature"));
        assert!(refusal(
            |v| v["messageSignature"]["messageDigest"]["algorithm"] = "SHA2_512".into()
        )
        .contains("\"SHA2_512\", not SHA2_256"));
        assert!(
            refusal(|v| v["messageSignature"]["messageDigest"]["digest"] = "AAAA".into())
                .contains("3 bytes long, not 32")
        );
        assert!(
            refusal(|v| v["verificationMaterial"]["publicKey"]["hint"] = "AAAA".into())
                .contains("hint is 3 bytes long")
        );
        assert!(
            refusal(|v| v["messageSignature"]["signature"] = "not base64!".into())
                .contains("signature is not base64")
        );
        assert!(refusal(|v| {
            v.as_object_mut().unwrap().remove("verificationMaterial");
        })
        .contains("no verificationMaterial"));
        assert!(parse("{")
            .unwrap_err()
            .contains("not a Sigstore bundle's JSON"));
    }
}
