//! Windows' checks on an opened disk: that it is still the disk the operator chose (number,
//! serial, size, as the list recorded them), that unbuffered I/O is sector-aligned, and the
//! refusal when this user may not write drives.

use crate::error::Error;
use crate::io::identity::DriveIdentity;

/// How the disk opened (its number, device GUID, serial and size as it answers now) differs from
/// the one chosen; `None` when it is the same. A disk listed with neither a serial nor a GUID
/// could not be told from another given its number, and is refused.
pub fn drive_differs(
    chosen: &DriveIdentity,
    disk: u32,
    guid: Option<u64>,
    serial: &str,
    size: u64,
) -> Option<String> {
    let number = disk.to_string();
    if number != chosen.devnum {
        Some(format!("disk {number}, not disk {}", chosen.devnum))
    } else if chosen.diskseq.is_none() && chosen.serial.is_empty() {
        Some("it has neither a serial nor a device GUID, so another disk given its number could not be told from it".into())
    } else if chosen.diskseq.is_some() && guid != chosen.diskseq {
        Some("another device (its device GUID is not the one listed)".into())
    } else if serial != chosen.serial {
        let named = |s: &str| {
            if s.is_empty() {
                "no serial".to_string()
            } else {
                format!("serial {s}")
            }
        };
        Some(format!("{}, not {}", named(serial), named(&chosen.serial)))
    } else if size != chosen.size {
        Some(format!("{size} bytes, not {}", chosen.size))
    } else {
        None
    }
}

/// Why an unbuffered transfer of `len` bytes at `offset` from the buffer at address `addr`
/// would be refused on a disk of `sector`-byte sectors (Windows wants all three multiples of it).
pub fn unaligned(addr: usize, len: usize, offset: u64, sector: u32) -> Option<String> {
    let s = u64::from(sector.max(1));
    let what = if !offset.is_multiple_of(s) {
        format!("offset {offset}")
    } else if !(len as u64).is_multiple_of(s) {
        format!("length {len}")
    } else if !(addr as u64).is_multiple_of(s) {
        format!("buffer address {addr:#x}")
    } else {
        return None;
    };
    Some(format!(
        "unbuffered I/O needs whole {sector}-byte sectors, and the {what} is not a multiple of {sector}"
    ))
}

/// How much of a read of `len` bytes at `offset` lies on a disk of `capacity` bytes: Windows
/// fails a read that passes a disk's end where Linux returns what there is, and a read-back
/// rounded up to 4 KiB (a backup GPT in a disk's last sectors) may pass it.
pub fn on_disk(len: usize, offset: u64, capacity: u64) -> usize {
    capacity.saturating_sub(offset).min(len as u64) as usize
}

/// The refusal of a drive this user may not read (a `verify` of a disk), or write where the
/// elevated helper was not asked (a disk that refused after it looked writable): on Windows,
/// only an administrator may.
pub fn administrator_needed(target: &str, reading: bool) -> Error {
    let what = if reading { "reading" } else { "writing" };
    Error::Permission {
        target: target.to_string(),
        detail: format!("{what} a drive on Windows needs administrator rights: run labflash as administrator (right-click the terminal or the app, Run as administrator)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_past_a_disk_s_end_is_cut_to_it() {
        let disk = 30_752_000_000;
        assert_eq!(on_disk(20_480, disk - 16_896, disk), 16_896);
        assert_eq!(on_disk(4096, disk - 8192, disk), 4096);
        assert_eq!(on_disk(4096, disk, disk), 0);
        assert_eq!(on_disk(4096, disk + 512, disk), 0);
    }

    fn chosen() -> DriveIdentity {
        DriveIdentity {
            devnum: "2".into(),
            diskseq: Some(0x5eed_1234),
            serial: "4C53".into(),
            size: 30_752_000_000,
        }
    }

    #[test]
    fn the_same_disk_passes_and_each_difference_is_named() {
        let c = chosen();
        let guid = c.diskseq;
        assert_eq!(drive_differs(&c, 2, guid, "4C53", 30_752_000_000), None);
        for (disk, guid, serial, size, why) in [
            (3, guid, "4C53", 30_752_000_000, "disk 3, not disk 2"),
            (
                2,
                Some(7),
                "4C53",
                30_752_000_000,
                "another device (its device GUID is not the one listed)",
            ),
            (
                2,
                None,
                "4C53",
                30_752_000_000,
                "another device (its device GUID is not the one listed)",
            ),
            (
                2,
                guid,
                "9999",
                30_752_000_000,
                "serial 9999, not serial 4C53",
            ),
            (2, guid, "", 30_752_000_000, "no serial, not serial 4C53"),
            (2, guid, "4C53", 1_000, "1000 bytes, not 30752000000"),
        ] {
            assert_eq!(
                drive_differs(&c, disk, guid, serial, size).as_deref(),
                Some(why)
            );
        }
        // A stick without a serial (most USB sticks) is told apart by its device GUID: another
        // stick of the same size given its number has another.
        let bare = DriveIdentity {
            serial: String::new(),
            ..chosen()
        };
        assert_eq!(drive_differs(&bare, 2, guid, "", 30_752_000_000), None);
        assert!(drive_differs(&bare, 2, Some(99), "", 30_752_000_000).is_some());
        // With neither, it cannot be: refused.
        let nameless = DriveIdentity {
            diskseq: None,
            ..bare
        };
        let refused = drive_differs(&nameless, 2, None, "", 30_752_000_000).unwrap();
        assert!(
            refused.contains("neither a serial nor a device GUID"),
            "{refused}"
        );
    }

    #[test]
    fn unbuffered_transfers_must_be_whole_sectors() {
        assert_eq!(unaligned(0x10000, 1 << 20, 4096, 512), None);
        assert_eq!(unaligned(0x10000, 4096, 8192, 4096), None);
        assert_eq!(
            unaligned(0x10000, 4096, 512, 4096).unwrap(),
            "unbuffered I/O needs whole 4096-byte sectors, and the offset 512 is not a multiple of 4096"
        );
        assert!(unaligned(0x10000, 4000, 0, 512)
            .unwrap()
            .contains("length 4000"));
        assert!(unaligned(0x10001, 512, 0, 512)
            .unwrap()
            .contains("buffer address 0x10001"));
    }

    #[test]
    fn the_elevation_refusal_says_what_to_do() {
        let err = administrator_needed(r"\\.\PhysicalDrive2", false);
        assert!(matches!(err, Error::Permission { .. }), "{err}");
        assert!(
            err.to_string().contains("writing a drive")
                && err.to_string().contains("run labflash as administrator"),
            "{err}"
        );
        let reading = administrator_needed(r"\\.\PhysicalDrive2", true).to_string();
        assert!(reading.contains("reading a drive"), "{reading}");
    }
}
