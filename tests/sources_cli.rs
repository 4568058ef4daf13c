//! Image sources against stand-ins on 127.0.0.1: the Talos Image Factory as a catalog (versions,
//! extensions, schematics, assets, sidecars including 402), the IncusOS index, and URLs whose
//! checksum is in a .sha256sum or SHA256SUMS file.

mod common;

use std::sync::Arc;

use common::factory::{answer_like, Edition};
use common::server::{Reply, Server};
use common::*;

const EXTENSIONS: &str = r#"[
 {"name":"siderolabs/iscsi-tools","ref":"ghcr.io/siderolabs/iscsi-tools:v0.2.0","digest":"sha256:aa","author":"Sidero Labs","description":"iSCSI tools"},
 {"name":"siderolabs/util-linux-tools","ref":"ghcr.io/siderolabs/util-linux-tools:2.41","digest":"sha256:bb","author":"Sidero Labs","description":"util-linux tools"},
 {"name":"siderolabs/qemu-guest-agent","ref":"ghcr.io/siderolabs/qemu-guest-agent:10.0.2","digest":"sha256:cc","author":"Sidero Labs","description":"QEMU guest agent"}
]"#;

/// A version's official overlays, as siderolabs/image-factory's README shows the answer of
/// `GET /version/:version/overlays/official`.
const OVERLAYS: &str = r#"[
  {"name":"rpi_generic","image":"siderolabs/sbc-raspberrypi","ref":"ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0","digest":"sha256:849ace01b9af514d817b05a9c5963a35202e09a4807d12f8a3ea83657c76c863"}
]"#;

/// A stand-in Image Factory: versions, extensions, overlays, schematics (ID = SHA-256 of the
/// body, as content-addressed as the real one), and assets of any schematic the test puts.
fn factory() -> Server {
    let server = Server::start();
    server.put(
        "/versions",
        br#"["v1.12.4","v1.13.0-beta.1","v1.13.0","v1.11.6","v1.13.0-alpha.2"]"#.to_vec(),
    );
    server.put(
        "/version/v1.13.0/extensions/official",
        EXTENSIONS.as_bytes().to_vec(),
    );
    server.put(
        "/version/v1.13.0/overlays/official",
        OVERLAYS.as_bytes().to_vec(),
    );
    server.on_post(
        "/schematics",
        Arc::new(|body: &[u8]| (201, format!("{{\"id\":\"{}\"}}", sha256_hex(body)))),
    );
    server
}

fn url_of(server: &Server) -> String {
    server.url("")
}

#[test]
fn talos_versions_are_newest_first_with_prereleases_marked() {
    let f = factory();
    let r = run(&["talos", "versions", "--factory-url", &url_of(&f), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "v1.13.0",
            "v1.13.0-beta.1",
            "v1.13.0-alpha.2",
            "v1.12.4",
            "v1.11.6"
        ]
    );
    assert_eq!(v[0]["prerelease"], false);
    assert_eq!(v[1]["prerelease"], true);
    let human = run(&["talos", "versions", "--factory-url", &url_of(&f)]);
    assert!(
        human.stdout.contains("v1.13.0-beta.1  (pre-release)"),
        "{}",
        human.stdout
    );
}

#[test]
fn talos_extensions_of_a_version() {
    let f = factory();
    let r = run(&[
        "talos",
        "extensions",
        "--version",
        "v1.13.0",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"siderolabs/iscsi-tools".to_string()));
    assert_eq!(r.json()[0]["ref"], "ghcr.io/siderolabs/iscsi-tools:v0.2.0");
    let missing = run(&[
        "talos",
        "extensions",
        "--version",
        "v9.9.9",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    assert_eq!(missing.code, 3);
    let bad = run(&[
        "talos",
        "extensions",
        "--version",
        "latest/../x",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    assert_eq!(bad.code, 2);
}

#[test]
fn the_same_customisation_gives_the_same_schematic() {
    let f = factory();
    let a = run(&[
        "talos",
        "schematic",
        "--extension",
        "iscsi-tools",
        "--extension",
        "siderolabs/util-linux-tools",
        "--kernel-arg",
        "console=ttyS0",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    let b = run(&[
        "talos",
        "schematic",
        "--extension",
        "util-linux-tools",
        "--extension",
        "siderolabs/iscsi-tools",
        "--extension",
        "iscsi-tools",
        "--kernel-arg",
        "console=ttyS0",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(b.json()["id"], id.as_str());
    let posts: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"customization": {"extraKernelArgs": ["console=ttyS0"], "systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]}}})
    );
    let plain = run(&["talos", "schematic", "--factory-url", &url_of(&f), "--json"]);
    assert_eq!(
        plain.json()["id"],
        "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
    );
}

/// A single-board computer's image: the board's overlay checked against the version's official
/// list and put in the schematic beside the customisation, as the factory's Schematic has it.
#[test]
fn a_board_overlay_goes_into_the_schematic() {
    let f = factory();
    let listed = run(&[
        "talos",
        "overlays",
        "--version",
        "v1.13.0",
        "--factory-url",
        &url_of(&f),
        "--json",
    ]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()[0]["name"], "rpi_generic");
    assert_eq!(listed.json()[0]["image"], "siderolabs/sbc-raspberrypi");

    let body = serde_json::json!({"customization": {}, "overlay": {"image": "siderolabs/sbc-raspberrypi", "name": "rpi_generic"}});
    let id = sha256_hex(serde_json::to_string(&body).unwrap().as_bytes());
    let image = image_like(3 << 20, 61);
    f.put_with_sidecar(
        &format!("/image/{id}/v1.13.0/metal-arm64.raw.xz"),
        xz_blocks(&image, 1 << 20),
    );
    let cache = tempfile::tempdir().unwrap();
    let fetch = |overlay: &str| {
        run(&[
            "talos",
            "fetch",
            "--version",
            "v1.13.0",
            "--overlay",
            overlay,
            "--arch",
            "arm64",
            "--platform",
            "metal",
            "--factory-url",
            &url_of(&f),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--json",
        ])
    };
    let r = fetch("rpi_generic");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["sourceSchematicID"], id.as_str());
    assert_eq!(r.json()["imageSHA256"], sha256_hex(&image));

    // An overlay on an amd64 image is refused before the factory is asked for anything.
    f.clear_log();
    let amd64 = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--overlay",
        "rpi_generic",
        "--arch",
        "amd64",
        "--factory-url",
        &url_of(&f),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(amd64.code, 2, "{}", amd64.stdout);
    assert!(amd64.json()["error"]
        .as_str()
        .unwrap()
        .contains("arm64 single-board computers"));
    assert!(f.requests().is_empty(), "nothing asked of the factory");

    let unknown = fetch("rpi_4");
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    let error = unknown.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("its overlays are rpi_generic"), "{error}");
}

#[test]
fn from_version_and_extension_to_a_verified_image_without_a_schematic_id() {
    let f = factory();
    let body = serde_json::json!({"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools"]}}});
    let id = sha256_hex(serde_json::to_string(&body).unwrap().as_bytes());
    let image = image_like(3 << 20, 60);
    f.put_with_sidecar(
        // No --platform: nocloud, the default (the platform that reads a cidata config).
        &format!("/image/{id}/v1.13.0/nocloud-amd64.raw.xz"),
        xz_blocks(&image, 1 << 20),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--extension",
        "iscsi-tools",
        "--arch",
        "amd64",
        "--factory-url",
        &url_of(&f),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["sourceSchematicID"], id.as_str());
    assert_eq!(json["sourceVersion"], "v1.13.0");
    assert_eq!(json["digestSource"], "sidecar");
    assert_eq!(json["imageSHA256"], sha256_hex(&image));

    let unknown = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--extension",
        "iscsi",
        "--factory-url",
        &url_of(&f),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.json()["error"]
        .as_str()
        .unwrap()
        .contains("did you mean siderolabs/iscsi-tools"));
}

#[test]
fn a_community_factory_without_sidecars_says_how_to_go_on() {
    let f = factory();
    let schematic = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    let asset = format!("/image/{schematic}/v1.13.0/nocloud-arm64-secureboot.raw.zst");
    let image = image_like(1 << 20, 61);
    f.put(&asset, zstd(&image));
    answer_like(&f, Edition::Community);
    let cache = tempfile::tempdir().unwrap();
    let (factory_url, cache_dir) = (url_of(&f), cache.path().to_str().unwrap().to_string());
    let fetch = |extra: &[&str]| {
        let mut a = vec![
            "talos",
            "fetch",
            "--version",
            "v1.13.0",
            "--platform",
            "nocloud",
            "--arch",
            "arm64",
            "--secureboot",
            "--format",
            "raw.zst",
            "--factory-url",
            &factory_url,
            "--cache-dir",
            &cache_dir,
            "--json",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let r = fetch(&[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("HTTP 402")
            && error.contains("community")
            && error.contains("--sha256")
            && error.contains("--allow-unverified"),
        "{error}"
    );
    assert!(f.gets(&asset).is_empty());
    // 402 for .sha256, 400 for .sha256sum and SHA256SUMS: all read as "no checksum here".
    for probe in [".sha256", ".sha256sum"] {
        assert_eq!(
            f.gets(&format!("{asset}{probe}")).len(),
            1,
            "{probe}: not retried"
        );
    }
    let r = fetch(&["--sha256", &sha256_hex(&zstd(&image))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "flag");
    std::fs::remove_dir_all(cache.path()).unwrap();
    let r = fetch(&["--allow-unverified"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "unverified");
    assert_eq!(r.json()["imageSHA256"], sha256_hex(&image));
}

/// The other editions: before v1.1.0 a factory answers 400 to `.sha256` too; an Enterprise one
/// serves it; one that wants credentials says so at once.
#[test]
fn factories_before_checksums_enterprise_and_with_credentials() {
    let schematic = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    let asset = format!("/image/{schematic}/v1.10.7/metal-amd64.raw.xz");
    let image = image_like(1 << 20, 62);
    let fetch = |f: &Server, extra: &[&str]| {
        let cache = tempfile::tempdir().unwrap();
        let url = f.url(&asset);
        let mut a = vec![
            "fetch",
            &url,
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--json",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };

    let old = factory();
    old.put(&asset, xz_single(&image));
    answer_like(&old, Edition::BeforeChecksums);
    let r = fetch(&old, &[]);
    assert_eq!(r.code, 3);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("serves no .sha256") && error.contains("--allow-unverified"),
        "{error}"
    );
    assert_eq!(fetch(&old, &["--allow-unverified"]).code, 0);

    let enterprise = factory();
    enterprise.put_with_sidecar(&asset, xz_single(&image));
    answer_like(&enterprise, Edition::Enterprise);
    let r = fetch(&enterprise, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "sidecar");

    let gone = factory();
    answer_like(&gone, Edition::Enterprise);
    let r = fetch(&gone, &[]);
    assert_eq!(r.code, 3);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("does not exist"),
        "a missing asset is named as such: {error}"
    );

    let private = factory();
    private.put_with_sidecar(&asset, xz_single(&image));
    private.script(&format!("{asset}.sha256"), vec![Reply::Status(401)]);
    let r = fetch(&private, &[]);
    assert_eq!(r.code, 3);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("HTTP 401") && error.contains("credentials"),
        "{error}"
    );
    assert_eq!(
        private.requests().len(),
        1,
        "not retried, nothing else asked"
    );
}

#[test]
fn checksum_files_are_found_in_order_and_reported() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let fetch = |path: &str| {
        run(&[
            "fetch",
            &server.url(path),
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--json",
        ])
    };
    let a = gzip(&noise(100_000, 62));
    let other = sha256_hex(b"other");

    server.put("/a/os.img.gz", a.clone());
    server.put(
        "/a/os.img.gz.sha256sum",
        format!("{}  os.img.gz\n", sha256_hex(&a)).into_bytes(),
    );
    server.put(
        "/a/SHA256SUMS",
        format!("{other}  os.img.gz\n").into_bytes(),
    );
    let r = fetch("/a/os.img.gz");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json()["digestSource"],
        "sha256sum",
        ".sha256sum comes before SHA256SUMS"
    );

    server.put("/b/os.img.gz", a.clone());
    server.put(
        "/b/SHA256SUMS",
        format!("{other}  x.img\n{}  os.img.gz\n", sha256_hex(&a)).into_bytes(),
    );
    let r = fetch("/b/os.img.gz");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "sha256sums");

    server.put("/c/os.img.gz", a.clone());
    server.put(
        "/c/SHA256SUMS",
        format!(
            "SHA256 (x.img) = {other}\nSHA256 (os.img.gz) = {}\n",
            sha256_hex(&a)
        )
        .into_bytes(),
    );
    assert_eq!(
        fetch("/c/os.img.gz").json()["digestSource"],
        "sha256sums",
        "BSD format"
    );

    server.put("/d/os.img.gz", a.clone());
    server.put("/d/SHA256SUMS", format!("{other}  x.img\n").into_bytes());
    let r = fetch("/d/os.img.gz");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("has no line for os.img.gz"));

    server.put("/e/os.img.gz", a.clone());
    server.put(
        "/e/SHA256SUMS",
        format!("{other}  os.img.gz\n").into_bytes(),
    );
    let r = fetch("/e/os.img.gz");
    assert_eq!(r.code, 1, "a SHA256SUMS digest that does not match");
    let kept: Vec<_> = cached_files(cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/e/"))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
}

const STABLE: &str = "202608190802";
const TESTING: &str = "202608211430";

/// A stand-in IncusOS server from the publisher's index layout (`common::INCUS_INDEX`: arch
/// folders in `filename`, several channels, update, secure boot and application files), each
/// served file given its own digest and size.
fn incus(gz_stable: &[u8], gz_testing: &[u8]) -> Server {
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    let server = Server::start();
    for (version, gz) in [(STABLE, gz_stable), (TESTING, gz_testing)] {
        let filename = format!("x86_64/IncusOS_{version}.img.gz");
        serve_index_file(&mut index, version, &filename, gz);
        server.put(&format!("/os/{version}/{filename}"), gz.to_vec());
    }
    server.put(
        "/os/index.sjson",
        signed_index(&serde_json::to_vec(&index).unwrap()),
    );
    server
}

fn incus_fetch(server: &Server, cache: &std::path::Path, extra: &[&str]) -> Run {
    let args = incus_args(server, cache.to_str().unwrap(), extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn incus_args(server: &Server, cache: &str, extra: &[&str]) -> Vec<String> {
    let (index, base) = (server.url("/os/index.sjson"), server.url("/os"));
    // The test signer's root, unless the test names another.
    let root = incus_trust_root().display().to_string();
    let trust: &[&str] =
        match extra.contains(&"--trust-root") || extra.contains(&"--unsigned-index") {
            true => &[],
            false => &["--trust-root", &root],
        };
    let mut args = vec!["incus", "fetch", "--index-url", &index];
    args.extend_from_slice(trust);
    args.extend_from_slice(&["--base-url", &base, "--cache-dir", cache, "--json"]);
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

/// An IncusOS-like image: GPT with an ESP and a seed partition (sgdisk).
fn incus_image(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("incus.raw");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let ok = std::process::Command::new("sgdisk")
        .args([
            "-o",
            "-n",
            "1:2048:+2M",
            "-t",
            "1:ef00",
            "-n",
            "2:0:+1M",
            "-c",
            "2:seed-data",
            "-n",
            "3:0:0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success());
    std::fs::read(&path).unwrap()
}

#[test]
fn incus_picks_the_newest_stable_image_for_the_arch_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let gz = gzip(&stable);
    let server = incus(&gz, &gzip(b"testing build"));
    let cache = tempfile::tempdir().unwrap();

    let r = incus_fetch(&server, cache.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["sourceVersion"], STABLE);
    assert_eq!(
        json["sourceURL"],
        server.url(&format!("/os/{STABLE}/x86_64/IncusOS_{STABLE}.img.gz"))
    );
    assert_eq!(json["archiveSHA256"], sha256_hex(&gz));
    assert_eq!(json["imageSHA256"], sha256_hex(&stable));
    assert_eq!(json["imageSize"], stable.len() as u64);
    // sgdisk's GPT (see tests/image_kind_cli.rs).
    assert_eq!(json["imageKind"], "gpt");
    assert_eq!(
        json["indexSignedBy"],
        "CN=TestOS - Update Test Cert E1, O=TestOS"
    );
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");

    // The cache is re-verified and reused: only the index is asked for.
    server.clear_log();
    assert_eq!(incus_fetch(&server, cache.path(), &[]).code, 0);
    assert_eq!(server.requests().len(), 1);

    let testing = incus_fetch(&server, cache.path(), &["--channel", "testing"]);
    assert_eq!(testing.json()["sourceVersion"], TESTING);
    let exact = incus_fetch(
        &server,
        cache.path(),
        &["--version", STABLE, "--channel", "testing"],
    );
    assert_eq!(exact.json()["sourceVersion"], STABLE);
}

/// The index's signature is what vouches for every digest in it: a changed index, a chain to
/// another root, an unsigned index where a signed one is expected, and an unsigned index over
/// plain http are each refused before any image is asked for.
#[test]
fn incus_index_signatures_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    let cache = tempfile::tempdir().unwrap();
    let refused = |server: &Server, extra: &[&str], code: i32, why: &str| {
        server.clear_log();
        let r = incus_fetch(server, cache.path(), extra);
        assert_eq!(r.code, code, "{}", r.stdout);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{error}");
        assert_eq!(
            server.requests().len(),
            usize::from(code != 2),
            "only the index"
        );
    };

    // One digit of one digest changed in the signed text.
    let gz = gzip(&stable);
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(
        &mut index,
        STABLE,
        &format!("x86_64/IncusOS_{STABLE}.img.gz"),
        &gz,
    );
    let signed = String::from_utf8(signed_index(&serde_json::to_vec(&index).unwrap())).unwrap();
    let digest = sha256_hex(&gz);
    let changed = digest.replacen(&digest[..1], if &digest[..1] == "0" { "1" } else { "0" }, 1);
    let tampered = Server::start();
    tampered.put(
        "/os/index.sjson",
        signed.replace(&digest, &changed).into_bytes(),
    );
    refused(&tampered, &[], 1, "changed after it was signed");

    // A root of the same name that did not sign the chain, and IncusOS's own root.
    let other = incus_signed_fixture("other-root-E1.crt");
    refused(
        &server,
        &["--trust-root", other.to_str().unwrap()],
        1,
        "not signed by the trusted root",
    );
    let unsigned = Server::start();
    unsigned.put("/os/index.sjson", INCUS_INDEX.as_bytes().to_vec());
    refused(&unsigned, &[], 1, "signature of the IncusOS index");
    // An unsigned index is read only over https.
    refused(&server, &["--unsigned-index"], 2, "only over https");
}

#[test]
fn incus_index_without_the_option_is_checked_against_incus_own_root() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    let cache = tempfile::tempdir().unwrap();
    let index = server.url("/os/index.sjson");
    let base = server.url("/os");
    let r = run(&[
        "incus",
        "fetch",
        "--index-url",
        &index,
        "--base-url",
        &base,
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("Incus OS - Root E1"), "{error}");
}

#[test]
fn incus_refusals_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    let cache = tempfile::tempdir().unwrap();

    // The aarch64 image is in the index but not on the server: 404, exit 3.
    let arm = incus_fetch(&server, cache.path(), &["--arch", "aarch64"]);
    assert_eq!(arm.code, 3, "{}", arm.stderr);
    let none = incus_fetch(&server, cache.path(), &["--version", "209901010000"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.json()["error"]
        .as_str()
        .unwrap()
        .contains("no IncusOS update"));

    // The index's digest does not match the file: exit 1, nothing cached.
    let tampered = incus(&gzip(&stable), &gzip(b"t"));
    tampered.put(
        &format!("/os/{STABLE}/x86_64/IncusOS_{STABLE}.img.gz"),
        gzip(b"tampered"),
    );
    let clean = tempfile::tempdir().unwrap();
    let r = incus_fetch(&tampered, clean.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(cached_files(clean.path()).is_empty());

    let broken = Server::start();
    broken.put(
        "/os/index.sjson",
        signed_index(b"{\"updates\": [ {\"version\": 1"),
    );
    let r = incus_fetch(&broken, clean.path(), &[]);
    assert_eq!(r.code, 3);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not an IncusOS index"));

    // An index that names a path out of its base is refused before anything is fetched.
    for hostile in [
        "x86_64/../../../etc/passwd",
        "/etc/passwd",
        "x86_64//a.img.gz",
    ] {
        let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
        serve_index_file(
            &mut index,
            STABLE,
            &format!("x86_64/IncusOS_{STABLE}.img.gz"),
            b"x",
        );
        for update in index["updates"].as_array_mut().unwrap() {
            for file in update["files"].as_array_mut().unwrap() {
                if file["filename"] == format!("x86_64/IncusOS_{STABLE}.img.gz") {
                    file["filename"] = hostile.into();
                }
            }
        }
        let evil = Server::start();
        evil.put(
            "/os/index.sjson",
            signed_index(&serde_json::to_vec(&index).unwrap()),
        );
        let r = incus_fetch(&evil, clean.path(), &[]);
        assert_eq!(r.code, 3, "{hostile}: {}", r.stdout);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("unsafe file name"),
            "{}",
            r.stdout
        );
        assert_eq!(evil.requests().len(), 1, "only the index was asked for");
    }
}

#[test]
fn incus_seed_is_written_into_the_seed_partition() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    let cache = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(seed.join("install.yaml"), "target:\n  id: nvme\n").unwrap();
    std::fs::write(seed.join("incus.yml"), "apply_defaults: true\n").unwrap();
    std::fs::write(seed.join("network.json"), "{}\n").unwrap();
    let r = incus_fetch(&server, cache.path(), &["--seed", seed.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    let seeded = std::fs::read(json["imagePath"].as_str().unwrap()).unwrap();
    assert_eq!(json["imageSHA256"], sha256_hex(&seeded));
    assert_ne!(json["imageSHA256"], sha256_hex(&stable));
    // Partition 2 starts at 2048 + 4096 sectors = 3 MiB; tar reads the seed from there.
    let part = dir.path().join("part2.tar");
    std::fs::write(&part, &seeded[3 << 20..4 << 20]).unwrap();
    let listing = std::process::Command::new("tar")
        .args(["-tf", part.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "incus.yml\ninstall.yaml\nnetwork.json\n"
    );
    assert_eq!(
        &seeded[..3 << 20],
        &stable[..3 << 20],
        "nothing else changed"
    );

    std::fs::write(
        seed.join("applications.yaml"),
        // A valid seed (a comment alone is no document, which incus-osd refuses), too big.
        format!(
            "applications:\n  - name: incus\n# {}\n",
            "x".repeat(2 << 20)
        ),
    )
    .unwrap();
    let big = incus_fetch(&server, cache.path(), &["--seed", seed.to_str().unwrap()]);
    assert_eq!(big.code, 2, "{}", big.stderr);
    assert!(big.json()["error"]
        .as_str()
        .unwrap()
        .contains("does not fit"));
}

/// Every command that writes a file takes a bare relative name, run from a fresh folder.
#[test]
fn bare_relative_names_work_for_every_writing_command() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    std::fs::create_dir(dir.path().join("seed")).unwrap();
    std::fs::write(dir.path().join("seed/install.yaml"), "{}\n").unwrap();
    let here = |args: &[&str]| -> Run {
        labflash(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
            .into()
    };
    let incus = incus_args(&server, "cache", &["--seed", "seed"]);
    let r = here(&incus.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("cache/downloads").is_dir());
    let image = r.json()["imagePath"].as_str().unwrap().to_string();
    std::fs::copy(dir.path().join(&image), dir.path().join("os.img")).unwrap();
    let r = here(&[
        "flash",
        "os.img",
        "--to",
        "copy.img",
        "--yes",
        "--cache-dir",
        "cache",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(dir.path().join("copy.img")).unwrap(),
        std::fs::read(dir.path().join("os.img")).unwrap()
    );
    let url = server.url(&format!("/os/{STABLE}/x86_64/IncusOS_{STABLE}.img.gz"));
    let sha = sha256_hex(&gzip(&stable));
    let r = here(&[
        "fetch",
        &url,
        "--sha256",
        &sha,
        "--cache-dir",
        "cache2",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(temp_files(dir.path()).is_empty());
}
