//! A tar or zip archive holding one disk image is flashed from inside it (issue 26): the image's
//! SHA-256 is the inner image's (what the read-back proves), `imageInside` names the entry, and
//! an archive that holds no one disk image is refused (exit 2) with nothing written. Archives
//! are made by the real tools: GNU `tar` (with gzip and xz) and Info-ZIP's `zip`.

mod common;

use std::path::Path;
use std::process::Command;

use common::loopdev::LoopDev;
use common::server::Server;
use common::*;

const MIB: usize = 1 << 20;

/// Runs `sh -c script` in `dir` (the archivers).
fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{script} (tar, xz and zip: setup.sh --tests)"
    );
}

/// A GPT disk of `len` bytes under `name`, partitioned by sgdisk (one Linux partition); returns
/// its bytes.
fn disk(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    std::fs::write(dir.join(name), image_like(len, seed)).unwrap();
    sh(
        dir,
        &format!("sgdisk -o -n 1:2048:0 -t 1:8300 {name} >/dev/null"),
    );
    std::fs::read(dir.join(name)).unwrap()
}

fn flash(dir: &Path, source: &str, extra: &[&str]) -> Run {
    let cache = dir.join("cache");
    let mut args = vec![
        "flash",
        source,
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn inside(archive: &str, name: &str) -> serde_json::Value {
    serde_json::json!({ "archive": archive, "name": name })
}

#[test]
fn a_tar_of_a_disk_image_and_a_readme_is_flashed_from_inside_it() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = dir.path();
    let image = disk(d, "disk.raw", 6 * MIB, 1);
    std::fs::write(d.join("README"), "Flash disk.raw.\n").unwrap();
    // `talos fetch --format raw.tar.gz`'s shape, plus a README beside the image; and the same
    // tar uncompressed (a local file written through the cache) and as .tar.xz from a URL.
    sh(
        d,
        "tar -czf disk.raw.tar.gz README disk.raw && tar -cf disk.tar README disk.raw",
    );
    sh(d, "xz -kc disk.tar > disk.raw.tar.xz");
    let archive = std::fs::read(d.join("disk.raw.tar.gz")).unwrap();
    let server = Server::start();
    server.put_with_sidecar(
        "/disk.raw.tar.xz",
        std::fs::read(d.join("disk.raw.tar.xz")).unwrap(),
    );
    let tar_gz = d.join("disk.raw.tar.gz").display().to_string();
    let tar = d.join("disk.tar").display().to_string();
    let url = server.url("/disk.raw.tar.xz");
    let digest = sha256_hex(&archive);
    for (source, extra) in [
        (tar_gz.as_str(), vec!["--sha256", digest.as_str()]),
        (tar.as_str(), vec![]),
        (url.as_str(), vec![]),
    ] {
        let target = d.join("vm-disk.img");
        let _ = std::fs::remove_file(&target);
        let mut args = vec!["--to", target.to_str().unwrap()];
        args.extend(extra);
        let r = flash(d, source, &args);
        assert_eq!(r.code, 0, "{source}: {}", r.stderr);
        let json = r.json();
        assert_eq!(json["imageSHA256"], sha256_hex(&image), "{source}");
        assert_eq!(json["imageSize"], image.len() as u64, "{source}");
        assert_eq!(json["imageKind"], "gpt", "{source}");
        assert_eq!(json["imageInside"], inside("tar", "disk.raw"), "{source}");
        assert_eq!(json["targets"][0]["verifiedSHA256"], sha256_hex(&image));
        assert!(
            std::fs::read(&target).unwrap() == image,
            "{source}: the disk"
        );
    }
}

#[test]
fn fetch_of_a_zip_gives_the_inner_images_digest_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = disk(d, "disk.raw", 4 * MIB, 2);
    sh(d, "zip -q disk.zip disk.raw");
    let zip = std::fs::read(d.join("disk.zip")).unwrap();
    let server = Server::start();
    server.put_with_sidecar("/disk.zip", zip.clone());
    let cache = d.join("cache");
    // The second fetch proves the cached image by unwrapping the cached archive again.
    for attempt in ["first", "cached"] {
        let r = run(&[
            "fetch",
            &server.url("/disk.zip"),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r.code, 0, "{attempt}: {}", r.stderr);
        let json = r.json();
        assert_eq!(json["archiveSHA256"], sha256_hex(&zip));
        assert_eq!(json["imageSHA256"], sha256_hex(&image), "{attempt}");
        assert_eq!(json["imageSize"], image.len() as u64);
        assert_eq!(json["imageKind"], "gpt");
        assert_eq!(json["imageInside"], inside("zip", "disk.raw"));
        let cached = std::fs::read(json["imagePath"].as_str().unwrap()).unwrap();
        assert!(
            cached == image,
            "{attempt}: the cached image is the inner disk"
        );
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
}

#[test]
fn a_zip_of_two_images_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = dir.path();
    disk(d, "a.raw", 2 * MIB, 3);
    disk(d, "b.raw", 2 * MIB, 4);
    sh(d, "zip -q two.zip a.raw b.raw");
    let two = d.join("two.zip").display().to_string();
    let target = d.join("vm-disk.img");
    let r = flash(d, &two, &["--to", target.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.json()["error"],
        format!(
            "{two} holds more than one disk image (a.raw and b.raw): extract the one you mean and flash that file"
        )
    );
    assert!(!target.exists(), "nothing is created");
    // An existing target file keeps its bytes.
    std::fs::write(&target, b"old bytes").unwrap();
    let r = flash(d, &two, &["--to", target.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), b"old bytes");
}

/// Streamed from a URL, an archive that holds no disk image is refused from its first decoded
/// bytes, before any target is opened: the drive keeps every byte (not even its first MiB is
/// wiped, as it is for a failure after writing began).
#[test]
fn a_streamed_tar_of_no_disk_image_is_refused_before_any_target_is_opened() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = dir.path();
    std::fs::write(d.join("README"), "Flash the disk.\n").unwrap();
    std::fs::write(d.join("notes.txt"), noise(300_000, 5)).unwrap();
    sh(d, "tar -cJf notes.tar.xz README notes.txt");
    let server = Server::start();
    let tar_xz = std::fs::read(d.join("notes.tar.xz")).unwrap();
    server.put_with_sidecar("/notes.tar.xz", tar_xz);
    let dev = LoopDev::new(d, 16 << 20, 512, 0xAA);
    let before = dev.read(0, dev.size as usize);
    let r = flash(d, &server.url("/notes.tar.xz"), &["--to", dev.path_str()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.ends_with("holds no disk image (its files: README, notes.txt): extract the image you mean and flash that file"),
        "{error}"
    );
    assert!(
        dev.read(0, dev.size as usize) == before,
        "the drive was changed"
    );
}
