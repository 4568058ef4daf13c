//! `labflash fetch` end to end: the real binary against a real HTTP server on 127.0.0.1 with
//! scripted faults, and a real cache folder.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{Reply, Serve, Server};
use common::*;

const ASSET: &str = "/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.0/nocloud-amd64.raw.xz";

struct Fixture {
    server: Server,
    cache: tempfile::TempDir,
    image: Vec<u8>,
    archive: Vec<u8>,
}

/// A stand-in Image Factory serving one xz image and its sidecar.
fn factory() -> Fixture {
    let image = image_like(3 << 20, 7);
    let archive = xz_blocks(&image, 1 << 20);
    let server = Server::start();
    server.put_with_sidecar(ASSET, archive.clone());
    Fixture {
        server,
        cache: tempfile::tempdir().unwrap(),
        image,
        archive,
    }
}

impl Fixture {
    fn cache_dir(&self) -> &str {
        self.cache.path().to_str().unwrap()
    }

    fn fetch(&self, extra: &[&str]) -> Run {
        let url = self.server.url(ASSET);
        let mut args = vec![
            "fetch",
            url.as_str(),
            "--cache-dir",
            self.cache_dir(),
            "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    fn assert_fetched(&self, run: &Run) -> serde_json::Value {
        assert_eq!(run.code, 0, "stderr: {}", run.stderr);
        let json = run.json();
        assert_eq!(json["archiveSHA256"], sha256_hex(&self.archive));
        assert_eq!(json["imageSHA256"], sha256_hex(&self.image));
        assert_eq!(json["imageSize"], self.image.len() as u64);
        let image_path = json["imagePath"].as_str().unwrap();
        assert_eq!(std::fs::read(image_path).unwrap(), self.image);
        assert!(temp_files(self.cache.path()).is_empty());
        json
    }

    fn assert_cache_empty(&self) {
        let left = cached_files(self.cache.path());
        assert!(left.is_empty(), "left in the cache: {left:?}");
    }
}

#[test]
fn fetch_verifies_against_the_sidecar_and_reports_every_field() {
    let f = factory();
    let run = f.fetch(&[]);
    let json = f.assert_fetched(&run);
    assert_eq!(json["digestSource"], "sidecar");
    assert_eq!(json["sourceURL"], f.server.url(ASSET));
    let archive_path = json["archivePath"].as_str().unwrap();
    assert!(
        archive_path.contains("/downloads/127.0.0.1_"),
        "{archive_path}"
    );
    assert!(archive_path.ends_with("/v1.13.0/nocloud-amd64.raw.xz"));
    assert_eq!(std::fs::read(archive_path).unwrap(), f.archive);
    assert!(json["imagePath"]
        .as_str()
        .unwrap()
        .ends_with("/nocloud-amd64.raw"));
    // The decoded image's kind (see tests/image_kind_cli.rs): this stand-in has no partition
    // table.
    assert_eq!(json["imageKind"], "unknown");
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(
        run.stderr.is_empty(),
        "nothing on stderr when it is not a terminal: {}",
        run.stderr
    );
}

#[test]
fn human_output_without_json() {
    let f = factory();
    let url = f.server.url(ASSET);
    let run = run(&["fetch", &url, "--cache-dir", f.cache_dir()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&sha256_hex(&f.image)));
    assert!(run.stdout.contains("matches the publisher's .sha256 file"));
}

#[test]
fn transient_502_and_429_with_retry_after_are_retried() {
    let f = factory();
    f.server
        .script(ASSET, vec![Reply::Status(502), Reply::RetryAfter(429, 2)]);
    let started = Instant::now();
    let run = f.fetch(&[]);
    f.assert_fetched(&run);
    assert_eq!(f.server.gets(ASSET).len(), 3, "502, 429, then 200");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was not honoured"
    );
}

#[test]
fn not_found_is_final_after_one_request() {
    let f = factory();
    f.server.script(ASSET, vec![Reply::Status(404)]);
    let run = f.fetch(&[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(f.server.gets(ASSET).len(), 1);
    assert!(run.json()["error"].as_str().unwrap().contains("HTTP 404"));
    assert_eq!(run.json()["exitCode"], 3);
    f.assert_cache_empty();
}

#[test]
fn an_unreachable_server_is_named_in_words_an_operator_can_act_on() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/os.raw.xz");
    let cache = tempfile::tempdir().unwrap();
    let digest = "0".repeat(64);
    let cache_dir = cache.path().to_str().unwrap();
    let run = run(&[
        "fetch",
        &url,
        "--sha256",
        &digest,
        "--cache-dir",
        cache_dir,
        "--json",
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&format!(
            "127.0.0.1 refused the connection (nothing answers on port {port})"
        )),
        "{error}"
    );
    assert!(!error.contains("client error"), "{error}");
}

#[test]
fn server_errors_give_up_after_five_attempts() {
    let f = factory();
    f.server.script(ASSET, vec![Reply::Status(503); 6]);
    let run = f.fetch(&[]);
    assert_eq!(run.code, 3);
    assert_eq!(f.server.gets(ASSET).len(), 5);
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
    f.assert_cache_empty();
}

#[test]
fn a_cut_body_resumes_with_range_when_the_server_allows() {
    let f = factory();
    let cut = f.archive.len() / 3;
    f.server.set_default_serve(Serve {
        ranges: true,
        ..Serve::default()
    });
    f.server.script(
        ASSET,
        vec![Reply::Body(Serve {
            ranges: true,
            cut_after: Some(cut),
            ..Serve::default()
        })],
    );
    f.assert_fetched(&f.fetch(&[]));
    let gets = f.server.gets(ASSET);
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].range, None);
    assert_eq!(
        gets[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
}

#[test]
fn a_cut_body_starts_over_when_the_server_ignores_range() {
    let f = factory();
    let cut = f.archive.len() / 2;
    f.server.script(
        ASSET,
        vec![Reply::Body(Serve {
            cut_after: Some(cut),
            ..Serve::default()
        })],
    );
    f.assert_fetched(&f.fetch(&[]));
    let gets = f.server.gets(ASSET);
    assert_eq!(gets.len(), 2);
    assert!(gets[1].range.is_some(), "it asked to resume");
}

#[test]
fn a_wrong_sidecar_fails_with_exit_1_and_keeps_nothing() {
    let f = factory();
    let other = sha256_hex(b"something else");
    f.server.put(
        &format!("{ASSET}.sha256"),
        format!("{other}  nocloud-amd64.raw.xz\n").into_bytes(),
    );
    let run = f.fetch(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("does not match") && error.contains(&other),
        "{error}"
    );
    f.assert_cache_empty();
}

#[test]
fn a_wrong_sha256_flag_fails_with_exit_1() {
    let f = factory();
    let run = f.fetch(&["--sha256", &sha256_hex(b"not it")]);
    assert_eq!(run.code, 1);
    f.assert_cache_empty();
}

#[test]
fn malformed_and_empty_sidecars_are_named_and_refused() {
    let cases: [(&str, &str); 4] = [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("   \nabc\n", "no digest on its first line"),
        (
            "<html>Payment required</html>\n",
            "not a 64-digit hex SHA-256",
        ),
    ];
    for (body, expected) in cases {
        let f = factory();
        f.server
            .put(&format!("{ASSET}.sha256"), body.as_bytes().to_vec());
        let run = f.fetch(&[]);
        assert_eq!(run.code, 3, "{body:?}: {}", run.stderr);
        let error = run.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(expected), "{body:?}: {error}");
        assert!(
            f.server.gets(ASSET).is_empty(),
            "no download without an expected digest"
        );
        f.assert_cache_empty();
    }
}

#[test]
fn no_sidecar_402_fails_unless_unverified_is_allowed() {
    let f = factory();
    f.server
        .script(&format!("{ASSET}.sha256"), vec![Reply::Status(402); 2]);
    let run = f.fetch(&[]);
    assert_eq!(run.code, 3);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("HTTP 402") && error.contains("--allow-unverified"),
        "{error}"
    );
    assert!(f.server.gets(ASSET).is_empty());

    let run = f.fetch(&["--allow-unverified"]);
    let json = f.assert_fetched(&run);
    assert_eq!(json["digestSource"], "unverified");
    assert!(run.stderr.contains("UNVERIFIED"), "{}", run.stderr);
}

#[test]
fn the_sha256_flag_replaces_the_sidecar() {
    let f = factory();
    f.server
        .script(&format!("{ASSET}.sha256"), vec![Reply::Status(402)]);
    let digest = sha256_hex(&f.archive).to_uppercase();
    let json = f.assert_fetched(&f.fetch(&["--sha256", &digest]));
    assert_eq!(json["digestSource"], "flag");
    assert!(f.server.gets(&format!("{ASSET}.sha256")).is_empty());
}

#[test]
fn bad_flag_values_exit_2_with_one_json_object() {
    let f = factory();
    for args in [
        vec!["--sha256", "abc"],
        vec!["--sha256", &"g".repeat(64)],
        vec!["--max-image-size", "lots"],
        vec![
            "--sha256",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "--allow-unverified",
        ],
    ] {
        let run = f.fetch(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.json()["exitCode"], 2, "{args:?}");
        assert!(!run.stderr.is_empty());
    }
    let run = run(&[
        "fetch",
        "ftp://example.invalid/x.xz",
        "--json",
        "--cache-dir",
        f.cache_dir(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.json()["error"]
        .as_str()
        .unwrap()
        .contains("unsupported scheme"));
    assert!(f.server.requests().is_empty());
    f.assert_cache_empty();
}

#[test]
fn a_good_cache_is_reused_without_any_request() {
    let f = factory();
    let digest = sha256_hex(&f.archive);
    f.assert_fetched(&f.fetch(&["--sha256", &digest]));
    f.server.clear_log();
    let json = f.assert_fetched(&f.fetch(&["--sha256", &digest]));
    assert_eq!(json["digestSource"], "flag");
    assert!(f.server.requests().is_empty(), "{:?}", f.server.requests());

    // With the sidecar, only the sidecar is asked for.
    let run = f.fetch(&[]);
    f.assert_fetched(&run);
    assert_eq!(f.server.requests().len(), 1);
    assert!(f.server.gets(ASSET).is_empty());
}

#[test]
fn a_corrupt_cached_archive_is_downloaded_again_exactly_once() {
    let f = factory();
    let json = f.assert_fetched(&f.fetch(&[]));
    let archive_path = json["archivePath"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&archive_path).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&archive_path, bytes).unwrap();
    f.server.clear_log();
    f.assert_fetched(&f.fetch(&[]));
    assert_eq!(f.server.gets(ASSET).len(), 1);
    assert_eq!(std::fs::read(&archive_path).unwrap(), f.archive);
}

#[test]
fn a_tampered_cached_image_is_decoded_again() {
    let f = factory();
    let json = f.assert_fetched(&f.fetch(&[]));
    let image_path = json["imagePath"].as_str().unwrap().to_string();
    // Four bytes changed in place, and a record beside the image vouching for the change, as
    // earlier versions wrote one (`<image>.meta.json`) and trusted: only the archive vouches.
    let mut changed = f.image.clone();
    changed[1 << 20..(1 << 20) + 4].copy_from_slice(b"EVIL");
    std::fs::write(&image_path, &changed).unwrap();
    let record = serde_json::json!({
        "archiveSHA256": sha256_hex(&f.archive),
        "imageSHA256": sha256_hex(&changed),
        "imageSize": changed.len(),
        "format": "xz",
    });
    std::fs::write(format!("{image_path}.meta.json"), record.to_string()).unwrap();
    f.server.clear_log();
    f.assert_fetched(&f.fetch(&[]));
    assert!(
        f.server.gets(ASSET).is_empty(),
        "the archive was still good"
    );
    std::fs::write(&image_path, b"short").unwrap();
    f.assert_fetched(&f.fetch(&[]));
}

#[test]
fn an_endless_body_puts_no_more_than_the_limit_on_disk() {
    let f = factory();
    f.server.script(
        "/endless.raw.xz",
        vec![Reply::Body(Serve {
            endless: true,
            ..Serve::default()
        })],
    );
    let digest = "0".repeat(64);
    // A 1 MiB limit, the digest given (so no checksum file is asked for).
    let limited = |path: &str| {
        let url = f.server.url(path);
        labflash(&[
            "fetch",
            &url,
            "--sha256",
            &digest,
            "--max-image-size",
            "1MiB",
            "--cache-dir",
            f.cache_dir(),
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let child = limited("/endless.raw.xz");
    // Watch the cache while it runs: the most it ever held.
    let mut most = 0u64;
    let done = std::sync::atomic::AtomicBool::new(false);
    let endless: Run = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let held: u64 = files_under(f.cache.path())
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                most = most.max(held);
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        });
        let run = child.wait_with_output().unwrap().into();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        most = watcher.join().unwrap();
        run
    });
    assert_eq!(endless.code, 2, "{}", endless.stderr);
    let error = endless.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("the download is larger than"), "{error}");
    // 1 MiB, plus 0.1 % and 1 MiB of room for an archive's own overhead.
    assert!(
        most <= (2 << 20) + 1024 + 64 * 1024,
        "the cache held {most} bytes"
    );
    assert!(temp_files(f.cache.path()).is_empty());
    f.assert_cache_empty();

    // A body announced larger than that is refused from its length, unread.
    f.server.put("/big.raw.xz", noise(4 << 20, 3));
    let big: Run = limited("/big.raw.xz").wait_with_output().unwrap().into();
    assert_eq!(big.code, 2, "{}", big.stderr);
    assert!(
        big.stdout.contains("the download is larger than"),
        "{}",
        big.stdout
    );
    f.assert_cache_empty();
}

#[test]
fn a_fetch_of_a_similar_name_leaves_a_live_download_alone() {
    let f = factory();
    // `os.raw.xz` downloads slowly; meanwhile `os.raw`, whose temp names share the prefix
    // `.os.raw.`, is fetched into the same folder.
    f.server.put_with_sidecar("/os.raw.xz", f.archive.clone());
    f.server.put_with_sidecar("/os.raw", f.image.clone());
    f.server.script(
        "/os.raw.xz",
        vec![Reply::Body(Serve {
            rate: Some(f.archive.len() as u64 / 2),
            ..Serve::default()
        })],
    );
    let slow_url = f.server.url("/os.raw.xz");
    let slow = labflash(&["fetch", &slow_url, "--cache-dir", f.cache_dir(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| !temp_files(f.cache.path()).is_empty() && f.server.gets("/os.raw.xz").len() == 1);
    let other = run(&[
        "fetch",
        &f.server.url("/os.raw"),
        "--cache-dir",
        f.cache_dir(),
        "--json",
    ]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(
        temp_files(f.cache.path()).len(),
        1,
        "the live download's temp file is gone"
    );
    let slow: Run = slow.wait_with_output().unwrap().into();
    f.assert_fetched(&slow);
}

/// A publisher's checksum is of the compressed archive: verify proves the archive with it and
/// compares the drive (here a file larger than the image, as a drive is) with the image inside.
#[test]
fn verify_with_an_archive_checksum_compares_the_image_inside() {
    let f = factory();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("stick.img");
    let mut held = f.image.clone();
    held.extend_from_slice(&noise(1 << 20, 5));
    std::fs::write(&disk, &held).unwrap();
    let disk = disk.to_str().unwrap();
    let sidecar = format!("{}.sha256", f.server.url(ASSET));
    let check = |run: &Run| {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let json = run.json();
        assert_eq!(json["match"], true, "{json}");
        assert_eq!(json["size"], f.image.len() as u64);
        assert_eq!(json["expectedSHA256"], sha256_hex(&f.image));
        assert_eq!(json["archiveSHA256"], sha256_hex(&f.archive));
        json
    };
    let by_url = run(&[
        "verify",
        disk,
        "--sidecar",
        &sidecar,
        "--cache-dir",
        f.cache_dir(),
        "--json",
    ]);
    let json = check(&by_url);
    let from = json["expectedFrom"].as_str().unwrap();
    assert!(
        from.contains("whose SHA-256 matches") && from.contains(&sidecar),
        "{from}"
    );

    // The archive itself as --image, and a checksum file beside a local archive.
    let local = dir.path().join("nocloud-amd64.raw.xz");
    std::fs::write(&local, &f.archive).unwrap();
    let local = local.to_str().unwrap();
    check(&run(&["verify", disk, "--image", local, "--json"]));
    let checksum = format!("{local}.sha256");
    std::fs::write(
        &checksum,
        format!("{}  nocloud-amd64.raw.xz\n", sha256_hex(&f.archive)),
    )
    .unwrap();
    check(&run(&["verify", disk, "--sidecar", &checksum, "--json"]));

    // Whatever the checksum file is called, the file its line names is what it vouches for; a
    // size typed as well is refused, not ignored.
    let named = dir.path().join("CHECKSUM");
    std::fs::write(
        &named,
        format!("{} *nocloud-amd64.raw.xz\n", sha256_hex(&f.archive)),
    )
    .unwrap();
    let named = named.to_str().unwrap();
    check(&run(&["verify", disk, "--sidecar", named, "--json"]));
    let sized = run(&[
        "verify",
        disk,
        "--sidecar",
        named,
        "--size",
        "1000",
        "--json",
    ]);
    assert_eq!(sized.code, 2, "{}", sized.stderr);

    // A checksum that is not of the archive beside it: a mismatch, exit 1.
    std::fs::write(
        &checksum,
        format!("{}  nocloud-amd64.raw.xz\n", "ab".repeat(32)),
    )
    .unwrap();
    assert_eq!(
        run(&["verify", disk, "--sidecar", &checksum, "--json"]).code,
        1
    );
    // A checksum of an archive that is not there: say what to give instead, exit 2.
    std::fs::remove_file(local).unwrap();
    let missing = run(&["verify", disk, "--sidecar", &checksum, "--json"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stdout.contains("--image"), "{}", missing.stdout);
}

#[test]
fn a_file_name_near_the_limit_is_fetched() {
    let f = factory();
    // 253 bytes: the archive's temp name would pass 255 unless shortened.
    let name = format!("/{}.raw.xz", "n".repeat(246));
    f.server.put_with_sidecar(&name, f.archive.clone());
    let url = f.server.url(&name);
    let run = run(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"]);
    let json = f.assert_fetched(&run);
    let archive = json["archivePath"].as_str().unwrap();
    assert_eq!(Path::new(archive).file_name().unwrap().len(), 253);
}

#[test]
fn ctrl_c_or_sigterm_mid_body_leaves_no_temp_file() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let f = factory();
        f.server.script(
            ASSET,
            vec![Reply::Body(Serve {
                stall_after: Some(f.archive.len() / 2),
                ..Serve::default()
            })],
        );
        let url = f.server.url(ASSET);
        let child = labflash(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(|| !temp_files(f.cache.path()).is_empty() && f.server.gets(ASSET).len() == 1);
        std::thread::sleep(Duration::from_millis(300));
        let interrupted = Instant::now();
        unsafe { libc::kill(child.id() as i32, signal) };
        let run: Run = child.wait_with_output().unwrap().into();
        assert!(
            interrupted.elapsed() < Duration::from_secs(2),
            "took {:?}",
            interrupted.elapsed()
        );
        assert_eq!(run.code, 3, "signal {signal}: {}", run.stderr);
        assert_eq!(run.json()["error"], "cancelled");
        assert!(temp_files(f.cache.path()).is_empty());
        f.assert_cache_empty();
    }
}

#[test]
fn a_stale_temp_file_from_a_killed_run_is_swept() {
    let f = factory();
    f.server.script(
        ASSET,
        vec![Reply::Body(Serve {
            stall_after: Some(f.archive.len() / 2),
            ..Serve::default()
        })],
    );
    let url = f.server.url(ASSET);
    let mut child = labflash(&["fetch", &url, "--cache-dir", f.cache_dir(), "-q"])
        .spawn()
        .unwrap();
    // The temp file exists before the request is sent: wait for the stalled body too, or the
    // next fetch would be the one the server stalls.
    wait_for(|| !temp_files(f.cache.path()).is_empty() && !f.server.gets(ASSET).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        temp_files(f.cache.path()).len(),
        1,
        "SIGKILL leaves the temp file"
    );
    f.assert_fetched(&f.fetch(&[]));
}

#[test]
fn an_image_over_the_size_cap_is_refused_and_nothing_is_left() {
    let f = factory();
    let zeros = vec![0u8; 96 << 20];
    let archive = xz_single(&zeros);
    f.server.put_with_sidecar("/zeros.raw.xz", archive);
    let url = f.server.url("/zeros.raw.xz");
    let run = run(&[
        "fetch",
        &url,
        "--cache-dir",
        f.cache_dir(),
        "--max-image-size",
        "67108864",
        "--json",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("larger than the limit of 67108864 bytes"),
        "{error}"
    );
    let images = f.cache.path().join("images");
    assert!(
        files_under(&images).is_empty(),
        "{:?}",
        files_under(&images)
    );
    let downloads = f.cache.path().join("downloads");
    assert!(
        files_under(&downloads).is_empty(),
        "{:?}",
        files_under(&downloads)
    );
    assert!(temp_files(f.cache.path()).is_empty());
}

/// `pzstd` starts its files with a skippable frame: still zstd, decoded, never written as it is.
#[test]
fn a_zstd_file_that_starts_with_a_skippable_frame_is_decoded() {
    let f = factory();
    let mut archive = vec![0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    archive.extend_from_slice(&zstd(&f.image));
    f.server.put_with_sidecar("/pzstd.raw.zst", archive);
    let url = f.server.url("/pzstd.raw.zst");
    let run = run(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["imageSHA256"], sha256_hex(&f.image));
    assert_eq!(run.json()["imageSize"], f.image.len() as u64);
}

#[test]
fn multi_stream_xz_decodes_every_stream() {
    let f = factory();
    let (a, b) = (image_like(1 << 20, 1), noise(700_000, 2));
    let mut archive = xz_blocks(&a, 256 << 10);
    archive.extend_from_slice(&[0u8; 8]); // stream padding between streams is legal
    archive.extend_from_slice(&xz_single(&b));
    f.server.put_with_sidecar("/multi.img.xz", archive);
    let url = f.server.url("/multi.img.xz");
    let run = run(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    let expected = [a, b].concat();
    assert_eq!(json["imageSize"], expected.len() as u64);
    assert_eq!(json["imageSHA256"], sha256_hex(&expected));
    assert!(json["imagePath"].as_str().unwrap().ends_with("/multi.img"));
}

#[test]
fn truncated_xz_is_reported_as_corrupt() {
    let f = factory();
    let archive = xz_single(&noise(500_000, 3));
    let cut = archive[..archive.len() - 100].to_vec();
    f.server.put_with_sidecar("/cut.img.xz", cut);
    let url = f.server.url("/cut.img.xz");
    let run = run(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.json()["error"]
        .as_str()
        .unwrap()
        .contains("cannot be decompressed"));
    assert!(files_under(&f.cache.path().join("images")).is_empty());
}

#[test]
fn gzip_zstd_and_raw_are_recognised_by_their_bytes() {
    let f = factory();
    let image = image_like(2 << 20, 9);
    let mut two_members = gzip(&image[..1 << 20]);
    two_members.extend_from_slice(&gzip(&image[1 << 20..]));
    // Names that lie: the format comes from the magic bytes.
    let cases = [
        ("/os.img.gz", two_members),
        ("/os.img.zst", zstd(&image)),
        ("/os-gz-named-xz.img.xz", gzip(&image)),
        ("/os.raw", image.clone()),
    ];
    for (path, archive) in cases {
        f.server.put_with_sidecar(path, archive);
        let url = f.server.url(path);
        let run = run(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"]);
        assert_eq!(run.code, 0, "{path}: {}", run.stderr);
        let json = run.json();
        assert_eq!(json["imageSHA256"], sha256_hex(&image), "{path}");
        let image_path = json["imagePath"].as_str().unwrap();
        assert_eq!(std::fs::read(image_path).unwrap(), image, "{path}");
        if path == "/os.raw" {
            assert_eq!(json["imagePath"], json["archivePath"], "raw needs no copy");
        }
    }
}

#[test]
fn two_processes_fetching_one_asset_download_it_once() {
    let f = factory();
    // Slow enough that the second starts while the first downloads.
    f.server.set_default_serve(Serve {
        rate: Some(2 << 20),
        ..Serve::default()
    });
    let url = f.server.url(ASSET);
    let spawn = || {
        labflash(&["fetch", &url, "--cache-dir", f.cache_dir(), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    wait_for(|| f.server.gets(ASSET).len() == 1);
    let second = spawn();
    let (a, b): (Run, Run) = (
        first.wait_with_output().unwrap().into(),
        second.wait_with_output().unwrap().into(),
    );
    let (ja, jb) = (f.assert_fetched(&a), f.assert_fetched(&b));
    assert_eq!(ja, jb);
    assert_eq!(
        f.server.gets(ASSET).len(),
        1,
        "the second reused the first's download"
    );
}

#[test]
fn the_cache_folder_comes_from_the_environment_when_no_flag_is_given() {
    let f = factory();
    let url = f.server.url(ASSET);
    let out: Run = labflash(&["fetch", &url, "--json"])
        .env("LABFLASH_CACHE_DIR", f.cache.path())
        .output()
        .unwrap()
        .into();
    let json = f.assert_fetched(&out);
    assert!(Path::new(json["archivePath"].as_str().unwrap()).starts_with(f.cache.path()));
}

fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}
