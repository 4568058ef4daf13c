//! `flash --record FILE` and `verify --record FILE` on real loop devices (root, as in CI): the
//! record names every stick with what it was given and what its read-back proved, and `verify`
//! checks a stick against its line, through the same reading as every verify.

mod common;

use std::path::Path;

use common::loopdev::LoopDev;
use common::*;

const MIB: u64 = 1 << 20;
/// A real Talos worker config: siderolabs/talos
/// pkg/machinery/config/configloader/testdata/worker.test (tests/fixtures/talos/README.md).
const USER_DATA: &str = include_str!("fixtures/talos/configloader-worker.yaml");

fn path_in(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

fn read_record(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A Talos-like GPT boot image and a cidata image built by `labflash cidata`.
fn boot_and_cidata(dir: &Path) -> (String, String) {
    let boot = path_in(dir, "boot.raw");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(Path::new(&boot), "4:0:+1M");
    let user_data = path_in(dir, "worker.yaml");
    std::fs::write(&user_data, USER_DATA).unwrap();
    let cidata = path_in(dir, "cidata.img");
    let r = run(&[
        "cidata",
        "--user-data",
        &user_data,
        "--hostname",
        "w-1",
        "-o",
        &cidata,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (boot, cidata)
}

fn verify(target: &str, record: &str, extra: &[&str]) -> Run {
    let mut args = vec!["verify", target, "--record", record, "--json"];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn two_sticks_are_recorded_and_each_verifies_against_its_line() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let len = 6 * MIB as usize + 4321;
    let bytes = image_like(len, 71);
    let image = path_in(dir.path(), "os.img");
    std::fs::write(&image, &bytes).unwrap();
    let sha = sha256_hex(&bytes);
    let a = LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA);
    let b = LoopDev::new(dir.path(), 48 * MIB, 4096, 0xAA);
    let record = path_in(dir.path(), "rec.json");
    let cache = path_in(dir.path(), "cache");
    let r = run(&[
        "flash",
        &image,
        "--sha256",
        &sha,
        "--to",
        a.path_str(),
        "--to",
        b.path_str(),
        "--yes",
        "--json",
        "--cache-dir",
        &cache,
        "--record",
        &record,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["targets"].as_array().unwrap().len(), 2);
    assert!(json.get("record").is_none(), "--json's object is as before");
    assert!(
        !r.stderr.contains("NODE"),
        "no summary with --json: {}",
        r.stderr
    );

    let rec = read_record(&record);
    assert_eq!(rec["labflashVersion"], env!("CARGO_PKG_VERSION"));
    assert!(rec["started"].as_str().unwrap().ends_with('Z'));
    assert!(rec["ended"].as_str().unwrap() >= rec["started"].as_str().unwrap());
    let sticks = rec["sticks"].as_array().unwrap();
    assert_eq!(sticks.len(), 2, "{rec:#}");
    for (s, dev) in sticks.iter().zip([&a, &b]) {
        assert_eq!(s["path"], dev.path_str());
        assert_eq!(s["role"], "boot");
        assert!(s["node"].is_null());
        // A loop device has no vendor, model or serial; a USB stick's are recorded.
        assert!(s.get("model").unwrap().is_null() && s.get("serial").unwrap().is_null());
        assert_eq!(s["size"], dev.size);
        assert_eq!(s["sourceURL"], image.as_str());
        assert_eq!(s["imageSHA256"], sha.as_str());
        assert_eq!(s["archiveSHA256"], sha.as_str());
        assert_eq!(s["digestSource"], "flag");
        assert_eq!(s["imageKind"], "unknown");
        assert_eq!(s["verifiedSHA256"], sha.as_str());
        assert_eq!(s["readBack"], "matches");
        assert_eq!(s["writtenSize"], len as u64);
        assert_eq!(s["ok"], true);
        assert!(s["error"].is_null() && s["stickSHA256"].is_null());
    }

    for dev in [&a, &b] {
        let v = verify(dev.path_str(), &record, &[]);
        assert_eq!(v.code, 0, "{}", v.stderr);
        let v = v.json();
        assert_eq!(
            (&v["match"], &v["size"]),
            (&true.into(), &(len as u64).into())
        );
        assert!(
            v["expectedFrom"].as_str().unwrap().contains(dev.path_str()),
            "{v}"
        );
    }

    // One byte changed on the second stick: it no longer holds its line's image; the first does.
    let mut byte = b.read(3 * MIB, 1);
    byte[0] ^= 0x40;
    b.write(3 * MIB, &byte);
    let v = verify(b.path_str(), &record, &[]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert_eq!(v.json()["match"], false);
    assert_eq!(verify(a.path_str(), &record, &[]).code, 0);

    // A stick the record does not name is no match to guess: exit 2, naming the lines.
    let v = verify(&image, &record, &[]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.json()["error"].as_str().unwrap().contains(a.path_str()));
    // Named by its line: the source file holds what the first stick got.
    let v = verify(&image, &record, &["--stick", a.path_str()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
}

/// The record is for the run that went wrong too: a stick too small for a stream whose size is
/// known only at its end fails, the other is written and verified, and both are recorded.
#[test]
fn a_failed_stick_is_recorded_beside_the_good_one() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = image_like(12 * MIB as usize, 72);
    // A zstd frame written as a stream records no size (see flash_cli's every-target test).
    let archive = path_in(dir.path(), "big.raw.zst");
    std::fs::write(&archive, zstd(&image)).unwrap();
    let big = LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA);
    let small = LoopDev::new(dir.path(), 4 * MIB, 512, 0xAA);
    let record = path_in(dir.path(), "rec.json");
    let r = run(&[
        "flash",
        &archive,
        "--to",
        big.path_str(),
        "--to",
        small.path_str(),
        "--yes",
        "--record",
        &record,
        "--cache-dir",
        &path_in(dir.path(), "cache"),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // Without --json, a person gets the summary on stderr; stdout keeps the flash's own lines.
    assert!(
        r.stderr.contains("NODE") && r.stderr.contains("FAILED"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!("record written to {record}")));
    assert!(!r.stdout.contains("NODE"), "{}", r.stdout);
    let rec = read_record(&record);
    let sticks = rec["sticks"].as_array().unwrap();
    assert_eq!(sticks.len(), 2, "{rec:#}");
    let (good, bad) = (&sticks[0], &sticks[1]);
    assert_eq!(
        (&good["ok"], &good["readBack"]),
        (&true.into(), &"matches".into())
    );
    assert_eq!(good["imageSHA256"], sha256_hex(&image));
    assert_eq!(bad["path"], small.path_str());
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["readBack"], "not read back");
    assert!(
        bad["error"].as_str().unwrap().contains("does not fit"),
        "{bad}"
    );
    assert_eq!(verify(big.path_str(), &record, &[]).code, 0);
    // What the small stick got is not the image: a mismatch, or nothing to compare.
    assert_ne!(verify(small.path_str(), &record, &[]).code, 0);
}

/// One stick for both: the record carries the config's digest and the laid-out stick's, and
/// `verify --record` reads back the whole stick (boot image, cidata partition, GPT).
#[test]
fn one_stick_records_its_config_and_verifies_whole() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (boot, cidata) = boot_and_cidata(dir.path());
    let dev = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);
    let record = path_in(dir.path(), "rec.json");
    let r = run(&[
        "flash",
        &boot,
        "--config",
        &cidata,
        "--to",
        dev.path_str(),
        "--yes",
        "--json",
        "--record",
        &record,
        "--cache-dir",
        &path_in(dir.path(), "cache"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let flashed = r.json();
    let rec = read_record(&record);
    let sticks = rec["sticks"].as_array().unwrap();
    assert_eq!(sticks.len(), 1, "{rec:#}");
    let s = &sticks[0];
    assert_eq!(
        s["configSHA256"],
        sha256_hex(&std::fs::read(&cidata).unwrap())
    );
    assert_eq!(s["stickSHA256"], flashed["stickSHA256"]);
    assert_eq!(s["verifiedSHA256"], flashed["stickSHA256"]);
    assert_eq!(s["imageSHA256"], sha256_hex(&std::fs::read(&boot).unwrap()));
    assert_eq!(s["imageKind"], "gpt");
    assert!(
        s["writtenSize"].as_u64().unwrap() > flashed["cidataOffset"].as_u64().unwrap(),
        "the read-back covers the cidata partition: {s}"
    );
    let v = verify(dev.path_str(), &record, &[]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(v.json()["expectedSHA256"], flashed["stickSHA256"]);
    assert!(v.json()["expectedFrom"]
        .as_str()
        .unwrap()
        .contains("boot and config stick"));
    // A changed byte in the cidata partition is caught: the stick, not the boot image alone.
    let at = flashed["cidataOffset"].as_u64().unwrap() + 4096;
    let mut byte = dev.read(at, 1);
    byte[0] ^= 1;
    dev.write(at, &byte);
    assert_eq!(verify(dev.path_str(), &record, &[]).code, 1);
}

/// Two sticks: the config stick gets its own line, marked as such, naming the boot image its
/// node boots, and verifies against the config image it holds.
#[test]
fn a_config_stick_is_recorded_as_such_and_verifies() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (boot, cidata) = boot_and_cidata(dir.path());
    let boot_dev = LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA);
    let config_dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let record = path_in(dir.path(), "rec.json");
    let r = run(&[
        "flash",
        &boot,
        "--config",
        &cidata,
        "--to",
        boot_dev.path_str(),
        "--config-to",
        config_dev.path_str(),
        "--yes",
        "--json",
        "--record",
        &record,
        "--cache-dir",
        &path_in(dir.path(), "cache"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec = read_record(&record);
    let sticks = rec["sticks"].as_array().unwrap();
    assert_eq!(sticks.len(), 2, "{rec:#}");
    let (b, c) = (&sticks[0], &sticks[1]);
    assert_eq!((&b["role"], &c["role"]), (&"boot".into(), &"config".into()));
    assert_eq!(c["path"], config_dev.path_str());
    let boot_sha = sha256_hex(&std::fs::read(&boot).unwrap());
    let cidata_bytes = std::fs::read(&cidata).unwrap();
    assert_eq!(
        (&b["imageSHA256"], &c["imageSHA256"]),
        (&boot_sha.clone().into(), &boot_sha.into())
    );
    assert_eq!(c["configSHA256"], sha256_hex(&cidata_bytes));
    assert_eq!(c["writtenSize"], cidata_bytes.len() as u64);
    assert_eq!(c["readBack"], "matches");
    for dev in [&boot_dev, &config_dev] {
        let v = verify(dev.path_str(), &record, &[]);
        assert_eq!(v.code, 0, "{}", v.stderr);
    }
    assert_eq!(
        verify(config_dev.path_str(), &record, &[]).json()["expectedSHA256"],
        c["configSHA256"]
    );
}

/// A record that cannot be written refuses the run before anything is fetched or written.
#[test]
fn a_record_that_cannot_be_kept_refuses_the_flash() {
    let dir = tempfile::tempdir().unwrap();
    let image = path_in(dir.path(), "os.img");
    std::fs::write(&image, image_like(MIB as usize, 73)).unwrap();
    let target = path_in(dir.path(), "vm.img");
    let r = run(&[
        "flash",
        &image,
        "--to",
        &target,
        "--yes",
        "--json",
        "--record",
        &path_in(dir.path(), "no/such/folder/rec.json"),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    assert!(!Path::new(&target).exists(), "nothing written");
    let r = verify(&image, &path_in(dir.path(), "none.json"), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    std::fs::write(path_in(dir.path(), "bad.json"), "[]").unwrap();
    let r = verify(&image, &path_in(dir.path(), "bad.json"), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not a labflash flash record"));
}

/// The README's "Flash records" example, run as written from a fresh folder (VM disk files, so
/// it needs no root).
#[test]
fn readme_flash_record_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("disk.raw"),
        image_like(2 * MIB as usize, 74),
    )
    .unwrap();
    let lines = [
        "labflash flash disk.raw --to node-1.img --to node-2.img --yes --record flash-record.json",
        "labflash verify node-1.img --record flash-record.json",
        "labflash verify node-2.img --record flash-record.json --json",
    ];
    for line in lines {
        assert!(readme.contains(line), "README lacks {line:?}");
        let args: Vec<&str> = line.split(' ').skip(1).collect();
        let r: Run = labflash(&args)
            .current_dir(dir.path())
            .env("LABFLASH_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "{line}: {}", r.stderr);
    }
    let rec = read_record(dir.path().join("flash-record.json").to_str().unwrap());
    assert_eq!(rec["sticks"].as_array().unwrap().len(), 2);
}
