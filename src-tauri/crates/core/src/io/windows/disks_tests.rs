//! The drive list and the system-disk rule, from a recorded laptop (`recorded::laptop`).

use super::*;
use crate::io::windows::recorded::laptop;

fn find(drives: &[Drive], disk: u32) -> &Drive {
    drives
        .iter()
        .find(|d| d.path == disk_path(disk))
        .unwrap_or_else(|| panic!("disk {disk} not listed"))
}

#[test]
fn lists_every_disk_that_answers_with_what_an_operator_needs() {
    let drives = list(&laptop());
    let paths: Vec<&str> = drives.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            r"\\.\PhysicalDrive0",
            r"\\.\PhysicalDrive1",
            r"\\.\PhysicalDrive2",
            r"\\.\PhysicalDrive3"
        ]
    );
    let stick = find(&drives, 2);
    assert_eq!(stick.describe(), "SanDisk Cruzer Blade (usb, 30.8 GB)");
    assert_eq!(stick.name, "PhysicalDrive2");
    assert_eq!(
        (stick.logical_block_size, stick.physical_block_size),
        (512, 4096)
    );
    assert!(stick.removable && stick.is_removable_media() && !stick.is_fixed());
    assert_eq!(stick.mountpoints, [r"E:\"]);
    assert_eq!(stick.partitions[0].path, r"\\?\Volume{stick-2}\");
    assert_eq!(
        stick.identity,
        DriveIdentity {
            devnum: "2".into(),
            diskseq: Some(
                u64::from_le_bytes(*b"\x5e\xed\x12\x34sand") ^ u64::from_le_bytes(*b"isk-stic")
            ),
            serial: String::new(),
            size: 30_752_000_000,
        }
    );
    // The card reader answers no device GUID and no serial: listed, with neither.
    assert_eq!(find(&drives, 3).identity.diskseq, None);
    let data = find(&drives, 1);
    assert_eq!((data.bus, data.serial.as_str()), (Bus::Sata, "ZFL1"));
    assert!(data.is_fixed());
    assert_eq!(data.mountpoints, [r"D:\", r"C:\Data\"]);
    let card = find(&drives, 3);
    assert!(card.read_only && card.is_removable_media() && !card.system);
}

#[test]
fn the_windows_disk_the_boot_partition_and_page_files_make_system_disks() {
    let machine = laptop();
    let drives = list(&machine);
    let system: Vec<bool> = drives.iter().map(|d| d.system).collect();
    assert_eq!(system, [true, true, false, false]);
    assert_eq!(
        system_uses(0, &machine.volumes, &machine.places),
        [
            "the EFI system partition Windows booted from",
            r"the Windows folder (C:\)"
        ]
    );
    assert_eq!(
        system_uses(1, &machine.volumes, &machine.places),
        [r"the page file D:\pagefile.sys"]
    );
    assert!(system_uses(2, &machine.volumes, &machine.places).is_empty());
}

#[test]
fn each_system_place_alone_makes_its_disk_a_system_disk() {
    // The boot partition alone (Windows and its page file elsewhere).
    let mut m = laptop();
    m.places.windows_volume = Some(r"\\?\Volume{data-1}\".into());
    m.places.page_files.clear();
    assert!(find(&list(&m), 0).system, "the EFI system partition's disk");
    // A page file on the stick makes the stick a system disk too.
    let mut m = laptop();
    m.places
        .page_files
        .push((r"E:\pagefile.sys".into(), r"\\?\Volume{stick-2}\".into()));
    assert!(find(&list(&m), 2).system);
    // A volume spanning disks 1 and 2 that holds Windows: both are system disks.
    let mut m = laptop();
    m.volumes[1].extents = crate::io::windows::recorded::extents(&[1, 2]);
    assert!(find(&list(&m), 2).system && find(&list(&m), 1).system);
}

/// A doubt about where Windows lives never makes a disk writable: then every disk, the stick
/// and the card too, is a system disk.
#[test]
fn when_anything_windows_needs_cannot_be_placed_every_disk_is_a_system_disk() {
    let every_disk = |m: &crate::io::windows::recorded::Recorded, case: &str| {
        let system: Vec<bool> = list(m).iter().map(|d| d.system).collect();
        assert_eq!(system, [true, true, true, true], "{case}");
        assert!(doubt(m, &m.volumes, &m.places).is_some(), "{case}");
    };
    let mut m = laptop();
    m.places = SystemPlaces::default();
    every_disk(&m, "Windows not found");
    // Found, but its volume's disks unreadable (as under Wine).
    let mut m = laptop();
    m.volumes[1].extents.clear();
    every_disk(&m, "Windows' volume on no disk");
    let mut m = laptop();
    m.places.boot_device = None;
    every_disk(&m, "no SystemPartition");
    let mut m = laptop();
    m.places.boot_device = Some(r"\Device\HarddiskVolume99".into());
    every_disk(&m, "the boot partition on no known volume");
    let mut m = laptop();
    m.places
        .unplaced
        .push(r"the page file X:\pagefile.sys".into());
    every_disk(&m, "a page file on no known volume");
    // Windows on a VHD (bus FileBackedVirtual): its host disk is not known.
    let mut m = laptop();
    m.disks[0].1.descriptor =
        crate::io::windows::recorded::descriptor(15, false, "Virtual Disk", "");
    every_disk(&m, "Windows on a VHD");
    assert!(doubt(&laptop(), &laptop().volumes, &laptop().places).is_none());
}

/// Windows' names are case-insensitive: a volume named in another case is the same volume.
#[test]
fn system_places_named_in_another_case_are_found() {
    let mut m = laptop();
    m.places.windows_volume = Some(r"\\?\VOLUME{WIN-0}\".into());
    m.places.boot_device = Some(r"\DEVICE\HARDDISKVOLUME1".into());
    m.places.page_files = vec![(r"D:\pagefile.sys".into(), r"\\?\volume{DATA-1}\".into())];
    let system: Vec<bool> = list(&m).iter().map(|d| d.system).collect();
    assert_eq!(system, [true, true, false, false]);
    assert_eq!(system_uses(0, &m.volumes, &m.places).len(), 2);
}

#[test]
fn disk_paths_are_read_exactly() {
    assert_eq!(disk_number(r"\\.\PhysicalDrive2"), Some(2));
    assert_eq!(disk_number(r"\\.\physicaldrive12"), Some(12));
    for not in [
        r"\\.\PhysicalDrive",
        r"\\.\PhysicalDrive2x",
        r"\\.\PhysicalDrive-1",
        r"\\.\PhysicalDrive 2",
        r"\\?\PhysicalDrive2",
        r"\\.\PhysicalDrive99999999999",
        r"C:\PhysicalDrive2",
        r"\\.\E:",
        "",
    ] {
        assert_eq!(disk_number(not), None, "{not}");
    }
    assert_eq!(disk_path(7), r"\\.\PhysicalDrive7");
}

#[test]
fn volumes_on_a_disk_and_disks_under_a_volume() {
    let m = laptop();
    assert_eq!(
        volumes_on(0, &m.volumes),
        [r"\\?\Volume{esp-0}\", r"\\?\Volume{win-0}\"]
    );
    assert!(volumes_on(4, &m.volumes).is_empty());
    assert_eq!(disks_of_volume(r"\\?\VOLUME{STICK-2}\", &m.volumes), [2]);
    assert!(disks_of_volume(r"\\?\Volume{cd}\", &m.volumes).is_empty());
    assert_eq!(page_file_path(r"\??\C:\pagefile.sys"), r"C:\pagefile.sys");
    assert_eq!(page_file_path(r"C:\pagefile.sys"), r"C:\pagefile.sys");
}
