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

/// The Download stage's reports, each with when it came.
type Timed = Arc<Mutex<Vec<(Instant, Progress)>>>;

fn timed_downloads() -> (Arc<dyn ProgressSink>, Timed) {
    let reports: Timed = Arc::default();
    let keep = reports.clone();
    let sink: Arc<dyn ProgressSink> = Arc::new(move |p: Progress| {
        if p.stage == Stage::Download {
            keep.lock().unwrap().push((Instant::now(), p));
        }
    });
    (sink, reports)
}

/// The `waiting` reports, each with when it came, what it says and the count it carries.
fn waits(reports: &[(Instant, Progress)]) -> Vec<(Instant, u64, u64)> {
    reports
        .iter()
        .filter_map(|(at, p)| p.waiting.map(|secs| (*at, secs, p.done)))
        .collect()
}

/// Never more than ten reports a second, the stage's last count aside.
fn assert_throttled(reports: &[(Instant, Progress)]) {
    for (i, (at, _)) in reports.iter().enumerate() {
        let within = reports[i..]
            .iter()
            .take_while(|(t, _)| t.duration_since(*at) < Duration::from_secs(1))
            .count();
        assert!(within <= 11, "{within} reports within a second");
    }
}

fn patient() -> HttpPolicy {
    HttpPolicy {
        idle_timeout: Duration::from_secs(8),
        ..quick_policy()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_goes_silent_is_said_to_wait_until_bytes_come_again() {
    let archive = xz_single(&noise(1 << 20, 14));
    let part = 256 << 10;
    let server = Server::start();
    server.put_with_sidecar("/os.img.xz", archive.clone());
    server.script(
        "/os.img.xz",
        vec![Reply::Body(Serve {
            pause: Some((part, Duration::from_secs(4))),
            // The rest takes a second and more: long enough to see that it is not waiting.
            rate: Some(512 << 10),
            ..Serve::default()
        })],
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(patient()).unwrap();
    let (progress, reports) = timed_downloads();
    let req = request(&server, "/os.img.xz");
    fetch(&http, &cache, &req, &CancellationToken::new(), &progress)
        .await
        .unwrap();
    assert_eq!(server.gets("/os.img.xz").len(), 1, "one attempt, paused");
    let reports = reports.lock().unwrap();
    let waits = waits(&reports);
    let said: Vec<u64> = waits.iter().map(|(_, secs, _)| *secs).collect();
    assert!(said.len() >= 2 && said[0] >= 2, "{said:?}");
    assert!(said.windows(2).all(|w| w[0] < w[1]), "{said:?}");
    assert!(waits.iter().all(|(_, _, done)| *done == part as u64));
    assert!(waits
        .windows(2)
        .all(|w| w[1].0.duration_since(w[0].0) >= Duration::from_millis(900)));
    // Then bytes again, said without waiting, to the end.
    let last_wait = waits.last().unwrap().0;
    let after: Vec<&Progress> = reports
        .iter()
        .filter(|(at, _)| *at > last_wait)
        .map(|(_, p)| p)
        .collect();
    assert!(!after.is_empty() && after.iter().all(|p| p.waiting.is_none()));
    assert_eq!(after.last().unwrap().done, archive.len() as u64);
    assert_throttled(&reports);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_before_another_attempt_is_said_too() {
    let archive = xz_single(&noise(256 << 10, 15));
    let server = Server::start();
    server.put_with_sidecar("/os.img.xz", archive.clone());
    server.script(
        "/os.img.xz",
        vec![Reply::RetryAfter(503, 4), Reply::Body(Serve::default())],
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().to_path_buf()).unwrap();
    let http = Http::new(patient()).unwrap();
    let (progress, reports) = timed_downloads();
    let req = request(&server, "/os.img.xz");
    fetch(&http, &cache, &req, &CancellationToken::new(), &progress)
        .await
        .unwrap();
    assert_eq!(server.gets("/os.img.xz").len(), 2);
    let reports = reports.lock().unwrap();
    let said: Vec<(u64, u64)> = waits(&reports)
        .iter()
        .map(|(_, secs, done)| (*secs, *done))
        .collect();
    // Said during the 4 s wait, before any byte.
    assert!(said.len() >= 2 && said[0].0 >= 2, "{said:?}");
    assert!(said.windows(2).all(|w| w[0].0 < w[1].0), "{said:?}");
    assert!(said.iter().all(|(_, done)| *done == 0), "{said:?}");
    assert_eq!(reports.last().unwrap().1.waiting, None);
    assert_eq!(reports.last().unwrap().1.done, archive.len() as u64);
}
