//! The cache trusts no path: folders another user could change are refused, links planted in it
//! are never followed, and the archive whose digest was proven is the one decoded, even when its
//! name is swapped under a running fetch. The real binary against a server on 127.0.0.1.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::server::Server;
use common::*;
use sha2::{Digest, Sha256};

const ASSET: &str = "/image/abc/v1.13.0/nocloud-amd64.raw.xz";
/// The user `nobody`: another user than the one running the tests.
const OTHER_UID: u32 = 65534;

struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    image: Vec<u8>,
}

fn fixture() -> Fixture {
    let image = image_like(1 << 20, 11);
    let server = Server::start();
    server.put_with_sidecar(ASSET, xz_single(&image));
    Fixture {
        server,
        dir: tempfile::tempdir().unwrap(),
        image,
    }
}

impl Fixture {
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The folder the cache keeps this server's downloads in.
    fn host_folder(&self) -> PathBuf {
        let port = self
            .server
            .url("/")
            .split(':')
            .nth(2)
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        self.cache().join(format!("downloads/127.0.0.1_{port}"))
    }

    fn archive_path(&self) -> PathBuf {
        self.host_folder().join(ASSET.trim_start_matches('/'))
    }

    fn fetch(&self) -> Run {
        let cache = self.cache();
        run(&[
            "fetch",
            &self.server.url(ASSET),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ])
    }

    /// Refused with exit 2 and one sentence naming `folder`, before the archive was asked for.
    fn assert_refused(&self, run: &Run, folder: &Path, why: &str) {
        assert_eq!(run.code, 2, "stderr: {}", run.stderr);
        assert!(
            run.stdout.contains(&folder.display().to_string()),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains(why), "{}", run.stdout);
        assert_eq!(
            self.server.body_gets(ASSET),
            0,
            "the archive was downloaded"
        );
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

#[test]
fn a_folder_inside_the_cache_owned_by_another_user_is_refused() {
    if !is_root() {
        return skip("giving a folder to another user needs root");
    }
    let f = fixture();
    std::fs::create_dir_all(f.host_folder()).unwrap();
    chown(&f.host_folder(), OTHER_UID);
    let out = f.fetch();
    f.assert_refused(&out, &f.host_folder(), "belongs to user 65534");
    assert!(files_under(&f.cache().join("downloads")).is_empty());
}

#[test]
fn a_cache_folder_from_the_environment_owned_by_another_user_is_refused() {
    if !is_root() {
        return skip("giving a folder to another user needs root");
    }
    let f = fixture();
    std::fs::create_dir_all(f.cache()).unwrap();
    chown(&f.cache(), OTHER_UID);
    let out: Run = labflash(&["fetch", &f.server.url(ASSET), "--json"])
        .env("LABFLASH_CACHE_DIR", f.cache())
        .output()
        .unwrap()
        .into();
    f.assert_refused(&out, &f.cache(), "belongs to user 65534");
    assert_eq!(std::fs::read_dir(f.cache()).unwrap().count(), 0);
}

#[test]
fn a_cache_folder_reached_through_another_users_link_is_refused() {
    if !is_root() {
        return skip("a link of another user needs root to make");
    }
    let f = fixture();
    let theirs = f.dir.path().join("u");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, OTHER_UID);
    let root_only = f.dir.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = theirs.join("cache");
    symlink(&root_only, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let out = run(&[
        "fetch",
        &f.server.url(ASSET),
        "--cache-dir",
        link.to_str().unwrap(),
        "--json",
    ]);
    f.assert_refused(&out, &link, "symbolic link of another user (uid 65534)");
    assert_eq!(
        std::fs::read_dir(&root_only).unwrap().count(),
        0,
        "written through the link"
    );
}

#[test]
fn a_cache_folder_others_may_write_in_is_refused() {
    let f = fixture();
    std::fs::create_dir_all(f.cache().join("downloads")).unwrap();
    std::fs::set_permissions(
        f.cache().join("downloads"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let out = f.fetch();
    f.assert_refused(&out, &f.cache().join("downloads"), "others may write in it");
}

#[test]
fn a_link_planted_as_a_cache_folder_is_not_followed() {
    let f = fixture();
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(f.cache().join("downloads")).unwrap();
    symlink(&outside, f.host_folder()).unwrap();
    let out = f.fetch();
    f.assert_refused(&out, &f.host_folder(), "symbolic link");
    assert!(files_under(&outside).is_empty(), "written through the link");
}

#[test]
fn a_dangling_link_planted_as_a_lock_creates_nothing() {
    let f = fixture();
    let target = f.dir.path().join("nologin");
    let key = Sha256::digest(f.archive_path().to_string_lossy().as_bytes());
    let lock = f
        .cache()
        .join(format!("locks/{}.lock", hex::encode(&key[..12])));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    symlink(&target, &lock).unwrap();
    let out = f.fetch();
    f.assert_refused(&out, &lock, "symbolic link");
    assert!(!target.exists(), "the lock link's target was created");
}

/// Another process renames a different archive over the cached one again and again: every fetch
/// still decodes (and reports, and keeps) the image of the archive whose digest it proved.
#[test]
fn an_archive_renamed_over_after_it_was_proven_is_never_decoded() {
    let f = fixture();
    let first = f.fetch();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let other = f.dir.path().join("other.raw.xz");
    std::fs::write(&other, xz_single(&image_like(1 << 20, 12))).unwrap();
    let stop = AtomicBool::new(false);
    let archive = f.archive_path();
    let swap = archive.with_file_name("swap");
    std::thread::scope(|scope| {
        // Link and rename take microseconds: the name holds the other archive nearly always.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::hard_link(&other, &swap);
                let _ = std::fs::rename(&swap, &archive);
            }
        });
        for _ in 0..8 {
            let out = f.fetch();
            assert_eq!(out.code, 0, "{}", out.stderr);
            let json = out.json();
            assert_eq!(json["imageSHA256"], sha256_hex(&f.image));
            let kept = std::fs::read(json["imagePath"].as_str().unwrap()).unwrap();
            assert!(kept == f.image, "the cache keeps another archive's image");
        }
        stop.store(true, Ordering::Relaxed);
    });
}
