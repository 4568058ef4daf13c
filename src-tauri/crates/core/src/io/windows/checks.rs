//! Windows' checks on an opened disk: that it is still the disk the operator chose (number,
//! serial, size, as the list recorded them), that unbuffered I/O is sector-aligned, and the
//! refusal when this user may not write drives.

use crate::error::Error;
use crate::io::identity::DriveIdentity;

/// How the disk opened (its number, serial and size as it answers now) differs from the one
/// chosen; `None` when it is the same.
pub fn drive_differs(chosen: &DriveIdentity, disk: u32, serial: &str, size: u64) -> Option<String> {
    let number = disk.to_string();
    if number != chosen.devnum {
        Some(format!("disk {number}, not disk {}", chosen.devnum))
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

/// The refusal of a drive this user may not write: on Windows, only an administrator may.
/// (Elevating from labflash itself, with one UAC prompt per flash, is yet to come.)
pub fn administrator_needed(target: &str) -> Error {
    Error::Permission {
        target: target.to_string(),
        detail: "writing a drive on Windows needs administrator rights: run labflash as administrator (right-click the terminal or the app, Run as administrator)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen() -> DriveIdentity {
        DriveIdentity {
            devnum: "2".into(),
            diskseq: None,
            serial: "4C53".into(),
            size: 30_752_000_000,
        }
    }

    #[test]
    fn the_same_disk_passes_and_each_difference_is_named() {
        let c = chosen();
        assert_eq!(drive_differs(&c, 2, "4C53", 30_752_000_000), None);
        for (disk, serial, size, why) in [
            (3, "4C53", 30_752_000_000, "disk 3, not disk 2"),
            (2, "9999", 30_752_000_000, "serial 9999, not serial 4C53"),
            (2, "", 30_752_000_000, "no serial, not serial 4C53"),
            (2, "4C53", 1_000, "1000 bytes, not 30752000000"),
        ] {
            assert_eq!(drive_differs(&c, disk, serial, size).as_deref(), Some(why));
        }
        // A stick without a serial is still told apart by its number and size.
        let bare = DriveIdentity {
            serial: String::new(),
            ..chosen()
        };
        assert_eq!(drive_differs(&bare, 2, "", 30_752_000_000), None);
        assert!(drive_differs(&bare, 2, "", 16_000_000_000).is_some());
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
        let err = administrator_needed(r"\\.\PhysicalDrive2");
        assert!(matches!(err, Error::Permission { .. }), "{err}");
        assert!(
            err.to_string().contains("run labflash as administrator"),
            "{err}"
        );
    }
}
