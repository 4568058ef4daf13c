//! Recorded answers for the tests of the Windows decisions: byte buffers laid out as
//! ntddstor.h / winioctl.h declare them (offsets written out here, not taken from the parser).
//! STORAGE_DEVICE_DESCRIPTOR is Version@0 Size@4 DeviceType@8 DeviceTypeModifier@9
//! RemovableMedia@10 CommandQueueing@11 VendorIdOffset@12 ProductIdOffset@16
//! ProductRevisionOffset@20 SerialNumberOffset@24 BusType@28 RawPropertiesLength@32
//! RawDeviceProperties@36, 40 bytes with padding, strings after it.

use super::disks::{Machine, SystemPlaces, Volume};

/// `len` zero bytes with `fields` (offset, bytes) written in.
pub fn answer(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    for (at, value) in fields {
        bytes[*at..*at + value.len()].copy_from_slice(value);
    }
    bytes
}

/// A USB stick as USBSTOR describes it: SCSI inquiry strings padded with spaces, no serial
/// (USBSTOR often leaves SerialNumberOffset 0), removable, BusTypeUsb (7).
pub fn usb_stick() -> Vec<u8> {
    answer(
        80,
        &[
            (0, &40u32.to_le_bytes()),
            (4, &80u32.to_le_bytes()),
            (10, &[1]),
            (12, &40u32.to_le_bytes()),
            (16, &49u32.to_le_bytes()),
            (20, &66u32.to_le_bytes()),
            (28, &7u32.to_le_bytes()),
            (40, b"SanDisk \0"),
            (49, b"Cruzer Blade    \0"),
            (66, b"1.00\0"),
        ],
    )
}

/// An NVMe disk: no vendor string, a serial with NVMe's dots, fixed, BusTypeNvme (17).
pub fn nvme_disk() -> Vec<u8> {
    answer(
        96,
        &[
            (0, &40u32.to_le_bytes()),
            (4, &96u32.to_le_bytes()),
            (16, &40u32.to_le_bytes()),
            (20, &70u32.to_le_bytes()),
            (24, &80u32.to_le_bytes()),
            (28, &17u32.to_le_bytes()),
            (40, b"Samsung SSD 980 PRO 1TB\0"),
            (70, b"5B2QGXA7\0"),
            (80, b"0025_3885_91B0.\0"),
        ],
    )
}

/// STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR: Version@0 Size@4 BytesPerCacheLine@8
/// BytesOffsetForCacheAlignment@12 BytesPerLogicalSector@16 BytesPerPhysicalSector@20
/// BytesOffsetForSectorAlignment@24.
pub fn alignment(logical: u32, physical: u32) -> Vec<u8> {
    answer(
        28,
        &[
            (0, &28u32.to_le_bytes()),
            (4, &28u32.to_le_bytes()),
            (16, &logical.to_le_bytes()),
            (20, &physical.to_le_bytes()),
        ],
    )
}

/// VOLUME_DISK_EXTENTS: NumberOfDiskExtents@0, padding, then DISK_EXTENT { DiskNumber@0,
/// padding, StartingOffset@8, ExtentLength@16 } of 24 bytes each from offset 8.
pub fn extents(disks: &[u32]) -> Vec<u8> {
    let mut bytes = answer(
        8 + 24 * disks.len(),
        &[(0, &(disks.len() as u32).to_le_bytes())],
    );
    for (i, disk) in disks.iter().enumerate() {
        let at = 8 + 24 * i;
        bytes[at..at + 4].copy_from_slice(&disk.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&1_048_576u64.to_le_bytes());
        bytes[at + 16..at + 24].copy_from_slice(&(1u64 << 30).to_le_bytes());
    }
    bytes
}

/// A descriptor with `bus` (a STORAGE_BUS_TYPE), no vendor, `product` at 40 and `serial` after
/// it (SerialNumberOffset 0 when empty).
pub fn descriptor(bus: u32, removable: bool, product: &str, serial: &str) -> Vec<u8> {
    let serial_at = 41 + product.len();
    let len = serial_at + serial.len() + 1;
    let serial_offset = if serial.is_empty() {
        0
    } else {
        serial_at as u32
    };
    answer(
        len,
        &[
            (0, &40u32.to_le_bytes()),
            (4, &(len as u32).to_le_bytes()),
            (10, &[u8::from(removable)]),
            (16, &40u32.to_le_bytes()),
            (24, &serial_offset.to_le_bytes()),
            (28, &bus.to_le_bytes()),
            (40, product.as_bytes()),
            (serial_at, serial.as_bytes()),
        ],
    )
}

/// A disk as a machine answers for it.
#[derive(Clone, Default)]
pub struct Disk {
    pub descriptor: Vec<u8>,
    pub alignment: Vec<u8>,
    pub size: u64,
    pub write_protected: bool,
    /// The `STORAGE_DEVICE_NUMBER_EX` answer; empty: the IOCTL fails.
    pub number_ex: Vec<u8>,
}

/// A `STORAGE_DEVICE_NUMBER_EX`: version 1, its size (40), no flags, FILE_DEVICE_DISK (7), the
/// disk number, the device GUID, partition 0.
pub fn number_ex(disk: u32, guid: [u8; 16]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40);
    for field in [1u32, 40, 0, 7, disk] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes.extend_from_slice(&guid);
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes
}

/// A machine made of recorded answers; a disk without answers fails its IOCTLs.
#[derive(Clone, Default)]
pub struct Recorded {
    pub disks: Vec<(u32, Disk)>,
    pub volumes: Vec<Volume>,
    pub places: SystemPlaces,
}

impl Recorded {
    fn disk(&self, n: u32) -> std::io::Result<&Disk> {
        self.disks
            .iter()
            .find(|(d, _)| *d == n)
            .map(|(_, disk)| disk)
            .filter(|disk| !disk.descriptor.is_empty())
            .ok_or_else(|| std::io::Error::from_raw_os_error(1))
    }
}

impl Machine for Recorded {
    fn disk_numbers(&self) -> Vec<u32> {
        self.disks.iter().map(|(n, _)| *n).collect()
    }
    fn device_descriptor(&self, disk: u32) -> std::io::Result<Vec<u8>> {
        Ok(self.disk(disk)?.descriptor.clone())
    }
    fn alignment_descriptor(&self, disk: u32) -> std::io::Result<Vec<u8>> {
        Ok(self.disk(disk)?.alignment.clone())
    }
    fn length_info(&self, disk: u32) -> std::io::Result<Vec<u8>> {
        Ok(self.disk(disk)?.size.to_le_bytes().to_vec())
    }
    fn device_number_ex(&self, disk: u32) -> std::io::Result<Vec<u8>> {
        Some(self.disk(disk)?.number_ex.clone())
            .filter(|answer| !answer.is_empty())
            .ok_or_else(|| std::io::Error::from_raw_os_error(1))
    }
    fn write_protected(&self, disk: u32) -> bool {
        self.disk(disk).is_ok_and(|d| d.write_protected)
    }
    fn volumes(&self) -> Vec<Volume> {
        self.volumes.clone()
    }
    fn system_places(&self) -> SystemPlaces {
        self.places.clone()
    }
}

/// A laptop: Windows on an NVMe disk (0) with its EFI system partition, a SATA data disk (1)
/// holding a page file, a USB stick (2) mounted at E:\, a locked SD card (3) in the built-in
/// reader, and a disk (4) that does not answer.
pub fn laptop() -> Recorded {
    let volume = |guid: &str, device: &str, mounts: &[&str], disks: &[u32]| Volume {
        guid_path: format!(r"\\?\Volume{{{guid}}}\"),
        device: format!(r"\Device\HarddiskVolume{device}"),
        mount_paths: mounts.iter().map(|m| m.to_string()).collect(),
        extents: extents(disks),
    };
    let disk = |descriptor: Vec<u8>, size: u64| Disk {
        descriptor,
        alignment: alignment(512, 4096),
        size,
        write_protected: false,
        number_ex: Vec::new(),
    };
    let mut card = disk(descriptor(12, true, "SD Card", ""), 32_000_000_000);
    card.write_protected = true;
    Recorded {
        disks: vec![
            (0, disk(nvme_disk(), 1_000_204_886_016)),
            (
                1,
                disk(
                    descriptor(11, false, "ST2000DM008", "ZFL1"),
                    2_000_398_934_016,
                ),
            ),
            (
                2,
                Disk {
                    number_ex: number_ex(2, *b"\x5e\xed\x12\x34sandisk-stic"),
                    ..disk(usb_stick(), 30_752_000_000)
                },
            ),
            (3, card),
            (4, Disk::default()),
        ],
        volumes: vec![
            volume("esp-0", "1", &[], &[0]),
            volume("win-0", "3", &[r"C:\"], &[0]),
            volume("data-1", "4", &[r"D:\", r"C:\Data\"], &[1]),
            volume("stick-2", "7", &[r"E:\"], &[2]),
            volume("cd", "9", &[r"F:\"], &[]),
        ],
        places: SystemPlaces {
            windows_volume: Some(r"\\?\Volume{win-0}\".into()),
            boot_device: Some(r"\Device\HarddiskVolume1".into()),
            page_files: vec![(r"D:\pagefile.sys".into(), r"\\?\Volume{data-1}\".into())],
            unplaced: Vec::new(),
        },
    }
}
