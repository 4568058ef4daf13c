//! labflash-core's flash called in-process, as the desktop app calls it: one drive of a streamed
//! flash cancelled alone (on real loop devices, root as in CI, the others are written and read
//! back; when every drive is cancelled the flash is, and its download stops), and the writes'
//! progress total while an archive streams.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::loopdev::LoopDev;
use common::server::{Serve, Server};
use common::*;
use labflash_core::fetch::cache::Cache;
use labflash_core::fetch::http::{Http, HttpPolicy};
use labflash_core::fetch::DigestSource;
use labflash_core::flash::rules::Chosen;
use labflash_core::flash::target_cancel::TargetCancels;
use labflash_core::flash::{self, Flashed, Plan};
use labflash_core::progress::{Progress, ProgressSink, Stage};
use labflash_core::sources::SourceRequest;
use labflash_core::{CancellationToken, Error, ErrorKind};

const MIB: usize = 1 << 20;

struct Bench {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    http: Http,
    cache: Cache,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        Bench {
            dir,
            rt: tokio::runtime::Runtime::new().unwrap(),
            http: Http::new(HttpPolicy::default()).unwrap(),
            cache,
        }
    }

    /// The streaming plan of `source` (a URL or a compressed file whose digest is `archive`'s)
    /// onto `targets`.
    fn plan(&self, source: &str, archive: &[u8], targets: &[&str]) -> Plan {
        let request = flash::Request {
            image: SourceRequest {
                source: source.into(),
                sha256: Some(sha256_hex(archive).parse().unwrap()),
                sha256_source: DigestSource::Flag,
                signed_by: None,
                factory: None,
                allow_unverified: false,
                max_image_size: 1 << 30,
            },
            targets: targets.iter().map(|t| Chosen::path(*t)).collect(),
            config: None,
            config_to: None,
            options: Default::default(),
            verify: true,
            skip_equal: true,
            prepared: None,
        };
        let progress: Arc<dyn ProgressSink> = Arc::new(labflash_core::progress::NoProgress);
        let cancel = CancellationToken::new();
        let plan = self.rt.block_on(flash::plan(
            &request,
            &self.http,
            &self.cache,
            &cancel,
            &progress,
        ));
        plan.unwrap()
    }

    fn run(&self, plan: Plan, progress: &dyn ProgressSink) -> labflash_core::Result<Flashed> {
        let cancel = CancellationToken::new();
        let handle = self.rt.handle();
        flash::run(plan, &self.http, &self.cache, handle, &cancel, progress)
    }
}

/// Cancels each of `paths` through the plan's own cancels at its first write report that
/// counts bytes (on that drive's writer thread: nothing more is written to it after); says
/// when the last was cancelled.
fn cancelling(
    cancels: TargetCancels,
    paths: Vec<String>,
) -> (impl Fn(Progress) + Send + Sync, Arc<Mutex<Option<Instant>>>) {
    let done = Mutex::new(Vec::new());
    let last = Arc::new(Mutex::new(None));
    let at = last.clone();
    let sink = move |p: Progress| {
        let Some(target) = p.target.filter(|_| p.stage == Stage::Write && p.done > 0) else {
            return;
        };
        let mut done = done.lock().unwrap();
        if paths.contains(&target) && !done.contains(&target) {
            assert!(cancels.cancel(target.as_ref()).unwrap(), "{target}");
            done.push(target);
            *at.lock().unwrap() = Some(Instant::now());
        }
    };
    (sink, last)
}

#[test]
fn one_drive_of_a_streamed_flash_is_cancelled_and_the_others_are_proven() {
    require_root!();
    let b = Bench::new();
    let image = image_like(24 * MIB, 61);
    let archive = xz_blocks(&image, 4 << 20);
    let source = b.dir.path().join("os.img.xz");
    std::fs::write(&source, &archive).unwrap();
    let devs: Vec<LoopDev> = (0..3)
        .map(|_| LoopDev::new(b.dir.path(), 32 << 20, 512, 0xAA))
        .collect();
    let paths: Vec<&str> = devs.iter().map(LoopDev::path_str).collect();
    let plan = b.plan(source.to_str().unwrap(), &archive, &paths);
    let (progress, _) = cancelling(plan.target_cancels(), vec![paths[1].to_string()]);
    let flashed = b.run(plan, &progress).unwrap();
    for i in [0, 2] {
        let t = &flashed.targets[i];
        assert!(t.ok, "{}: {:?}", t.path, t.error);
        assert_eq!(t.verified_sha256.unwrap().hex(), sha256_hex(&image));
    }
    let cancelled = &flashed.targets[1];
    assert_eq!(
        cancelled.error_kind,
        Some(ErrorKind::Cancelled),
        "{cancelled:?}"
    );
    let stick = &devs[1];
    assert!(
        stick.read(0, MIB).iter().all(|b| *b == 0),
        "it looks bootable"
    );
    // Cancelled after its first chunk: the rest of the image never reached it.
    assert!(stick
        .read(8 * MIB as u64, 16 * MIB)
        .iter()
        .all(|b| *b == 0xAA));
}

#[test]
fn when_every_drive_is_cancelled_the_flash_is_and_its_download_stops() {
    let b = Bench::new();
    let image = noise(24 * MIB, 62);
    let archive = zstd(&image);
    let server = Server::start();
    server.put("/os.img.zst", archive.clone());
    // About 6 s for the whole download.
    server.set_default_serve(Serve {
        rate: Some(4_000_000),
        ..Serve::default()
    });
    let files: Vec<String> = ["a.img", "b.img"]
        .iter()
        .map(|name| {
            let path = b.dir.path().join(name);
            std::fs::write(&path, vec![0xAAu8; 32 * MIB]).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    let paths: Vec<&str> = files.iter().map(String::as_str).collect();
    let plan = b.plan(&server.url("/os.img.zst"), &archive, &paths);
    let (progress, last) = cancelling(plan.target_cancels(), files.clone());
    let result = b.run(plan, &progress);
    let took = last.lock().unwrap().expect("both cancelled").elapsed();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    // Not when the reader next has a chunk for nobody (a second at this rate).
    assert!(
        took < Duration::from_millis(300),
        "the download went on: {took:?}"
    );
    for file in &files {
        let held = std::fs::read(file).unwrap();
        assert!(held[..MIB].iter().all(|b| *b == 0), "{file} looks bootable");
    }
    let cache = b.dir.path().join("cache");
    assert!(cached_files(&cache).is_empty() && temp_files(&cache).is_empty());
}

/// Every Write report a streamed flash of `source` onto a new file makes, (done, total), and
/// what its plan said.
fn write_reports(
    b: &Bench,
    source: &str,
    archive: &[u8],
    image: &[u8],
) -> (Vec<(u64, Option<u64>)>, String) {
    let target = b.dir.path().join("vm.img");
    let _ = std::fs::remove_file(&target);
    let plan = b.plan(source, archive, &[target.to_str().unwrap()]);
    let said = plan.describe().join("\n");
    let seen = Mutex::new(Vec::new());
    let progress = |p: Progress| {
        if p.stage == Stage::Write && p.target.is_some() {
            seen.lock().unwrap().push((p.done, p.total));
        }
    };
    let flashed = b.run(plan, &progress).unwrap();
    assert!(flashed.targets[0].ok, "{:?}", flashed.targets[0].error);
    assert_eq!(flashed.image_size, image.len() as u64);
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter()
            .any(|(done, _)| (1..image.len() as u64).contains(done)),
        "{seen:?}"
    );
    (seen, said)
}

/// An xz archive records its image's exact size (its index): the writes show it as their total
/// from the first report. A gzip's records are only a lower bound: no total.
#[test]
fn a_streamed_archive_s_recorded_size_is_the_writes_total_when_exact() {
    let b = Bench::new();
    let image = image_like(24 * MIB, 63);
    let size = image.len() as u64;
    for (name, archive, total) in [
        ("os.img.xz", xz_blocks(&image, 4 << 20), Some(size)),
        ("os.img.gz", gzip(&image), None),
    ] {
        let source = b.dir.path().join(name);
        std::fs::write(&source, &archive).unwrap();
        let (seen, _) = write_reports(&b, source.to_str().unwrap(), &archive, &image);
        assert!(seen.iter().all(|(_, t)| *t == total), "{name}: {seen:?}");
    }
}

/// A URL's xz index gives the size of what it holds; when that is a tar, the image unwrapped
/// from it is not that size: the writes show no total.
#[test]
fn a_streamed_tar_s_recorded_size_is_not_the_image_s() {
    let b = Bench::new();
    let d = b.dir.path();
    let disk = d.join("disk.raw");
    std::fs::write(&disk, image_like(6 * MIB, 64)).unwrap();
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg("sgdisk -o -n 1:2048:0 -t 1:8300 disk.raw >/dev/null && tar -cf disk.tar disk.raw")
        .current_dir(d)
        .status()
        .unwrap();
    assert!(made.success(), "sgdisk and tar");
    let image = std::fs::read(&disk).unwrap();
    let archive = xz_blocks(&std::fs::read(d.join("disk.tar")).unwrap(), 1 << 20);
    let server = Server::start();
    // Named as an image, and served with ranges: its index is read before it streams.
    server.put("/disk.img.xz", archive.clone());
    server.set_default_serve(Serve {
        ranges: true,
        ..Serve::default()
    });
    let (seen, said) = write_reports(&b, &server.url("/disk.img.xz"), &archive, &image);
    assert!(said.contains("as its archive records"), "{said}");
    assert!(seen.iter().all(|(_, total)| total.is_none()), "{seen:?}");
}
