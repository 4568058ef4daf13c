//! What an image is, told from its decoded bytes before a byte of it is written (issue 26, item
//! 1): a disk (GPT, MBR) or an ISO is written and `--json` says its `imageKind`; a virtual-machine
//! disk, an executable, or an archive that does not hold one disk image is refused (exit 2) with
//! the drive untouched; a tar holding one is written from inside it; data with no partition
//! table is written with a warning. Every image here is made by the format's own tool:
//! `sgdisk` (gdisk) for GPT disks, `qemu-img` (qemu-utils) for qcow2, VMDK, VHD and VHDX,
//! `mksquashfs` (squashfs-tools), `xorriso`, `zip`, `mkfs.fat` (dosfstools), GNU `tar` and `gzip`,
//! and systemd's UKI stub (systemd-boot-efi) for a PE; `src-tauri/scripts/setup.sh --tests`
//! installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::loopdev::LoopDev;
use common::server::Server;
use common::*;

const MIB: u64 = 1 << 20;
const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (setup.sh --tests installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A real GPT disk of `size` bytes made by sgdisk (one Linux partition), its data noise.
fn gpt_disk(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("disk.raw");
    std::fs::write(&path, image_like(size as usize, 7)).unwrap();
    tool("sgdisk", &["-Z", s(&path)]);
    tool("sgdisk", &["-n", "1:2048:0", "-t", "1:8300", s(&path)]);
    path
}

/// `qemu-img convert` of `raw` to `format` (with `-o options` if any).
fn convert(raw: &Path, format: &str, options: &str, out: &Path) {
    let mut args = vec!["convert", "-f", "raw", "-O", format];
    if !options.is_empty() {
        args.extend(["-o", options]);
    }
    args.extend([s(raw), s(out)]);
    tool("qemu-img", &args);
}

fn flash(image: &str, dev: &LoopDev, cache: &Path) -> Run {
    run(&[
        "flash",
        image,
        "--to",
        dev.path_str(),
        "--yes",
        "--json",
        "--cache-dir",
        s(cache),
    ])
}

fn whole(dev: &LoopDev) -> String {
    sha256_hex(&dev.read(0, dev.size as usize))
}

/// A refusal: exit 2, its one sentence naming the kind and what to do, the drive as it was.
fn assert_refused(r: &Run, dev: &LoopDev, before: &str, says: &[&str]) {
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    for word in says {
        assert!(error.contains(word), "{word:?} not in: {error}");
    }
    assert_eq!(whole(dev), before, "the drive was changed: {error}");
}

#[test]
fn a_qcow2_file_is_refused_and_the_drive_is_untouched() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 8 * MIB);
    let qcow2 = dir.path().join("fake.qcow2");
    convert(&raw, "qcow2", "", &qcow2);
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let before = whole(&dev);
    let r = flash(s(&qcow2), &dev, &dir.path().join("cache"));
    assert_refused(&r, &dev, &before, &["qcow2", "qemu-img convert", "raw.xz"]);

    // `qemu-img create -f qcow2` (an empty qcow2) too.
    let empty = dir.path().join("empty.qcow2");
    tool("qemu-img", &["create", "-f", "qcow2", s(&empty), "16M"]);
    let r = flash(s(&empty), &dev, &dir.path().join("cache"));
    assert_refused(&r, &dev, &before, &["qcow2"]);
}

#[test]
fn a_fixed_vhd_file_is_refused_by_its_footer() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 8 * MIB);
    // A fixed VHD is the raw disk followed by its footer: its start is a GPT like any disk.
    let vhd = dir.path().join("azure.vhd");
    convert(&raw, "vpc", "subformat=fixed,force_size=on", &vhd);
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let before = whole(&dev);
    let r = flash(s(&vhd), &dev, &dir.path().join("cache"));
    assert_refused(&r, &dev, &before, &["VHD", "qemu-img convert -f vpc"]);
}

#[test]
fn a_tar_gz_holding_a_disk_image_is_written_from_inside_it() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 4 * MIB);
    let image = std::fs::read(&raw).unwrap();
    // GNU tar and gzip, as `talos fetch --format raw.tar.gz` serves (a tar of disk.raw).
    let archive = dir.path().join("x.raw.tar.gz");
    tool(
        "tar",
        &["-czf", s(&archive), "-C", s(dir.path()), "disk.raw"],
    );
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let r = flash(s(&archive), &dev, &dir.path().join("cache"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["imageKind"], "gpt");
    assert_eq!(json["imageInside"]["name"], "disk.raw");
    assert_eq!(json["imageSHA256"], sha256_hex(&image));
    assert_eq!(dev.read(0, image.len()), image);
}

/// Every other kind that is not a disk, each made by its own tool, refused with its sentence; a
/// zip holding one of them is refused as what it holds (not unwrapped into a disk).
#[test]
fn vm_disks_executables_filesystems_and_zips_are_refused() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = |name: &str| dir.path().join(name);
    let raw = gpt_disk(dir.path(), 4 * MIB);
    convert(&raw, "vmdk", "", &d("disk.vmdk"));
    convert(&raw, "vmdk", "subformat=streamOptimized", &d("stream.vmdk"));
    convert(&raw, "vpc", "", &d("dynamic.vhd"));
    convert(&raw, "vhdx", "", &d("disk.vhdx"));
    // systemd's UKI stub (systemd-boot-efi), the PE a Talos `…-uki.efi` is built on.
    std::fs::copy(
        "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
        d("metal-amd64-uki.efi"),
    )
    .expect("systemd-boot-efi (setup.sh --tests installs it)");
    std::fs::create_dir(d("tree")).unwrap();
    std::fs::write(d("tree/hello"), b"hello").unwrap();
    tool("mksquashfs", &[s(&d("tree")), s(&d("root.sqfs")), "-quiet"]);
    tool("zip", &["-q", "-j", s(&d("vmdk.zip")), s(&d("disk.vmdk"))]);
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let before = whole(&dev);
    let cache = d("cache");
    for (file, says) in [
        ("disk.vmdk", &["VMDK", "qemu-img convert -f vmdk"][..]),
        ("stream.vmdk", &["VMDK"][..]),
        ("dynamic.vhd", &["VHD", "qemu-img convert -f vpc"][..]),
        ("disk.vhdx", &["VHDX", "qemu-img convert -f vhdx"][..]),
        (
            "metal-amd64-uki.efi",
            &["PE executable", "EFI system partition"][..],
        ),
        ("root.sqfs", &["squashfs"][..]),
        ("vmdk.zip", &["disk.vmdk in", "VMDK"][..]),
    ] {
        let r = flash(s(&d(file)), &dev, &cache);
        assert_refused(&r, &dev, &before, says);
    }
}

/// Streamed from a URL, the image's kind is known only from its first decoded bytes: they are
/// classified before any target is opened, so the drive is left exactly as it was (not even
/// its first MiB wiped), and no partial download is left in the cache.
#[test]
fn a_qcow2_streamed_from_a_url_is_refused_before_any_target_is_opened() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 8 * MIB);
    let qcow2 = dir.path().join("fake.qcow2");
    convert(&raw, "qcow2", "", &qcow2);
    let server = Server::start();
    server.put_with_sidecar(
        "/nocloud-amd64.qcow2.xz",
        xz_single(&std::fs::read(&qcow2).unwrap()),
    );
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let before = whole(&dev);
    let cache = dir.path().join("cache");
    let r = flash(&server.url("/nocloud-amd64.qcow2.xz"), &dev, &cache);
    assert_refused(&r, &dev, &before, &["qcow2", "qemu-img convert"]);
    assert!(temp_files(&cache).is_empty(), "{:?}", temp_files(&cache));
}

/// A fixed VHD streamed is told only by the footer at its end, after its body went out: every
/// target fails (exit 2) before its first MiB is written, which stays wiped, so the drive never
/// looks bootable.
#[test]
fn a_fixed_vhd_streamed_fails_at_its_end_with_the_first_mib_wiped() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 8 * MIB);
    let vhd = dir.path().join("azure.vhd");
    convert(&raw, "vpc", "subformat=fixed,force_size=on", &vhd);
    let server = Server::start();
    server.put_with_sidecar(
        "/azure-amd64.vhd.xz",
        xz_single(&std::fs::read(&vhd).unwrap()),
    );
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let r = flash(
        &server.url("/azure-amd64.vhd.xz"),
        &dev,
        &dir.path().join("cache"),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("VHD"), "{}", r.stdout);
    assert!(dev.read(0, MIB as usize).iter().all(|b| *b == 0));
}

#[test]
fn a_gpt_disk_is_written_and_its_kind_said() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let raw = gpt_disk(dir.path(), 8 * MIB);
    let image = std::fs::read(&raw).unwrap();
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let cache = dir.path().join("cache");
    let r = flash(s(&raw), &dev, &cache);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["imageKind"], "gpt");
    assert!(json.get("warnings").is_none(), "{json}");
    assert_eq!(dev.read(0, image.len()), image);

    // Streamed from a URL: known from its first decoded bytes, said in the result.
    let server = Server::start();
    server.put_with_sidecar("/metal-amd64.raw.xz", xz_single(&image));
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0x55);
    let r = flash(&server.url("/metal-amd64.raw.xz"), &dev, &cache);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["imageKind"], "gpt");
    assert_eq!(dev.read(0, image.len()), image);
}

/// A hybrid ISO (xorriso's GPT beside the ISO 9660 volume, as Talos's ISO has) is written and
/// said; a plain ISO 9660 (no MBR or GPT) is written with a warning that it will not boot from
/// USB.
#[test]
fn isos_are_written_and_a_plain_one_is_warned_about() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::create_dir(d("tree")).unwrap();
    std::fs::write(d("tree/hello"), noise(100_000, 3)).unwrap();
    std::fs::write(d("efi.img"), noise(64 << 10, 4)).unwrap();
    let mkisofs = |out: &Path, extra: &[&str]| {
        let tree = dir.path().join("tree");
        let mut args = vec!["-as", "mkisofs", "-o", s(out)];
        args.extend_from_slice(extra);
        args.push(s(&tree));
        tool("xorriso", &args);
    };
    let efi = d("efi.img");
    mkisofs(
        &d("hybrid.iso"),
        &[
            "-append_partition",
            "2",
            "0xef",
            s(&efi),
            "-appended_part_as_gpt",
        ],
    );
    mkisofs(&d("plain.iso"), &[]);
    let cache = d("cache");
    for (file, kind, warned) in [
        ("hybrid.iso", "iso9660-hybrid", false),
        ("plain.iso", "iso9660", true),
    ] {
        let image = std::fs::read(d(file)).unwrap();
        let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
        let r = flash(s(&d(file)), &dev, &cache);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        let json = r.json();
        assert_eq!(json["imageKind"], kind);
        assert_eq!(
            json["warnings"].to_string().contains("not boot from USB"),
            warned,
            "{json}"
        );
        assert_eq!(dev.read(0, image.len()), image);
    }
}

/// A FAT filesystem with no partition table (dosfstools' mkfs.fat: what a cidata config stick
/// holds) is a layout labflash knows: written, `fat`, no warning.
#[test]
fn a_fat_volume_is_written_without_a_warning() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let fat = dir.path().join("cidata.img");
    std::fs::File::create(&fat)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    tool("mkfs.fat", &["-n", "CIDATA", s(&fat)]);
    let image = std::fs::read(&fat).unwrap();
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
    let r = flash(s(&fat), &dev, &dir.path().join("cache"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["imageKind"], "fat");
    assert!(json.get("warnings").is_none(), "{json}");
    assert_eq!(dev.read(0, image.len()), image);
}

#[test]
fn data_with_no_partition_table_is_written_with_a_warning() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let blob = noise(3 * MIB as usize, 9);
    let path = dir.path().join("blob.img");
    std::fs::write(&path, &blob).unwrap();
    let cache = dir.path().join("cache");
    // A file (said before the confirmation) and a download (said once its bytes are decoded).
    let server = Server::start();
    server.put_with_sidecar("/blob.img.xz", xz_single(&blob));
    for source in [s(&path).to_string(), server.url("/blob.img.xz")] {
        let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
        let r = flash(&source, &dev, &cache);
        assert_eq!(r.code, 0, "{source}: {}", r.stderr);
        let json = r.json();
        assert_eq!(json["imageKind"], "unknown");
        let warnings = json["warnings"].as_array().expect("warnings").clone();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains("no partition table")),
            "{warnings:?}"
        );
        assert_eq!(
            r.stderr.matches("no partition table").count(),
            1,
            "said once on stderr: {}",
            r.stderr
        );
        assert_eq!(dev.read(0, blob.len()), blob);
    }
}

/// `fetch` and `talos fetch` still fetch what `flash` refuses (a qcow2 is for virtual machines),
/// but say what it is: `imageKind`, and a warning on stderr.
#[test]
fn fetch_says_the_kind_and_that_flash_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let raw = gpt_disk(dir.path(), 4 * MIB);
    let qcow2 = dir.path().join("fake.qcow2");
    convert(&raw, "qcow2", "", &qcow2);
    let server = Server::start();
    server.put("/versions", br#"["v1.12.4","v1.13.0"]"#.to_vec());
    let asset = format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.qcow2");
    server.put_with_sidecar(&asset, std::fs::read(&qcow2).unwrap());
    server.put_with_sidecar("/disk.raw.xz", xz_single(&std::fs::read(&raw).unwrap()));
    let cache = dir.path().join("cache");

    let r = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--schematic",
        SCHEMATIC,
        "--platform",
        "nocloud",
        "--format",
        "qcow2",
        "--factory-url",
        &server.url(""),
        "--cache-dir",
        s(&cache),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["imageKind"], "qcow2");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("refuses"),
        "{}",
        r.stderr
    );

    let r = run(&[
        "fetch",
        &server.url("/disk.raw.xz"),
        "--cache-dir",
        s(&cache),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["imageKind"], "gpt");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}
