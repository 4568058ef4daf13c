//! An Enterprise Image Factory's signed assets against a stand-in on 127.0.0.1: it serves
//! `<asset>.sigstore.json` made as the factory's `SignBlob` makes it and its key at
//! `/oci/cosign/signing-key.pub`, and labflash verifies the asset with that key (pinned on first
//! use, or given with --factory-key) or refuses it, with exit 1 and nothing left in the cache.
//!
//! The bundle's shape is upstream's: siderolabs/image-factory at 26b95ca,
//! `internal/image/signer/key.go` `SignBlob` (a protobuf-specs Bundle v0.3 marshalled with
//! protojson: `verificationMaterial.publicKey.hint` = base64 SHA-256 of the key's PKIX DER,
//! `messageSignature.messageDigest {algorithm: SHA2_256, digest}` and an ASN.1 DER ECDSA
//! `signature` made by `LoadSignerVerifier(key, crypto.SHA256)`: SHA-256 of the asset's bytes),
//! checked the way `internal/image/signer/key_test.go` checks one. The keys here are P-256 keys
//! made by rcgen (ring), whose ECDSA_P256_SHA256_ASN1 signing is that same signature.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::factory::{answer_like, bundle, fingerprint, labctl_folder, p256, Edition};
use common::server::{Reply, Request, Server};
use common::*;
use rcgen::KeyPair;

const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const KEY_PATH: &str = "/oci/cosign/signing-key.pub";
const TOKEN: &str = "dl-t0ken-s1gned-5ecret";

fn asset(name: &str) -> String {
    format!("/image/{SCHEMATIC}/v1.13.0/{name}")
}

/// An Enterprise factory serving `archive` (and its `.sha256`) as `name`, signed by `key`.
fn signed_factory(name: &str, archive: &[u8], key: &KeyPair) -> Server {
    let f = Server::start();
    answer_like(&f, Edition::Enterprise);
    f.put_with_sidecar(&asset(name), archive.to_vec());
    f.put(
        &format!("{}.sigstore.json", asset(name)),
        bundle(key, key, archive),
    );
    f.put(KEY_PATH, key.public_key_pem().into_bytes());
    f
}

fn talos_fetch(f: &Server, cache: &Path, extra: &[&str]) -> Run {
    let url = f.url("");
    let mut args = vec![
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--factory-url",
        &url,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Refused: exit 1, the error names `words`, and nothing is left in the cache: no archive, no
/// temp file, no key pinned.
fn assert_refused(r: &Run, cache: &Path, words: &[&str]) {
    assert_refused_keeping(r, cache, words, &[]);
}

/// As `assert_refused`, where `kept` (a key pinned by an earlier run) was there before.
fn assert_refused_keeping(r: &Run, cache: &Path, words: &[&str], kept: &[&Path]) {
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    for word in words {
        assert!(error.contains(word), "{word:?} not in: {error}");
    }
    let left: Vec<_> = cached_files(cache)
        .into_iter()
        .filter(|p| !kept.contains(&p.as_path()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_signed_asset_is_verified_with_the_factory_key_pinned_on_first_use() {
    let image = image_like(1 << 20, 91);
    let archive = xz_single(&image);
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let cache = tempfile::tempdir().unwrap();

    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["digestSource"], "signature");
    assert_eq!(json["archiveSHA256"], sha256_hex(&archive));
    assert_eq!(json["imageSHA256"], sha256_hex(&image));
    assert_eq!(
        json["signedBy"],
        format!("the factory key {}", fingerprint(&key))
    );
    let signature = &json["factorySignature"];
    assert_eq!(signature["keyFingerprint"], fingerprint(&key));
    assert_eq!(signature["key"], "pinnedNow");
    let pin = Path::new(signature["pinFile"].as_str().unwrap()).to_path_buf();
    assert!(
        pin.starts_with(cache.path().join("factory-keys")),
        "{pin:?}"
    );
    assert_eq!(std::fs::read_to_string(&pin).unwrap(), key.public_key_pem());
    assert!(
        json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("seen for the first time and pinned"),
        "{json}"
    );
    assert!(r.stderr.contains(&fingerprint(&key)), "{}", r.stderr);
    // The signature settles it: no checksum file is asked for.
    let sidecar = format!("{}.sha256", asset("nocloud-amd64.raw.xz"));
    assert!(f.gets(&sidecar).is_empty());

    // Again: the pinned key, still the one served; the cached archive is reused.
    std::fs::remove_dir_all(cache.path().join("images")).unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["factorySignature"]["key"], "pinned");
    assert!(r.json().get("warnings").is_none(), "{}", r.stdout);
    assert_eq!(f.body_gets(&asset("nocloud-amd64.raw.xz")), 1);

    // A human run says who signed.
    let url = f.url("");
    let cache_dir = cache.path().to_str().unwrap();
    let human = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--factory-url",
        &url,
        "--cache-dir",
        cache_dir,
    ]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains(&format!(
            "signed by      the factory key {}",
            fingerprint(&key)
        )),
        "{}",
        human.stdout
    );
}

#[test]
fn a_bundle_for_another_asset_or_a_tampered_asset_is_refused() {
    let archive = xz_single(&image_like(1 << 20, 92));
    let other = xz_single(&image_like(1 << 20, 93));
    let key = p256();

    // The factory's valid signature, but of another asset's bytes.
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let bundle_path = format!("{}.sigstore.json", asset("nocloud-amd64.raw.xz"));
    f.put(&bundle_path, bundle(&key, &key, &other));
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused(&r, cache.path(), &["does not match", &sha256_hex(&other)]);

    // The signed asset, changed on the way.
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let mut tampered = archive.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 1;
    f.put(&asset("nocloud-amd64.raw.xz"), tampered);
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused(&r, cache.path(), &["does not match", &sha256_hex(&archive)]);
}

#[test]
fn a_bad_signature_or_a_broken_bundle_is_refused_before_the_download() {
    let archive = xz_single(&image_like(1 << 20, 94));
    let key = p256();
    let name = "metal-amd64.raw.xz";
    let bundle_path = format!("{}.sigstore.json", asset(name));
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        // Signed by another key, claiming to be the factory's.
        (
            bundle(&p256(), &key, &archive),
            &[
                "signature of",
                "is not the factory key",
                "signature of the SHA-256",
            ],
        ),
        (
            b"{\"mediaType\": ".to_vec(),
            &["cannot be read", "not a Sigstore bundle"],
        ),
        (
            String::from_utf8(bundle(&key, &key, &archive))
                .unwrap()
                .replace("SHA2_256", "SHA2_384")
                .into_bytes(),
            &["\"SHA2_384\", not SHA2_256"],
        ),
    ];
    for (served, words) in cases {
        let f = signed_factory(name, &archive, &key);
        f.put(&bundle_path, served);
        let cache = tempfile::tempdir().unwrap();
        let r = talos_fetch(
            &f,
            cache.path(),
            &["--format", "raw.xz", "--platform", "metal"],
        );
        assert_refused(&r, cache.path(), words);
        assert_eq!(f.body_gets(&asset(name)), 0, "downloaded all the same");
        assert!(
            !cache.path().join("factory-keys").exists()
                || files_under(&cache.path().join("factory-keys")).is_empty(),
            "a key that verified nothing was pinned"
        );
    }
}

#[test]
fn a_changed_factory_key_is_refused_until_the_operator_says_which_is_right() {
    let archive = xz_single(&image_like(1 << 20, 95));
    let (old, new) = (p256(), p256());
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &old);
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(talos_fetch(&f, cache.path(), &[]).code, 0);

    // The factory now signs with another key and serves it.
    f.put(KEY_PATH, new.public_key_pem().into_bytes());
    f.put(
        &format!("{}.sigstore.json", asset("nocloud-amd64.raw.xz")),
        bundle(&new, &new, &archive),
    );
    std::fs::remove_dir_all(cache.path().join("downloads")).unwrap();
    std::fs::remove_dir_all(cache.path().join("images")).unwrap();
    let pin = files_under(&cache.path().join("factory-keys"))
        .pop()
        .unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    let pin_shown = pin.display().to_string();
    assert_refused_keeping(
        &r,
        cache.path(),
        &[
            &fingerprint(&old),
            &fingerprint(&new),
            "--factory-key",
            &pin_shown,
        ],
        &[&pin],
    );
    assert_eq!(std::fs::read_to_string(&pin).unwrap(), old.public_key_pem());

    // The operator gives the new key: it verifies, and no key is asked for.
    let keys = tempfile::tempdir().unwrap();
    let new_pem = keys.path().join("new-key.pem");
    std::fs::write(&new_pem, new.public_key_pem()).unwrap();
    f.clear_log();
    let r = talos_fetch(
        &f,
        cache.path(),
        &["--factory-key", new_pem.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["factorySignature"]["key"], "given");
    assert!(r.json()["factorySignature"].get("pinFile").is_none());
    assert!(f.gets(KEY_PATH).is_empty(), "the key was fetched");
}

#[test]
fn a_given_key_that_is_not_the_signer_s_or_not_p256_is_refused() {
    let archive = xz_single(&image_like(1 << 20, 96));
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let keys = tempfile::tempdir().unwrap();

    let stranger = p256();
    let file = keys.path().join("stranger.pem");
    std::fs::write(&file, stranger.public_key_pem()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &["--factory-key", file.to_str().unwrap()]);
    assert_refused(
        &r,
        cache.path(),
        &[&fingerprint(&key), &fingerprint(&stranger), "--factory-key"],
    );

    // Another key type: bad input, named.
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let file = keys.path().join("ed25519.pem");
    std::fs::write(&file, ed25519.public_key_pem()).unwrap();
    let r = talos_fetch(&f, cache.path(), &["--factory-key", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("an Ed25519 key") && error.contains("P-256"),
        "{error}"
    );

    // The factory serving such a key: refused as a signature that cannot hold.
    f.put(KEY_PATH, ed25519.public_key_pem().into_bytes());
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused(&r, cache.path(), &["an Ed25519 key", KEY_PATH]);
}

#[test]
fn keyless_signatures_are_said_unchecked_and_sha512_serves_where_sha256_is_not() {
    let image = image_like(1 << 20, 97);
    let archive = xz_single(&image);
    let key = p256();
    let name = "nocloud-amd64.raw.xz";
    let cache = tempfile::tempdir().unwrap();

    // Keyless (a Fulcio certificate, as gsa.go signs): the .sha256 vouches, and that is said.
    let f = signed_factory(name, &archive, &key);
    f.put(
        &format!("{}.sigstore.json", asset(name)),
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIB"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}"#.to_vec(),
    );
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["digestSource"], "sidecar");
    assert!(json.get("signedBy").is_none());
    assert!(
        json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("NOT checked"),
        "{json}"
    );
    assert!(r.stderr.contains("NOT checked"));

    // An Enterprise factory that does not sign and serves only .sha512 (checksummer.go's body).
    let g = Server::start();
    answer_like(&g, Edition::Enterprise);
    g.put(&asset(name), archive.clone());
    let sha512 = |bytes: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(bytes))
    };
    g.put(
        &format!("{}.sha512", asset(name)),
        format!("{}  {name}\n", sha512(&archive)).into_bytes(),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&g, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "sha512");
    assert_eq!(r.json()["imageSHA256"], sha256_hex(&image));
    assert_eq!(g.gets(&format!("{}.sigstore.json", asset(name))).len(), 1);

    // A .sha512 the download does not match.
    g.put(
        &format!("{}.sha512", asset(name)),
        format!("{}  {name}\n", sha512(b"other")).into_bytes(),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&g, cache.path(), &[]);
    assert_refused(&r, cache.path(), &["SHA-512", &sha512(b"other")]);

    // A community factory: 402 to all three, and today's message.
    let c = Server::start();
    answer_like(&c, Edition::Community);
    c.put(&asset(name), archive.clone());
    let r = talos_fetch(&c, cache.path(), &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("community build"));
    for probe in [".sigstore.json", ".sha256", ".sha512"] {
        assert_eq!(
            c.gets(&format!("{}{probe}", asset(name))).len(),
            1,
            "{probe}"
        );
    }
}

#[test]
fn credentials_go_with_the_bundle_and_key_requests_and_are_never_shown() {
    let archive = xz_single(&image_like(1 << 20, 98));
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    f.require(Arc::new(|r: &Request| {
        r.path.contains(&format!("token={TOKEN}"))
    }));
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &["--factory-token", TOKEN, "-vv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "signature");
    let asked = f.requests();
    for path in [
        format!("{}.sigstore.json", asset("nocloud-amd64.raw.xz")),
        KEY_PATH.to_string(),
    ] {
        assert!(
            asked
                .iter()
                .any(|q| q.path.starts_with(&path) && q.path.contains(TOKEN)),
            "{path} not asked with the token"
        );
    }
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains(TOKEN), "the token was shown:\n{text}");
    }
    for file in files_under(cache.path()) {
        assert!(!file.to_string_lossy().contains(TOKEN));
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    }
}

#[test]
fn talos_build_verifies_the_factory_s_signature_too() {
    let archive = xz_single(&image_like(1 << 20, 99));
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let dir = labctl_folder(&f);
    let cache = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| -> Run {
        let mut args = vec!["talos", "build", "--json", "talos-valid.yaml"];
        args.extend_from_slice(extra);
        labflash(&args)
            .current_dir(dir.path())
            .env("LABFLASH_CACHE_DIR", cache.path())
            .output()
            .unwrap()
            .into()
    };
    let r = build(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("pinned") && r.stderr.contains(&fingerprint(&key)),
        "{}",
        r.stderr
    );
    assert!(f
        .gets(&format!("{}.sha256", asset("nocloud-amd64.raw.xz")))
        .is_empty());

    // The asset changed on the way: refused, and labctl's download folder keeps nothing new.
    let mut tampered = archive.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 1;
    f.put(&asset("nocloud-amd64.raw.xz"), tampered);
    let downloads = dir.path().join(".state/downloads");
    std::fs::remove_dir_all(&downloads).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let given = keys.path().join("factory.pem");
    std::fs::write(&given, key.public_key_pem()).unwrap();
    f.clear_log();
    let r = build(&["--factory-key", given.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(f.gets(KEY_PATH).is_empty(), "the given key was not used");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("does not match"));
    assert!(files_under(&downloads).is_empty());
}

/// The app's Talos source, as its commands call the engine: prepared (the digest card reads
/// `digestSource` and `signedBy` from the prepared image) and streamed (the plan's lines name the
/// signer).
#[tokio::test(flavor = "multi_thread")]
async fn the_app_s_prepared_and_streamed_talos_sources_name_the_signer() {
    use labflash_core::fetch::cache::Cache;
    use labflash_core::fetch::http::{Http, HttpPolicy};
    use labflash_core::fetch::{DigestSource, FetchRequest, DEFAULT_MAX_IMAGE_SIZE};
    use labflash_core::progress::{NoProgress, ProgressSink};
    use labflash_core::sources::talos_factory::{AssetRequest, Customization};
    use labflash_core::sources::{self, Source};
    use labflash_core::CancellationToken;

    let archive = xz_single(&image_like(1 << 20, 100));
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let http = Http::new(HttpPolicy::default()).unwrap();
    let (cancel, progress) = (
        CancellationToken::new(),
        Arc::new(NoProgress) as Arc<dyn ProgressSink>,
    );
    let source = Source::TalosFactory(AssetRequest {
        factory_url: f.url(""),
        factory_token: None,
        factory_key: None,
        version: "v1.13.0".into(),
        schematic: None,
        customization: Customization::default(),
        platform: "nocloud".into(),
        arch: "amd64".into(),
        secureboot: false,
        format: "raw.xz".into(),
        sha256: None,
        allow_unverified: false,
        max_image_size: DEFAULT_MAX_IMAGE_SIZE,
    });
    let signer = format!("the factory key {}", fingerprint(&key));

    let prepared = sources::prepare_source(&source, &http, &cache, &cancel, &progress)
        .await
        .unwrap();
    let view = serde_json::to_value(&prepared).unwrap();
    assert_eq!(view["digestSource"], "signature");
    assert_eq!(view["signedBy"], signer.as_str());
    assert!(view["warnings"][0].as_str().unwrap().contains("pinned"));

    let located = sources::locate(&source, &http, &cancel)
        .await
        .unwrap()
        .unwrap()
        .image;
    let url = located.source.parse().unwrap();
    let opened = labflash_core::flash::stream::open(
        &http,
        &cache,
        &FetchRequest::of(url, &located),
        &cancel,
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(opened.digest_source, DigestSource::Signature);
    assert_eq!(opened.signed_by.as_deref(), Some(signer.as_str()));
    assert_eq!(opened.expected.unwrap().hex(), sha256_hex(&archive));

    // Opened with a key first seen: nothing is pinned before the streamed bytes match.
    let fresh = Cache::open(dir.path().join("fresh")).unwrap();
    let opened = labflash_core::flash::stream::open(
        &http,
        &fresh,
        &FetchRequest::of(located.source.parse().unwrap(), &located),
        &cancel,
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(opened.digest_source, DigestSource::Signature);
    let kept = cached_files(&dir.path().join("fresh"));
    assert!(kept.is_empty(), "{kept:?}");
}

/// Once the factory's key is pinned, or one is given, its signature is required: a bundle not
/// served (whatever the status), keyless or naming a certificate beside its key is refused, and
/// no checksum file is taken in its place (review finding 1 and 2).
#[test]
fn a_pinned_or_given_key_requires_the_factory_s_signature() {
    let archive = xz_single(&image_like(1 << 20, 101));
    let evil = xz_single(&image_like(1 << 20, 102));
    let key = p256();
    let name = "nocloud-amd64.raw.xz";
    let bundle_path = format!("{}.sigstore.json", asset(name));
    let f = signed_factory(name, &archive, &key);
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "signature");
    let pin = files_under(&cache.path().join("factory-keys"))
        .pop()
        .unwrap();
    let forget_downloads = || {
        for dir in ["downloads", "images"] {
            let _ = std::fs::remove_dir_all(cache.path().join(dir));
        }
    };
    forget_downloads();

    // Another archive with its own .sha256 (or only a .sha512), the bundle not served.
    f.put_with_sidecar(&asset(name), evil.clone());
    for status in [400, 402, 404, 405, 410] {
        f.script(&bundle_path, vec![Reply::Status(status)]);
        let r = talos_fetch(&f, cache.path(), &[]);
        assert_refused_keeping(
            &r,
            cache.path(),
            &[
                "serves no signature",
                &format!("HTTP {status}"),
                &fingerprint(&key),
            ],
            &[&pin],
        );
        assert_eq!(
            f.body_gets(&asset(name)),
            1,
            "downloaded after HTTP {status}"
        );
    }
    let sha512 = {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(&evil))
    };
    f.put(
        &format!("{}.sha512", asset(name)),
        format!("{sha512}  {name}\n").into_bytes(),
    );
    f.script(&format!("{}.sha256", asset(name)), vec![Reply::Status(404)]);
    f.script(&bundle_path, vec![Reply::Status(404)]);
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused_keeping(&r, cache.path(), &["serves no signature"], &[&pin]);

    // A keyless bundle where a key is pinned.
    let keyless = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIB"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}"#;
    f.put(&bundle_path, keyless.to_vec());
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused_keeping(&r, cache.path(), &["keyless", &fingerprint(&key)], &[&pin]);

    // The factory's own valid bundle with an empty certificate beside its key: malformed,
    // refused with a key pinned or not.
    let mut both: serde_json::Value = serde_json::from_slice(&bundle(&key, &key, &evil)).unwrap();
    both["verificationMaterial"]["certificate"] = serde_json::json!({});
    f.put(&bundle_path, both.to_string().into_bytes());
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_refused_keeping(
        &r,
        cache.path(),
        &["both a public key and a certificate"],
        &[&pin],
    );
    let fresh = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, fresh.path(), &[]);
    assert_refused(&r, fresh.path(), &["both a public key and a certificate"]);
    assert_eq!(f.body_gets(&asset(name)), 1, "downloaded all the same");

    // A given key: the bundle not served is refused too.
    let keys = tempfile::tempdir().unwrap();
    let given = keys.path().join("factory.pem");
    std::fs::write(&given, key.public_key_pem()).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    f.script(&bundle_path, vec![Reply::Status(404)]);
    let r = talos_fetch(
        &f,
        fresh.path(),
        &["--factory-key", given.to_str().unwrap()],
    );
    assert_refused(&r, fresh.path(), &["serves no signature", "--factory-key"]);

    // A given key file that cannot be read: bad input, before any request.
    f.clear_log();
    let missing = keys.path().join("nonexistent.pem");
    let r = talos_fetch(
        &f,
        fresh.path(),
        &["--factory-key", missing.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the factory key"),
        "{}",
        r.stdout
    );
    assert!(f.gets(&bundle_path).is_empty(), "the bundle was asked for");
    assert_eq!(f.body_gets(&asset(name)), 0);
}

/// A factory never seen signing that serves no signature: its checksum file vouches, as the
/// result's `digestSource` says; no signer is named and nothing is pinned.
#[test]
fn an_unsigned_asset_is_vouched_for_by_its_checksum_file_only() {
    let archive = xz_single(&image_like(1 << 20, 103));
    let name = "nocloud-amd64.raw.xz";
    let f = Server::start();
    answer_like(&f, Edition::Enterprise);
    f.put_with_sidecar(&asset(name), archive);
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(
        json["digestSource"], "sidecar",
        "the checksum file vouches: {json}"
    );
    assert!(json["signedBy"].is_null(), "{json}");
    assert!(json.get("factorySignature").is_none(), "{json}");
    assert!(json.get("warnings").is_none(), "not a fault: {json}");
    assert!(
        !cache.path().join("factory-keys").exists(),
        "nothing pinned"
    );
}

/// The factory's key is taken from its own origin only: a redirect elsewhere is refused, and
/// nothing is pinned (review finding 5).
#[test]
fn a_factory_key_served_through_a_redirect_is_refused() {
    let archive = xz_single(&image_like(1 << 20, 104));
    let key = p256();
    let f = signed_factory("nocloud-amd64.raw.xz", &archive, &key);
    let elsewhere = Server::start();
    elsewhere.put(KEY_PATH, key.public_key_pem().into_bytes());
    f.script(
        KEY_PATH,
        vec![Reply::Redirect(302, elsewhere.url(KEY_PATH))],
    );
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&f, cache.path(), &[]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("redirected to"), "{error}");
    assert!(cached_files(cache.path()).is_empty());
    assert_eq!(f.body_gets(&asset("nocloud-amd64.raw.xz")), 0);
}

/// A factory's `.sha512` of another file is refused (review finding 8).
#[test]
fn a_sha512_naming_another_file_is_refused() {
    let archive = xz_single(&image_like(1 << 20, 105));
    let name = "nocloud-amd64.raw.xz";
    let g = Server::start();
    answer_like(&g, Edition::Enterprise);
    g.put(&asset(name), archive.clone());
    let sha512 = {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(&archive))
    };
    g.put(
        &format!("{}.sha512", asset(name)),
        format!("{sha512}  metal-arm64.raw.xz\n").into_bytes(),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = talos_fetch(&g, cache.path(), &[]);
    assert_refused(&r, cache.path(), &["metal-arm64.raw.xz", name]);
    assert_eq!(g.body_gets(&asset(name)), 0);
}
