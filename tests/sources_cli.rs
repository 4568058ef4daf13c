//! Image sources against stand-ins on 127.0.0.1: the Talos Image Factory as a catalog (versions,
//! extensions, schematics, assets, sidecars including 402), the IncusOS index, and URLs whose
//! checksum is in a .sha256sum or SHA256SUMS file.

mod common;

use std::sync::Arc;

use common::server::{Reply, Server};
use common::*;

const EXTENSIONS: &str = r#"[
 {"name":"siderolabs/iscsi-tools","ref":"ghcr.io/siderolabs/iscsi-tools:v0.2.0","digest":"sha256:aa","author":"Sidero Labs","description":"iSCSI tools"},
 {"name":"siderolabs/util-linux-tools","ref":"ghcr.io/siderolabs/util-linux-tools:2.41","digest":"sha256:bb","author":"Sidero Labs","description":"util-linux tools"},
 {"name":"siderolabs/qemu-guest-agent","ref":"ghcr.io/siderolabs/qemu-guest-agent:10.0.2","digest":"sha256:cc","author":"Sidero Labs","description":"QEMU guest agent"}
]"#;

/// A stand-in Image Factory: versions, extensions, schematics (ID = SHA-256 of the body, as
/// content-addressed as the real one), and assets of any schematic the test puts.
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

#[test]
fn from_version_and_extension_to_a_verified_image_without_a_schematic_id() {
    let f = factory();
    let body = serde_json::json!({"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools"]}}});
    let id = sha256_hex(serde_json::to_string(&body).unwrap().as_bytes());
    let image = image_like(3 << 20, 60);
    f.put_with_sidecar(
        &format!("/image/{id}/v1.13.0/metal-amd64.raw.xz"),
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
    f.script(&format!("{asset}.sha256"), vec![Reply::Status(402)]);
    f.script(&format!("{asset}.sha256sum"), vec![Reply::Status(402)]);
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
    let r = fetch(&["--sha256", &sha256_hex(&zstd(&image))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["digestSource"], "flag");
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

/// A stand-in IncusOS server: updates newest first across channels and arches.
fn incus(gz_stable: &[u8], gz_testing: &[u8]) -> Server {
    let server = Server::start();
    let file = |arch: &str, name: &str, digest: &str| serde_json::json!({"architecture": arch, "component": "os", "type": "image-raw", "filename": name, "sha256": digest, "size": 1});
    let index = serde_json::json!({"updates": [
        {"version": "202511250900", "url": "/202511250900", "channels": ["testing"],
         "files": [file("x86_64", "IncusOS_202511250900.img.gz", &sha256_hex(gz_testing))]},
        {"version": "202511200800", "url": "/202511200800", "channels": ["stable", "testing"],
         "files": [file("aarch64", "IncusOS_202511200800.img.gz", &sha256_hex(b"arm"))]},
        {"version": "202511100700", "url": "/202511100700", "channels": ["stable", "testing"],
         "files": [
            {"architecture": "x86_64", "component": "os", "type": "update-usr", "filename": "usr.img.gz", "sha256": sha256_hex(b"u"), "size": 1},
            file("x86_64", "IncusOS_202511100700.img.gz", &sha256_hex(gz_stable))]},
        {"version": "202511010600", "url": "/202511010600", "channels": ["stable"],
         "files": [file("x86_64", "IncusOS_202511010600.img.gz", &sha256_hex(b"old"))]}
    ]});
    server.put("/os/index.json", serde_json::to_vec(&index).unwrap());
    server.put(
        "/os/202511100700/IncusOS_202511100700.img.gz",
        gz_stable.to_vec(),
    );
    server.put(
        "/os/202511250900/IncusOS_202511250900.img.gz",
        gz_testing.to_vec(),
    );
    server
}

fn incus_fetch(server: &Server, cache: &std::path::Path, extra: &[&str]) -> Run {
    let (index, base) = (server.url("/os/index.json"), server.url("/os"));
    let mut args = vec![
        "incus",
        "fetch",
        "--index-url",
        &index,
        "--base-url",
        &base,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    run(&args)
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
    assert_eq!(json["sourceVersion"], "202511100700");
    assert_eq!(
        json["sourceURL"],
        server.url("/os/202511100700/IncusOS_202511100700.img.gz")
    );
    assert_eq!(json["archiveSHA256"], sha256_hex(&gz));
    assert_eq!(json["imageSHA256"], sha256_hex(&stable));
    assert_eq!(json["imageSize"], stable.len() as u64);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");

    // The cache is re-verified and reused: only the index is asked for.
    server.clear_log();
    assert_eq!(incus_fetch(&server, cache.path(), &[]).code, 0);
    assert_eq!(server.requests().len(), 1);

    let testing = incus_fetch(&server, cache.path(), &["--channel", "testing"]);
    assert_eq!(testing.json()["sourceVersion"], "202511250900");
    let exact = incus_fetch(
        &server,
        cache.path(),
        &["--version", "202511100700", "--channel", "testing"],
    );
    assert_eq!(exact.json()["sourceVersion"], "202511100700");
}

#[test]
fn incus_refusals_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let stable = incus_image(dir.path());
    let server = incus(&gzip(&stable), &gzip(b"t"));
    let cache = tempfile::tempdir().unwrap();

    // aarch64 exists only in a newer update whose file is missing on the server: 404, exit 3.
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
        "/os/202511100700/IncusOS_202511100700.img.gz",
        gzip(b"tampered"),
    );
    let clean = tempfile::tempdir().unwrap();
    let r = incus_fetch(&tampered, clean.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(cached_files(clean.path()).is_empty());

    let broken = Server::start();
    broken.put(
        "/os/index.json",
        b"{\"updates\": [ {\"version\": 1".to_vec(),
    );
    let r = incus_fetch(&broken, clean.path(), &[]);
    assert_eq!(r.code, 3);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not an IncusOS index"));
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
    std::fs::write(seed.join("incus.yaml"), "apply_defaults: true\n").unwrap();
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
        "incus.yaml\ninstall.yaml\n"
    );
    assert_eq!(
        &seeded[..3 << 20],
        &stable[..3 << 20],
        "nothing else changed"
    );

    std::fs::write(
        seed.join("applications.yaml"),
        format!("# {}\n", "x".repeat(2 << 20)),
    )
    .unwrap();
    let big = incus_fetch(&server, cache.path(), &["--seed", seed.to_str().unwrap()]);
    assert_eq!(big.code, 2, "{}", big.stderr);
    assert!(big.json()["error"]
        .as_str()
        .unwrap()
        .contains("does not fit"));
}
