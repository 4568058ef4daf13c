//! `flash::probe` in-process, as the app calls it when a source is chosen, against stand-ins on
//! 127.0.0.1: what is learnt without downloading (where, the digest that vouches and where from,
//! the sizes, the kind of a local file), and what is refused, in the flash's own sentence, fast.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::factory::{answer_like, Edition};
use common::server::{Reply, Server};
use common::*;
use labflash_core::fetch::cache::Cache;
use labflash_core::fetch::http::{Http, HttpPolicy};
use labflash_core::fetch::{DigestSource, DEFAULT_MAX_IMAGE_SIZE};
use labflash_core::flash::probe::{probe, Probed};
use labflash_core::image_kind::ImageKind;
use labflash_core::sources::incus::IncusRequest;
use labflash_core::sources::talos_factory::{AssetRequest, Customization};
use labflash_core::sources::{Source, SourceRequest};
use labflash_core::{CancellationToken, Error};

/// A probe answers well under a second from a server on this machine.
const FAST: Duration = Duration::from_secs(1);

fn image_at(source: &str, sha256: Option<&str>, allow_unverified: bool) -> Source {
    Source::Image(SourceRequest {
        source: source.into(),
        sha256: sha256.map(|d| d.parse().unwrap()),
        sha256_source: DigestSource::Flag,
        signed_by: None,
        factory: None,
        allow_unverified,
        max_image_size: DEFAULT_MAX_IMAGE_SIZE,
    })
}

/// Probes `source` with a fresh cache; the cache folder is returned to look into.
async fn probe_of(source: &Source) -> (Result<Probed, Error>, Duration, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(HttpPolicy::default()).unwrap();
    let began = Instant::now();
    let result = probe(source, &http, &cache, &CancellationToken::new()).await;
    (result, began.elapsed(), dir)
}

/// A GPT disk image of `len` bytes (sgdisk), sparse past its tables.
fn gpt_file(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
    let out = std::process::Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:+1M", "-t", "1:ef00"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_with_a_sidecar_is_known_without_downloading_it() {
    let image = image_like(3 << 20, 31);
    let archive = xz_blocks(&image, 1 << 20);
    let server = Server::start();
    server.put_with_sidecar("/os.raw.xz", archive.clone());
    server.set_default_serve(common::server::Serve {
        ranges: true,
        ..Default::default()
    });
    let url = server.url("/os.raw.xz");
    let (probed, took, cache) = probe_of(&image_source(&url)).await;
    let p = probed.unwrap();
    assert_eq!(p.source, url);
    assert_eq!(p.digest_source, DigestSource::Sidecar);
    assert_eq!(p.expected_sha256.unwrap().hex(), sha256_hex(&archive));
    assert_eq!(p.archive_size, Some(archive.len() as u64));
    let size = p.image_size.unwrap();
    assert_eq!((size.bytes, size.exact), (image.len() as u64, true));
    assert_eq!(
        p.image_kind, None,
        "a download's kind is known when it streams"
    );
    assert!(took < FAST, "{took:?}");
    // One HEAD and a range of the tail: the archive itself was never sent.
    let asked: Vec<(String, Option<String>)> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/os.raw.xz")
        .map(|r| (r.method, r.range))
        .collect();
    assert_eq!(
        asked,
        [
            ("HEAD".to_string(), None),
            ("GET".to_string(), Some("bytes=-65536".to_string()))
        ]
    );
    assert_eq!(server.body_gets("/os.raw.xz"), 0);
    assert!(cached_files(cache.path()).is_empty(), "nothing cached");
    assert!(files_under(cache.path()).is_empty(), "no lock taken either");
}

fn image_source(url: &str) -> Source {
    image_at(url, None, false)
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_asset_the_server_does_not_have_is_one_sentence_naming_it_and_its_status() {
    let server = Server::start();
    server.put_with_sidecar("/os.raw.xz", xz_single(b"an image"));
    let with_password = server
        .url("/gone.raw.xz")
        .replace("http://", "http://op:s3cret@");
    let (missing, took, _) = probe_of(&image_source(&with_password)).await;
    let said = missing.unwrap_err().to_string();
    assert_eq!(
        said,
        format!(
            "{} does not exist (the server answers HTTP 404 Not Found)",
            server.url("/gone.raw.xz")
        ),
        "redacted, and not a missing checksum"
    );
    assert!(took < FAST, "{took:?}");
    for (status, says) in [
        (410, "answered HTTP 410 Gone"),
        (401, "answered HTTP 401: it wants credentials"),
        (403, "answered HTTP 403: it wants credentials"),
        (503, "answered HTTP 503 Service Unavailable"),
    ] {
        server.clear_log();
        server.script("/os.raw.xz", vec![Reply::Status(status)]);
        let (refused, took, _) = probe_of(&image_source(&server.url("/os.raw.xz"))).await;
        let said = refused.unwrap_err().to_string();
        assert_eq!(said, format!("{} {says}", server.url("/os.raw.xz")));
        assert_eq!(server.requests().len(), 1, "{status}: asked once");
        assert!(took < FAST, "{status}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_refuses_head_is_no_fault() {
    let archive = gzip(&image_like(1 << 20, 32));
    let server = Server::start();
    server.put_with_sidecar("/os.img.gz", archive.clone());
    server.script("/os.img.gz", vec![Reply::Status(405)]);
    let (probed, _, _) = probe_of(&image_source(&server.url("/os.img.gz"))).await;
    let p = probed.unwrap();
    assert_eq!(p.archive_size, None, "the size is not said");
    assert_eq!(p.digest_source, DigestSource::Sidecar);
    assert_eq!(p.expected_sha256.unwrap().hex(), sha256_hex(&archive));
    assert_eq!(server.requests()[0].method, "HEAD");
    assert_eq!(server.requests()[0].path, "/os.img.gz");
}

/// No checksum published: refused as the flash refuses it, in the same words, unless allowed.
#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_url_is_refused_as_a_flash_refuses_it() {
    let server = Server::start();
    server.put("/os.raw.xz", xz_single(&image_like(1 << 20, 33)));
    let url = server.url("/os.raw.xz");
    let (refused, _, _) = probe_of(&image_source(&url)).await;
    let said = refused.unwrap_err().to_string();
    assert!(said.contains("has no published checksum"), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let Source::Image(req) = image_source(&url) else {
        unreachable!()
    };
    let request = labflash_core::flash::Request {
        image: req,
        targets: vec![labflash_core::flash::rules::Chosen::path(
            dir.path().join("disk.img"),
        )],
        config: None,
        config_to: None,
        options: Default::default(),
        verify: true,
        skip_equal: true,
        prepared: None,
    };
    let progress: Arc<dyn labflash_core::progress::ProgressSink> =
        Arc::new(labflash_core::progress::NoProgress);
    let http = Http::new(HttpPolicy::default()).unwrap();
    let planned = labflash_core::flash::plan(
        &request,
        &http,
        &cache,
        &CancellationToken::new(),
        &progress,
    )
    .await;
    assert_eq!(
        planned.err().unwrap().to_string(),
        said,
        "the flash's words"
    );

    let (allowed, _, _) = probe_of(&image_at(&url, None, true)).await;
    let p = allowed.unwrap();
    assert_eq!(p.digest_source, DigestSource::Unverified);
    assert_eq!(p.expected_sha256, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_not_there_is_said_at_once() {
    let port = unused_port();
    let url = format!("http://127.0.0.1:{port}/os.raw.xz");
    let (refused, took, _) = probe_of(&image_source(&url)).await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        format!(
            "could not download {url}: 127.0.0.1 refused the connection (nothing answers on port {port})"
        )
    );
    assert!(took < FAST, "not retried: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_probe_is_cancelled_at_once() {
    // Takes the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/os.raw.xz", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(HttpPolicy::default()).unwrap();
    let cancel = CancellationToken::new();
    let trip = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trip.cancel();
    });
    let began = Instant::now();
    let result = probe(&image_source(&url), &http, &cache, &cancel).await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(began.elapsed() < FAST, "{:?}", began.elapsed());
    drop(listener);
}

/// The operator's .xz: its image's size from the xz index and its kind from its first decoded
/// bytes; the digest given is said, to be checked when it is flashed.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_xz_says_its_exact_size_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    gpt_file(&raw, 4 << 20);
    let image = std::fs::read(&raw).unwrap();
    let xz = dir.path().join("disk.raw.xz");
    std::fs::write(&xz, xz_blocks(&image, 1 << 20)).unwrap();
    let digest = sha256_hex(&std::fs::read(&xz).unwrap());
    let (probed, took, _) = probe_of(&image_at(xz.to_str().unwrap(), Some(&digest), false)).await;
    let p = probed.unwrap();
    assert_eq!(p.source, xz.canonicalize().unwrap().display().to_string());
    let size = p.image_size.unwrap();
    assert_eq!((size.bytes, size.exact), (4 << 20, true));
    assert_eq!(p.image_kind, Some(ImageKind::Gpt));
    assert_eq!(p.archive_size, Some(std::fs::metadata(&xz).unwrap().len()));
    assert_eq!(p.digest_source, DigestSource::Flag);
    assert_eq!(p.expected_sha256.unwrap().hex(), digest);
    assert!(took < FAST, "{took:?}");
}

/// A 64 GiB raw image (sparse): known in well under a second, so it was not hashed, and its
/// kind read as a flash reads a prepared image's.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_local_image_is_not_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("big.img");
    gpt_file(&raw, 64 << 30);
    let (probed, took, _) = probe_of(&image_at(raw.to_str().unwrap(), None, false)).await;
    let p = probed.unwrap();
    assert!(took < FAST, "{took:?}");
    let size = p.image_size.unwrap();
    assert_eq!((size.bytes, size.exact), (64 << 30, true));
    assert_eq!(p.image_kind, Some(ImageKind::Gpt));
    assert_eq!(p.digest_source, DigestSource::Unverified);

    // A kind the flash would not write is refused now, in the flash's words.
    let qcow = dir.path().join("vm.qcow2");
    let mut head = b"QFI\xfb\0\0\0\x03".to_vec();
    head.resize(1 << 20, 0);
    std::fs::write(&qcow, &head).unwrap();
    let (refused, _, _) = probe_of(&image_at(qcow.to_str().unwrap(), None, false)).await;
    let said = refused.unwrap_err().to_string();
    assert!(said.contains("is a qcow2 virtual-machine disk"), "{said}");
}

/// The stand-in factory of sources_cli.rs: schematics made from the body (ID = its SHA-256).
#[tokio::test(flavor = "multi_thread")]
async fn a_talos_source_resolves_its_schematic_and_asset() {
    let f = Server::start();
    f.on_post(
        "/schematics",
        Arc::new(|body: &[u8]| (201, format!("{{\"id\":\"{}\"}}", sha256_hex(body)))),
    );
    answer_like(&f, Edition::Enterprise);
    let body = serde_json::json!({"customization": {"extraKernelArgs": ["console=ttyS0"]}});
    let id = sha256_hex(serde_json::to_string(&body).unwrap().as_bytes());
    let image = image_like(2 << 20, 34);
    let archive = xz_blocks(&image, 1 << 20);
    let asset = format!("/image/{id}/v1.13.0/nocloud-amd64.raw.xz");
    f.put_with_sidecar(&asset, archive.clone());
    let request = |factory_url: String| {
        Source::TalosFactory(AssetRequest {
            factory_url,
            factory_token: None,
            factory_key: None,
            version: "v1.13.0".into(),
            schematic: None,
            customization: Customization {
                extensions: Vec::new(),
                kernel_args: vec!["console=ttyS0".into()],
                overlay: None,
            },
            platform: "nocloud".into(),
            arch: "amd64".into(),
            secureboot: false,
            format: "raw.xz".into(),
            sha256: None,
            allow_unverified: false,
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
        })
    };
    let (probed, took, cache) = probe_of(&request(f.url(""))).await;
    let p = probed.unwrap();
    assert_eq!(p.source, f.url(&asset));
    assert_eq!(p.schematic.as_deref(), Some(id.as_str()));
    assert_eq!(p.version.as_deref(), Some("v1.13.0"));
    assert_eq!(p.digest_source, DigestSource::Sidecar);
    assert_eq!(p.expected_sha256.unwrap().hex(), sha256_hex(&archive));
    assert_eq!(p.archive_size, Some(archive.len() as u64));
    assert!(took < FAST, "{took:?}");
    assert!(cached_files(cache.path()).is_empty(), "{cache:?}");

    // A factory that is offline is said now, not at Flash.
    let offline = format!("http://127.0.0.1:{}/", unused_port());
    let (refused, took, _) = probe_of(&request(offline)).await;
    let said = refused.unwrap_err().to_string();
    assert!(said.contains("refused the connection"), "{said}");
    assert!(took < FAST, "{took:?}");
}

const STABLE: &str = "202608190802";

/// The stand-in IncusOS server of sources_cli.rs: the fixture index (tests/fixtures/incus, laid
/// out as upstream's publisher writes it) with the stable image served, signed by the test
/// signer.
#[tokio::test(flavor = "multi_thread")]
async fn an_incus_source_reads_its_signed_index() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("incus.raw");
    gpt_file(&raw, 4 << 20);
    let gz = gzip(&std::fs::read(&raw).unwrap());
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    let filename = format!("x86_64/IncusOS_{STABLE}.img.gz");
    serve_index_file(&mut index, STABLE, &filename, &gz);
    let server = Server::start();
    server.set_default_serve(common::server::Serve {
        ranges: true,
        ..Default::default()
    });
    server.put(&format!("/os/{STABLE}/{filename}"), gz.clone());
    server.put(
        "/os/index.sjson",
        signed_index(&serde_json::to_vec(&index).unwrap()),
    );
    let request = |seed: Option<std::path::PathBuf>| {
        Source::Incus(IncusRequest {
            index_url: server.url("/os/index.sjson"),
            base_url: server.url("/os"),
            channel: "stable".into(),
            arch: "x86_64".into(),
            version: None,
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            seed,
            trust_root: Some(incus_trust_root()),
            unsigned: false,
        })
    };
    let (probed, took, _) = probe_of(&request(None)).await;
    let p = probed.unwrap();
    assert_eq!(p.source, server.url(&format!("/os/{STABLE}/{filename}")));
    assert_eq!(p.version.as_deref(), Some(STABLE));
    assert_eq!(p.digest_source, DigestSource::Index);
    assert_eq!(p.expected_sha256.unwrap().hex(), sha256_hex(&gz));
    assert!(
        p.signed_by
            .as_deref()
            .unwrap()
            .contains("Update Test Cert E1"),
        "{:?}",
        p.signed_by
    );
    assert_eq!(p.archive_size, Some(gz.len() as u64));
    // gzip records its size modulo 4 GiB: a lower bound.
    let size = p.image_size.unwrap();
    assert_eq!((size.bytes, size.exact), (4 << 20, false));
    assert!(took < FAST, "{took:?}");

    // A seed is checked as the flash checks it, and what it says is said now.
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(seed.join("incus.yml"), "apply_defaults: true\n").unwrap();
    let (seeded, _, _) = probe_of(&request(Some(seed))).await;
    let warnings = seeded.unwrap().warnings;
    assert!(
        warnings.iter().any(|w| w.contains("install")),
        "a seed without an install file: {warnings:?}"
    );
}

/// An uncompressed image by URL is its own size (the total of a one-byte range), so drives too
/// small for it are known when it is chosen; a download larger than any archive of an image
/// within the size limit is refused then too, in the flash's words.
#[tokio::test(flavor = "multi_thread")]
async fn a_raw_url_is_its_own_size_and_one_over_the_limit_is_refused_when_chosen() {
    let image = image_like(3 << 20, 32);
    let server = Server::start();
    server.put_with_sidecar("/disk.raw", image.clone());
    server.set_default_serve(common::server::Serve {
        ranges: true,
        ..Default::default()
    });
    let url = server.url("/disk.raw");
    let (probed, _, _cache) = probe_of(&image_source(&url)).await;
    let size = probed.unwrap().image_size.unwrap();
    assert_eq!((size.bytes, size.exact), (image.len() as u64, true));
    assert_eq!(server.body_gets("/disk.raw"), 0, "only a one-byte range");

    let limited = Source::Image(SourceRequest {
        max_image_size: 1 << 20,
        ..match image_source(&url) {
            Source::Image(req) => req,
            _ => unreachable!(),
        }
    });
    let (refused, _, _cache) = probe_of(&limited).await;
    let error = refused.err().unwrap().to_string();
    assert!(
        error.starts_with("the download is larger than 2098176 bytes (2.1 MB)")
            && error.contains("Largest image accepted"),
        "{error}"
    );
}
