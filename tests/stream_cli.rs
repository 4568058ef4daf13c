//! `labflash flash URL|FILE.xz`: one streaming pass from a server on 127.0.0.1 (or a compressed
//! file) to loop devices. Each test checks what the pipeline promises: the targets hold exactly
//! the image and were read back, a bad archive leaves no target bootable, and the cache ends as
//! `fetch` leaves it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::loopdev::{interrupt_while_writing, LoopDev};
use common::server::{Reply, Serve, Server};
use common::*;

const MIB: u64 = 1 << 20;

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        Bench {
            dir: tempfile::tempdir_in("/var/tmp").unwrap(),
        }
    }

    fn cache(&self) -> String {
        self.dir.path().join("cache").to_str().unwrap().to_string()
    }

    fn flash(&self, url: &str, targets: &[&LoopDev], extra: &[&str]) -> Run {
        let cache = self.cache();
        let mut args = vec![
            "flash",
            url,
            "--json",
            "--yes",
            "--cache-dir",
            cache.as_str(),
        ];
        for t in targets {
            args.extend_from_slice(&["--to", t.path_str()]);
        }
        args.extend_from_slice(extra);
        run(&args)
    }

    /// Files in the cache's downloads folder (archives and any temp file left behind).
    fn downloads(&self) -> Vec<std::path::PathBuf> {
        files_under(&self.dir.path().join("cache").join("downloads"))
    }
}

fn head_is_wiped(dev: &LoopDev) -> bool {
    dev.read(0, MIB as usize).iter().all(|b| *b == 0)
}

#[test]
fn a_url_streams_to_every_target_and_each_is_read_back() {
    require_root!();
    let b = Bench::new();
    let image = image_like(12 * MIB as usize + 777, 41);
    let archive = xz_blocks(&image, MIB);
    let server = Server::start();
    server.put_with_sidecar("/talos.raw.xz", archive.clone());
    let devs = [
        LoopDev::new(b.dir.path(), 16 * MIB, 512, 0xAA),
        LoopDev::new(b.dir.path(), 16 * MIB, 4096, 0xAA),
    ];

    let first = b.flash(&server.url("/talos.raw.xz"), &[&devs[0], &devs[1]], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let json = first.json();
    assert_eq!(json["archiveSHA256"], sha256_hex(&archive));
    assert_eq!(json["digestSource"], "sidecar");
    assert_eq!(json["imageSHA256"], sha256_hex(&image));
    assert_eq!(json["imageSize"], image.len() as u64);
    for (dev, report) in devs.iter().zip(json["targets"].as_array().unwrap()) {
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["verifiedSHA256"], sha256_hex(&image));
        assert_eq!(report["bytesWritten"], image.len() as u64);
        assert_eq!(dev.read(0, image.len()), image);
    }
    // Streamed once: one GET of the archive, and the verified archive is in the cache.
    assert_eq!(server.body_gets("/talos.raw.xz"), 1);
    let kept = b.downloads();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), archive);

    // Again: the cached archive streams (re-hashed on the way), not the network.
    let again = b.flash(&server.url("/talos.raw.xz"), &[&devs[0]], &["--no-verify"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["imageSHA256"], sha256_hex(&image));
    assert!(again.json()["targets"][0]["verifiedSHA256"].is_null());
    assert_eq!(server.body_gets("/talos.raw.xz"), 1, "downloaded again");

    // A decoded image in the cache is never what a flash writes: changed on disk (four bytes),
    // it changes nothing; the flash writes what the verified archive decodes to.
    let cache = b.cache();
    let url = server.url("/talos.raw.xz");
    let fetched = run(&["fetch", &url, "--json", "--cache-dir", &cache]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    let cached_image = fetched.json()["imagePath"].as_str().unwrap().to_string();
    let mut changed = image.clone();
    changed[5 * MIB as usize..5 * MIB as usize + 4].copy_from_slice(b"EVIL");
    std::fs::write(&cached_image, &changed).unwrap();
    let third = b.flash(&url, &[&devs[1]], &[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.json()["imageSHA256"], sha256_hex(&image));
    assert_eq!(devs[1].read(0, image.len()), image);
    assert_eq!(server.body_gets("/talos.raw.xz"), 1, "downloaded again");
}

/// Whether a drive still holds only its fill byte at its start and its end: nothing written.
fn untouched(dev: &LoopDev, fill: u8) -> bool {
    let end = dev.size - 64 * 1024;
    dev.read(0, MIB as usize).iter().all(|b| *b == fill)
        && dev.read(end, 64 * 1024).iter().all(|b| *b == fill)
}

#[test]
fn a_drive_too_small_for_a_stream_is_refused_before_any_write() {
    require_root!();
    let b = Bench::new();
    let image = image_like(12 * MIB as usize, 46);
    let xz = xz_blocks(&image, MIB);
    let server = Server::start();
    server.put_with_sidecar("/talos.raw.xz", xz.clone());
    server.put_with_sidecar("/incus.img.gz", gzip(&image));
    let small = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0xAA);
    let refused = |run: &Run, what: &str| {
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        let error = run.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("the image needs 12.6 MB and it holds only 8.4 MB"),
            "{what}: {error}"
        );
        assert!(untouched(&small, 0xAA), "{what}: the drive was written");
    };

    // A local .xz: its index is read before anything else.
    let local = b.dir.path().join("talos.raw.xz");
    std::fs::write(&local, &xz).unwrap();
    refused(
        &b.flash(local.to_str().unwrap(), &[&small], &[]),
        "local .xz",
    );

    // A URL whose server takes ranges: one request for the archive's tail, no download.
    server.set_default_serve(Serve {
        ranges: true,
        ..Default::default()
    });
    refused(
        &b.flash(&server.url("/talos.raw.xz"), &[&small], &[]),
        "URL .xz",
    );
    refused(
        &b.flash(&server.url("/incus.img.gz"), &[&small], &[]),
        "URL .gz",
    );
    let gets = server.gets("/talos.raw.xz");
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some("bytes=-65536"));
    assert!(b.downloads().is_empty(), "{:?}", b.downloads());

    // The same limit bounds --max-image-size before any byte: the drive keeps its first MiB.
    let limited = b.flash(
        &server.url("/talos.raw.xz"),
        &[&small],
        &["--max-image-size", "4MiB"],
    );
    assert_eq!(limited.code, 2, "{}", limited.stderr);
    assert!(
        limited.stdout.contains("larger than the limit"),
        "{}",
        limited.stdout
    );
    assert!(untouched(&small, 0xAA));

    // A cached archive tells its size even when the server no longer takes ranges.
    let big = LoopDev::new(b.dir.path(), 16 * MIB, 512, 0xAA);
    let first = b.flash(&server.url("/talos.raw.xz"), &[&big], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    server.set_default_serve(Serve::default());
    server.clear_log();
    refused(
        &b.flash(&server.url("/talos.raw.xz"), &[&small], &[]),
        "cached .xz",
    );
    assert!(
        server.gets("/talos.raw.xz").is_empty(),
        "the cache should have answered"
    );
}

#[test]
fn an_archive_that_fails_its_digest_at_the_end_leaves_no_target_bootable() {
    require_root!();
    let b = Bench::new();
    let image = image_like(10 * MIB as usize, 42);
    let archive = xz_blocks(&image, MIB);
    let server = Server::start();
    server.put("/os.raw.xz", archive.clone());
    // The publisher's digest is of some other archive.
    server.put(
        "/os.raw.xz.sha256",
        format!("{}  os.raw.xz\n", sha256_hex(b"another archive")).into_bytes(),
    );
    let dev = LoopDev::new(b.dir.path(), 16 * MIB, 512, 0xAA);

    let run = b.flash(&server.url("/os.raw.xz"), &[&dev], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.json()["error"]
            .as_str()
            .unwrap()
            .contains("download does not match its expected SHA-256"),
        "{}",
        run.stdout
    );
    assert!(head_is_wiped(&dev), "the first MiB must stay wiped");
    // The image streamed to the target before the digest was known: proof the stages overlap.
    assert_eq!(
        dev.read(MIB, 4 * MIB as usize),
        image[MIB as usize..5 * MIB as usize]
    );
    assert!(b.downloads().is_empty(), "{:?}", b.downloads());
}

#[test]
fn a_compressed_file_is_checked_first_then_streams_to_every_target() {
    require_root!();
    let b = Bench::new();
    let image = image_like(9 * MIB as usize + 333, 44);
    let archive = xz_blocks(&image, MIB);
    let path = b.dir.path().join("os.img.xz");
    std::fs::write(&path, &archive).unwrap();
    let file = path.to_str().unwrap();
    let devs = [
        LoopDev::new(b.dir.path(), 12 * MIB, 512, 0xAA),
        LoopDev::new(b.dir.path(), 12 * MIB, 4096, 0xAA),
    ];

    // A file that does not match --sha256 is refused before any byte is written.
    let wrong = b.flash(file, &[&devs[0]], &["--sha256", &sha256_hex(b"other")]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(
        wrong.json()["error"]
            .as_str()
            .unwrap()
            .contains("image file"),
        "{}",
        wrong.stdout
    );
    assert!(devs[0]
        .read(0, 12 * MIB as usize)
        .iter()
        .all(|b| *b == 0xAA));

    let good = b.flash(
        file,
        &[&devs[0], &devs[1]],
        &["--sha256", &sha256_hex(&archive)],
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    let json = good.json();
    assert_eq!(json["archiveSHA256"], sha256_hex(&archive));
    assert_eq!(json["digestSource"], "flag");
    assert_eq!(json["imageSHA256"], sha256_hex(&image));
    assert_eq!(json["imageSize"], image.len() as u64);
    for (dev, report) in devs.iter().zip(json["targets"].as_array().unwrap()) {
        assert_eq!(report["verifiedSHA256"], sha256_hex(&image), "{report}");
        assert_eq!(dev.read(0, image.len()), image);
    }
    // Streamed: nothing was decoded into the cache first.
    let cache = Path::new(&b.cache()).join("images");
    assert!(files_under(&cache).is_empty(), "{:?}", files_under(&cache));

    // Undecodable bytes fail every target with its first MiB wiped; the operator's file stays.
    let mut corrupt = archive.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    std::fs::write(&path, &corrupt).unwrap();
    let bad = b.flash(file, &[&devs[0]], &[]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("corrupt"),
        "{}",
        bad.stdout
    );
    assert!(head_is_wiped(&devs[0]));
    assert_eq!(std::fs::read(&path).unwrap(), corrupt);
}

#[test]
fn a_corrupt_cached_archive_is_downloaded_again_before_anything_is_written() {
    require_root!();
    let b = Bench::new();
    let image = image_like(6 * MIB as usize, 43);
    let archive = xz_blocks(&image, MIB);
    let server = Server::start();
    server.put_with_sidecar("/os.raw.xz", archive.clone());
    let dev = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0xAA);
    assert_eq!(b.flash(&server.url("/os.raw.xz"), &[&dev], &[]).code, 0);

    // Damaged where its index lies, so its records would claim an image far too large for the
    // drive: it is proven first, deleted, and downloaded again; the drive is never refused.
    let cached = b.downloads().pop().unwrap();
    let mut bytes = std::fs::read(&cached).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x55;
    std::fs::write(&cached, &bytes).unwrap();
    let small = LoopDev::new(b.dir.path(), 7 * MIB, 512, 0xAA);
    let run = b.flash(&server.url("/os.raw.xz"), &[&small], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(small.read(0, image.len()), image);
    assert_eq!(server.body_gets("/os.raw.xz"), 2);
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        archive,
        "the cache holds the good archive again"
    );
}

#[test]
fn a_download_that_starts_over_is_not_sent_to_the_decoder_twice() {
    require_root!();
    let b = Bench::new();
    let image = image_like(8 * MIB as usize, 44);
    let archive = zstd(&image);
    let server = Server::start();
    server.put_with_sidecar("/os.img.zst", archive.clone());
    // No Range support (like the Image Factory): the size probe gets the whole body (unread),
    // and the download's second attempt starts from byte 0.
    server.script(
        "/os.img.zst",
        vec![
            Reply::Body(Serve::default()),
            Reply::Body(Serve {
                cut_after: Some(archive.len() / 2),
                ..Serve::default()
            }),
        ],
    );
    let dev = LoopDev::new(b.dir.path(), 16 * MIB, 512, 0xAA);

    let run = b.flash(&server.url("/os.img.zst"), &[&dev], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.body_gets("/os.img.zst"), 2);
    assert_eq!(
        run.json()["targets"][0]["verifiedSHA256"],
        sha256_hex(&image)
    );
    assert_eq!(dev.read(0, image.len()), image);
}

#[test]
fn an_image_larger_than_the_limit_or_the_drive_fails_every_target() {
    require_root!();
    let b = Bench::new();
    let image = image_like(12 * MIB as usize, 45);
    let server = Server::start();
    server.put_with_sidecar("/big.raw.gz", gzip(&image));

    // A zstd stream that records no size decodes past the limit: stopped there, first MiB wiped.
    server.put_with_sidecar("/zeros.zst", zstd(&vec![0; 24 * MIB as usize]));
    let dev = LoopDev::new(b.dir.path(), 32 * MIB, 512, 0xAA);
    let limit = ["--max-image-size", "8388608"];
    let limited = b.flash(&server.url("/zeros.zst"), &[&dev], &limit);
    assert_eq!(limited.code, 2, "{}", limited.stderr);
    assert!(limited.stdout.contains("larger than the limit"));
    assert!(head_is_wiped(&dev));
    // Incompressible and announced larger than any archive of an image within the limit: the
    // download is refused from its length and must stop the flash, not wait on a queue.
    server.put_with_sidecar("/noise.zst", zstd(&noise(48 * MIB as usize, 9)));
    let refused = b.flash(&server.url("/noise.zst"), &[&dev], &limit);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stdout.contains("the download is larger than"),
        "{}",
        refused.stdout
    );

    let small = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0xAA);
    let run = b.flash(&server.url("/big.raw.gz"), &[&dev, &small], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let targets = run.json()["targets"].clone();
    assert_eq!(targets[0]["ok"], true, "{targets}");
    assert_eq!(targets[1]["ok"], false);
    assert!(
        targets[1]["error"]
            .as_str()
            .unwrap()
            .contains("does not fit"),
        "{targets}"
    );
    assert!(head_is_wiped(&small));
    assert_eq!(dev.read(0, image.len()), image);
}

#[test]
fn cancelling_a_stream_stops_at_once_and_leaves_nothing() {
    require_root!();
    let b = Bench::new();
    let image = image_like(64 * MIB as usize, 46);
    let archive = xz_blocks(&image, MIB);
    let server = Server::start();
    server.put_with_sidecar("/slow.raw.xz", archive);
    server.set_default_serve(Serve {
        rate: Some(4 << 20),
        ..Serve::default()
    });
    let dev = LoopDev::new(b.dir.path(), 80 * MIB, 512, 0xAA);
    let cache = b.cache();
    let (run, took) = interrupt_while_writing(
        &[
            "flash",
            &server.url("/slow.raw.xz"),
            "--to",
            dev.path_str(),
            "--yes",
            "--json",
            "--cache-dir",
            &cache,
        ],
        &dev,
        0xAA,
        libc::SIGTERM,
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.json()["error"], "cancelled");
    assert!(head_is_wiped(&dev));
    assert!(b.downloads().is_empty(), "{:?}", b.downloads());
    assert!(!Path::new(&cache).join("downloads").join(".tmp").exists());
}
