//! The commands called as the window calls them: with the app's state and a Channel, on Tauri's
//! mock runtime.

use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::Manager;

use super::*;

fn app(cache: &Path) -> tauri::App<MockRuntime> {
    mock_builder()
        .manage(App::with_cache(cache.to_path_buf(), Settings::in_memory()).unwrap())
        .build(mock_context(noop_assets()))
        .unwrap()
}

/// Loop devices need root; CI runs as root and must run these.
fn can_attach_loops() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root || std::env::var("CI").as_deref() != Ok("true"),
        "loop devices need root, and CI must run every test"
    );
    if !root {
        // Said where the run shows it, and recorded where tests/run counts skips.
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        eprintln!("skipped: {test}: loop devices need root");
        if let Some(record) = std::env::var_os("LABFLASH_SKIPPED") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(record)
            {
                let _ = f.write_all(format!("{test}: loop devices need root\n").as_bytes());
            }
        }
    }
    root
}

/// Held by every loop setup of the tests, which run in parallel processes (tests/common/loopdev.rs
/// takes the same lock): `losetup -f` takes the lowest free node, so a test that detaches a node
/// to attach it anew must keep the others out in between.
fn loop_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create("/tmp/labflash-tests-losetup.lock").expect("the loop lock");
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

fn losetup(args: &[&str]) -> String {
    let out = Command::new("losetup")
        .args(args)
        .output()
        .expect("losetup");
    assert!(
        out.status.success(),
        "losetup {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A real loop device over a file of `fill` bytes, detached on drop if it is still ours.
struct Loop {
    path: PathBuf,
    backing: PathBuf,
}

impl Loop {
    fn new(dir: &Path, name: &str, size: usize, fill: u8) -> Loop {
        let backing = dir.join(name);
        std::fs::write(&backing, vec![fill; size]).unwrap();
        let lock = loop_lock();
        let path = losetup(&["-f", "--show", backing.to_str().unwrap()]).into();
        drop(lock);
        Loop { path, backing }
    }

    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Detaches it and attaches the same device to a new file of `fill` bytes: same name and
    /// device number, a new disk sequence.
    fn reattach(&mut self, name: &str, fill: u8) {
        let size = std::fs::metadata(&self.backing).unwrap().len() as usize;
        let backing = self.backing.with_file_name(name);
        std::fs::write(&backing, vec![fill; size]).unwrap();
        let _lock = loop_lock();
        losetup(&["-d", &self.path()]);
        // A detach while another process has the node open (udev's blkid, when the UDisks2 test
        // runs udevd) takes effect at its close: until then the attach is refused as busy.
        for _ in 0..50 {
            let attach = Command::new("losetup")
                .arg(&self.path)
                .arg(&backing)
                .output()
                .expect("losetup");
            if attach.status.success() {
                self.backing = backing;
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        losetup(&[&self.path(), backing.to_str().unwrap()]);
        self.backing = backing;
    }

    fn attached(&self) -> bool {
        let name = self.path.file_name().unwrap().to_string_lossy();
        std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
            .is_ok_and(|b| Path::new(b.trim()) == self.backing)
    }

    /// Whether the file behind it holds only `fill` (nothing was written).
    fn holds_only(&self, fill: u8) -> bool {
        std::fs::read(&self.backing)
            .unwrap()
            .iter()
            .all(|b| *b == fill)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if self.attached() {
            let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
        }
    }
}

/// Lists the drives as the window does, and returns `dev` as the window sends it back.
fn listed(app: &tauri::App<MockRuntime>, dev: &Loop) -> Chosen {
    let rows = list_drives(app.state(), true, None, None).unwrap();
    let row = rows
        .into_iter()
        .find(|r| Path::new(&r.drive.path) == dev.path)
        .expect("the loop device is listed");
    Chosen {
        path: dev.path.clone(),
        identity: Some(row.drive.identity),
    }
}

/// A 2 MiB image file in `dir` (`os.img`) and its SHA-256.
fn image_in(dir: &Path) -> (PathBuf, String) {
    let bytes: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let image = dir.join("os.img");
    std::fs::write(&image, &bytes).unwrap();
    (image, hex::encode(Sha256::digest(&bytes)))
}

/// A flash of `image` (streamed from the file, as the window does when it does not check first)
/// onto `targets`.
fn image_onto(dir: &Path, targets: Vec<Chosen>) -> FlashSpec {
    let (image, digest) = image_in(dir);
    FlashSpec {
        image: ImageSpec::Source {
            source: Box::new(SourceSpec::File {
                path: image.display().to_string(),
                sha256: Some(digest),
            }),
            max_image_size: None,
        },
        targets,
        unmount: false,
        allow_fixed: false,
        verify: true,
        config: None,
        config_to: None,
    }
}

/// Checks `image` as the window's "check first" does, under `job`: what a flash then names.
async fn prepared(app: &tauri::App<MockRuntime>, job: u32, image: &Path) -> Prepared {
    let (channel, _) = recording::<Progress>();
    let source = SourceSpec::File {
        path: image.display().to_string(),
        sha256: None,
    };
    prepare(app.state(), job, source, None, channel)
        .await
        .unwrap()
}

/// Plans `spec` under `job` and runs it, as the window does once the operator confirmed.
async fn flash(
    app: State<'_, App>,
    job: u32,
    spec: FlashSpec,
    channel: Channel<Progress>,
) -> Reply<flash::Flashed> {
    let plan = plan_flash(app.clone(), job, spec, channel.clone()).await?;
    assert!(!plan.lines.is_empty());
    run_flash(app, job + 1000, job, channel)
        .await
        .map(|run| run.flashed)
}

/// A channel that keeps every message it is sent.
fn recording<T>() -> (Channel<T>, Arc<Mutex<Vec<serde_json::Value>>>)
where
    T: serde::Serialize + Clone,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            keep.lock()
                .unwrap()
                .push(serde_json::from_str(&text).unwrap());
        }
        Ok(())
    });
    (channel, seen)
}

#[tokio::test]
async fn prepare_a_local_file_reports_its_digest_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let bytes = vec![7u8; 3 << 20];
    let image = dir.path().join("os.img");
    std::fs::write(&image, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    let (channel, seen) = recording::<Progress>();
    let source = SourceSpec::File {
        path: image.display().to_string(),
        sha256: None,
    };
    let prepared = prepare(app.state(), 1, source, None, channel)
        .await
        .unwrap();
    assert_eq!(prepared.image.sha256.hex(), digest);
    assert_eq!(prepared.image.size, bytes.len() as u64);
    assert_eq!(
        prepared.digest_source,
        labflash_core::fetch::DigestSource::Unverified
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.first().unwrap()["stage"], "hashImage");
        assert_eq!(seen.last().unwrap()["done"], bytes.len() as u64);
    }

    let (channel, _) = recording::<Progress>();
    let wrong = SourceSpec::File {
        path: image.display().to_string(),
        sha256: Some("0".repeat(64)),
    };
    let err = prepare(app.state(), 2, wrong, None, channel)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::DigestMismatch);
}

#[tokio::test]
async fn arguments_are_validated_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let (channel, _) = recording::<Progress>();
    let relative = SourceSpec::File {
        path: "os.img".into(),
        sha256: None,
    };
    let err = prepare(app.state(), 1, relative, None, channel)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message.contains("not an absolute path"),
        "{}",
        err.message
    );

    let (channel, _) = recording::<Progress>();
    let bad_digest = SourceSpec::Url {
        url: "https://example.invalid/os.img".into(),
        sha256: Some("xyz".into()),
        allow_unverified: false,
    };
    let err = prepare(app.state(), 2, bad_digest, None, channel)
        .await
        .unwrap_err();
    assert!(
        err.message.contains("not a SHA-256 digest"),
        "{}",
        err.message
    );

    // A checked image is named by the job that checked it, never by a path the window sends.
    let mut spec = image_onto(dir.path(), vec![Chosen::path(dir.path().join("vm.img"))]);
    spec.image = ImageSpec::Prepared { job: 77 };
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 3, spec, channel).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message.contains("was not checked in this window"),
        "{}",
        err.message
    );
    assert!(!dir.path().join("vm.img").exists());
}

#[tokio::test]
async fn flash_a_listed_drive_verify_and_eject_it_through_the_commands() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let dev = Loop::new(dir.path(), "stick.img", 8 << 20, 0xAA);
    let mut spec = image_onto(dir.path(), vec![listed(&app, &dev)]);
    let (image, digest) = image_in(dir.path());
    // Checked first: the flash names the check's job and writes what it proved.
    prepared(&app, 7, &image).await;
    // Settings keep every flash's record in a folder (a file is refused as one).
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let refused = set_records_dir(app.state(), Some(image.display().to_string())).unwrap_err();
    assert!(
        refused.message.contains("is not a folder"),
        "{}",
        refused.message
    );
    set_records_dir(app.state(), Some(records.display().to_string())).unwrap();
    assert_eq!(app_info(app.state()).records_dir, Some(records.clone()));
    spec.image = ImageSpec::Prepared { job: 7 };
    let (channel, seen) = recording::<Progress>();
    let flashed = flash(app.state(), 1, spec, channel).await.unwrap();
    let reports = flashed.targets;
    assert!(reports[0].ok, "{:?}", reports[0].error);
    assert_eq!(reports[0].verified_sha256.unwrap().hex(), digest);
    assert_eq!(flashed.image_sha256.hex(), digest);
    let kept: Vec<_> = std::fs::read_dir(&records).unwrap().collect();
    assert_eq!(kept.len(), 1, "one record for the run");
    let record =
        labflash_core::flash::record::Record::read(&kept[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(record.sticks[0].path, dev.path());
    assert!(record.sticks[0].ok);
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|p| p["stage"] == "readBack" && p["target"] == dev.path()));

    let (channel, _) = recording::<Progress>();
    let expected = ExpectedSpec::Digest {
        sha256: "0".repeat(64),
    };
    let v = verify(app.state(), 2, dev.path(), expected, Some(2 << 20), channel)
        .await
        .unwrap();
    assert!(!v.matches);
    let (channel, _) = recording::<Progress>();
    let expected = ExpectedSpec::Image {
        path: image.display().to_string(),
    };
    let v = verify(app.state(), 3, dev.path(), expected, Some(2 << 20), channel)
        .await
        .unwrap();
    assert!(v.matches);

    assert_eq!(
        eject(app.state(), dev.path()).await.unwrap(),
        Ejected::Detached
    );
    assert!(!dev.attached());
    assert!(!cancel(app.state(), 99), "no such job");
    let info = cache_info(app.state()).await.unwrap();
    assert_eq!(info.path, dir.path().join("cache"));
}

/// The window names a drive by the path and identity it was listed with: without the identity
/// nothing is written (the engine could not tell the drive from one that took its name).
#[tokio::test]
async fn a_target_without_its_identity_is_refused() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let dev = Loop::new(dir.path(), "stick.img", 8 << 20, 0xAA);
    listed(&app, &dev);
    let spec = image_onto(dir.path(), vec![Chosen::path(&dev.path)]);
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 1, spec, channel).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message
            .contains("without the identity it was listed with"),
        "{}",
        err.message
    );
    assert!(dev.holds_only(0xAA), "nothing written");
}

/// A file is never listed, so the window cannot name one: not with a listed drive's identity,
/// not without one, not one to be created; streamed or checked first.
#[tokio::test]
async fn the_window_cannot_name_a_file_as_a_target() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let dev = Loop::new(dir.path(), "stick.img", 8 << 20, 0xAA);
    let identity = listed(&app, &dev).identity;
    let victim = dir.path().join("victim.conf");
    std::fs::write(&victim, "keep me\n").unwrap();
    let created = dir.path().join("autostart-new.desktop");
    let targets = [
        Chosen {
            path: victim.clone(),
            identity: identity.clone(),
        },
        Chosen::path(&victim),
        Chosen {
            path: created.clone(),
            identity,
        },
    ];
    let (image, _) = image_in(dir.path());
    prepared(&app, 9, &image).await;
    for target in targets {
        let streamed = image_onto(dir.path(), vec![target.clone()]);
        let (channel, _) = recording::<Progress>();
        let err = flash(app.state(), 1, streamed, channel).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
        let mut checked = image_onto(dir.path(), vec![target]);
        checked.image = ImageSpec::Prepared { job: 9 };
        let (channel, _) = recording::<Progress>();
        let err = flash(app.state(), 2, checked, channel).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(!created.exists(), "nothing created");
}

/// A drive this window never listed is refused even with its true identity: one attached after
/// the list, or any drive in a window that never listed.
#[tokio::test]
async fn a_drive_this_window_never_listed_is_refused() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let shown = Loop::new(dir.path(), "shown.img", 8 << 20, 0xAA);
    let listed_one = listed(&app, &shown);
    let later = Loop::new(dir.path(), "later.img", 8 << 20, 0xBB);
    let all = drives::list(&SystemRoots::default()).unwrap();
    let true_identity = |dev: &Loop| {
        let d = all.iter().find(|d| Path::new(&d.path) == dev.path).unwrap();
        Some(d.identity.clone())
    };
    let not_listed = Chosen {
        path: later.path.clone(),
        identity: true_identity(&later),
    };
    let spec = image_onto(dir.path(), vec![not_listed]);
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 1, spec, channel).await.unwrap_err();
    assert!(
        err.message.contains("not a drive this window listed"),
        "{}",
        err.message
    );
    // The listed drive's path with the other's identity is not what was listed either.
    let mixed = Chosen {
        path: shown.path.clone(),
        identity: true_identity(&later),
    };
    let spec = image_onto(dir.path(), vec![mixed]);
    let (channel, _) = recording::<Progress>();
    assert!(flash(app.state(), 2, spec, channel).await.is_err());
    // The listed drive under another spelling of its path is not what was listed.
    let respelled = Chosen {
        path: PathBuf::from(shown.path.to_str().unwrap().replacen("/dev/", "/dev//", 1)),
        identity: listed_one.identity.clone(),
    };
    let spec = image_onto(dir.path(), vec![respelled]);
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 3, spec, channel).await.unwrap_err();
    assert!(
        err.message.contains("not a drive this window listed"),
        "{}",
        err.message
    );

    let other_window = self::app(&dir.path().join("cache"));
    let spec = image_onto(dir.path(), vec![listed_one]);
    let (channel, _) = recording::<Progress>();
    let err = flash(other_window.state(), 1, spec, channel)
        .await
        .unwrap_err();
    assert!(
        err.message.contains("not a drive this window listed"),
        "{}",
        err.message
    );
    assert!(
        shown.holds_only(0xAA) && later.holds_only(0xBB),
        "nothing written"
    );
}

/// Listed, then re-attached to another file (same name and number, a new disk sequence): the
/// identity the window sends goes on to the engine, which refuses the drive at open.
#[tokio::test]
async fn a_drive_re_attached_since_it_was_listed_is_refused() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let mut dev = Loop::new(dir.path(), "stick.img", 8 << 20, 0xAA);
    let chosen = listed(&app, &dev);
    dev.reattach("other.img", 0x55);
    // Listing again shows the new attachment; the window still sends the one it chose.
    listed(&app, &dev);
    let spec = image_onto(dir.path(), vec![chosen]);
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 1, spec, channel).await.unwrap_err();
    assert!(
        err.message.contains("changed since you chose it"),
        "{}",
        err.message
    );
    assert!(dev.holds_only(0x55), "nothing written");
}

/// Flashed, then re-attached to another file before the eject: the new attachment is not the
/// drive flashed (same device number, new disk sequence), so it stays attached.
#[tokio::test]
async fn eject_refuses_a_drive_re_attached_since_the_flash() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let mut dev = Loop::new(dir.path(), "stick.img", 8 << 20, 0xAA);
    let spec = image_onto(dir.path(), vec![listed(&app, &dev)]);
    let (channel, _) = recording::<Progress>();
    let reports = flash(app.state(), 1, spec, channel).await.unwrap().targets;
    assert!(reports[0].ok, "{:?}", reports[0].error);
    dev.reattach("other.img", 0x55);
    let err = eject(app.state(), dev.path()).await.unwrap_err();
    assert!(
        err.message.contains("not the drive that was flashed"),
        "{}",
        err.message
    );
    assert!(dev.attached(), "the new attachment is still there");
}

/// An app whose settings are kept in `dir`'s config/settings.json (returned), as across restarts.
fn app_with_settings(dir: &Path) -> (tauri::App<MockRuntime>, PathBuf) {
    let file = dir.join("config/settings.json");
    let app = mock_builder()
        .manage(App::with_cache(dir.join("cache"), Settings::load(file.clone())).unwrap())
        .build(mock_context(noop_assets()))
        .unwrap();
    (app, file)
}

#[test]
fn a_ca_certificate_file_is_checked_then_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (app, file) = app_with_settings(dir.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = set_ca_cert(app.state(), Some(empty.display().to_string())).unwrap_err();
    assert!(
        err.message.contains("holds no certificate"),
        "{}",
        err.message
    );
    assert_eq!(
        app_info(app.state()).ca_cert,
        None,
        "a refused file changes nothing"
    );

    let ca = rcgen::generate_simple_self_signed(vec!["lab.example".into()]).unwrap();
    let pem = dir.path().join("lab-ca.pem");
    std::fs::write(&pem, ca.cert.pem()).unwrap();
    set_ca_cert(app.state(), Some(pem.display().to_string())).unwrap();
    assert_eq!(app_info(app.state()).ca_cert, Some(pem.clone()));

    let restarted = App::with_cache(dir.path().join("cache"), Settings::load(file)).unwrap();
    assert_eq!(restarted.settings.ca_cert(), Some(pem));
    set_ca_cert(app.state(), None).unwrap();
    assert_eq!(app_info(app.state()).ca_cert, None);
}

/// An IncusOS root chosen in Settings (a private mirror's) must be a certificate; it is kept
/// across restarts, and cleared back to IncusOS's own.
#[test]
fn an_incus_root_is_checked_then_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (app, file) = app_with_settings(dir.path());
    let index = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/incus/index.json");
    let err = set_incus_root(app.state(), Some(index.display().to_string())).unwrap_err();
    assert!(
        err.message.contains("not a PEM certificate"),
        "{}",
        err.message
    );
    assert_eq!(app_info(app.state()).incus_root, None, "nothing changed");

    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/incus/signed/root-E1.crt");
    set_incus_root(app.state(), Some(root.display().to_string())).unwrap();
    let restarted = App::with_cache(dir.path().join("cache"), Settings::load(file)).unwrap();
    assert_eq!(restarted.settings.incus_root(), Some(root));
    set_incus_root(app.state(), None).unwrap();
    assert_eq!(app_info(app.state()).incus_root, None);
}

/// The window may eject only drives it flashed: a path it passes for any other drive, or a file,
/// is refused before anything is asked of the machine.
#[tokio::test]
async fn eject_refuses_a_drive_this_window_did_not_flash() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let refused = eject(app.state(), "/dev/sda".into()).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::BadInput);
    assert!(
        refused.message.contains("was not flashed by this window"),
        "{}",
        refused.message
    );
    // A file target is never ejectable (a root app must not follow a path swapped for a link
    // to a device).
    let file = dir.path().join("vm.img");
    std::fs::write(&file, b"x").unwrap();
    let path = file.display().to_string();
    let meta = std::fs::metadata(&file).unwrap();
    let approved = Approved {
        path: file.clone(),
        kind: labflash_core::io::device::TargetKind::File,
        drive: None,
        to_unmount: Vec::new(),
        identity: Identity::File {
            dev: std::os::unix::fs::MetadataExt::dev(&meta),
            ino: std::os::unix::fs::MetadataExt::ino(&meta),
        },
        cancel: Default::default(),
    };
    let state: State<'_, App> = app.state();
    state.remember(
        &[TargetReport {
            path: path.clone(),
            ok: true,
            bytes_written: 1,
            bytes_skipped: 0,
            verified_sha256: None,
            error: None,
            error_kind: None,
            access: None,
            given_sha256: None,
        }],
        &[approved],
    );
    assert!(eject(app.state(), path).await.is_err());
}

/// Which sources stream (the probe tells the window); an unusable one is refused with its reason.
#[test]
fn the_engine_says_which_sources_stream() {
    let source_streams =
        |spec| source_of(spec, DEFAULT_MAX_IMAGE_SIZE, None).map(|s: Source| s.streams());
    let url = |u: &str| SourceSpec::Url {
        url: u.into(),
        sha256: None,
        allow_unverified: false,
    };
    assert!(source_streams(url("https://example.test/os.raw.xz")).unwrap());
    let incus = |seed: Option<&str>| SourceSpec::Incus {
        index_url: "https://example.test/os/index.json".into(),
        base_url: "https://example.test/os".into(),
        channel: "stable".into(),
        arch: "x86_64".into(),
        seed: seed.map(Into::into),
    };
    assert!(source_streams(incus(None)).unwrap());
    let seed = tempfile::tempdir().unwrap();
    assert!(!source_streams(incus(Some(seed.path().to_str().unwrap()))).unwrap());
    let refused = source_streams(url("ftp://example.test/os.raw.xz")).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::BadInput);
}

/// A server on 127.0.0.1 that answers every request with `status` and nothing else.
fn answering(status: u16) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = reader.get_mut().write_all(
                format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    at
}

/// The window learns what a chosen file is when it is chosen: sizes from the xz index, its
/// kind from its first decoded bytes, and that it streams, in the window's field names.
#[tokio::test]
async fn probing_a_local_xz_says_its_sizes_kind_and_that_it_streams() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let (image, _) = image_in(dir.path());
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&std::fs::read(&image).unwrap()).unwrap();
    let archive = xz.finish().unwrap();
    let path = dir.path().join("os.img.xz");
    std::fs::write(&path, &archive).unwrap();
    let source = SourceSpec::File {
        path: path.display().to_string(),
        sha256: None,
    };
    let (channel, _) = recording::<Progress>();
    let view = probe_source(app.state(), 1, source, None, channel)
        .await
        .unwrap();
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["source"], path.display().to_string());
    assert_eq!(json["streams"], true);
    assert_eq!(json["archiveSize"], archive.len() as u64);
    assert_eq!(
        json["imageSize"],
        serde_json::json!({"bytes": 2u64 << 20, "exact": true})
    );
    assert_eq!(json["imageKind"], "unknown");
    assert_eq!(json["digestSource"], "unverified");
    assert_eq!(json["expectedSHA256"], serde_json::Value::Null);
    assert!(
        json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no partition table"),
        "{json}"
    );
    let (channel, _) = recording::<Progress>();
    let too_small = SourceSpec::File {
        path: path.display().to_string(),
        sha256: None,
    };
    let refused = probe_source(app.state(), 2, too_small, Some(1 << 20), channel)
        .await
        .err()
        .unwrap();
    assert_eq!(refused.kind, ErrorKind::BadInput);
    assert!(
        refused.message.contains("limit of 1048576 bytes"),
        "{}",
        refused.message
    );
}

/// A URL the server does not have is refused when it is chosen, in one sentence.
#[tokio::test]
async fn probing_a_missing_url_says_so_when_it_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let url = format!("{}/os.raw.xz", answering(404));
    let source = SourceSpec::Url {
        url: url.clone(),
        sha256: None,
        allow_unverified: false,
    };
    let (channel, _) = recording::<Progress>();
    let refused = probe_source(app.state(), 1, source, None, channel)
        .await
        .err()
        .unwrap();
    assert_eq!(
        refused.message,
        format!("{url} does not exist (the server answers HTTP 404 Not Found)")
    );
    assert_eq!(refused.kind, ErrorKind::Failure);
}

/// The window's Cancel reaches a probe by its job.
#[tokio::test(flavor = "multi_thread")]
async fn a_probe_stops_when_its_job_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    // Takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let source = SourceSpec::Url {
        url: format!("http://{}/os.raw.xz", silent.local_addr().unwrap()),
        sha256: None,
        allow_unverified: false,
    };
    let began = std::time::Instant::now();
    let (channel, _) = recording::<Progress>();
    let probing = probe_source(app.state(), 7, source, None, channel);
    let cancelling = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(cancel(app.state(), 7));
    };
    let (probed, ()) = tokio::join!(probing, cancelling);
    assert_eq!(probed.err().unwrap().kind, ErrorKind::Cancelled);
    assert!(began.elapsed() < std::time::Duration::from_secs(2));
}

/// The Talos dialog's download token reaches the engine's request, and no debug print of the
/// window's choice or of that request shows it.
#[test]
fn the_window_s_factory_token_reaches_the_request_and_is_never_printed() {
    let spec: SourceSpec = serde_json::from_value(serde_json::json!({
        "kind": "talos", "factoryUrl": "https://factory.example", "factoryToken": "tok-5ecret",
        "version": "v1.13.0", "extensions": [], "kernelArgs": [], "overlay": null,
        "schematic": null, "platform": "metal", "arch": "arm64", "secureboot": false,
        "format": "raw.xz", "sha256": null, "allowUnverified": false
    }))
    .unwrap();
    assert!(!format!("{spec:?}").contains("tok-5ecret"));
    let Source::TalosFactory(req) = source_of(spec, 1 << 30, None).unwrap() else {
        panic!("a Talos source")
    };
    assert_eq!(
        req.factory_token.as_ref().map(|t| t.expose()),
        Some("tok-5ecret")
    );
    assert!(!format!("{req:?}").contains("tok-5ecret"));
}

/// A 16 MiB GPT boot image at `path` (made by sgdisk) and a cidata image in `dir` built by the
/// engine from a worker config: what a Talos nocloud flash writes.
fn boot_and_config(dir: &Path, path: &Path) -> (PathBuf, Cidata) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let made = Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:+4M", "-c", "1:EFI"])
        .arg(path)
        .output()
        .expect("sgdisk (gdisk)");
    assert!(made.status.success());
    let user_data = dir.join("worker.yaml");
    std::fs::write(&user_data, "version: v1alpha1\nmachine:\n  type: worker\n").unwrap();
    let config = cidata::build(&CidataRequest {
        user_data,
        hostname: "w-1".into(),
        instance_id: None,
        network_config: None,
        output: dir.join("cidata.img"),
    })
    .unwrap();
    (path.to_path_buf(), config)
}

fn config_of(config: &Cidata, sha256: Option<&str>) -> Option<ConfigSpec> {
    Some(ConfigSpec {
        path: config.path.display().to_string(),
        sha256: sha256.map_or_else(|| config.sha256.hex(), String::from),
    })
}

/// One stick from the window: the config image must still be the one whose digest the operator
/// confirmed, or nothing is written.
#[tokio::test]
async fn a_config_image_that_is_not_the_confirmed_one_is_refused() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let (boot, config) = boot_and_config(dir.path(), &dir.path().join("boot.raw"));
    prepared(&app, 3, &boot).await;
    let stick = Loop::new(dir.path(), "stick.img", 64 << 20, 0xAA);
    let mut spec = image_onto(dir.path(), vec![listed(&app, &stick)]);
    spec.image = ImageSpec::Prepared { job: 3 };
    spec.config = config_of(&config, Some(&"0".repeat(64)));
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 4, spec, channel).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::DigestMismatch, "{}", err.message);
    assert!(err.message.contains("config image"), "{}", err.message);
    assert!(stick.holds_only(0xAA), "nothing written");
}

/// A Talos v1.11 amd64 image does not read cidata on its own boot stick (siderolabs/talos issue
/// 12098): the window's one-stick flash of it is refused by the engine, which knows the release
/// from where the checked image came from; two sticks in one run write and read back both.
#[tokio::test]
async fn two_sticks_from_the_window_where_one_would_not_be_read() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let origin = dir.path().join("v1.11.2/nocloud-amd64.raw");
    let (boot, config) = boot_and_config(dir.path(), &origin);
    let checked = prepared(&app, 5, &boot).await;
    let boot_stick = Loop::new(dir.path(), "boot.img", 64 << 20, 0xAA);
    let config_stick = Loop::new(dir.path(), "config.img", 16 << 20, 0xBB);
    let (boot_to, config_to) = (listed(&app, &boot_stick), listed(&app, &config_stick));

    let mut one = image_onto(dir.path(), vec![boot_to.clone()]);
    one.image = ImageSpec::Prepared { job: 5 };
    one.config = config_of(&config, None);
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 6, one, channel).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
    assert!(err.message.contains("12098"), "{}", err.message);
    assert!(boot_stick.holds_only(0xAA), "nothing written");

    // One drive cannot be both sticks.
    let mut same = image_onto(dir.path(), vec![boot_to.clone()]);
    same.image = ImageSpec::Prepared { job: 5 };
    same.config = config_of(&config, None);
    same.config_to = Some(boot_to.clone());
    let (channel, _) = recording::<Progress>();
    let err = flash(app.state(), 7, same, channel).await.unwrap_err();
    assert!(
        err.message.contains("must be two drives"),
        "{}",
        err.message
    );

    let mut two = image_onto(dir.path(), vec![boot_to]);
    two.image = ImageSpec::Prepared { job: 5 };
    two.config = config_of(&config, None);
    two.config_to = Some(config_to);
    let (channel, _) = recording::<Progress>();
    let flashed = flash(app.state(), 8, two, channel).await.unwrap();
    assert!(flashed.targets[0].ok, "{:?}", flashed.targets[0].error);
    assert_eq!(
        flashed.targets[0].verified_sha256,
        Some(checked.image.sha256)
    );
    let on_config = flashed.config_stick.expect("the config stick's result");
    assert!(on_config.targets[0].ok, "{:?}", on_config.targets[0].error);
    assert_eq!(on_config.targets[0].verified_sha256, Some(config.sha256));
    // Both were flashed by this window, so both may be ejected.
    eject_all(&app, &[&boot_stick, &config_stick]).await;
}

/// A lab file in `dir` of two worker nodes (w-1, w-2) booting the GPT image written at
/// `dir/image` (its path names the release, as a factory's does), loaded in the window as `job`.
fn two_node_lab(app: &tauri::App<MockRuntime>, dir: &Path, image: &str, job: u32) -> LabView {
    boot_and_config(dir, &dir.join(image));
    let lab_file = dir.join("lab.yaml");
    std::fs::write(
        &lab_file,
        format!("source: {image}\nallowUnverified: true\nnodes:\n  - hostname: w-1\n    userData: worker.yaml\n  - hostname: w-2\n    userData: worker.yaml\n"),
    )
    .unwrap();
    load_lab(app.state(), job, lab_file.display().to_string()).unwrap()
}

/// The lab loaded as `lab` onto `drives` (and config sticks), read back, nothing unmounted.
fn lab_onto(lab: u32, drives: Vec<Chosen>, config_drives: Option<Vec<Chosen>>) -> LabSpec {
    LabSpec {
        lab,
        drives,
        config_drives,
        unmount: false,
        allow_fixed: false,
        verify: true,
    }
}

/// Ejects every stick, as the window may once it flashed them.
async fn eject_all(app: &tauri::App<MockRuntime>, sticks: &[&Loop]) {
    for stick in sticks {
        assert_eq!(
            eject(app.state(), stick.path()).await.unwrap(),
            Ejected::Detached
        );
    }
}

/// A lab from the window: its nodes' config images are built when it is loaded, each node takes
/// a listed drive, the engine refuses a drive shared by two nodes or a node without one, and the
/// run writes every stick with the boot image and its own node's config.
#[tokio::test]
async fn a_lab_from_the_window_writes_every_node_with_its_own_config() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let lab = two_node_lab(&app, dir.path(), "boot.raw", 20);
    assert_eq!(lab.nodes.len(), 2);
    assert_ne!(lab.nodes[0].config.sha256, lab.nodes[1].config.sha256);
    let sticks = [
        Loop::new(dir.path(), "a.img", 64 << 20, 0xAA),
        Loop::new(dir.path(), "b.img", 64 << 20, 0xAA),
    ];
    let (a, b) = (listed(&app, &sticks[0]), listed(&app, &sticks[1]));
    let spec = |drives: Vec<Chosen>| lab_onto(20, drives, None);
    for (drives, said) in [
        (
            vec![a.clone(), a.clone()],
            "named for node w-1 and for node w-2",
        ),
        (vec![a.clone()], "2 nodes, 1 drives"),
    ] {
        let (channel, _) = recording::<Progress>();
        let err = plan_lab(app.state(), 21, spec(drives), channel)
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
        assert!(err.message.contains(said), "{}", err.message);
    }
    assert!(sticks.iter().all(|s| s.holds_only(0xAA)), "nothing written");

    let (channel, _) = recording::<Progress>();
    let plan = plan_lab(app.state(), 22, spec(vec![a, b]), channel.clone())
        .await
        .unwrap();
    assert!(plan.lines.iter().any(|l| l.starts_with("node w-2:")));
    let run = run_lab(app.state(), 23, 22, channel).await.unwrap();
    // The run's record, beside the lab file: a line per stick with its node.
    let record = run.record.expect("a record");
    assert_eq!(record.parent(), Some(dir.path()));
    let written = labflash_core::flash::record::Record::read(&record).unwrap();
    assert_eq!(written.sticks.len(), 2);
    assert_eq!(written.sticks[1].node.as_deref(), Some("w-2"));
    let nodes = run.nodes;
    for (i, node) in nodes.iter().enumerate() {
        let flashed = node.flashed.as_ref().expect("flashed");
        assert!(flashed.targets[0].ok, "{:?}", flashed.targets[0].error);
        assert_eq!(flashed.targets[0].verified_sha256, flashed.stick_sha256);
        // The node's own config image, whole, in its cidata partition.
        let config = std::fs::read(&lab.nodes[i].config.path).unwrap();
        let offset = flashed.cidata_offset.unwrap() as usize;
        let stick = std::fs::read(&sticks[i].backing).unwrap();
        assert!(
            stick[offset..offset + config.len()] == config[..],
            "{}",
            node.node
        );
    }
    eject_all(&app, &[&sticks[0], &sticks[1]]).await;
    // The mock app is never dropped: its lab's config images go as the app's exit takes them.
    app.state::<App>().forget_labs();
}

/// A drive re-attached while the lab's confirmation is shown (same name and number, a new disk
/// sequence) is refused at open with nothing written to it; the other node is written.
#[tokio::test]
async fn a_lab_drive_that_changes_mid_confirmation_is_refused() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    two_node_lab(&app, dir.path(), "boot.raw", 30);
    let mut sticks = [
        Loop::new(dir.path(), "a.img", 64 << 20, 0xAA),
        Loop::new(dir.path(), "b.img", 64 << 20, 0xAA),
    ];
    let drives = vec![listed(&app, &sticks[0]), listed(&app, &sticks[1])];
    let spec = lab_onto(30, drives, None);
    let (channel, _) = recording::<Progress>();
    plan_lab(app.state(), 31, spec, channel.clone())
        .await
        .unwrap();
    // While the operator reads the confirmation, w-2's stick is swapped.
    sticks[1].reattach("other.img", 0x55);
    let run = run_lab(app.state(), 32, 31, channel).await.unwrap();
    // The record says which node got nothing, and why.
    let record = labflash_core::flash::record::Record::read(&run.record.unwrap()).unwrap();
    assert_eq!(record.sticks.len(), 1);
    assert_eq!(record.failed.len(), 1);
    assert_eq!(record.failed[0].node.as_deref(), Some("w-2"));
    let nodes = run.nodes;
    assert!(nodes[0].flashed.as_ref().unwrap().targets[0].ok);
    let refused = match (&nodes[1].flashed, &nodes[1].error) {
        (Some(f), _) => f.targets[0].error.clone().unwrap_or_default(),
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    };
    assert!(refused.contains("changed since you chose it"), "{refused}");
    assert!(sticks[1].holds_only(0x55), "nothing written to the new one");
    // The mock app is never dropped: its lab's config images go as the app's exit takes them.
    app.state::<App>().forget_labs();
}

/// A lab of a Talos v1.11 amd64 image (issue 12098: cidata is not read on the boot stick): the
/// loaded lab says each node needs a config stick, a plan without them is refused, and with them
/// every node gets its boot stick and its own config stick.
#[tokio::test]
async fn a_lab_whose_release_needs_two_sticks_per_node() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let lab = two_node_lab(&app, dir.path(), "v1.11.2/nocloud-amd64.raw", 40);
    assert!(lab.config_own_stick.as_deref().unwrap().contains("12098"));
    let boots = [
        Loop::new(dir.path(), "a.img", 64 << 20, 0xAA),
        Loop::new(dir.path(), "b.img", 64 << 20, 0xAA),
    ];
    let configs = [
        Loop::new(dir.path(), "ca.img", 16 << 20, 0xBB),
        Loop::new(dir.path(), "cb.img", 16 << 20, 0xBB),
    ];
    let drives: Vec<Chosen> = boots.iter().map(|l| listed(&app, l)).collect();
    let config_drives: Vec<Chosen> = configs.iter().map(|l| listed(&app, l)).collect();
    let spec = |config_drives: Option<Vec<Chosen>>| lab_onto(40, drives.clone(), config_drives);
    let (channel, _) = recording::<Progress>();
    let err = plan_lab(app.state(), 41, spec(None), channel.clone())
        .await
        .err()
        .expect("one stick refused");
    assert!(err.message.contains("12098"), "{}", err.message);
    assert!(boots.iter().all(|l| l.holds_only(0xAA)), "nothing written");
    plan_lab(
        app.state(),
        42,
        spec(Some(config_drives.clone())),
        channel.clone(),
    )
    .await
    .unwrap();
    let run = run_lab(app.state(), 43, 42, channel).await.unwrap();
    for (i, node) in run.nodes.iter().enumerate() {
        let flashed = node.flashed.as_ref().expect("flashed");
        assert!(flashed.targets[0].ok, "{:?}", flashed.targets[0].error);
        let on_config = flashed.config_stick.as_ref().expect("a config stick");
        assert!(on_config.targets[0].ok, "{:?}", on_config.targets[0].error);
        let config = std::fs::read(&lab.nodes[i].config.path).unwrap();
        assert!(std::fs::read(&configs[i].backing).unwrap()[..config.len()] == config[..]);
    }
    // Every stick this window flashed may be ejected, the config sticks too.
    let every: Vec<&Loop> = boots.iter().chain(&configs).collect();
    eject_all(&app, &every).await;
    // The mock app is never dropped: its lab's config images go as the app's exit takes them.
    app.state::<App>().forget_labs();
}

/// A lab's config images live as long as the window holds the lab: loading another lab removes
/// the first's, and so does leaving the app (Tauri ends the process without dropping its state).
#[test]
fn a_lab_s_config_images_go_when_another_lab_is_loaded_and_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let state: State<'_, App> = app.state();
    let folder = |job: u32| {
        let labs = state.labs.lock().unwrap();
        labs.get(&job).map(|lab| lab._configs.path().to_path_buf())
    };
    two_node_lab(&app, dir.path(), "v1.12.0/nocloud-amd64.raw", 1);
    let first = folder(1).unwrap();
    assert!(first.join("w-1-cidata.img").is_file());
    two_node_lab(&app, dir.path(), "v1.12.0/nocloud-amd64.raw", 2);
    assert!(
        !first.exists(),
        "the first lab's config images are still there"
    );
    let second = folder(2).unwrap();
    state.forget_labs();
    assert!(!second.exists(), "the lab's config images outlive the app");
}

/// A channel that cancels drive `path` of job `job` through `cancel_target` at the first write
/// report of it that counts bytes (on that drive's own writer thread), and keeps what the
/// command answered.
fn cancelling(
    app: &tauri::App<MockRuntime>,
    job: u32,
    path: String,
) -> (Channel<Progress>, Arc<Mutex<Vec<bool>>>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (handle, said) = (app.handle().clone(), answers.clone());
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            let p: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut said = said.lock().unwrap();
            let ours = p["stage"] == "write" && p["target"] == path.as_str();
            if ours && p["done"].as_u64() > Some(0) && said.is_empty() {
                said.push(cancel_target(handle.state(), job, path.clone()).unwrap());
            }
        }
        Ok(())
    });
    (channel, answers)
}

fn first_mib_wiped(stick: &Loop) -> bool {
    std::fs::read(&stick.backing).unwrap()[..1 << 20]
        .iter()
        .all(|b| *b == 0)
}

/// One drive of a running flash is cancelled from the window: it ends cancelled with its first
/// MiB wiped, the other is written and read back; the command answers false for a job that
/// does not run (not yet, or no more).
#[tokio::test]
async fn one_drive_of_a_running_flash_is_cancelled_alone() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let sticks = [
        Loop::new(dir.path(), "a.img", 8 << 20, 0xAA),
        Loop::new(dir.path(), "b.img", 8 << 20, 0xAA),
    ];
    let spec = image_onto(
        dir.path(),
        vec![listed(&app, &sticks[0]), listed(&app, &sticks[1])],
    );
    let (_, digest) = image_in(dir.path());
    let (channel, _) = recording::<Progress>();
    plan_flash(app.state(), 30, spec, channel).await.unwrap();
    assert!(
        !cancel_target(app.state(), 31, sticks[1].path()).unwrap(),
        "not running yet"
    );
    let (channel, answers) = cancelling(&app, 31, sticks[1].path());
    let run = run_flash(app.state(), 31, 30, channel).await.unwrap();
    assert_eq!(*answers.lock().unwrap(), vec![true]);
    let targets = run.flashed.targets;
    assert!(targets[0].ok, "{:?}", targets[0].error);
    assert_eq!(targets[0].verified_sha256.unwrap().hex(), digest);
    assert_eq!(
        targets[1].error_kind,
        Some(ErrorKind::Cancelled),
        "{:?}",
        targets[1]
    );
    assert!(
        first_mib_wiped(&sticks[1]),
        "the cancelled stick looks bootable"
    );
    assert!(
        !cancel_target(app.state(), 31, sticks[1].path()).unwrap(),
        "no more"
    );
    // Only the stick written whole may be ejected.
    eject_all(&app, &[&sticks[0]]).await;
}

/// One node's stick of a running lab (written with the others from one read of the image) is
/// cancelled alone; the other node's is written and read back.
#[tokio::test]
async fn one_stick_of_a_running_lab_is_cancelled_alone() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    two_node_lab(&app, dir.path(), "boot.raw", 40);
    let sticks = [
        Loop::new(dir.path(), "a.img", 64 << 20, 0xAA),
        Loop::new(dir.path(), "b.img", 64 << 20, 0xAA),
    ];
    let drives = vec![listed(&app, &sticks[0]), listed(&app, &sticks[1])];
    let (channel, _) = recording::<Progress>();
    plan_lab(app.state(), 41, lab_onto(40, drives, None), channel)
        .await
        .unwrap();
    let (channel, answers) = cancelling(&app, 42, sticks[1].path());
    let run = run_lab(app.state(), 42, 41, channel).await.unwrap();
    assert_eq!(*answers.lock().unwrap(), vec![true]);
    let report = |i: usize| run.nodes[i].flashed.as_ref().expect("flashed").targets[0].clone();
    assert!(report(0).ok, "{:?}", report(0).error);
    assert_eq!(
        report(1).error_kind,
        Some(ErrorKind::Cancelled),
        "{:?}",
        report(1)
    );
    assert!(first_mib_wiped(&sticks[1]));
    eject_all(&app, &[&sticks[0]]).await;
    app.state::<App>().forget_labs();
}

/// Two sticks: the config stick, written once the boot stick is, is cancelled alone; the boot
/// stick stays written and read back.
#[tokio::test]
async fn the_config_stick_of_a_running_two_sticks_flash_is_cancelled_alone() {
    if !can_attach_loops() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let origin = dir.path().join("v1.11.2/nocloud-amd64.raw");
    let (boot, config) = boot_and_config(dir.path(), &origin);
    let checked = prepared(&app, 50, &boot).await;
    let boot_stick = Loop::new(dir.path(), "boot.img", 64 << 20, 0xAA);
    let config_stick = Loop::new(dir.path(), "config.img", 16 << 20, 0xBB);
    let mut spec = image_onto(dir.path(), vec![listed(&app, &boot_stick)]);
    spec.image = ImageSpec::Prepared { job: 50 };
    spec.config = config_of(&config, None);
    spec.config_to = Some(listed(&app, &config_stick));
    let (channel, _) = recording::<Progress>();
    plan_flash(app.state(), 51, spec, channel).await.unwrap();
    let (channel, answers) = cancelling(&app, 52, config_stick.path());
    let flashed = run_flash(app.state(), 52, 51, channel)
        .await
        .unwrap()
        .flashed;
    assert_eq!(*answers.lock().unwrap(), vec![true]);
    assert!(flashed.targets[0].ok, "{:?}", flashed.targets[0].error);
    assert_eq!(
        flashed.targets[0].verified_sha256,
        Some(checked.image.sha256)
    );
    let on_config = flashed.config_stick.expect("the config stick's result");
    assert_eq!(
        on_config.targets[0].error_kind,
        Some(ErrorKind::Cancelled),
        "{:?}",
        on_config.targets[0]
    );
    assert!(first_mib_wiped(&config_stick));
    eject_all(&app, &[&boot_stick]).await;
}
