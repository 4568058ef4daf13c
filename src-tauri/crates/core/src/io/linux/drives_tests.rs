//! Discovery from fixture trees shaped like a laptop's /sys and /proc.

use super::*;
use crate::io::drives::{diff, watch, DriveEvent};
use crate::CancellationToken;
use std::os::unix::fs::symlink;
use std::time::Duration;

/// Builds `sys/devices/<device_path>/block/<name>` with attributes and links it from `sys/block`.
struct Fixture {
    dir: tempfile::TempDir,
    mountinfo: String,
    swaps: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sys/block")).unwrap();
        fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        Self {
            dir,
            mountinfo: String::new(),
            swaps: "Filename\tType\tSize\tUsed\tPriority\n".into(),
        }
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// A disk; returns its device folder.
    fn disk(
        &self,
        device_path: &str,
        name: &str,
        devnum: &str,
        sectors: u64,
        attrs: &[(&str, &str)],
    ) -> PathBuf {
        let dev_dir = self
            .sys()
            .join("devices")
            .join(device_path)
            .join("block")
            .join(name);
        fs::create_dir_all(dev_dir.join("holders")).unwrap();
        fs::create_dir_all(dev_dir.join("queue")).unwrap();
        fs::create_dir_all(dev_dir.join("device")).unwrap();
        let mut files = vec![
            ("dev", devnum.to_string()),
            ("size", sectors.to_string()),
            ("removable", "0".into()),
            ("ro", "0".into()),
            ("queue/logical_block_size", "512".into()),
            ("queue/physical_block_size", "512".into()),
        ];
        for (k, v) in attrs {
            files.retain(|(f, _)| f != k);
            files.push((k, v.to_string()));
        }
        for (file, value) in files {
            let path = dev_dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{value}\n")).unwrap();
        }
        let rel = PathBuf::from("../devices")
            .join(device_path)
            .join("block")
            .join(name);
        symlink(rel, self.sys().join("block").join(name)).unwrap();
        dev_dir
    }

    fn partition(&self, disk_dir: &Path, name: &str, devnum: &str) -> PathBuf {
        let dir = disk_dir.join(name);
        fs::create_dir_all(dir.join("holders")).unwrap();
        fs::write(dir.join("partition"), "1\n").unwrap();
        fs::write(dir.join("dev"), format!("{devnum}\n")).unwrap();
        fs::write(dir.join("size"), "2048\n").unwrap();
        dir
    }

    fn hold(&self, held_dir: &Path, holder: &str) {
        fs::write(held_dir.join("holders").join(holder), "").unwrap();
    }

    fn mount(&mut self, devnum: &str, at: &str) {
        self.mount_fs(devnum, at, "ext4", "/dev/x");
    }

    fn mount_fs(&mut self, devnum: &str, at: &str, fstype: &str, source: &str) {
        let n = self.mountinfo.lines().count() + 30;
        self.mountinfo.push_str(&format!(
            "{n} 1 {devnum} / {at} rw,relatime - {fstype} {source} rw\n"
        ));
    }

    fn list(&self) -> Vec<Drive> {
        fs::write(self.dir.path().join("proc/self/mountinfo"), &self.mountinfo).unwrap();
        fs::write(self.dir.path().join("proc/swaps"), &self.swaps).unwrap();
        list(&SystemRoots {
            sys: self.sys(),
            proc: self.dir.path().join("proc"),
        })
        .unwrap()
    }
}

fn find<'a>(drives: &'a [Drive], path: &str) -> &'a Drive {
    drives
        .iter()
        .find(|d| d.path == path)
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// A laptop: NVMe system disk with LVM (root on dm-0, swap on dm-1), a USB stick with a mounted
/// partition, an SD card in a USB reader, a read-only SD card on the built-in reader, a loop
/// device, an unattached loop device, a RAM disk and an optical drive.
fn laptop() -> Fixture {
    let mut f = Fixture::new();
    let nvme = f.disk(
        "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
        "nvme0n1",
        "259:0",
        1_000_215_216,
        &[
            ("device/model", "Samsung SSD 980 PRO 1TB"),
            ("serial", "S5GXNF0R123456"),
        ],
    );
    let p1 = f.partition(&nvme, "nvme0n1p1", "259:1");
    let p2 = f.partition(&nvme, "nvme0n1p2", "259:2");
    let _ = p1;
    f.hold(&p2, "dm-0");
    f.hold(&p2, "dm-1");
    let dm0 = f.disk(
        "virtual",
        "dm-0",
        "253:0",
        900_000_000,
        &[("dm/name", "vg-root")],
    );
    let _ = dm0;
    f.disk(
        "virtual",
        "dm-1",
        "253:1",
        16_000_000,
        &[("dm/name", "vg-swap")],
    );
    f.mount("259:1", "/boot/efi");
    f.mount("253:0", "/");
    f.swaps
        .push_str("/dev/mapper/vg-swap partition 8000000 0 -2\n");

    let usb_dev = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host4/target4:0:0/4:0:0:0";
    let stick = f.disk(
        usb_dev,
        "sdb",
        "8:16",
        60_062_500,
        &[
            ("removable", "1"),
            ("device/model", "Ultra"),
            ("device/vendor", "SanDisk"),
        ],
    );
    fs::create_dir_all(f.sys().join("devices/pci0000:00/0000:00:14.0/usb2/2-1")).unwrap();
    fs::write(
        f.sys()
            .join("devices/pci0000:00/0000:00:14.0/usb2/2-1/serial"),
        "4C530001230815117463\n",
    )
    .unwrap();
    fs::write(
        f.sys()
            .join("devices/pci0000:00/0000:00:14.0/usb2/2-1/idVendor"),
        "0781\n",
    )
    .unwrap();
    let stick_dev = f.sys().join("devices").join(usb_dev);
    symlink(&stick_dev, stick.join("device_link_unused")).unwrap();
    fs::remove_dir_all(stick.join("device")).unwrap();
    symlink(&stick_dev, stick.join("device")).unwrap();
    fs::write(stick_dev.join("model"), "Ultra\n").unwrap();
    fs::write(stick_dev.join("vendor"), "SanDisk\n").unwrap();
    f.partition(&stick, "sdb1", "8:17");
    f.mount("8:17", "/media/me/STICK");

    f.disk(
        "pci0000:00/0000:00:14.0/usb2/2-2/2-2:1.0/host5/target5:0:0/5:0:0:0",
        "sdc",
        "8:32",
        31_116_288,
        &[("removable", "1"), ("device/model", "SD/MMC Reader")],
    );
    f.disk(
        "pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0/mmc0:aaaa",
        "mmcblk0",
        "179:0",
        15_523_840,
        &[
            ("ro", "1"),
            ("device/name", "SL16G"),
            ("device/serial", "0x1234abcd"),
        ],
    );
    f.disk(
        "virtual",
        "loop0",
        "7:0",
        4_194_304,
        &[("loop/backing_file", "/var/lib/vm/disk.img")],
    );
    f.disk("virtual", "loop1", "7:1", 0, &[]);
    f.disk("virtual", "ram0", "1:0", 8192, &[]);
    f.disk(
        "pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0",
        "sr0",
        "11:0",
        2_097_152,
        &[("removable", "1")],
    );
    f
}

#[test]
fn lists_whole_disks_and_skips_what_cannot_be_flashed() {
    let drives = laptop().list();
    let paths: Vec<&str> = drives.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/dev/loop0",
            "/dev/mmcblk0",
            "/dev/nvme0n1",
            "/dev/sdb",
            "/dev/sdc"
        ]
    );
}

#[test]
fn nvme_under_lvm_root_and_swap_is_a_system_drive() {
    let drives = laptop().list();
    let nvme = find(&drives, "/dev/nvme0n1");
    assert!(nvme.system);
    assert_eq!(nvme.bus, Bus::Nvme);
    assert!(nvme.is_fixed());
    assert_eq!(nvme.model, "Samsung SSD 980 PRO 1TB");
    assert_eq!(nvme.serial, "S5GXNF0R123456");
    assert_eq!(nvme.size, 1_000_215_216 * 512);
    assert_eq!(nvme.holders, ["dm-0", "dm-1"]);
    assert!(nvme.mountpoints.contains(&"/".to_string()));
    assert!(nvme.mountpoints.contains(&"/boot/efi".to_string()));
    assert_eq!(nvme.partitions.len(), 2);
    assert_eq!(nvme.partitions[1].holders, ["dm-0", "dm-1"]);
}

#[test]
fn swap_alone_makes_a_system_drive() {
    let mut f = laptop();
    f.mountinfo.clear();
    let drives = f.list();
    assert!(
        find(&drives, "/dev/nvme0n1").system,
        "the swap LV still sits on it"
    );
    f.swaps = "Filename\tType\tSize\tUsed\tPriority\n".into();
    assert!(!find(&f.list(), "/dev/nvme0n1").system);
}

#[test]
fn usb_stick_with_a_mounted_partition() {
    let drives = laptop().list();
    let stick = find(&drives, "/dev/sdb");
    assert_eq!(stick.bus, Bus::Usb);
    assert!(stick.removable && stick.is_removable_media() && !stick.system);
    assert_eq!(
        (stick.vendor.as_str(), stick.model.as_str()),
        ("SanDisk", "Ultra")
    );
    assert_eq!(stick.serial, "4C530001230815117463");
    assert_eq!(stick.mountpoints, ["/media/me/STICK"]);
    assert_eq!(stick.partitions[0].path, "/dev/sdb1");
    assert_eq!(stick.describe(), "SanDisk Ultra (usb, 30.8 GB)");
}

#[test]
fn sd_cards_in_a_usb_reader_and_read_only_on_the_built_in_reader() {
    let drives = laptop().list();
    let reader = find(&drives, "/dev/sdc");
    assert_eq!(reader.bus, Bus::Usb);
    assert!(reader.mountpoints.is_empty());
    let card = find(&drives, "/dev/mmcblk0");
    assert_eq!(card.bus, Bus::Mmc);
    assert!(card.read_only);
    assert!(
        card.is_removable_media(),
        "an MMC card counts as removable media"
    );
    assert_eq!(card.model, "SL16G");
    assert_eq!(card.serial, "0x1234abcd");
}

#[test]
fn loop_devices_are_marked_and_show_their_backing_file() {
    let drives = laptop().list();
    let lo = find(&drives, "/dev/loop0");
    assert_eq!(lo.bus, Bus::Loop);
    assert!(!lo.is_fixed() && !lo.is_removable_media());
    assert_eq!(
        lo.backing_file.as_deref(),
        Some(Path::new("/var/lib/vm/disk.img"))
    );
}

#[test]
fn a_mounted_lv_on_a_stick_counts_as_the_sticks_mount() {
    let mut f = laptop();
    let stick_part = f.sys().join("block/sdb/sdb1");
    f.hold(&stick_part, "dm-2");
    f.disk(
        "virtual",
        "dm-2",
        "253:2",
        1000,
        &[("dm/name", "usbvg-data")],
    );
    f.mount("253:2", "/srv/data");
    let drives = f.list();
    let stick = find(&drives, "/dev/sdb");
    assert!(stick.mountpoints.contains(&"/srv/data".to_string()));
    assert_eq!(stick.holders, ["dm-2"]);
    assert!(!stick.system);
    f.mount("253:2", "/var");
    assert!(
        find(&f.list(), "/dev/sdb").system,
        "/var on the stick's LV makes it a system drive"
    );
}

/// Two SATA disks in a partitioned md RAID whose first partition holds `/`.
#[test]
fn disks_under_a_partitioned_md_raid_holding_root_are_system_drives() {
    let mut f = Fixture::new();
    for (name, devnum) in [("sda", "8:0"), ("sdb", "8:16")] {
        let disk = f.disk(
            &format!("pci0000:00/ata1/host0/{name}"),
            name,
            devnum,
            2_000_000,
            &[],
        );
        f.hold(&disk, "md126");
    }
    let md = f.disk("virtual", "md126", "9:126", 2_000_000, &[]);
    f.partition(&md, "md126p1", "259:5");
    f.mount("259:5", "/");
    let drives = f.list();
    assert!(
        drives.iter().all(|d| d.name != "md126"),
        "the array itself is not listed"
    );
    for disk in ["/dev/sda", "/dev/sdb"] {
        assert!(find(&drives, disk).system, "{disk}");
        assert!(find(&drives, disk).mountpoints.contains(&"/".to_string()));
    }
}

/// A btrfs root shows an anonymous device (0:NN) in mountinfo: the source and the filesystem's
/// member list name the disks.
#[test]
fn a_btrfs_root_over_two_disks_makes_both_system_drives() {
    let mut f = Fixture::new();
    let nvme = f.disk("pci0000:00/nvme/nvme0", "nvme0n1", "259:0", 2_000_000, &[]);
    f.partition(&nvme, "nvme0n1p2", "259:2");
    let sata = f.disk("pci0000:00/ata1/host0/sda", "sda", "8:0", 2_000_000, &[]);
    f.partition(&sata, "sda1", "8:1");
    let other = f.disk("pci0000:00/ata2/host1/sdc", "sdc", "8:32", 2_000_000, &[]);
    let _ = other;
    let members = f.sys().join("fs/btrfs/6c8e0b6c-1234/devices");
    fs::create_dir_all(&members).unwrap();
    fs::write(members.join("nvme0n1p2"), "").unwrap();
    fs::write(members.join("sda1"), "").unwrap();
    f.mount_fs("0:26", "/", "btrfs", "/dev/nvme0n1p2");
    let drives = f.list();
    assert!(find(&drives, "/dev/nvme0n1").system);
    assert!(
        find(&drives, "/dev/sda").system,
        "the second member holds / too"
    );
    assert!(!find(&drives, "/dev/sdc").system);
}

#[test]
fn efi_firmware_nix_and_opt_mounts_and_a_swap_file_make_system_drives() {
    for at in ["/efi", "/boot/firmware", "/nix", "/opt"] {
        let mut f = Fixture::new();
        let disk = f.disk("pci0000:00/ata1/host0/sda", "sda", "8:0", 2_000_000, &[]);
        f.partition(&disk, "sda1", "8:1");
        f.mount("8:1", at);
        assert!(find(&f.list(), "/dev/sda").system, "{at}");
    }
    // A swap file: the disk under the file's filesystem is in use.
    use std::os::unix::fs::MetadataExt;
    let mut f = Fixture::new();
    let swapfile = f.dir.path().join("swapfile");
    fs::write(&swapfile, b"").unwrap();
    let dev = fs::metadata(&swapfile).unwrap().dev();
    let devnum = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let disk = f.disk("pci0000:00/ata1/host0/sda", "sda", "8:0", 2_000_000, &[]);
    f.partition(&disk, "sda2", &devnum);
    f.swaps
        .push_str(&format!("{} file 1024 0 -2\n", swapfile.display()));
    assert!(find(&f.list(), "/dev/sda").system);
}

#[test]
fn hot_plug_differences() {
    let f = laptop();
    let before = f.list();
    let mut after = before.clone();
    let removed = after.remove(3);
    let mut changed = after[0].clone();
    changed.size += 512;
    after[0] = changed.clone();
    let events = diff(&before, &after, false);
    assert_eq!(
        events,
        vec![
            DriveEvent::Removed {
                path: removed.path.clone()
            },
            DriveEvent::Changed {
                drive: Box::new(changed)
            },
        ]
    );
    let initial = diff(&[], &before, true);
    assert_eq!(initial.len(), before.len());
    assert!(initial
        .iter()
        .all(|e| matches!(e, DriveEvent::Added { .. })));
}

#[tokio::test]
async fn watch_sends_drives_as_they_come_and_go() {
    let f = laptop();
    f.list(); // writes the fixture's mount table
    let roots = SystemRoots {
        sys: f.sys(),
        proc: f.dir.path().join("proc"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watch(roots, Duration::from_millis(20), cancel.clone(), tx));
    let mut added = Vec::new();
    while added.len() < 5 {
        match rx.recv().await.unwrap() {
            DriveEvent::Added { drive } => added.push(drive.path),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(added.contains(&"/dev/sdb".to_string()));
    fs::remove_file(f.sys().join("block/sdb")).unwrap(); // the stick is pulled
    assert_eq!(
        rx.recv().await.unwrap(),
        DriveEvent::Removed {
            path: "/dev/sdb".into()
        }
    );
    cancel.cancel();
    task.await.unwrap();
}

/// Every way a drive becomes a system drive, as `list` finds it, and what the target rules
/// (`rules::unsuitable`) then say of it: refused whatever the image's size. Each case is also
/// listed without its cause first, so the cause is what makes the difference.
#[test]
fn every_system_cause_makes_the_drive_unsuitable() {
    use crate::flash::rules::unsuitable;
    const HEADER: &str = "Filename\tType\tSize\tUsed\tPriority\n";

    /// A plain SATA disk `sda` (8:0) with partitions sda1 (8:1) and sda2 (8:2), and a second
    /// disk `sdb` (8:16) that nothing touches.
    fn two_disks() -> (Fixture, PathBuf) {
        let f = Fixture::new();
        let sda = f.disk("pci0000:00/ata1/host0/sda", "sda", "8:0", 2_000_000, &[]);
        f.partition(&sda, "sda1", "8:1");
        f.partition(&sda, "sda2", "8:2");
        f.disk("pci0000:00/ata2/host1/sdb", "sdb", "8:16", 2_000_000, &[]);
        (f, sda)
    }

    /// `sda` is a system drive, refused with that reason (naming `holds`); `sdb` is not.
    fn refused(f: &Fixture, cause: &str, holds: Option<&str>) {
        let drives = f.list();
        let sda = find(&drives, "/dev/sda");
        assert!(sda.system, "{cause}: not a system drive");
        for size in [None, Some(512), Some(u64::MAX)] {
            let why = unsuitable(sda, size)
                .unwrap_or_else(|| panic!("{cause}: a system drive is suitable ({size:?})"));
            assert_eq!(why.badge, "System drive", "{cause}");
            assert!(
                why.reason.starts_with("it is a system drive (it holds "),
                "{cause}: {}",
                why.reason
            );
            if let Some(holds) = holds {
                assert!(why.reason.contains(holds), "{cause}: {}", why.reason);
            }
        }
        let sdb = find(&drives, "/dev/sdb");
        assert!(!sdb.system, "{cause}: the other disk");
        assert_eq!(unsuitable(sdb, Some(512)), None, "{cause}: the other disk");
    }

    /// Before the cause is added: nothing refuses `sda`.
    fn suitable(f: &Fixture, cause: &str) {
        let drives = f.list();
        let sda = find(&drives, "/dev/sda");
        assert!(!sda.system, "{cause}: a system drive before its cause");
        assert_eq!(unsuitable(sda, Some(512)), None, "{cause}");
    }

    // A partition mounted at any system mount point.
    for at in SYSTEM_MOUNTS {
        let (mut f, _) = two_disks();
        f.mount("8:1", "/media/me/data");
        suitable(&f, at);
        f.mount("8:2", at);
        refused(&f, &format!("a partition mounted at {at}"), Some(at));
    }

    // A filesystem on the whole disk, no partition table.
    let (mut f, _) = two_disks();
    suitable(&f, "/ on the disk itself");
    f.mount("8:0", "/");
    refused(&f, "/ on the disk itself", Some("/"));

    // Root on LVM: the partition holds dm-0, the root LV.
    let (mut f, sda) = two_disks();
    f.hold(&sda.join("sda2"), "dm-0");
    f.disk(
        "virtual",
        "dm-0",
        "253:0",
        1_000_000,
        &[("dm/name", "vg-root")],
    );
    suitable(&f, "root's LV");
    f.mount("253:0", "/");
    refused(&f, "root's LV", Some("/"));

    // Root on LVM inside dm-crypt: sda2 → dm-0 (crypt) → dm-1 (the LV), mounted at /.
    let (mut f, sda) = two_disks();
    f.hold(&sda.join("sda2"), "dm-0");
    let crypt = f.disk(
        "virtual",
        "dm-0",
        "253:0",
        1_000_000,
        &[("dm/name", "luks-1")],
    );
    f.hold(&crypt, "dm-1");
    f.disk(
        "virtual",
        "dm-1",
        "253:1",
        900_000,
        &[("dm/name", "vg-root")],
    );
    suitable(&f, "root's LV on dm-crypt");
    f.mount("253:1", "/");
    refused(&f, "root's LV on dm-crypt", Some("/"));

    // Root on a partitioned md RAID whose member is the whole disk.
    let (mut f, sda) = two_disks();
    f.hold(&sda, "md126");
    let md = f.disk("virtual", "md126", "9:126", 2_000_000, &[]);
    f.partition(&md, "md126p1", "259:5");
    suitable(&f, "root on md126p1");
    f.mount("259:5", "/");
    refused(&f, "root on md126p1", Some("/"));

    // A btrfs root (anonymous device 0:NN) over sdc and sda2, named by sdc in mountinfo: sda
    // is found through the filesystem's member list.
    let (mut f, _) = two_disks();
    f.disk("pci0000:00/ata3/host2/sdc", "sdc", "8:32", 2_000_000, &[]);
    let members = f.sys().join("fs/btrfs/0f3c-root/devices");
    fs::create_dir_all(&members).unwrap();
    fs::write(members.join("sda2"), "").unwrap();
    fs::write(members.join("sdc"), "").unwrap();
    f.mount_fs("0:30", "/srv", "btrfs", "/dev/sdc");
    suitable(&f, "a btrfs data volume on sdc and sda2");
    f.mount_fs("0:31", "/", "btrfs", "/dev/sdc");
    refused(&f, "a btrfs root on sdc and sda2", Some("/"));

    // A btrfs root on an LV, named by its mapper name in mountinfo.
    let (mut f, sda) = two_disks();
    f.hold(&sda.join("sda1"), "dm-2");
    f.disk(
        "virtual",
        "dm-2",
        "253:2",
        1_000_000,
        &[("dm/name", "vg-btrfs")],
    );
    f.mount_fs("0:32", "/", "btrfs", "/dev/mapper/vg-btrfs");
    refused(&f, "a btrfs root on /dev/mapper/vg-btrfs", Some("/"));

    // Active swap: a partition by its name.
    let (mut f, _) = two_disks();
    suitable(&f, "swap on sda2");
    f.swaps = format!("{HEADER}/dev/sda2 partition 1024 0 -2\n");
    refused(&f, "swap on sda2", Some("active swap"));

    // Active swap: the whole disk.
    let (mut f, _) = two_disks();
    f.swaps = format!("{HEADER}/dev/sda partition 1024 0 -2\n");
    refused(&f, "swap on the whole disk", Some("active swap"));

    // Active swap on an LV, listed by its mapper name or by its dm-N name.
    for listed in ["/dev/mapper/vg-swap", "/dev/dm-1"] {
        let (mut f, sda) = two_disks();
        f.hold(&sda.join("sda2"), "dm-1");
        f.disk(
            "virtual",
            "dm-1",
            "253:1",
            1_000_000,
            &[("dm/name", "vg-swap")],
        );
        suitable(&f, listed);
        f.swaps = format!("{HEADER}{listed} partition 1024 0 -2\n");
        refused(&f, &format!("swap on {listed}"), Some("active swap"));
    }

    // A swap file on a filesystem of the disk (found by the file's device number).
    use std::os::unix::fs::MetadataExt;
    let (mut f, sda) = two_disks();
    let swapfile = f.dir.path().join("swapfile");
    fs::write(&swapfile, b"").unwrap();
    let dev = fs::metadata(&swapfile).unwrap().dev();
    let devnum = format!("{}:{}", libc::major(dev), libc::minor(dev));
    f.partition(&sda, "sda3", &devnum);
    suitable(&f, "a swap file");
    f.swaps = format!("{HEADER}{} file 1024 0 -2\n", swapfile.display());
    refused(&f, "a swap file on sda3", Some("active swap"));
}
