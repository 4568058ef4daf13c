//! The commands called as the window calls them: with the app's state and a Channel, on Tauri's
//! mock runtime.

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

    let image = dir.path().join("os.img");
    std::fs::write(&image, b"12345").unwrap();
    let (channel, _) = recording::<Progress>();
    let spec = FlashSpec {
        image_path: image.display().to_string(),
        image_sha256: "0".repeat(64),
        image_size: 999,
        targets: vec![Chosen::path(dir.path().join("vm.img"))],
        unmount: false,
        allow_fixed: false,
        verify: true,
        config: None,
        config_sha256: None,
    };
    let err = flash(app.state(), 3, spec, channel).await.unwrap_err();
    assert!(
        err.message.contains("is 5 bytes, not 999"),
        "{}",
        err.message
    );
    assert!(!dir.path().join("vm.img").exists());
}

#[tokio::test]
async fn flash_to_a_file_and_verify_it_through_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let bytes: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let image = dir.path().join("os.img");
    std::fs::write(&image, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    let target = dir.path().join("vm.img");
    let (channel, seen) = recording::<Progress>();
    let spec = FlashSpec {
        image_path: image.display().to_string(),
        image_sha256: digest.clone(),
        image_size: bytes.len() as u64,
        targets: vec![Chosen::path(target.clone())],
        unmount: false,
        allow_fixed: false,
        verify: true,
        config: None,
        config_sha256: None,
    };
    let reports = flash(app.state(), 1, spec, channel).await.unwrap();
    assert!(reports[0].ok, "{:?}", reports[0].error);
    assert_eq!(reports[0].verified_sha256.unwrap().hex(), digest);
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|p| p["stage"] == "readBack" && p["target"] == target.display().to_string()));

    let (channel, _) = recording::<Progress>();
    let expected = ExpectedSpec::Digest {
        sha256: "0".repeat(64),
    };
    let v = verify(
        app.state(),
        2,
        target.display().to_string(),
        expected,
        None,
        channel,
    )
    .await
    .unwrap();
    assert!(!v.matches);
    let (channel, _) = recording::<Progress>();
    let expected = ExpectedSpec::Image {
        path: image.display().to_string(),
    };
    let v = verify(
        app.state(),
        3,
        target.display().to_string(),
        expected,
        None,
        channel,
    )
    .await
    .unwrap();
    assert!(v.matches);

    assert!(!cancel(app.state(), 99), "no such job");
    let info = cache_info(app.state()).await.unwrap();
    assert_eq!(info.path, dir.path().join("cache"));
}

#[test]
fn a_ca_certificate_file_is_checked_then_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config/settings.json");
    let app = mock_builder()
        .manage(App::with_cache(dir.path().join("cache"), Settings::load(file.clone())).unwrap())
        .build(mock_context(noop_assets()))
        .unwrap();
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
    let state: State<'_, App> = app.state();
    state.may_eject(&[TargetReport {
        path: path.clone(),
        ok: true,
        bytes_written: 1,
        bytes_skipped: 0,
        verified_sha256: None,
        error: None,
        error_kind: None,
        access: None,
    }]);
    assert!(eject(app.state(), path).await.is_err());
}

/// The window asks the engine which sources stream; an unusable one is refused with its reason.
#[test]
fn the_engine_says_which_sources_stream() {
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

/// One stick from the window: the config image must still be the one whose digest the operator
/// confirmed, or nothing is written.
#[tokio::test]
async fn a_config_image_that_is_not_the_confirmed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("cache"));
    let boot = dir.path().join("boot.raw");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let made = std::process::Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:+4M", "-c", "1:EFI"])
        .arg(&boot)
        .output()
        .expect("sgdisk (gdisk)");
    assert!(made.status.success());
    let bytes = std::fs::read(&boot).unwrap();
    let config = dir.path().join("cidata.img");
    std::fs::write(&config, vec![0x5a; 1 << 20]).unwrap();
    let target = dir.path().join("stick.img");
    let (channel, _) = recording::<Progress>();
    let spec = FlashSpec {
        image_path: boot.display().to_string(),
        image_sha256: hex::encode(Sha256::digest(&bytes)),
        image_size: bytes.len() as u64,
        targets: vec![Chosen::path(target.clone())],
        unmount: false,
        allow_fixed: false,
        verify: true,
        config: Some(config.display().to_string()),
        config_sha256: Some("0".repeat(64)),
    };
    let err = flash(app.state(), 4, spec, channel).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::DigestMismatch, "{}", err.message);
    assert!(err.message.contains("config image"), "{}", err.message);
    assert!(!target.exists(), "nothing written");
}
