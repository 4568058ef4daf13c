//! How an Image Factory answers for files it does not serve, by edition, as its handlers do
//! (siderolabs/image-factory `internal/frontend/http/image.go` `handleImage`, `http.go`
//! `MatchError`, `internal/profile/profile.go` `ParseFromPath`; read at 26b95ca, v1.0.3 and
//! v1.1.0):
//! - the `.sha256` / `.sha512` checksum of an asset exists only in Enterprise builds since v1.1.0;
//!   a community build answers 402 to it before it looks anything else up, and so it does to an
//!   asset's `.sigstore.json` signature, as does an Enterprise build that does not sign (its
//!   signature writer is not set up: `image.go` at 26b95ca, "enterprise signing is not enabled");
//! - a name that is not an asset (`x.raw.xz.sha256sum`, `SHA256SUMS`, and `.sha256` itself before
//!   v1.1.0) is 400 ("invalid profile path");
//! - a schematic or version it does not have, 404.

use std::sync::Arc;

use base64::Engine as _;
use rcgen::{KeyPair, PublicKeyData, SigningKey};

use super::server::Server;
use super::sha256_hex;

#[derive(Clone, Copy, Debug)]
pub enum Edition {
    /// Since v1.1.0, without the Enterprise features: 402 for checksums.
    Community,
    /// Serves `<asset>.sha256`: put them with `Server::put_with_sidecar`; a `.sigstore.json` not
    /// put is 402 (signing not set up).
    Enterprise,
    /// Before v1.1.0: no checksum route at all.
    BeforeChecksums,
}

/// Makes `server` answer unknown paths as a factory of `edition` does.
pub fn answer_like(server: &Server, edition: Edition) {
    server.on_missing(Arc::new(move |path: &str| {
        let Some(rest) = path.strip_prefix("/image/") else {
            return 404;
        };
        let name = rest.rsplit('/').next().unwrap_or("");
        let checksum = name.ends_with(".sha256") || name.ends_with(".sha512");
        let signature = name.ends_with(".sigstore.json");
        match edition {
            Edition::Community if checksum || signature => 402,
            Edition::Enterprise if signature => 402,
            _ if !is_asset_name(name) => 400,
            _ => 404,
        }
    }));
}

/// The names `ParseFromPath` accepts for disk images, ISOs and UKIs:
/// `<platform>-<arch>[-secureboot]` then `.iso`, `-uki.efi`, or a disk format (`raw`, `qcow2`,
/// `vhd`, `ova`) with an optional compression (`.tar.gz`, `.gz`, `.xz`, `.zst`).
pub fn is_asset_name(name: &str) -> bool {
    let stem = name
        .strip_suffix(".iso")
        .or_else(|| name.strip_suffix("-uki.efi"))
        .or_else(|| {
            let bare = [".tar.gz", ".gz", ".xz", ".zst"]
                .iter()
                .find_map(|c| name.strip_suffix(c))
                .unwrap_or(name);
            [".raw", ".qcow2", ".vhd", ".ova"]
                .iter()
                .find_map(|d| bare.strip_suffix(d))
        });
    let Some(stem) = stem else {
        return false;
    };
    let stem = stem.strip_suffix("-secureboot").unwrap_or(stem);
    stem.rsplit_once('-')
        .is_some_and(|(platform, arch)| !platform.is_empty() && matches!(arch, "amd64" | "arm64"))
}

/// An Enterprise factory's key-signed assets (siderolabs/image-factory at 26b95ca,
/// `internal/image/signer/key.go` `SignBlob`; see factory_signature_cli.rs): a P-256 key made by
/// rcgen (ring), whose ECDSA_P256_SHA256_ASN1 signature is the one `LoadSignerVerifier(key,
/// crypto.SHA256)` makes.
pub fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `sha256:<hex>` of the key's PKIX DER, as labflash names a key.
pub fn fingerprint(key: &KeyPair) -> String {
    format!("sha256:{}", sha256_hex(&key.subject_public_key_info()))
}

/// The bundle `SignBlob` serves for `asset`, signed by `signer`, naming `hinted` as its key.
pub fn bundle(signer: &KeyPair, hinted: &KeyPair, asset: &[u8]) -> Vec<u8> {
    let hint = b64(&hex::decode(sha256_hex(&hinted.subject_public_key_info())).unwrap());
    let digest = b64(&hex::decode(sha256_hex(asset)).unwrap());
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": digest},
            "signature": b64(&signer.sign(asset).unwrap()),
        }
    })
    .to_string()
    .into_bytes()
}

/// labctl's own files (tests/fixtures/labctl, each naming its upstream source) in a fresh folder,
/// `talos-valid.yaml`'s factoryURL pointed at `server`, as labctl's `talos_image_build.txtar` runs.
pub fn labctl_folder(server: &Server) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labctl");
    for entry in std::fs::read_dir(&fixtures).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("talos-valid.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  factoryURL: http://127.0.0.1:8080\n",
        &format!("  factoryURL: {}\n", server.url("")),
    );
    assert!(text.contains(&server.url("")));
    std::fs::write(&config, text).unwrap();
    dir
}
