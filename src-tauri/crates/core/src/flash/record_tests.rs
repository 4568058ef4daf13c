use std::path::PathBuf;

use super::*;
use crate::fetch::DigestSource;
use crate::io::device::TargetKind;
use crate::io::drives::{Bus, Drive};
use crate::io::identity::{DriveIdentity, Identity};

fn digest(byte: u8) -> Sha256Digest {
    hex::encode([byte; 32]).parse().unwrap()
}

fn drive(path: &str, vendor: &str, model: &str, serial: &str, size: u64) -> Drive {
    Drive {
        path: path.into(),
        model: model.into(),
        vendor: vendor.into(),
        serial: serial.into(),
        size,
        logical_block_size: 512,
        physical_block_size: 512,
        removable: true,
        bus: Bus::Usb,
        read_only: false,
        system: false,
        mountpoints: Vec::new(),
        partitions: Vec::new(),
        holders: Vec::new(),
        backing_file: None,
        identity: DriveIdentity {
            devnum: "8:16".into(),
            diskseq: Some(3),
            serial: serial.into(),
            size,
        },
        name: path.trim_start_matches("/dev/").into(),
        devnums: Vec::new(),
    }
}

fn approved(path: &str, drive: Option<Drive>) -> Approved {
    Approved {
        path: PathBuf::from(path),
        kind: if drive.is_some() {
            TargetKind::BlockDevice
        } else {
            TargetKind::File
        },
        drive,
        to_unmount: Vec::new(),
        identity: Identity::NewFile,
        cancel: Default::default(),
    }
}

fn report(path: &str, verified: Option<Sha256Digest>, error: Option<&str>) -> TargetReport {
    TargetReport {
        path: path.into(),
        ok: error.is_none(),
        bytes_written: 3 << 20,
        bytes_skipped: 1 << 20,
        verified_sha256: verified,
        error: error.map(str::to_string),
        error_kind: error.map(|_| ErrorKind::DigestMismatch),
        access: None,
        given_sha256: None,
    }
}

fn flashed(targets: Vec<TargetReport>) -> Flashed {
    Flashed {
        image_sha256: digest(1),
        image_size: 4 << 20,
        image_kind: ImageKind::Gpt,
        image_inside: None,
        config_sha256: None,
        cidata_offset: None,
        stick_sha256: None,
        archive_sha256: digest(2),
        digest_source: DigestSource::Sidecar,
        targets,
        warnings: Vec::new(),
        config_stick: None,
    }
}

/// Two boot sticks (one fails its read-back) and a config stick, as `flash::run` reports them.
fn two_sticks_and_a_config_stick() -> (Flashed, Vec<Approved>) {
    let mut boot = flashed(vec![
        report("/dev/sdb", Some(digest(1)), None),
        report(
            "/dev/sdc",
            Some(digest(9)),
            Some("/dev/sdc does not hold the image"),
        ),
    ]);
    let mut config = flashed(vec![report("/dev/sdd", Some(digest(5)), None)]);
    (config.image_sha256, config.image_kind) = (digest(5), ImageKind::Fat);
    boot.config_stick = Some(Box::new(config));
    let approved = vec![
        approved(
            "/dev/sdb",
            Some(drive(
                "/dev/sdb",
                "SanDisk",
                "Ultra",
                "4C53",
                32_000_000_000,
            )),
        ),
        approved(
            "/dev/sdc",
            Some(drive("/dev/sdc", "", "Cruzer", "", 8 << 30)),
        ),
        approved(
            "/dev/sdd",
            Some(drive("/dev/sdd", "Kingston", "DT", "AB12", 16 << 30)),
        ),
    ];
    (boot, approved)
}

#[test]
fn every_target_and_the_config_stick_get_a_line() {
    let (flashed, approved) = two_sticks_and_a_config_stick();
    let mut record = Record::start();
    record.add(Some("cp-1"), "https://h/x.raw.xz", &flashed, &approved);
    record.finish();
    assert_eq!(record.sticks.len(), 3);
    let [sdb, sdc, sdd] = &record.sticks[..] else {
        unreachable!()
    };
    assert_eq!(sdb.node.as_deref(), Some("cp-1"));
    assert_eq!(
        (sdb.role, sdc.role, sdd.role),
        (Role::Boot, Role::Boot, Role::Config)
    );
    assert_eq!(sdb.model.as_deref(), Some("SanDisk Ultra"));
    assert_eq!(sdb.serial.as_deref(), Some("4C53"));
    assert_eq!(sdb.size, Some(32_000_000_000));
    assert_eq!(
        (sdc.model.as_deref(), sdc.serial.as_deref()),
        (Some("Cruzer"), None)
    );
    assert_eq!(sdb.written_size, 4 << 20);
    assert_eq!(sdb.digest_source, "sidecar");
    assert_eq!((sdb.read_back, sdb.ok), (ReadBack::Matches, true));
    assert_eq!((sdc.read_back, sdc.ok), (ReadBack::Failed, false));
    assert!(sdc.error.as_deref().unwrap().contains("does not hold"));
    // The config stick names what its node boots, and its own image as the config.
    assert_eq!(sdd.image_sha256, digest(1));
    assert_eq!(sdd.image_kind, ImageKind::Gpt);
    assert_eq!(sdd.config_sha256, Some(digest(5)));
    assert_eq!(sdd.read_back, ReadBack::Matches);
    assert_eq!(sdd.expected_sha256(), digest(5));
    assert_eq!(sdb.expected_sha256(), digest(1));
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["sticks"][2]["role"], "config");
    assert_eq!(json["sticks"][1]["readBack"], "failed");
    assert_eq!(json["sticks"][0]["sourceURL"], "https://h/x.raw.xz");
    assert_eq!(json["sticks"][0]["archiveSHA256"], digest(2).hex());
    assert!(json["labflashVersion"].is_string() && json["ended"].is_string());
}

#[test]
fn a_file_target_has_its_size_and_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let vm = dir.path().join("vm.img");
    std::fs::write(&vm, vec![0u8; 4096]).unwrap();
    let path = vm.to_str().unwrap();
    let mut one = flashed(vec![report(path, None, None)]);
    one.stick_sha256 = Some(digest(7));
    one.config_sha256 = Some(digest(8));
    let mut record = Record::start();
    record.add(None, "/images/boot.raw", &one, &[approved(path, None)]);
    let s = &record.sticks[0];
    assert_eq!(
        (s.model.as_deref(), s.serial.as_deref(), s.size),
        (None, None, Some(4096))
    );
    assert_eq!(s.read_back, ReadBack::NotReadBack);
    assert_eq!(
        s.expected_sha256(),
        digest(7),
        "one stick: the laid-out stream"
    );
    assert_eq!(s.source_url, "/images/boot.raw");
}

#[test]
fn a_record_reads_back_as_it_was_written() {
    let (flashed, approved) = two_sticks_and_a_config_stick();
    let mut record = Record::start();
    record.add(Some("w-1"), "img.raw", &flashed, &approved);
    record.finish();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.json");
    Record::check_writable(&path).unwrap();
    assert!(!path.exists(), "checking leaves nothing behind");
    record.write(&path).unwrap();
    assert_eq!(Record::read(&path).unwrap(), record);
    // Written again over the first: replaced whole, no temp file left beside it.
    record.write(&path).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    std::fs::write(&path, "{\"labflash\": 1}").unwrap();
    let e = Record::read(&path).unwrap_err();
    assert!(
        e.to_string().contains("is not a labflash flash record"),
        "{e}"
    );
    assert!(Record::check_writable(&dir.path().join("no/such/rec.json")).is_err());
    assert!(Record::check_writable(dir.path()).is_err());
}

#[test]
fn credentials_never_reach_the_record() {
    let (flashed, approved) = two_sticks_and_a_config_stick();
    let mut record = Record::start();
    let source =
        "https://op:s3cret@factory.example/image/abc/v1.12.0/nocloud-amd64.raw.xz?token=t0k&x=1";
    record.add(None, source, &flashed, &approved);
    let json = serde_json::to_string(&record).unwrap();
    assert!(
        !json.contains("s3cret") && !json.contains("op:") && !json.contains("t0k"),
        "{json}"
    );
    assert_eq!(
        record.sticks[0].source_url,
        "https://factory.example/image/abc/v1.12.0/nocloud-amd64.raw.xz?x=1"
    );
    assert_eq!(
        without_credentials("https://u@h/a.raw?token=1"),
        "https://h/a.raw"
    );
    assert_eq!(without_credentials("/srv/op:pw@x.raw"), "/srv/op:pw@x.raw");
}

#[test]
fn the_summary_names_every_node_and_drive() {
    let (flashed, approved) = two_sticks_and_a_config_stick();
    let mut record = Record::start();
    record.add(Some("cp-1"), "a.raw", &flashed, &approved);
    let (second, _) = two_sticks_and_a_config_stick();
    let renamed: Vec<Approved> = approved
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.path = PathBuf::from(a.path.display().to_string().replace("/dev/sd", "/dev/vd"));
            a
        })
        .collect();
    let mut second = second;
    for t in &mut second.targets {
        t.path = t.path.replace("/dev/sd", "/dev/vd");
    }
    record.add(Some("cp-2"), "a.raw", &second, &renamed);
    let summary = record.summary();
    for name in [
        "cp-1",
        "cp-2",
        "/dev/sdb",
        "/dev/sdc",
        "/dev/sdd",
        "/dev/vdb",
        "SanDisk Ultra",
    ] {
        assert!(summary.contains(name), "{name} missing from\n{summary}");
    }
    assert!(summary.contains(&digest(1).hex()[..12]));
    assert!(
        summary.contains("FAILED") && summary.contains("does not hold"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 2 + 6 + 2, "{summary}");
}

#[test]
fn verify_takes_the_line_of_its_target() {
    let (flashed, approved) = two_sticks_and_a_config_stick();
    let mut record = Record::start();
    record.add(Some("cp-1"), "https://h/x.raw.xz", &flashed, &approved);
    let e = record.expectation(Path::new("/dev/sdd"), None).unwrap();
    assert_eq!((e.sha256, e.size), (digest(5), 4 << 20));
    assert_eq!(
        e.archive_sha256, None,
        "a config stick holds no archive's image"
    );
    assert!(e.from.contains("config stick of node cp-1"), "{}", e.from);
    let e = record
        .expectation(Path::new("/tmp/copy.img"), Some("/dev/sdb"))
        .unwrap();
    assert_eq!((e.sha256, e.archive_sha256), (digest(1), Some(digest(2))));
    let none = record.expectation(Path::new("/dev/sdx"), None).unwrap_err();
    assert!(none.to_string().contains("no line for /dev/sdx"), "{none}");
    assert_eq!(none.kind(), ErrorKind::BadInput);
    record.sticks.push(record.sticks[0].clone());
    let two = record.expectation(Path::new("/dev/sdb"), None).unwrap_err();
    assert!(two.to_string().contains("2 lines for /dev/sdb"), "{two}");
}

/// A one-stick stick that failed before it was given its whole stream has no digest of what it
/// should hold: `verify --record` says so instead of checking it against the boot image alone
/// (which its archive vouches for, but which is not what a one-stick flash writes).
#[test]
fn a_one_stick_line_without_its_stream_digest_is_not_checked_against_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let vm = dir.path().join("vm.img");
    std::fs::write(&vm, vec![0u8; 4096]).unwrap();
    let path = vm.to_str().unwrap();
    let mut one = flashed(vec![report(path, None, Some("the stick went away"))]);
    one.config_sha256 = Some(digest(8));
    let mut record = Record::start();
    record.add(None, "/images/boot.raw", &one, &[approved(path, None)]);
    let Err(refused) = record.expectation(&vm, None) else {
        panic!("a failed one-stick line was given an expectation")
    };
    assert!(
        refused.to_string().contains("does not say what")
            && refused.to_string().contains("went away"),
        "{refused}"
    );
    one.stick_sha256 = Some(digest(7));
    let mut record = Record::start();
    record.add(None, "/images/boot.raw", &one, &[approved(path, None)]);
    let expectation = record.expectation(&vm, None).unwrap();
    assert_eq!(expectation.sha256, digest(7));
    assert_eq!(
        expectation.archive_sha256, None,
        "the archive vouches for the image, not the stick"
    );
}
