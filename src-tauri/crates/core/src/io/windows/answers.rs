//! Windows' answers to the disk and volume IOCTLs, read from the bytes `DeviceIoControl` fills in
//! (little-endian, the C layouts of winioctl.h / ntddstor.h). Plain parsing, so it is tested on
//! any system against recorded answers; a short or inconsistent answer is an error, never a panic.

use std::io;

use crate::io::drives::Bus;

/// What `IOCTL_STORAGE_QUERY_PROPERTY` with `StorageDeviceProperty` says of a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceDescriptor {
    pub vendor: String,
    pub product: String,
    pub serial: String,
    pub removable: bool,
    pub bus: Bus,
}

/// Parses a `STORAGE_DEVICE_DESCRIPTOR`: fixed fields, then NUL-terminated ASCII strings at the
/// offsets it gives (0 when the device has none).
pub fn device_descriptor(bytes: &[u8]) -> io::Result<DeviceDescriptor> {
    if bytes.len() < 36 {
        return Err(short("STORAGE_DEVICE_DESCRIPTOR", bytes.len()));
    }
    let text = |at: usize| string_at(bytes, u32_at(bytes, at) as usize);
    Ok(DeviceDescriptor {
        vendor: text(12),
        product: text(16),
        serial: text(24),
        removable: bytes[10] != 0,
        bus: bus(u32_at(bytes, 28)),
    })
}

/// The bus from `STORAGE_BUS_TYPE`.
fn bus(code: u32) -> Bus {
    match code {
        7 => Bus::Usb,
        12 | 13 => Bus::Mmc,
        17 => Bus::Nvme,
        2 | 3 | 11 => Bus::Sata,
        // Virtual, FileBackedVirtual (a VHD), Spaces.
        14..=16 => Bus::Virtual,
        _ => Bus::Other,
    }
}

/// The logical and physical sector sizes from a `STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR`.
pub fn sector_sizes(bytes: &[u8]) -> io::Result<(u32, u32)> {
    if bytes.len() < 28 {
        return Err(short("STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR", bytes.len()));
    }
    let (logical, physical) = (u32_at(bytes, 16), u32_at(bytes, 20));
    if !logical.is_power_of_two() || logical < 512 || physical < logical {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the disk reports {logical}-byte logical and {physical}-byte physical sectors"),
        ));
    }
    Ok((logical, physical))
}

/// The sector size from a `DISK_GEOMETRY_EX` (its `DISK_GEOMETRY`'s `BytesPerSector`, at 20):
/// what a disk that does not answer the alignment query still says.
pub fn geometry_sector(bytes: &[u8]) -> io::Result<u32> {
    let raw = bytes
        .get(20..24)
        .ok_or_else(|| short("DISK_GEOMETRY_EX", bytes.len()))?;
    let sector = u32::from_le_bytes(raw.try_into().expect("4 bytes"));
    if !sector.is_power_of_two() || sector < 512 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the disk reports {sector}-byte sectors"),
        ));
    }
    Ok(sector)
}

/// The size in bytes from a `GET_LENGTH_INFORMATION`.
pub fn length(bytes: &[u8]) -> io::Result<u64> {
    let raw = bytes
        .get(..8)
        .ok_or_else(|| short("GET_LENGTH_INFORMATION", bytes.len()))?;
    Ok(u64::from_le_bytes(raw.try_into().expect("8 bytes")))
}

/// The disk number from a `STORAGE_DEVICE_NUMBER` (type, number, partition).
pub fn device_number(bytes: &[u8]) -> io::Result<u32> {
    if bytes.len() < 12 {
        return Err(short("STORAGE_DEVICE_NUMBER", bytes.len()));
    }
    Ok(u32_at(bytes, 4))
}

/// The device's GUID from a `STORAGE_DEVICE_NUMBER_EX` (version, size, flags, type, number,
/// then the GUID at 20), folded to 64 bits; `None` when it is all zeros. Windows derives it from
/// the device's unique id, or its vendor, product and serial, and makes a random one for a
/// device that has none: another stick given the same disk number has another GUID.
pub fn device_guid(bytes: &[u8]) -> io::Result<Option<u64>> {
    let guid = bytes
        .get(20..36)
        .ok_or_else(|| short("STORAGE_DEVICE_NUMBER_EX", bytes.len()))?;
    if guid.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let half = |h: &[u8]| u64::from_le_bytes(h.try_into().expect("8 bytes"));
    Ok(Some(half(&guid[..8]) ^ half(&guid[8..])))
}

/// The disks a volume lies on, from a `VOLUME_DISK_EXTENTS`: a count, then 24-byte extents
/// (disk number, padding, start, length) from offset 8. Several for a volume that spans disks.
pub fn disk_extents(bytes: &[u8]) -> io::Result<Vec<u32>> {
    if bytes.len() < 8 {
        return Err(short("VOLUME_DISK_EXTENTS", bytes.len()));
    }
    let count = u32_at(bytes, 0) as usize;
    let needed = count.checked_mul(24).and_then(|n| n.checked_add(8));
    if needed.is_none_or(|n| bytes.len() < n) {
        return Err(short("VOLUME_DISK_EXTENTS", bytes.len()));
    }
    Ok((0..count).map(|i| u32_at(bytes, 8 + 24 * i)).collect())
}

/// The strings of a `REG_MULTI_SZ` value as UTF-16 units: each NUL-terminated, an empty one last.
pub fn multi_string(units: &[u16]) -> Vec<String> {
    units
        .split(|u| *u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The NUL-terminated string at `offset`, trimmed (vendors pad with spaces); empty for offset 0
/// or one outside the answer.
fn string_at(bytes: &[u8], offset: usize) -> String {
    if offset == 0 || offset >= bytes.len() {
        return String::new();
    }
    let tail = &bytes[offset..];
    let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).trim().to_string()
}

fn short(what: &str, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("Windows answered {len} bytes, too few for a {what}"),
    )
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
