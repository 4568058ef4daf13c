//! Parsing of recorded answers (see `recorded.rs` for their layouts).

use super::*;
use crate::io::windows::recorded::{alignment, answer, extents, nvme_disk, usb_stick};

#[test]
fn a_usb_stick_is_named_trimmed_and_removable_without_a_serial() {
    let d = device_descriptor(&usb_stick()).unwrap();
    assert_eq!(
        d,
        DeviceDescriptor {
            vendor: "SanDisk".into(),
            product: "Cruzer Blade".into(),
            serial: String::new(),
            removable: true,
            bus: Bus::Usb,
        }
    );
}

#[test]
fn an_nvme_disk_is_fixed_with_its_serial() {
    let d = device_descriptor(&nvme_disk()).unwrap();
    assert_eq!(d.vendor, "");
    assert_eq!(d.product, "Samsung SSD 980 PRO 1TB");
    assert_eq!(d.serial, "0025_3885_91B0.");
    assert!(!d.removable);
    assert_eq!(d.bus, Bus::Nvme);
}

#[test]
fn buses_windows_names_map_to_ours() {
    let with_bus = |code: u32| {
        let mut bytes = usb_stick();
        bytes[28..32].copy_from_slice(&code.to_le_bytes());
        device_descriptor(&bytes).unwrap().bus
    };
    // BusTypeSd 12, BusTypeMmc 13, BusTypeSata 11, BusTypeAta 3, BusTypeVirtual 14,
    // BusTypeFileBackedVirtual 15 (an attached VHD), BusTypeScsi 1, BusTypeSpaces 16.
    assert_eq!(with_bus(12), Bus::Mmc);
    assert_eq!(with_bus(13), Bus::Mmc);
    assert_eq!(with_bus(11), Bus::Sata);
    assert_eq!(with_bus(3), Bus::Sata);
    assert_eq!(with_bus(14), Bus::Virtual);
    assert_eq!(with_bus(15), Bus::Virtual);
    assert_eq!(with_bus(1), Bus::Other);
    assert_eq!(
        with_bus(16),
        Bus::Virtual,
        "Storage Spaces: its disks are a pool's"
    );
}

#[test]
fn short_or_inconsistent_answers_are_errors_or_empty_never_panics() {
    let err = device_descriptor(&usb_stick()[..20]).unwrap_err();
    assert!(err.to_string().contains("20 bytes"), "{err}");
    // A serial offset past the end of the answer: no serial, not a crash.
    let mut bytes = usb_stick();
    bytes[24..28].copy_from_slice(&500u32.to_le_bytes());
    assert_eq!(device_descriptor(&bytes).unwrap().serial, "");
    // A string without its NUL runs to the end of the answer.
    let mut bytes = usb_stick();
    bytes.truncate(53);
    assert_eq!(device_descriptor(&bytes).unwrap().product, "Cruz");
}

#[test]
fn sector_sizes_of_512e_and_4kn_disks() {
    assert_eq!(sector_sizes(&alignment(512, 4096)).unwrap(), (512, 4096));
    assert_eq!(sector_sizes(&alignment(4096, 4096)).unwrap(), (4096, 4096));
    for (l, p) in [(0, 512), (520, 4096), (4096, 512)] {
        let err = sector_sizes(&alignment(l, p)).unwrap_err();
        assert!(
            err.to_string().contains(&format!("{l}-byte logical")),
            "{err}"
        );
    }
    assert!(sector_sizes(&alignment(512, 512)[..24]).is_err());
}

#[test]
fn lengths_and_device_numbers() {
    // GET_LENGTH_INFORMATION: one LARGE_INTEGER.
    let size: u64 = 30_752_000_000;
    assert_eq!(length(&size.to_le_bytes()).unwrap(), size);
    assert!(length(&[0; 7]).is_err());
    // STORAGE_DEVICE_NUMBER: DeviceType@0 (FILE_DEVICE_DISK 7), DeviceNumber@4, PartitionNumber@8.
    let number = answer(
        12,
        &[
            (0, &7u32.to_le_bytes()),
            (4, &2u32.to_le_bytes()),
            (8, &[0xff; 4]),
        ],
    );
    assert_eq!(device_number(&number).unwrap(), 2);
    assert!(device_number(&number[..8]).is_err());
}

/// One extent written out byte by byte, then two as `recorded::extents` lays them out.
#[test]
fn the_disks_a_volume_lies_on() {
    let one = answer(
        32,
        &[
            (0, &1u32.to_le_bytes()),
            (8, &2u32.to_le_bytes()),
            (16, &1_048_576u64.to_le_bytes()),
            (24, &(1u64 << 30).to_le_bytes()),
        ],
    );
    assert_eq!(disk_extents(&one).unwrap(), [2]);
    assert_eq!(disk_extents(&extents(&[0, 3])).unwrap(), [0, 3]);
    // A count the answer does not hold.
    assert!(disk_extents(&one[..31]).is_err());
    let mut lying = one.clone();
    lying[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(disk_extents(&lying).is_err());
}

#[test]
fn multi_strings_split_at_nuls() {
    let units: Vec<u16> = "\\??\\C:\\pagefile.sys\0\\??\\D:\\swapfile.sys\0\0"
        .encode_utf16()
        .collect();
    assert_eq!(
        multi_string(&units),
        ["\\??\\C:\\pagefile.sys", "\\??\\D:\\swapfile.sys"]
    );
    assert!(multi_string(&[0, 0]).is_empty());
}

#[test]
fn a_device_guid_is_read_folded_and_none_when_zero() {
    use crate::io::windows::recorded::number_ex;
    let guid = *b"0123456789abcdef";
    let folded = u64::from_le_bytes(*b"01234567") ^ u64::from_le_bytes(*b"89abcdef");
    assert_eq!(device_guid(&number_ex(2, guid)).unwrap(), Some(folded));
    assert_eq!(device_guid(&number_ex(2, [0; 16])).unwrap(), None);
    assert!(device_guid(&number_ex(2, guid)[..30]).is_err());
}

#[test]
fn a_geometry_s_sector_size_is_read_and_nonsense_refused() {
    let geometry = |sector: u32| {
        let mut bytes = vec![0u8; 32];
        bytes[20..24].copy_from_slice(&sector.to_le_bytes());
        bytes
    };
    assert_eq!(geometry_sector(&geometry(4096)).unwrap(), 4096);
    assert_eq!(geometry_sector(&geometry(512)).unwrap(), 512);
    assert!(geometry_sector(&geometry(0)).is_err());
    assert!(geometry_sector(&geometry(520)).is_err());
    assert!(geometry_sector(&geometry(4096)[..22]).is_err());
}
