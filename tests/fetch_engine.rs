//! labflash-core's fetch called in-process, as the desktop app calls it: cancellation through the
//! token, progress through the sink, and timeouts too long to wait for from the CLI.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Reply, Serve, Server};
use common::*;
use labflash_core::fetch::cache::Cache;
use labflash_core::fetch::http::{Http, HttpPolicy};
use labflash_core::fetch::{fetch, FetchRequest};
use labflash_core::progress::{Progress, ProgressSink, Stage};
use labflash_core::{CancellationToken, Error, ErrorKind};

fn quick_policy() -> HttpPolicy {
    HttpPolicy {
        first_delay: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(700),
        header_timeout: Duration::from_millis(700),
        ..HttpPolicy::default()
    }
}

fn request(server: &Server, path: &str) -> FetchRequest {
    FetchRequest::new(server.url(path).parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_mid_body_stops_promptly_and_leaves_no_temp_file() {
    let archive = xz_single(&noise(4 << 20, 11));
    let server = Server::start();
    server.put_with_sidecar("/os.img.xz", archive.clone());
    server.script(
        "/os.img.xz",
        vec![Reply::Body(Serve {
            stall_after: Some(archive.len() / 2),
            ..Serve::default()
        })],
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(HttpPolicy::default()).unwrap();
    let cancel = CancellationToken::new();
    let trip = cancel.clone();
    let seen = Arc::new(Mutex::new(0u64));
    let seen_by_sink = seen.clone();
    let progress: Arc<dyn ProgressSink> = Arc::new(move |p: Progress| {
        if p.stage == Stage::Download {
            *seen_by_sink.lock().unwrap() = p.done;
        }
    });
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        trip.cancel();
        Instant::now()
    });
    let result = fetch(
        &http,
        &cache,
        &request(&server, "/os.img.xz"),
        &cancel,
        &progress,
    )
    .await;
    let cancelled_at = canceller.await.unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert!(
        *seen.lock().unwrap() > 0,
        "progress was reported before the stall"
    );
    assert!(temp_files(dir.path()).is_empty());
    assert!(cached_files(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_body_times_out_and_the_download_resumes() {
    let image = image_like(2 << 20, 12);
    let archive = gzip(&image);
    let server = Server::start();
    server.put_with_sidecar("/os.img.gz", archive.clone());
    server.set_default_serve(Serve {
        ranges: true,
        ..Serve::default()
    });
    server.script(
        "/os.img.gz",
        vec![Reply::Body(Serve {
            ranges: true,
            stall_after: Some(archive.len() / 4),
            ..Serve::default()
        })],
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(quick_policy()).unwrap();
    let progress: Arc<dyn ProgressSink> = Arc::new(labflash_core::progress::NoProgress);
    let fetched = fetch(
        &http,
        &cache,
        &request(&server, "/os.img.gz"),
        &CancellationToken::new(),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(fetched.image_sha256.hex(), sha256_hex(&image));
    let gets = server.gets("/os.img.gz");
    assert_eq!(gets.len(), 2);
    assert_eq!(
        gets[1].range.as_deref(),
        Some(format!("bytes={}-", archive.len() / 4).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_covers_every_stage_and_ends_at_the_full_size() {
    let image = image_like(6 << 20, 13);
    let archive = xz_blocks(&image, 1 << 20);
    let server = Server::start();
    server.put_with_sidecar("/os.raw.xz", archive.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(quick_policy()).unwrap();
    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let sink_reports = reports.clone();
    let progress: Arc<dyn ProgressSink> =
        Arc::new(move |p: Progress| sink_reports.lock().unwrap().push(p));
    let req = request(&server, "/os.raw.xz");
    fetch(&http, &cache, &req, &CancellationToken::new(), &progress)
        .await
        .unwrap();
    fetch(&http, &cache, &req, &CancellationToken::new(), &progress)
        .await
        .unwrap();

    let reports = reports.lock().unwrap();
    let last = |stage| {
        reports
            .iter()
            .rev()
            .find(|p| p.stage == stage)
            .cloned()
            .unwrap()
    };
    assert_eq!(last(Stage::Download).done, archive.len() as u64);
    assert_eq!(last(Stage::Download).total, Some(archive.len() as u64));
    assert_eq!(last(Stage::Decompress).done, image.len() as u64);
    assert_eq!(last(Stage::CheckCache).done, archive.len() as u64);
    assert_eq!(last(Stage::CheckImage).done, image.len() as u64);
    for stage in [Stage::Download, Stage::Decompress] {
        let dones: Vec<u64> = reports
            .iter()
            .filter(|p| p.stage == stage)
            .map(|p| p.done)
            .collect();
        assert!(
            dones.windows(2).all(|w| w[0] <= w[1]),
            "{stage:?} went backwards: {dones:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_times_out_and_is_retried() {
    // Accepts connections but never sends headers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let keep = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let policy = HttpPolicy {
        attempts: 2,
        ..quick_policy()
    };
    let http = Http::new(policy).unwrap();
    let mut req = FetchRequest::new(format!("http://{addr}/os.img.xz").parse().unwrap());
    req.sha256 = Some(labflash_core::fetch::digest::parse_typed(&sha256_hex(b"x")).unwrap());
    let progress: Arc<dyn ProgressSink> = Arc::new(labflash_core::progress::NoProgress);
    let err = fetch(&http, &cache, &req, &CancellationToken::new(), &progress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("response headers"), "{err}");
    assert_eq!(accepted.lock().unwrap().len(), 2, "two attempts");
    assert!(cached_files(dir.path()).is_empty());
}
