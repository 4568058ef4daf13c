//! One stick for both: the boot image plus a GPT partition named cidata, checked with sgdisk, and
//! the cidata files read back at the partition's offset with mtools.

mod common;

use std::path::Path;
use std::process::Command;

use common::loopdev::LoopDev;
use common::*;

const MIB: u64 = 1 << 20;
/// A real Talos worker config: siderolabs/talos
/// pkg/machinery/config/configloader/testdata/worker.test (tests/fixtures/talos/README.md).
const USER_DATA: &str = include_str!("fixtures/talos/configloader-worker.yaml");

/// A Talos-like GPT image (EFI, BIOS, BOOT, META) of `size` bytes; `fill_to_end` makes the last
/// partition reach the end, so the image's backup GPT sits right after it.
fn boot_image(dir: &Path, size: u64, fill_to_end: bool) -> (String, Vec<u8>) {
    let path = dir.join("boot.raw");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let last = if fill_to_end { "4:0:0" } else { "4:0:+1M" };
    talos_like_gpt(&path, last);
    // Partition contents: recognisable bytes from 1 MiB to the last partition's end.
    let mut bytes = std::fs::read(&path).unwrap();
    let body_end = if fill_to_end {
        size - 34 * 512
    } else {
        13 * MIB
    };
    bytes[MIB as usize..body_end as usize].copy_from_slice(&noise((body_end - MIB) as usize, 50));
    std::fs::write(&path, &bytes).unwrap();
    (path.to_str().unwrap().to_string(), bytes)
}

fn cidata(dir: &Path) -> String {
    let ud = dir.join("worker.yaml");
    std::fs::write(&ud, USER_DATA).unwrap();
    let out = dir.join("cidata.img");
    let r = run(&[
        "cidata",
        "--user-data",
        ud.to_str().unwrap(),
        "--hostname",
        "w-1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out.to_str().unwrap().to_string()
}

fn sgdisk_verify(target: &str) -> String {
    let out = Command::new("sgdisk")
        .args(["-v", target])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn flash(dir: &Path, image: &str, config: &str, targets: &[&str]) -> Run {
    let cache = dir.join("cache");
    let mut args = vec![
        "flash",
        image,
        "--config",
        config,
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    for t in targets {
        args.extend_from_slice(&["--to", t]);
    }
    run(&args)
}

#[test]
fn one_stick_carries_the_boot_image_and_a_cidata_partition() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (image, bytes) = boot_image(dir.path(), 16 * MIB, false);
    let config = cidata(dir.path());
    let dev = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);

    let r = flash(dir.path(), &image, &config, &[dev.path_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["imageSHA256"], sha256_hex(&bytes));
    assert_eq!(
        json["configSHA256"],
        sha256_hex(&std::fs::read(&config).unwrap())
    );
    assert_eq!(json["targets"][0]["verifiedSHA256"], json["stickSHA256"]);
    let offset = json["cidataOffset"].as_u64().unwrap();
    assert_eq!(offset, 13 * MIB, "right after META, 1 MiB aligned");

    let verify = sgdisk_verify(dev.path_str());
    assert!(verify.contains("No problems found"), "{verify}");
    let table = Command::new("sfdisk")
        .args(["--json", dev.path_str()])
        .output()
        .unwrap();
    let table: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let parts = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[4]["name"], "cidata");
    assert_eq!(parts[4]["start"], offset / 512);
    assert_eq!(
        table["partitiontable"]["lastlba"],
        64 * MIB / 512 - 34,
        "the backup GPT is at the target's end"
    );

    // The partitions of the image are intact, and the cidata filesystem reads back at its offset.
    assert_eq!(
        dev.read(MIB, 12 * MIB as usize),
        bytes[MIB as usize..13 * MIB as usize]
    );
    let at = format!("{}@@{offset}", dev.path_str());
    let ud = Command::new("mtype")
        .args(["-i", &at, "::user-data"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ud.stdout), USER_DATA);
    let part = dir.path().join("part.img");
    std::fs::write(&part, dev.read(offset, 16 * MIB as usize)).unwrap();
    let fsck = Command::new("fsck.fat")
        .args(["-n", part.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let id = Command::new("blkid")
        .args(["-p", "-o", "export", part.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&id.stdout).contains("LABEL=CIDATA"));
}

#[test]
fn an_image_whose_partitions_reach_its_end_gets_its_old_backup_gpt_blanked() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (image, _) = boot_image(dir.path(), 16 * MIB, true);
    let config = cidata(dir.path());
    let dev = LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA);
    let r = flash(dir.path(), &image, &config, &[dev.path_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["cidataOffset"], 16 * MIB);
    assert!(
        dev.read(16 * MIB - 512, 512).iter().all(|b| *b == 0),
        "the image's backup header is gone"
    );
    assert!(sgdisk_verify(dev.path_str()).contains("No problems found"));
}

#[test]
fn a_vm_disk_file_gets_one_stick_too() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (image, _) = boot_image(dir.path(), 16 * MIB, false);
    let config = cidata(dir.path());
    let disk = dir.path().join("vm.img");
    let r = flash(dir.path(), &image, &config, &[disk.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(sgdisk_verify(disk.to_str().unwrap()).contains("No problems found"));
}

/// An image whose path names Talos v1.12.0-v1.12.2 (as labctl's and labflash's caches do) gets
/// the warning that those releases cannot mount a FAT cidata.
#[test]
fn a_release_that_cannot_read_fat_cidata_is_warned_about() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let release = dir.path().join("v1.12.1");
    std::fs::create_dir(&release).unwrap();
    let (image, _) = boot_image(&release, 16 * MIB, false);
    // Named as the factory names a nocloud image: an image whose name says no platform gets a
    // statement of its own (tests/talos_config_cli.rs).
    let image = nocloud_named(&image);
    let config = cidata(dir.path());
    let disk = dir.path().join("vm.img");
    let r = flash(dir.path(), &image, &config, &[disk.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("12647"),
        "{}",
        r.stderr
    );
    assert!(r.json()["warnings"][0]
        .as_str()
        .unwrap()
        .contains("v1.12.1"));

    // A release that reads FAT cidata, on its boot stick too: nothing to say.
    let current = dir.path().join("v1.12.3");
    std::fs::create_dir(&current).unwrap();
    let (image, _) = boot_image(&current, 16 * MIB, false);
    let image = nocloud_named(&image);
    let r = flash(dir.path(), &image, &config, &[disk.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json().get("warnings").is_none(), "{}", r.stdout);
}

/// `image` renamed `nocloud-amd64.raw` in its folder.
fn nocloud_named(image: &str) -> String {
    let named = Path::new(image).with_file_name("nocloud-amd64.raw");
    std::fs::rename(image, &named).unwrap();
    named.to_str().unwrap().to_string()
}

#[test]
fn one_stick_refusals_write_nothing() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (image, _) = boot_image(dir.path(), 16 * MIB, false);
    let config = cidata(dir.path());

    let small = LoopDev::new(dir.path(), 24 * MIB, 512, 0xAA);
    let r = flash(dir.path(), &image, &config, &[small.path_str()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.json()["error"].as_str().unwrap().contains("no room"),
        "{}",
        r.stdout
    );
    assert!(small.read(0, 24 * MIB as usize).iter().all(|b| *b == 0xAA));

    let plain = dir.path().join("plain.raw");
    std::fs::write(&plain, noise(4 * MIB as usize, 51)).unwrap();
    let dev = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);
    let r = flash(
        dir.path(),
        plain.to_str().unwrap(),
        &config,
        &[dev.path_str()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"].as_str().unwrap().contains("no GPT"));
    assert!(dev.read(0, 2 * MIB as usize).iter().all(|b| *b == 0xAA));

    let two = flash(
        dir.path(),
        &image,
        &config,
        &[dev.path_str(), small.path_str()],
    );
    // One config for two drives: a lab pairs each --to with a --config of its own.
    assert_eq!(two.code, 2);
    assert!(two.json()["error"]
        .as_str()
        .unwrap()
        .contains("each --to takes its own --config"));
}

/// Talos v1.10 and v1.11 amd64 images do not read a cidata partition on their own boot stick
/// (siderolabs/talos issue 12098): one stick is refused, untouched, and two sticks in one run
/// carry the boot image and the config image, each read back.
#[test]
fn a_release_that_cannot_read_cidata_on_its_boot_stick_gets_two_sticks() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let release = dir.path().join("v1.11.2");
    std::fs::create_dir(&release).unwrap();
    let (image, bytes) = boot_image(&release, 16 * MIB, false);
    let image = nocloud_named(&image);
    let config = cidata(dir.path());
    let boot = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);
    let stick = LoopDev::new(dir.path(), 16 * MIB, 512, 0xBB);

    let r = flash(dir.path(), &image, &config, &[boot.path_str()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("v1.11.2") && error.contains("12098") && error.contains("--config-to"),
        "{error}"
    );
    assert!(boot.read(0, 64 * MIB as usize).iter().all(|b| *b == 0xAA));

    let two = |config_to: &str| {
        let cache = dir.path().join("cache");
        run(&[
            "flash",
            &image,
            "--to",
            boot.path_str(),
            "--config",
            &config,
            "--config-to",
            config_to,
            "--yes",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
    };
    // A config that is not a cidata volume Talos reads, or a URL, is refused before a byte.
    let not_cidata = dir.path().join("not-cidata.img");
    std::fs::write(&not_cidata, noise(MIB as usize, 51)).unwrap();
    for bad in [
        not_cidata.to_str().unwrap(),
        image.as_str(),
        "http://127.0.0.1:9/cidata.img",
    ] {
        let r = flash(
            dir.path(),
            &nocloud_named(&boot_image(dir.path(), 16 * MIB, false).0),
            bad,
            &[boot.path_str()],
        );
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(
            r.stdout.contains("is not a config image Talos reads"),
            "{}",
            r.stdout
        );
    }
    // Neither stick may be the other's source.
    let cache = dir.path().join("cache");
    let r = run(&[
        "flash",
        &image,
        "--to",
        boot.path_str(),
        "--config",
        &config,
        "--config-to",
        &image,
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(boot.read(0, 64 * MIB as usize).iter().all(|b| *b == 0xAA));

    let same = two(boot.path_str());
    assert_eq!(same.code, 2, "{}", same.stderr);
    assert!(same.stdout.contains("two drives"), "{}", same.stdout);
    assert!(boot.read(0, 64 * MIB as usize).iter().all(|b| *b == 0xAA));

    let r = two(stick.path_str());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    let config_bytes = std::fs::read(&config).unwrap();
    assert_eq!(json["targets"][0]["verifiedSHA256"], sha256_hex(&bytes));
    assert_eq!(
        json["configStick"]["targets"][0]["verifiedSHA256"],
        sha256_hex(&config_bytes)
    );
    assert_eq!(json["configStick"]["imageKind"], "fat");
    assert_eq!(boot.read(0, bytes.len()), bytes);
    assert_eq!(stick.read(0, config_bytes.len()), config_bytes);
    // The config stick is the FAT volume Talos looks for by its label.
    let label = Command::new("fatlabel")
        .arg(stick.path_str())
        .output()
        .expect("fatlabel (dosfstools)");
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "CIDATA");
}
