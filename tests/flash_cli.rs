//! `labflash flash`, `verify` and `drives` on real loop devices (root, as in CI): every success
//! backed by a read-back digest, every refusal leaving the target byte for byte unchanged.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::loopdev::{interrupt_while_writing, LoopDev};
use common::*;

const MIB: u64 = 1 << 20;

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        Bench {
            dir: tempfile::tempdir_in("/var/tmp").unwrap(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// An image file of `len` bytes; returns its path and bytes.
    fn image(&self, name: &str, len: usize, seed: u64) -> (String, Vec<u8>) {
        let bytes = image_like(len, seed);
        let path = self.path(name);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    fn flash(&self, source: &str, extra: &[&str]) -> Run {
        let cache = self.path("cache");
        let mut args = vec!["flash", source, "--json", "--cache-dir", cache.as_str()];
        args.extend_from_slice(extra);
        run(&args)
    }
}

fn sha(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

#[test]
fn flash_reads_back_and_never_writes_past_the_image() {
    require_root!();
    let b = Bench::new();
    let len = 10 * MIB as usize + 1234; // not a multiple of any block size
    let (img, bytes) = b.image("os.img", len, 1);
    let dev = LoopDev::new(b.dir.path(), 32 * MIB, 512, 0xAA);
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["imageSHA256"], sha(&bytes));
    assert_eq!(json["imageSize"], len as u64);
    let t = &json["targets"][0];
    assert_eq!(t["ok"], true);
    assert_eq!(t["path"], dev.path_str());
    assert_eq!(t["bytesWritten"], len as u64);
    assert_eq!(t["verifiedSHA256"], sha(&bytes));
    assert!(t["error"].is_null());

    assert_eq!(dev.read(0, len), bytes);
    let padded_end = len.div_ceil(512);
    let tail = dev.read(padded_end as u64 * 512, 4096);
    assert!(
        tail.iter().all(|b| *b == 0xAA),
        "bytes past the padded image were written"
    );
    // The drive's end was wiped: an old backup GPT there would bring back the old partitions.
    assert!(dev
        .read(32 * MIB - (64 << 10), 64 << 10)
        .iter()
        .all(|b| *b == 0));
    assert!(dev
        .read(32 * MIB - (128 << 10), 4096)
        .iter()
        .all(|b| *b == 0xAA));
}

/// A drive flashed again with the same image is read first and only the MiB it does not hold
/// are written; every byte is still read back.
#[test]
fn a_second_flash_writes_only_what_the_drive_does_not_hold() {
    require_root!();
    let b = Bench::new();
    let len = 10 * MIB as usize + 1234;
    let (img, bytes) = b.image("os.img", len, 7);
    let dev = LoopDev::new(b.dir.path(), 32 * MIB, 512, 0xAA);
    let first = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.json()["targets"][0]["bytesSkipped"], 0);

    dev.write(6 * MIB + 5, b"x");
    let again = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let t = &again.json()["targets"][0];
    assert_eq!(
        t["bytesWritten"],
        2 * MIB,
        "the first MiB and the one changed"
    );
    assert_eq!(t["bytesSkipped"], len as u64 - 2 * MIB);
    assert_eq!(t["verifiedSHA256"], sha(&bytes));
    assert_eq!(dev.read(0, len), bytes);
    let cache = b.path("cache");
    let told = run(&[
        "flash",
        &img,
        "--to",
        dev.path_str(),
        "--yes",
        "--cache-dir",
        &cache,
    ]);
    assert!(
        told.stdout
            .contains("(9.4 MB already on it, not written again)"),
        "{}",
        told.stdout
    );

    let all = b.flash(&img, &["--to", dev.path_str(), "--yes", "--write-all"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let t = &all.json()["targets"][0];
    assert_eq!(
        (&t["bytesWritten"], &t["bytesSkipped"]),
        (&len.into(), &0.into())
    );
}

#[test]
fn flash_to_a_4k_sector_device_pads_to_its_block_size() {
    require_root!();
    let b = Bench::new();
    let len = 3 * MIB as usize + 100;
    let (img, bytes) = b.image("os.img", len, 2);
    let dev = LoopDev::new(b.dir.path(), 8 * MIB, 4096, 0xAA);
    let drives = run(&["drives", "--all", "--json"]).json();
    let listed = drives
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev.path_str())
        .cloned();
    assert_eq!(
        listed.expect("the loop device is listed")["logicalBlockSize"],
        4096
    );

    let run = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(dev.read(0, len), bytes);
    let padded_end = (len as u64).div_ceil(4096) * 4096;
    assert!(dev
        .read(len as u64, (padded_end - len as u64) as usize)
        .iter()
        .all(|b| *b == 0));
    assert!(dev.read(padded_end, 4096).iter().all(|b| *b == 0xAA));
}

#[test]
fn verify_finds_a_flipped_byte_on_the_device_not_in_the_page_cache() {
    require_root!();
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 6 * MIB as usize, 4);
    let dev = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0);
    assert_eq!(b.flash(&img, &["--to", dev.path_str(), "--yes"]).code, 0);

    let good = run(&["verify", dev.path_str(), "--image", &img, "--json"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert_eq!(good.json()["match"], true);

    // Fill the page cache with the device's current (good) content, then change the medium
    // underneath it: a verify that reads the cache would still say "match".
    Command::new("dd")
        .args([
            &format!("if={}", dev.path_str()),
            "of=/dev/null",
            "bs=1M",
            "status=none",
        ])
        .status()
        .unwrap();
    let at = 5 * MIB + 17;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&dev.backing)
            .unwrap();
        f.write_all_at(&[bytes[at as usize] ^ 0x01], at).unwrap();
        f.sync_all().unwrap();
    }
    let bad = run(&["verify", dev.path_str(), "--image", &img, "--json"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let json = bad.json();
    assert_eq!(json["match"], false);
    assert_eq!(json["expectedSHA256"], sha(&bytes));
    assert_eq!(json["size"], bytes.len() as u64);
    assert_eq!(json["path"], dev.path_str());

    let size = bytes.len().to_string();
    let by_digest = run(&[
        "verify",
        dev.path_str(),
        "--sha256",
        &sha(&bytes),
        "--size",
        &size,
    ]);
    assert_eq!(by_digest.code, 1);
    assert!(by_digest.stdout.contains("MISMATCH"));
    let sidecar = b.path("os.img.sha256");
    std::fs::write(&sidecar, format!("{}  os.img\n", sha(&bytes))).unwrap();
    let by_sidecar = run(&[
        "verify",
        dev.path_str(),
        "--sidecar",
        &sidecar,
        "--size",
        &size,
        "--json",
    ]);
    assert_eq!(by_sidecar.code, 1);
}

#[test]
fn verify_rejects_bad_input_with_exit_2() {
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 100_000, 5);
    let ok = run(&["verify", &img, "--sha256", &sha(&bytes), "--json"]);
    assert_eq!(
        ok.code, 0,
        "a file's size defaults to its length: {}",
        ok.stderr
    );
    for args in [
        vec!["verify", img.as_str()],
        vec!["verify", img.as_str(), "--sha256", "xyz"],
        vec![
            "verify",
            "/nonexistent/disk.img",
            "--sha256",
            &"0".repeat(64),
        ],
        vec![
            "verify",
            img.as_str(),
            "--sha256",
            &"0".repeat(64),
            "--size",
            "1G",
        ],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    if !common::loopdev::is_root() {
        common::skip("its device part needs root (loop devices)");
        return;
    }
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0);
    let r = run(&["verify", dev.path_str(), "--sha256", &sha(&bytes), "--json"]);
    assert_eq!(r.code, 2, "a device needs --size: {}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("number of bytes"));
}

#[test]
fn a_too_small_target_is_refused_and_left_unchanged() {
    require_root!();
    let b = Bench::new();
    let (img, _) = b.image("os.img", 9 * MIB as usize, 6);
    let dev = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0xAA);
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.json()["error"]
        .as_str()
        .unwrap()
        .contains("and it holds only"));
    assert!(dev.read(0, 8 * MIB as usize).iter().all(|b| *b == 0xAA));
}

#[test]
fn no_confirmation_without_a_terminal_refuses_and_writes_nothing() {
    require_root!();
    let b = Bench::new();
    let (img, _) = b.image("os.img", 2 * MIB as usize, 7);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let cache = b.path("cache");
    let out: Run = labflash(&[
        "flash",
        &img,
        "--to",
        dev.path_str(),
        "--json",
        "--cache-dir",
        &cache,
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap()
    .into();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.json()["error"].as_str().unwrap().contains("--yes"));
    assert!(dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0xAA));
}

fn mkfs_and_mount(dev: &LoopDev, at: &Path) {
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&dev.path)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .arg(&dev.path)
        .arg(at)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(at.join("keep.txt"), "precious").unwrap();
}

fn is_mounted(at: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at = at.to_str().unwrap();
    table.lines().any(|l| l.split(' ').nth(4) == Some(at))
}

#[test]
fn a_mounted_target_is_refused_unless_unmount_is_given() {
    require_root!();
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 3 * MIB as usize, 8);
    let dev = LoopDev::new(b.dir.path(), 16 * MIB, 512, 0);
    let mnt = b.dir.path().join("mnt");
    mkfs_and_mount(&dev, &mnt);

    let refused = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("mounted") && error.contains(mnt.to_str().unwrap()),
        "{error}"
    );
    assert!(is_mounted(&mnt));
    assert_eq!(
        std::fs::read_to_string(mnt.join("keep.txt")).unwrap(),
        "precious"
    );

    let flashed = b.flash(&img, &["--to", dev.path_str(), "--yes", "--unmount"]);
    assert_eq!(flashed.code, 0, "{}", flashed.stderr);
    assert!(!is_mounted(&mnt));
    assert_eq!(dev.read(0, bytes.len()), bytes);
}

#[test]
fn a_device_another_program_holds_exclusively_is_refused() {
    require_root!();
    let b = Bench::new();
    let (img, _) = b.image("os.img", MIB as usize, 9);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    use std::os::unix::fs::OpenOptionsExt;
    let _held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev.path)
        .unwrap();
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Found among the openers first (this test process), before O_EXCL would say busy.
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("another program is using it"), "{error}");
    assert!(dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0xAA));
}

#[test]
fn a_loop_device_backed_by_the_source_image_is_refused() {
    require_root!();
    let b = Bench::new();
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0x11);
    let backing = dev.backing.to_str().unwrap().to_string();
    let run = b.flash(&backing, &["--to", dev.path_str(), "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.json()["error"].as_str().unwrap().contains("backed by"));
}

#[test]
fn a_file_target_is_written_and_verified() {
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 5 * MIB as usize + 7, 10);
    let target = b.path("vm-disk.img");
    let run = b.flash(&img, &["--to", &target, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["targets"][0]["verifiedSHA256"], sha(&bytes));
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    let same = b.flash(&img, &["--to", &img, "--yes"]);
    assert_eq!(same.code, 2, "the source itself: {}", same.stderr);
    let twice = b.flash(&img, &["--to", &target, "--to", &target, "--yes"]);
    assert_eq!(twice.code, 2, "{}", twice.stderr);

    // A VM disk named through a link is written (the file itself, opened without following);
    // a link to nothing is refused, and nothing is created.
    let link = b.path("current.img");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(&target, b"old").unwrap();
    let linked = b.flash(&img, &["--to", &link, "--yes"]);
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    let dangling = b.path("dangling.img");
    std::os::unix::fs::symlink(b.path("nowhere.img"), &dangling).unwrap();
    let refused = b.flash(&img, &["--to", &dangling, "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(!Path::new(&b.path("nowhere.img")).exists());
}

/// A VM disk larger than the image keeps its length, and its old end (a backup GPT) is wiped
/// as a drive's is.
#[test]
fn a_larger_vm_disk_keeps_its_length_and_loses_its_old_end() {
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 5 * MIB as usize + 7, 12);
    let disk = b.path("vm-big.img");
    std::fs::write(&disk, vec![0xAA; 16 * MIB as usize]).unwrap();
    let run = b.flash(&img, &["--to", &disk, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let after = std::fs::read(&disk).unwrap();
    assert_eq!(after.len() as u64, 16 * MIB);
    assert_eq!(&after[..bytes.len()], &bytes[..]);
    let end = (16 * MIB - 64 * 1024) as usize;
    assert!(
        after[end..].iter().all(|b| *b == 0),
        "the old end is still there"
    );
    assert!(after[6 * MIB as usize..end].iter().all(|b| *b == 0xAA));
}

#[test]
fn no_verify_says_unverified() {
    let b = Bench::new();
    let (img, _) = b.image("os.img", 2 * MIB as usize, 11);
    let target = b.path("vm.img");
    let run = b.flash(&img, &["--to", &target, "--yes", "--no-verify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t = &run.json()["targets"][0];
    assert_eq!(t["ok"], true);
    assert!(t["verifiedSHA256"].is_null());
}

#[test]
fn two_targets_where_one_fails_the_other_finishes() {
    require_root!();
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 24 * MIB as usize, 12);
    let good = LoopDev::new(b.dir.path(), 32 * MIB, 512, 0);
    // A loop device over a sparse file on a 8 MiB tmpfs: writes fail once the tmpfs is full.
    let small = b.dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap()
        .success());
    let sparse = small.join("sparse.img");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(32 * MIB)
        .unwrap();
    let lock = common::loopdev::LoopLock::take();
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&sparse)
        .output()
        .unwrap();
    drop(lock);
    let failing = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let run = b.flash(&img, &["--to", good.path_str(), "--to", &failing, "--yes"]);
    let _ = Command::new("losetup").args(["-d", &failing]).status();
    let _ = Command::new("umount").arg(&small).status();

    assert_eq!(run.code, 3, "{}", run.stderr);
    let json = run.json();
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets[0]["ok"], true, "{json}");
    assert_eq!(targets[0]["verifiedSHA256"], sha(&bytes));
    assert_eq!(targets[1]["ok"], false);
    assert!(targets[1]["error"].as_str().unwrap().len() > 10);
    assert!(targets[1]["verifiedSHA256"].is_null());
    assert_eq!(good.read(0, bytes.len()), bytes);
}

#[test]
fn cancel_mid_write_stops_promptly_and_leaves_the_first_mib_wiped() {
    require_root!();
    let b = Bench::new();
    let len = 768 * MIB as usize;
    let img = b.path("big.img");
    {
        // Mostly zeros (quick to create), but a recognisable first MiB.
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(len as u64).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&noise(MIB as usize, 13), 0).unwrap();
    }
    let dev = LoopDev::new(b.dir.path(), 800 * MIB, 512, 0xAA);
    let cache = b.path("cache");
    let (run, took) = interrupt_while_writing(
        &[
            "flash",
            &img,
            "--to",
            dev.path_str(),
            "--yes",
            "--json",
            "--cache-dir",
            &cache,
        ],
        &dev,
        0xAA,
        libc::SIGINT,
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.json()["targets"][0]["error"], "cancelled");
    assert!(
        dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is not wiped"
    );
}

#[test]
fn drives_lists_loop_devices_only_with_all() {
    require_root!();
    let b = Bench::new();
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0);
    let default = run(&["drives", "--json"]);
    assert_eq!(default.code, 0);
    assert!(!default
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["path"] == dev.path_str()));
    let all = run(&["drives", "--all", "--json"]).json();
    let d = all
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev.path_str())
        .unwrap()
        .clone();
    assert_eq!(d["bus"], "loop");
    assert_eq!(d["size"], 4 * MIB);
    assert_eq!(d["system"], false);
    for key in [
        "path",
        "model",
        "vendor",
        "serial",
        "size",
        "logicalBlockSize",
        "removable",
        "bus",
        "readOnly",
        "system",
        "mountpoints",
    ] {
        assert!(d.get(key).is_some(), "missing {key}");
    }
    let human = run(&["drives", "--all"]);
    assert!(human.stdout.contains(dev.path_str()) && human.stdout.contains("loop on"));
    // Made read-only, it is marked by the engine's own rule, as the flash refuses it.
    let set_ro = |on: &str| {
        let done = std::process::Command::new("blockdev")
            .args([on, dev.path_str()])
            .status()
            .unwrap();
        assert!(done.success());
    };
    set_ro("--setro");
    let human = run(&["drives", "--all"]);
    set_ro("--setrw");
    let line = human
        .stdout
        .lines()
        .find(|l| l.starts_with(dev.path_str()))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("Read-only (never written)"), "{line}");
}

/// The helper protocol the front end speaks, as every request to the helper states it.
const PROTOCOL: u64 = labflash_core::flash::helper::PROTOCOL;

/// Runs `labflash helper --target …` directly (as pkexec would), the command line naming the
/// request's targets, with a request line and image bytes.
fn helper(request: serde_json::Value, image: &[u8]) -> Vec<serde_json::Value> {
    helper_exit(request, image).0
}

/// `helper`, with the helper's exit status.
fn helper_exit(request: serde_json::Value, image: &[u8]) -> (Vec<serde_json::Value>, i32) {
    use std::io::Write;
    let mut child = helper_command(&request).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = image.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = writeln!(stdin, "{request}");
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (messages(&out.stdout), out.status.code().unwrap_or(-1))
}

/// `labflash helper`, its command line naming the request's targets, every pipe piped.
fn helper_command(request: &serde_json::Value) -> Command {
    let mut args = vec!["helper".to_string()];
    for t in request["targets"].as_array().unwrap() {
        args.push("--target".into());
        args.push(t["path"].as_str().unwrap().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = labflash(&args);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The helper's answer: one JSON message a line.
fn messages(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON message a line"))
        .collect()
}

/// A drive as `labflash drives --all --json` lists it: what the app hands the flash.
fn listed(path: &str) -> serde_json::Value {
    let drives = run(&["drives", "--all", "--json"]).json();
    drives
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not listed"))
        .clone()
}

/// A target as the front end sends it to the helper: its path and listed identity.
fn by_identity(path: &str) -> serde_json::Value {
    serde_json::json!({"path": path, "identity": listed(path)["identity"]})
}

#[test]
fn the_helper_applies_the_rules_itself_and_checks_the_bytes_it_is_sent() {
    require_root!();
    let b = Bench::new();
    let bytes = image_like(3 * MIB as usize, 30);
    let small = LoopDev::new(b.dir.path(), 2 * MIB, 512, 0xAA);
    let request = |target: &str, digest: &str| {
        serde_json::json!({
            "protocol": PROTOCOL, "version": "test",
            "sha256": digest, "size": bytes.len(), "targets": [by_identity(target)],
            "protected": [], "unmount": false, "allowFixed": false, "verify": true, "skipEqual": true
        })
    };
    let refused = helper(request(small.path_str(), &sha(&bytes)), &bytes);
    let last = refused.last().unwrap();
    assert_eq!(last["type"], "failed", "{refused:?}");
    assert!(last["message"]
        .as_str()
        .unwrap()
        .contains("and it holds only"));
    assert!(small.read(0, 2 * MIB as usize).iter().all(|b| *b == 0xAA));

    // Bytes that are not the image the digest names: the target fails and is left unbootable.
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let mut tampered = bytes.clone();
    tampered[2 * MIB as usize] ^= 1;
    let messages = helper(request(dev.path_str(), &sha(&bytes)), &tampered);
    let done = messages.last().unwrap();
    assert_eq!(done["type"], "done", "{messages:?}");
    let t = &done["targets"][0];
    assert_eq!(t["report"]["ok"], false);
    assert!(
        t["report"]["error"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{t}"
    );
    assert!(
        dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is wiped"
    );
    assert!(messages.iter().any(|m| m["type"] == "progress"));

    let good = helper(request(dev.path_str(), &sha(&bytes)), &bytes);
    let done = good.last().unwrap();
    assert_eq!(
        done["targets"][0]["report"]["verifiedSHA256"],
        sha(&bytes),
        "{good:?}"
    );
    assert_eq!(dev.read(0, bytes.len()), bytes);
}

#[test]
fn a_url_source_is_fetched_verified_and_flashed() {
    let b = Bench::new();
    let bytes = image_like(3 * MIB as usize, 31);
    let server = common::server::Server::start();
    server.put_with_sidecar("/os.img.zst", zstd(&bytes));
    let target = b.path("vm.img");
    let url = server.url("/os.img.zst");
    let run = b.flash(&url, &["--to", &target, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["targets"][0]["verifiedSHA256"], sha(&bytes));
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    let bad = b.flash(
        &url,
        &[
            "--to",
            &b.path("other.img"),
            "--yes",
            "--sha256",
            &sha(b"x"),
        ],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        !Path::new(&b.path("other.img")).exists(),
        "nothing written for a bad download"
    );
}

/// The helper runs as root on an unprivileged process's word: it writes whole drives it can
/// match by identity and nothing else, whatever the request says.
#[test]
fn the_helper_writes_only_whole_drives_matched_by_identity() {
    require_root!();
    let b = Bench::new();
    let bytes = image_like(MIB as usize, 31);
    let request = |targets: serde_json::Value| {
        serde_json::json!({
            "protocol": PROTOCOL, "version": "test",
            "sha256": sha(&bytes), "size": bytes.len(), "targets": targets, "protected": [],
            "unmount": false, "allowFixed": false, "verify": true, "skipEqual": true
        })
    };
    let refused = |targets: serde_json::Value, why: &str| {
        let messages = helper(request(targets.clone()), &bytes);
        let last = messages.last().unwrap();
        assert_eq!(last["type"], "failed", "{targets}: {messages:?}");
        let message = last["message"].as_str().unwrap();
        assert!(message.contains(why), "{targets}: {message}");
    };

    // A regular file (/etc/cron.d/x in the review), a path that does not exist, a symlink.
    let file = b.path("cron-job");
    std::fs::write(&file, "keep").unwrap();
    refused(
        serde_json::json!([{"path": file, "identity": null}]),
        "by identity",
    );
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let mut identity = listed(dev.path_str())["identity"].clone();
    refused(
        serde_json::json!([{"path": file, "identity": identity}]),
        "only by its own name in /dev",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    let missing = format!("/dev/labflash-test-missing-{}", std::process::id());
    refused(
        serde_json::json!([{"path": missing, "identity": identity}]),
        "does not exist",
    );
    assert!(!Path::new(&missing).exists());
    // Another spelling of the drive (which polkit's prompt would show): a link to it, in /dev or
    // elsewhere, or a path through a user's folder linked to /dev (`/tmp/u/d/loop6`, `d` → `/dev`).
    let name = dev.path.file_name().unwrap().to_str().unwrap();
    let in_dev = format!("/dev/labflash-test-link-{}", std::process::id());
    std::os::unix::fs::symlink(&dev.path, &in_dev).unwrap();
    let linked_dev = b.path("d");
    std::os::unix::fs::symlink("/dev", &linked_dev).unwrap();
    std::os::unix::fs::symlink(&dev.path, b.path("link")).unwrap();
    for spelling in [
        b.path("link"),
        in_dev.clone(),
        format!("{linked_dev}/{name}"),
        format!("/dev//{name}"),
    ] {
        let messages = helper_exit(
            request(serde_json::json!([{"path": spelling, "identity": identity}])),
            &bytes,
        );
        let last = messages.0.last().unwrap();
        assert_eq!(last["type"], "failed", "{spelling}: {messages:?}");
        assert_eq!(
            last["message"],
            format!("refusing to write to {spelling}: the helper takes a drive only by its own name in /dev (as /dev/sdb), never through a link or another folder")
        );
        assert_eq!(messages.1, 2, "{spelling}");
    }
    let _ = std::fs::remove_file(&in_dev);

    // A partition of a drive (partx makes its node; there is no udev).
    let parted = LoopDev::new(b.dir.path(), 8 * MIB, 512, 0);
    let ok = Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:+2M"])
        .arg(&parted.path)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let ok = Command::new("partx")
        .arg("-a")
        .arg(&parted.path)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let partition = format!("{}p1", parted.path_str());
    refused(
        serde_json::json!([{"path": partition, "identity": identity}]),
        "partition",
    );
    let _ = Command::new("partx").arg("-d").arg(&parted.path).output();

    // Another drive's identity under this path: the drive changed.
    identity["diskseq"] = serde_json::json!(identity["diskseq"].as_u64().unwrap_or(0) + 1000);
    refused(
        serde_json::json!([{"path": dev.path_str(), "identity": identity}]),
        "changed since you chose it",
    );
    assert!(
        dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0xAA),
        "nothing written"
    );

    // A command line (what polkit showed) that names another target than the request.
    let other = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let mut child = labflash(&["helper", "--target", other.path_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(
            stdin,
            "{}",
            request(serde_json::json!([by_identity(dev.path_str())]))
        );
    }
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert!(out.contains("other targets than the command line"), "{out}");

    // Positive control: the whole drive, matched, is written and read back.
    let good = helper(
        request(serde_json::json!([by_identity(dev.path_str())])),
        &bytes,
    );
    let done = good.last().unwrap();
    assert_eq!(
        done["targets"][0]["report"]["verifiedSHA256"],
        sha(&bytes),
        "{good:?}"
    );
    assert_eq!(dev.read(0, bytes.len()), bytes);
}

/// A request from another labflash (a field this helper does not know, at any depth, or another
/// protocol) is refused before anything is opened, in one sentence naming both versions.
#[test]
fn the_helper_refuses_a_request_from_another_labflash_naming_both_versions() {
    require_root!();
    let b = Bench::new();
    let bytes = image_like(MIB as usize, 35);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let request = serde_json::json!({
        "protocol": PROTOCOL, "version": "9.9.9", "sha256": sha(&bytes), "size": bytes.len(),
        "targets": [by_identity(dev.path_str())], "protected": [], "unmount": false,
        "allowFixed": false, "verify": true, "skipEqual": true
    });
    let helper_is = format!(
        "the helper is labflash {} (protocol {PROTOCOL})",
        labflash_core::flash::helper::VERSION
    );
    let newer = PROTOCOL + 1;
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, String); 4] = [
        (
            |r| r["eraseAfter"] = true.into(),
            format!(
                r#"labflash 9.9.9 (helper protocol {PROTOCOL}) and {helper_is}, which does not know the request's field "eraseAfter""#
            ),
        ),
        (
            |r| r["targets"][0]["identity"]["vendor"] = "x".into(),
            r#"field "targets[0].identity.vendor""#.into(),
        ),
        (
            |r| r["protocol"] = (PROTOCOL + 1).into(),
            format!("labflash 9.9.9 (helper protocol {newer}) and {helper_is};"),
        ),
        (
            |r| {
                r.as_object_mut().unwrap().remove("protocol");
                r.as_object_mut().unwrap().remove("version");
            },
            format!("before helper protocols (helper protocol 0) and {helper_is};"),
        ),
    ];
    for (edit, says) in cases {
        let mut edited = request.clone();
        edit(&mut edited);
        let (messages, code) = helper_exit(edited.clone(), &bytes);
        let last = messages.last().unwrap();
        assert_eq!(last["type"], "failed", "{edited}: {messages:?}");
        let message = last["message"].as_str().unwrap();
        assert!(
            message.starts_with("the app and the installed helper disagree: the app is ")
                && message.contains(&says)
                && message.ends_with("; install the same labflash version for both"),
            "{message}"
        );
        assert_eq!(code, 2, "{message}");
    }
    assert!(
        dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0xAA),
        "nothing written"
    );
    // Positive control: the same request, unedited, is served.
    let served = helper(request, &bytes);
    assert_eq!(
        served.last().unwrap()["targets"][0]["report"]["verifiedSHA256"],
        sha(&bytes),
        "{served:?}"
    );
}

/// SIGTERM (as at shutdown) or SIGINT (Ctrl-C in the terminal that ran pkexec) stops the helper
/// as it stops the CLI: within a second, the drive's first MiB wiped.
#[test]
fn the_helper_stops_within_a_second_of_sigterm_with_the_first_mib_wiped() {
    require_root!();
    use std::io::{Read, Write};
    let b = Bench::new();
    // Mostly zeros, but a recognisable first MiB.
    let mut bytes = vec![0u8; 512 * MIB as usize];
    bytes[..MIB as usize].copy_from_slice(&noise(MIB as usize, 37));
    let dev = LoopDev::new(b.dir.path(), 520 * MIB, 512, 0xAA);
    let request = serde_json::json!({
        "protocol": PROTOCOL, "version": "test", "sha256": sha(&bytes), "size": bytes.len(),
        "targets": [by_identity(dev.path_str())], "protected": [], "unmount": false,
        "allowFixed": false, "verify": true, "skipEqual": false
    });
    let mut child = helper_command(&request).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = writeln!(stdin, "{request}");
        let _ = stdin.write_all(&bytes);
    });
    // Its answer is read as it comes: a full pipe would stop it.
    let mut stdout = child.stdout.take().unwrap();
    let answer = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while dev.read(MIB, 4096).iter().all(|b| *b == 0xAA) {
        assert!(
            std::time::Instant::now() < deadline,
            "writing never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let signalled = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let messages = messages(&answer.join().unwrap());
    feeder.join().unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let last = messages.last().unwrap();
    assert_eq!(last["type"], "done", "{messages:?}");
    assert_eq!(last["targets"][0]["report"]["error"], "cancelled");
    assert_eq!(status.code(), Some(3));
    assert!(
        dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is not wiped"
    );
}

/// A front end that stalls (no request yet, or part of the image sent and the pipe held open)
/// does not keep the helper from SIGTERM: it ends within a second, as cancelled.
#[test]
fn the_helper_stops_on_sigterm_while_its_input_stalls() {
    require_root!();
    use std::io::{Read, Write};
    let b = Bench::new();
    let bytes = noise(32 * MIB as usize, 38);
    let dev = LoopDev::new(b.dir.path(), 40 * MIB, 512, 0xAA);
    let request = serde_json::json!({
        "protocol": PROTOCOL, "version": "test", "sha256": sha(&bytes), "size": bytes.len(),
        "targets": [by_identity(dev.path_str())], "protected": [], "unmount": false,
        "allowFixed": false, "verify": true, "skipEqual": false
    });
    for sent in [None, Some(8 * MIB as usize)] {
        let mut child = helper_command(&request).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let answer = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        if let Some(n) = sent {
            writeln!(stdin, "{request}").unwrap();
            stdin.write_all(&bytes[..n]).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while dev.read(MIB, 4096).iter().all(|b| *b == 0xAA) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "writing never started"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        let signalled = std::time::Instant::now();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let took = signalled.elapsed();
        drop(stdin);
        let messages = messages(&answer.join().unwrap());
        assert!(took < Duration::from_secs(1), "{sent:?}: took {took:?}");
        let text = format!("{messages:?}");
        assert!(text.contains("cancelled"), "{sent:?}: {text}");
        assert_ne!(status.code(), Some(0), "{sent:?}");
        if sent.is_some() {
            assert!(
                dev.read(0, MIB as usize).iter().all(|b| *b == 0),
                "first MiB not wiped"
            );
        } else {
            assert!(
                dev.read(0, MIB as usize).iter().all(|b| *b == 0xAA),
                "written before a request"
            );
        }
    }
}

/// Root flashes a new VM disk into a folder of another user's, who points a link of theirs at
/// a folder only root may write: before the flash, or (the review's race) after the plan, during
/// the confirmation. The file is never created in root's folder; a link of root's own is followed.
#[test]
fn a_new_file_target_is_never_created_through_another_users_link() {
    require_root!();
    use labflash_core::flash;
    use labflash_core::flash::rules::{Chosen, TargetOptions};
    use labflash_core::image::Image;
    use labflash_core::io::drives::SystemRoots;
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    // Another user's uid: lchown takes any number, no account needed.
    const HOSTILE: u32 = 4242;
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", MIB as usize, 36);
    let home = b.dir.path().join("u");
    std::fs::create_dir(&home).unwrap();
    chown(&home, Some(HOSTILE), Some(HOSTILE)).unwrap();
    let root_only = b.dir.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, PermissionsExt::from_mode(0o700)).unwrap();
    let vms = home.join("vms");
    let target = vms.join("disk.img");
    let hostile_link = || {
        symlink(&root_only, &vms).unwrap();
        lchown(&vms, Some(HOSTILE), Some(HOSTILE)).unwrap();
    };

    hostile_link();
    let run = b.flash(&img, &["--to", target.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("reached through a symbolic link of another user (uid 4242)"),
        "{error}"
    );
    assert!(!root_only.join("disk.img").exists());

    // Planned while `vms` is a folder, swapped for the link before the file is opened.
    std::fs::remove_file(&vms).unwrap();
    std::fs::create_dir(&vms).unwrap();
    chown(&vms, Some(HOSTILE), Some(HOSTILE)).unwrap();
    let roots = SystemRoots::default();
    let plan = flash::plan_writing(
        Image {
            path: img.clone().into(),
            sha256: sha(&bytes).parse().unwrap(),
            size: bytes.len() as u64,
            tail: None,
        },
        &[Chosen::path(&target)],
        None,
        &TargetOptions::default(),
        &[Path::new(&img)],
        &roots,
        &labflash_core::CancellationToken::new(),
    )
    .unwrap();
    std::fs::rename(&vms, home.join("vms.old")).unwrap();
    hostile_link();
    let err = flash::open_targets(&plan.targets, &roots)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("symbolic link of another user"),
        "{err}"
    );
    assert!(!root_only.join("disk.img").exists());
    assert!(!home.join("vms.old/disk.img").exists());

    // Positive control: root's own link is root's word.
    lchown(&vms, Some(0), Some(0)).unwrap();
    let opened = flash::open_targets(&plan.targets, &roots).unwrap();
    assert_eq!(opened.len(), 1);
    assert!(root_only.join("disk.img").is_file());
}

/// Root flashes an existing VM disk named through another user's link, the file's own or a
/// folder's: the link could point at any root-only file by then, so it is refused, unwritten.
#[test]
fn an_existing_file_target_is_never_written_through_another_users_link() {
    require_root!();
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    const HOSTILE: u32 = 4242;
    let b = Bench::new();
    let (img, _) = b.image("os.img", MIB as usize, 37);
    let home = b.dir.path().join("u");
    std::fs::create_dir(&home).unwrap();
    chown(&home, Some(HOSTILE), Some(HOSTILE)).unwrap();
    let root_only = b.dir.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, PermissionsExt::from_mode(0o700)).unwrap();
    let victim = root_only.join("victim.conf");
    std::fs::write(&victim, b"root's own").unwrap();
    let file_link = home.join("disk.img");
    symlink(&victim, &file_link).unwrap();
    lchown(&file_link, Some(HOSTILE), Some(HOSTILE)).unwrap();
    let folder_link = home.join("vms");
    symlink(&root_only, &folder_link).unwrap();
    lchown(&folder_link, Some(HOSTILE), Some(HOSTILE)).unwrap();

    for target in [file_link.clone(), folder_link.join("victim.conf")] {
        let run = b.flash(&img, &["--to", target.to_str().unwrap(), "--yes"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        let error = run.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("symbolic link of another user (uid 4242)"),
            "{error}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"root's own");
    }
    // One file named twice, through root's own link and by itself, is one target.
    let own_link = b.dir.path().join("current.img");
    symlink(&victim, &own_link).unwrap();
    let twice = b.flash(
        &img,
        &[
            "--to",
            own_link.to_str().unwrap(),
            "--to",
            victim.to_str().unwrap(),
            "--yes",
        ],
    );
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(twice.stdout.contains("named twice"), "{}", twice.stdout);
    assert_eq!(std::fs::read(&victim).unwrap(), b"root's own");
}

/// The folder is resolved once and the file created relative to it: while the user's folder and
/// a link of theirs to root's folder trade names as fast as the kernel allows, every open is
/// refused or creates the file in the user's folder, never in root's.
#[test]
fn a_new_file_target_under_a_racing_swap_lands_only_in_the_users_folder() {
    require_root!();
    use labflash_core::io::{device, identity::Identity};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    use std::sync::atomic::{AtomicBool, Ordering};
    const HOSTILE: u32 = 4242;
    let b = Bench::new();
    let home = b.dir.path().join("u");
    let vms = home.join("vms");
    let swap = home.join("swap");
    let root_only = b.dir.path().join("root-only");
    std::fs::create_dir_all(&vms).unwrap();
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, PermissionsExt::from_mode(0o700)).unwrap();
    chown(&home, Some(HOSTILE), Some(HOSTILE)).unwrap();
    chown(&vms, Some(HOSTILE), Some(HOSTILE)).unwrap();
    symlink(&root_only, &swap).unwrap();
    lchown(&swap, Some(HOSTILE), Some(HOSTILE)).unwrap();
    // The user's folder by descriptor, whatever its name: created files are removed through it.
    let users = std::fs::File::open(&vms).unwrap();
    let name = CString::new("disk.img").unwrap();
    let stop = AtomicBool::new(false);
    let target = vms.join("disk.img");
    let (created, refused) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
            let (a, b) = (c(&vms), c(&swap));
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two valid paths; RENAME_EXCHANGE swaps them atomically.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            }
        });
        let (mut created, mut refused) = (0, 0);
        for _ in 0..20_000 {
            match device::open_for_write(&target, &Identity::NewFile) {
                // SAFETY: a valid name relative to an open folder.
                Ok(_) if unsafe { libc::unlinkat(users.as_raw_fd(), name.as_ptr(), 0) } == 0 => {
                    created += 1
                }
                Ok(_) => break,
                Err(_) => refused += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
        (created, refused)
    });
    assert!(
        !root_only.join("disk.img").exists(),
        "created in root's folder through the user's link"
    );
    assert!(
        created > 0 && refused > 0,
        "{created} created, {refused} refused"
    );
}

/// Between the plan (and its confirmation) and the open, the loop device is detached and its
/// number attached to another file: the flash is refused and neither file changes.
#[test]
fn a_drive_that_changed_after_it_was_planned_is_refused() {
    require_root!();
    use labflash_core::flash;
    use labflash_core::flash::rules::{Chosen, TargetOptions};
    use labflash_core::image::Image;
    use labflash_core::io::drives::SystemRoots;
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", MIB as usize, 32);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let image = Image {
        path: img.clone().into(),
        sha256: sha(&bytes).parse().unwrap(),
        size: bytes.len() as u64,
        tail: None,
    };
    let roots = SystemRoots::default();
    let cancel = labflash_core::CancellationToken::new();
    let plan = flash::plan_writing(
        image,
        &[Chosen::path(dev.path_str())],
        None,
        &TargetOptions::default(),
        &[Path::new(&img)],
        &roots,
        &cancel,
    )
    .unwrap();

    // The stick is pulled during the prompt and another takes its number.
    let other = b.path("other.img");
    std::fs::write(&other, vec![0x55u8; 4 * MIB as usize]).unwrap();
    let swapped = dev.reattach(Path::new(&other));

    let err = flash::open_targets(&plan.targets, &roots)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("changed since you chose it"),
        "{err}"
    );
    drop(swapped);
    assert!(std::fs::read(&other).unwrap().iter().all(|b| *b == 0x55));
    assert!(std::fs::read(&dev.backing)
        .unwrap()
        .iter()
        .all(|b| *b == 0xAA));
}

/// When every target fails, each one's own error is what the flash reports, not "cancelled".
#[test]
fn when_every_target_fails_their_errors_are_reported() {
    require_root!();
    let b = Bench::new();
    let image = image_like(16 * MIB as usize, 33);
    // A zstd frame written as a stream records no size, so the drive is found too small only at
    // its end (an archive that records its size is refused first: see stream_cli).
    let archive = b.path("big.raw.zst");
    std::fs::write(&archive, zstd(&image)).unwrap();
    let small = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let run = b.flash(&archive, &["--to", small.path_str(), "--yes"]);
    assert_ne!(run.code, 0);
    // The flash's error when the drive filled up before the source was read whole; the target's
    // own report when the (fast) decoder finished first. Either names the drive's own failure.
    let json = run.json();
    let error = json["error"]
        .as_str()
        .or_else(|| json["targets"][0]["error"].as_str())
        .unwrap_or_else(|| panic!("no error reported: {json}"))
        .to_string();
    assert!(!error.contains("cancelled"), "{error}");
    assert!(
        error.contains(small.path_str()) && error.contains("does not fit"),
        "{error}"
    );
}

/// A process with its working folder in the stick's filesystem keeps it busy: the flash refuses
/// before unmounting anything, and names the process.
#[test]
fn a_busy_filesystem_is_refused_and_stays_mounted() {
    require_root!();
    let b = Bench::new();
    let (img, _) = b.image("os.img", MIB as usize, 34);
    let dev = LoopDev::new(b.dir.path(), 16 * MIB, 512, 0);
    let mnt = b.dir.path().join("mnt");
    mkfs_and_mount(&dev, &mnt);
    let mut shell = Command::new("sleep")
        .arg("30")
        .current_dir(&mnt)
        .spawn()
        .unwrap();
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes", "--unmount"]);
    let _ = shell.kill();
    let _ = shell.wait();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("sleep") && error.contains(&shell.id().to_string()),
        "{error}"
    );
    assert!(is_mounted(&mnt), "still mounted, not lazily detached");
    assert_eq!(
        std::fs::read_to_string(mnt.join("keep.txt")).unwrap(),
        "precious"
    );
}

/// A plain (non-exclusive) opener is not kept out by O_EXCL: the flash finds and names it.
#[test]
fn a_second_opener_of_the_drive_is_refused_and_named() {
    require_root!();
    let b = Bench::new();
    let (img, _) = b.image("os.img", MIB as usize, 35);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let mut holder = Command::new("bash")
        .args(["-c", &format!("exec 3<>{}; exec sleep 30", dev.path_str())])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let fd3 = format!("/proc/{}/fd/3", holder.id());
    while std::fs::read_link(&fd3).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("another program is using it") && error.contains("sleep"),
        "{error}"
    );
    assert!(dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0xAA));
}

/// `--eject` as root: each drive written and read back is ejected as the app ejects it (a loop
/// device detached, its file holding the image); a lab (a --config per --to) refuses it.
#[test]
fn eject_detaches_what_was_written_and_is_refused_for_a_lab() {
    let lab = run(&[
        "flash", "os.img", "--to", "a.img", "--config", "a.cidata", "--to", "b.img", "--config",
        "b.cidata", "--eject", "--yes", "--json",
    ]);
    assert_eq!(lab.code, 2, "{}", lab.stderr);
    assert!(lab.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("--eject ejects the drives of one flash, not of a lab"));

    require_root!();
    let b = Bench::new();
    let (img, bytes) = b.image("os.img", 2 * MIB as usize + 3, 36);
    let dev = LoopDev::new(b.dir.path(), 4 * MIB, 512, 0xAA);
    let run = b.flash(&img, &["--to", dev.path_str(), "--yes", "--eject"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["ejected"],
        serde_json::json!([{"path": dev.path_str(), "kind": "detached"}])
    );
    assert!(!dev.attached(), "detached");
    assert_eq!(dev.read_backing(0, bytes.len()), bytes);
}
