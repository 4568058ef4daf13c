//! An Image Factory's public signing key: read from PEM, named by its fingerprint, pinned in the
//! cache per factory on first use (as ssh pins a host key), and used to verify an ECDSA P-256
//! signature over a SHA-256 computed elsewhere (while the asset streamed in).
//!
//! The factory serves its key at `GET /oci/cosign/signing-key.pub` without authentication
//! (siderolabs/image-factory at 26b95ca: `internal/frontend/http/http.go:211` registers it as a
//! public route; `internal/integration/auth_test.go:201` asks for it with no credentials). It is
//! an ECDSA key (`cmd/image-factory/cmd/options.go:391`), P-256 in upstream's tests
//! (`internal/image/signer/key_test.go`), written as a PKIX "PUBLIC KEY" PEM.

use std::io::Read;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::{io_at, Error, Result};
use crate::fetch::cache::Cache;
use crate::fetch::digest::Sha256Digest;

/// A P-256 public key and the SHA-256 of its PKIX DER (what a bundle's key hint holds).
#[derive(Clone, Debug)]
pub struct FactoryKey {
    key: VerifyingKey,
    pem: String,
    der_sha256: [u8; 32],
}

impl FactoryKey {
    /// Reads a PEM public key; the error is one clause naming what it is instead (another key
    /// type, not a key at all).
    pub fn from_pem(text: &str) -> std::result::Result<Self, String> {
        let (label, der) = p256::pkcs8::der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| format!("it is not a PEM public key ({e})"))?;
        if label != "PUBLIC KEY" {
            return Err(format!("it is a PEM {label:?}, not a \"PUBLIC KEY\""));
        }
        let info = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| format!("it is not a PKIX public key ({e})"))?;
        let kind = key_type(&info);
        if kind != "an ECDSA P-256 key" {
            return Err(format!(
                "it is {kind}, and labflash verifies factory signatures made with ECDSA P-256 keys (the kind upstream signs with)"
            ));
        }
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| format!("it is not a valid P-256 public key ({e})"))?;
        Ok(Self {
            key,
            pem: text.trim().to_string() + "\n",
            der_sha256: Sha256::digest(&der).into(),
        })
    }

    /// `sha256:<hex>` of the key's PKIX DER: what
    /// `openssl pkey -pubin -in signing-key.pub -outform DER | sha256sum` prints.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.der_sha256)
    }

    /// The SHA-256 of its PKIX DER.
    pub fn der_sha256(&self) -> &[u8; 32] {
        &self.der_sha256
    }

    /// Whether `signature` (ASN.1 DER) is this key's ECDSA signature of `digest`.
    pub fn verifies(&self, digest: &Sha256Digest, signature: &[u8]) -> bool {
        Signature::from_der(signature)
            .is_ok_and(|sig| self.key.verify_prehash(digest.as_bytes(), &sig).is_ok())
    }

    /// The operator's key file (`--factory-key`): unreadable or not a P-256 key is bad input.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadInput(format!(
                "cannot read the factory key {}: {e}",
                path.display()
            ))
        })?;
        Self::from_pem(&text).map_err(|why| {
            Error::BadInput(format!(
                "the factory key {} cannot be used: {why}",
                path.display()
            ))
        })
    }
}

/// `sha256:<hex>`, as keys are named to people.
pub fn fingerprint_of(der_sha256: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(der_sha256))
}

/// A key type in words, from its algorithm (and curve) identifiers.
fn key_type(info: &SubjectPublicKeyInfoRef<'_>) -> String {
    const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    let curve = |oid: ObjectIdentifier| match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256".to_string(),
        "1.3.132.0.34" => "P-384".to_string(),
        "1.3.132.0.35" => "P-521".to_string(),
        other => format!("curve {other}"),
    };
    match info.algorithm.oid {
        EC => match info.algorithm.parameters_oid() {
            Ok(oid) => format!("an ECDSA {} key", curve(oid)),
            Err(_) => "an ECDSA key with no named curve".into(),
        },
        RSA => "an RSA key".into(),
        ED25519 => "an Ed25519 key".into(),
        other => format!("a key of algorithm {other}"),
    }
}

/// Where a factory's key is pinned: one file per origin (scheme, host without a trailing dot,
/// port), under `<cache>/factory-keys/`, named `<scheme>_<host>_<port>-<hex>.pem`: the readable
/// part has every other character than a letter, digit, `.`, `-` and `_` as `_`, and `<hex>` is
/// the SHA-256 of the origin `<scheme>://<host>:<port>`, so two origins never share a file. No
/// credentials are in it; `cache clear` keeps it.
pub fn pin_path(cache: &Cache, factory: &Url) -> PathBuf {
    let host = factory.host_str().unwrap_or("");
    let host = host.strip_suffix('.').unwrap_or(host);
    let port = factory.port_or_known_default().unwrap_or(0);
    let origin = format!("{}://{host}:{port}", factory.scheme());
    let readable: String = format!("{}_{host}_{port}", factory.scheme())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!(
        "{readable}-{}.pem",
        hex::encode(Sha256::digest(origin.as_bytes()))
    );
    cache.root().join("factory-keys").join(name)
}

/// The key pinned at `path`, if one is.
pub fn pinned(cache: &Cache, path: &Path) -> Result<Option<FactoryKey>> {
    let Some(mut file) = cache.open_file(path)? else {
        return Ok(None);
    };
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_at(path))?;
    FactoryKey::from_pem(&text).map(Some).map_err(|why| {
        Error::BadInput(format!(
            "the pinned factory key {} cannot be used: {why}; remove it to pin the factory's key again",
            path.display()
        ))
    })
}

/// Pins `key` at `path`: written whole beside it and linked into place, or not at all. A key
/// already pinned there (by another run meanwhile) is never replaced: returns it when it is
/// another key, `None` when `key` is what is pinned.
pub fn pin(cache: &Cache, path: &Path, key: &FactoryKey) -> Result<Option<FactoryKey>> {
    use std::io::Write;
    let mut tmp = cache.temp_beside(path)?;
    tmp.write_all(key.pem.as_bytes())
        .map_err(io_at(tmp.path()))?;
    if tmp.commit_new()? {
        return Ok(None);
    }
    match pinned(cache, path)? {
        Some(there) if there.der_sha256 == key.der_sha256 => Ok(None),
        Some(there) => Ok(Some(there)),
        None => Err(Error::BadInput(format!(
            "the factory key could not be pinned in {}: something other than a file has that name",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A P-256 key and an Ed25519 key, as `openssl pkey -pubout` writes them.
    const P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErnLVuIhoupqo48B1ZngyEA54pMiO
1/kpf8LYUFO6Xl4XqS+qvLcLIdpZftTiE9MdeKcMY6D4WL2ZyaHMSXtm9Q==
-----END PUBLIC KEY-----
";
    const OTHER_P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhzv+UV0HrC1GWoXsbg712mCxspsZ
tmkHCExEFdmiNZ+5G3L6bDH2yVO29v7RW6cQ4jmqxpTOmYX49y27u3z1tg==
-----END PUBLIC KEY-----
";
    const ED25519: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA1Lxvj3iIPEzlF6YQV10rsRePTVDebf5G3vdrpivzNDM=
-----END PUBLIC KEY-----
";

    #[test]
    fn a_p256_key_reads_and_is_named_by_its_der_digest() {
        let key = FactoryKey::from_pem(P256).unwrap();
        let der = p256::pkcs8::der::pem::decode_vec(P256.as_bytes())
            .unwrap()
            .1;
        assert_eq!(
            key.fingerprint(),
            format!("sha256:{}", hex::encode(Sha256::digest(&der)))
        );
    }

    #[test]
    fn other_key_types_are_named_when_refused() {
        let why = FactoryKey::from_pem(ED25519).unwrap_err();
        assert!(why.contains("it is an Ed25519 key"), "{why}");
        let why = FactoryKey::from_pem("not a key").unwrap_err();
        assert!(why.contains("not a PEM public key"), "{why}");
    }

    #[test]
    fn a_pin_is_named_by_origin_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let url = Url::parse("https://op:secret@factory.example/sub/?token=t").unwrap();
        let path = pin_path(&cache, &url);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("https_factory.example_443-") && name.ends_with(".pem"),
            "{name}"
        );
        assert!(!path.to_string_lossy().contains("secret"));
        // The same origin however written; a trailing dot is the same host.
        for same in ["https://factory.example:443/", "https://FACTORY.example./x"] {
            assert_eq!(pin_path(&cache, &Url::parse(same).unwrap()), path, "{same}");
        }
        // Origins whose readable parts are alike still get files of their own.
        let v6 = pin_path(&cache, &Url::parse("http://[::1]:8080/").unwrap());
        let alike = pin_path(&cache, &Url::parse("http://___1_:8080/").unwrap());
        assert_ne!(v6, alike);
        assert!(v6.starts_with(cache.root().join("factory-keys")));
        assert!(pinned(&cache, &path).unwrap().is_none());
        pin(&cache, &path, &FactoryKey::from_pem(P256).unwrap()).unwrap();
        let back = pinned(&cache, &path).unwrap().unwrap();
        assert_eq!(
            back.fingerprint(),
            FactoryKey::from_pem(P256).unwrap().fingerprint()
        );
    }

    #[test]
    fn a_pin_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let path = pin_path(&cache, &Url::parse("https://factory.example/").unwrap());
        let key = FactoryKey::from_pem(P256).unwrap();
        assert!(pin(&cache, &path, &key).unwrap().is_none());
        // The same key again (two runs racing with the same key): fine.
        assert!(pin(&cache, &path, &key).unwrap().is_none());
        // Another key pinned meanwhile: that one is returned, and stays.
        let other = FactoryKey::from_pem(OTHER_P256).unwrap();
        let there = pin(&cache, &path, &other).unwrap().unwrap();
        assert_eq!(there.fingerprint(), key.fingerprint());
        assert_eq!(
            pinned(&cache, &path).unwrap().unwrap().fingerprint(),
            key.fingerprint()
        );
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
