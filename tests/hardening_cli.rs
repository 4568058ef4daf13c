//! Tests that each protect one rule a mutation audit (issue 25) found unprotected: the system-drive
//! refusal on a real active swap device, the identity check of the opened drive itself (device
//! number, diskseq, size), and the `--max-image-size` bound while decoding a zstd archive whose
//! frames record no size. Each was seen failing with its rule disabled by hand.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::loopdev::LoopDev;
use common::server::Server;
use common::*;

use labflash_core::io::device::open_for_write;
use labflash_core::io::drives::{self, SystemRoots};
use labflash_core::io::identity::{DriveIdentity, Identity};

const MIB: u64 = 1 << 20;

fn bench() -> tempfile::TempDir {
    tempfile::tempdir_in("/var/tmp").unwrap()
}

/// Swap on a device, turned off again when dropped (before the loop device is detached: declare
/// it after the `LoopDev`), even when the test panics.
struct SwapOn(PathBuf);

impl SwapOn {
    /// `mkswap` and `swapon` on `dev`; `None` where this machine cannot (a container).
    fn new(dev: &LoopDev) -> Option<SwapOn> {
        let mkswap = Command::new("mkswap").arg(&dev.path).output().unwrap();
        assert!(
            mkswap.status.success(),
            "mkswap: {}",
            String::from_utf8_lossy(&mkswap.stderr)
        );
        let on = Command::new("swapon").arg(&dev.path).output().unwrap();
        if !on.status.success() {
            skip(&format!(
                "swapon refused a loop device here: {}",
                String::from_utf8_lossy(&on.stderr).trim()
            ));
            return None;
        }
        Some(SwapOn(dev.path.clone()))
    }
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
    }
}

/// Active swap alone makes a system drive: flashing it is refused with exit 2 and that reason,
/// and the device is left byte for byte as it was. (With the system-drive rule disabled, the
/// kernel's exclusive hold on the swap device still refuses the open with exit 2, "busy": only
/// the reason tells the rule did it.)
#[test]
fn an_active_swap_device_is_a_system_drive_and_is_refused() {
    require_root!();
    let dir = bench();
    let image = image_like(MIB as usize, 41);
    let img = dir.path().join("os.img");
    std::fs::write(&img, &image).unwrap();
    let dev = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    let Some(_swap) = SwapOn::new(&dev) else {
        return;
    };
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
    assert!(swaps.contains(dev.path_str()), "{swaps}");

    // The drive list says so too, for the app's disabled row.
    let listed = run(&["drives", "--all", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let row = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev.path_str())
        .cloned()
        .unwrap_or_else(|| panic!("{} not listed: {}", dev.path_str(), listed.stdout));
    assert_eq!(row["system"], true, "{row}");

    // The swap header's page: the kernel never writes it while the swap is on (it may write
    // any other page, under memory pressure), and labflash's first write wipes the first MiB.
    let before = sha256_hex(&dev.read(0, 4096));
    let cache = dir.path().join("cache");
    let refused = run(&[
        "flash",
        img.to_str().unwrap(),
        "--to",
        dev.path_str(),
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("it is a system drive (it holds active swap)"),
        "{error}"
    );
    assert_eq!(
        sha256_hex(&dev.read(0, 4096)),
        before,
        "the swap device's header changed"
    );
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
    assert!(swaps.contains(dev.path_str()), "swap went off: {swaps}");
}

/// What the drive list says of `dev` now.
fn listed_identity(dev: &Path) -> DriveIdentity {
    let name = dev.file_name().unwrap().to_str().unwrap();
    drives::list(&SystemRoots::default())
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{} is not listed", dev.display()))
        .identity
}

/// Opens `dev` as a flash does, checked against `identity`: the refusal's reason, or `None` when
/// it opened.
fn open_refusal(dev: &Path, identity: &DriveIdentity) -> Option<String> {
    match open_for_write(dev, &Identity::Drive(identity.clone())) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Asserts the open of `dev` with `old` is refused as a changed drive, for `how`.
fn assert_changed(dev: &Path, old: &DriveIdentity, how: &str) {
    let why = open_refusal(dev, old).unwrap_or_else(|| {
        panic!(
            "{} opened with the identity of another drive ({how})",
            dev.display()
        )
    });
    assert!(
        why.contains("the drive changed since you chose it") && why.contains(how),
        "expected a change of {how}: {why}"
    );
}

/// The open itself compares the descriptor with the identity the operator chose, whatever the
/// drive list says in between: another node (device number), the same node attached anew
/// (diskseq), the same attachment grown (size). The drive list is bypassed: each comparison is
/// the only thing that can refuse its case.
#[test]
fn the_opened_drive_is_compared_with_the_chosen_identity() {
    require_root!();
    let dir = bench();

    // Device number: another loop device of the same size, opened with the first one's identity.
    let a = LoopDev::new(dir.path(), 4 * MIB, 512, 0x11);
    let b = LoopDev::new(dir.path(), 4 * MIB, 512, 0x22);
    let (id_a, id_b) = (listed_identity(&a.path), listed_identity(&b.path));
    assert_ne!(id_a.devnum, id_b.devnum);
    assert_eq!(id_a.size, id_b.size);
    assert_eq!(open_refusal(&b.path, &id_b), None, "its own identity opens");
    assert_changed(
        &b.path,
        &id_a,
        &format!("device {}, not {}", id_b.devnum, id_a.devnum),
    );

    // diskseq: the same node detached and attached to another file of the same size.
    let dev = LoopDev::new(dir.path(), 4 * MIB, 512, 0x33);
    let old = listed_identity(&dev.path);
    assert!(
        old.diskseq.is_some(),
        "this kernel gives no diskseq (Linux 5.15+)"
    );
    let other = dir.path().join("other.img");
    std::fs::write(&other, vec![0x44u8; 4 * MIB as usize]).unwrap();
    let new = dev.reattach(&other);
    let now = listed_identity(&new.path);
    assert_eq!((&now.devnum, now.size), (&old.devnum, old.size));
    assert_ne!(now.diskseq, old.diskseq);
    assert_eq!(
        open_refusal(&new.path, &now),
        None,
        "its own identity opens"
    );
    assert_changed(
        &new.path,
        &old,
        &format!(
            "disk sequence {}, not {}",
            now.diskseq.unwrap(),
            old.diskseq.unwrap()
        ),
    );
    assert!(new.read(0, MIB as usize).iter().all(|b| *b == 0x44));

    // Size: the backing file grown and the loop device told (`losetup -c`): same node, same
    // diskseq, another size.
    let dev = LoopDev::new(dir.path(), 4 * MIB, 512, 0x55);
    let old = listed_identity(&dev.path);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dev.backing)
        .unwrap()
        .set_len(6 * MIB)
        .unwrap();
    let grown = Command::new("losetup")
        .arg("-c")
        .arg(&dev.path)
        .status()
        .unwrap();
    assert!(grown.success());
    let now = listed_identity(&dev.path);
    assert_eq!((&now.devnum, now.diskseq), (&old.devnum, old.diskseq));
    assert_eq!(now.size, 6 * MIB);
    assert_eq!(
        open_refusal(&dev.path, &now),
        None,
        "its own identity opens"
    );
    assert_changed(
        &dev.path,
        &old,
        &format!("{} bytes, not {}", 6 * MIB, 4 * MIB),
    );
    assert!(dev.read(0, 4 * MIB as usize).iter().all(|b| *b == 0x55));
}

/// zstd frames that record no content size (`zstd --no-content-size`, or any streaming encoder),
/// each `len` bytes of `data` in its own frame.
fn zstd_frames_without_sizes(data: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in data.chunks(len) {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, part).unwrap();
        let frame = enc.finish().unwrap();
        // Frame header descriptor: no Frame_Content_Size field (flag 0, not single-segment).
        assert_eq!(&frame[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
        assert_eq!(frame[4] & 0xE0, 0, "the frame records its size");
        out.extend_from_slice(&frame);
    }
    out
}

/// An archive whose frames record no size cannot be refused before decoding: the decoder's bound
/// stops it at the limit, with exit 2, and the cache keeps no image and no temp file.
#[test]
fn a_zstd_archive_that_records_no_size_is_stopped_at_the_limit_while_decoding() {
    let limit = 2 * MIB;
    // Three frames, 1.5 MiB each: 4.5 MiB decoded, past the limit in the second frame.
    let image = image_like(9 * MIB as usize / 2, 43);
    let archive = zstd_frames_without_sizes(&image, 3 * MIB as usize / 2);
    assert!(
        (archive.len() as u64) < limit,
        "the archive itself is within the limit"
    );
    let server = Server::start();
    server.put_with_sidecar("/os.raw.zst", archive.clone());
    let cache = tempfile::tempdir().unwrap();
    let url = server.url("/os.raw.zst");
    let cache_dir = cache.path().to_str().unwrap();
    let run_with = |limit: u64| {
        let limit = limit.to_string();
        run(&[
            "fetch",
            &url,
            "--cache-dir",
            cache_dir,
            "--max-image-size",
            &limit,
            "--json",
        ])
    };

    let over = run_with(limit);
    assert_eq!(over.code, 2, "{}", over.stderr);
    let error = over.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&format!("larger than the limit of {limit} bytes")),
        "{error}"
    );
    assert!(
        temp_files(cache.path()).is_empty(),
        "{:?}",
        temp_files(cache.path())
    );
    let images = files_under(&cache.path().join("images"));
    assert!(images.is_empty(), "{images:?}");
    // The README: going over the limit "stops with nothing left behind", and an archive whose
    // records give its size over the limit is discarded before decoding; so is this one.
    let downloads = files_under(&cache.path().join("downloads"));
    assert!(
        downloads.is_empty(),
        "the archive stayed in the cache after decoding found its image over the limit: {downloads:?}"
    );
    // Nothing else either, but the locks (README: one per image).
    let left = cached_files(cache.path());
    assert!(left.is_empty(), "{left:?}");

    // The same archive within a limit that holds its image decodes whole.
    let within = run_with(image.len() as u64);
    assert_eq!(within.code, 0, "{}", within.stderr);
    assert_eq!(within.json()["imageSHA256"], sha256_hex(&image));
    assert_eq!(within.json()["imageSize"], image.len() as u64);
}
