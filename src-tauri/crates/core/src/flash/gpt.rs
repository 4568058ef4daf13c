//! GPT surgery for "one stick for both": add a partition named `cidata` after a boot image's last
//! partition, and move the backup GPT from the image's end to the target's end (an image's backup
//! header sits where the image ends, not where the drive does).

use crate::error::{Error, Result};
use crate::fetch::digest::Sha256Digest;

const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Microsoft basic data: what FAT data partitions carry.
const BASIC_DATA: [u8; 16] = guid_bytes(
    0xEBD0A0A2,
    0xB9E5,
    0x4433,
    [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
);
/// The new partition starts on a 1 MiB boundary, as partitioning tools align them.
const ALIGN_BYTES: u64 = 1 << 20;

/// GUIDs are stored with their first three fields little-endian.
const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// What to write for one stick: the image's first sectors with the new primary GPT, where the
/// cidata partition starts, and the backup GPT for the target's last sectors.
#[derive(Clone, Debug)]
pub struct OneStick {
    pub sector: u64,
    /// Protective MBR, primary header and entries: replaces the image's first `head.len()` bytes.
    pub head: Vec<u8>,
    /// Byte offset of the cidata partition on the target.
    pub cidata_offset: u64,
    /// Backup entries followed by the backup header, written at `backup_offset`.
    pub backup: Vec<u8>,
    pub backup_offset: u64,
    /// The image's own backup GPT (entries and header), to be blanked where it survives.
    pub stale_backup: std::ops::Range<u64>,
}

struct Header {
    alternate_lba: u64,
    last_usable: u64,
    entries_lba: u64,
    entries: u32,
    entry_size: u32,
}

impl Header {
    fn parse(sector: &[u8]) -> Option<Self> {
        if &sector[..8] != SIGNATURE {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(sector[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(sector[o..o + 8].try_into().unwrap());
        Some(Self {
            alternate_lba: u64_at(32),
            last_usable: u64_at(48),
            entries_lba: u64_at(72),
            entries: u32_at(80),
            entry_size: u32_at(84),
        })
    }
}

/// The byte offset and length of partition entry `index` (0-based) of the GPT in `start` (the
/// image's first sectors), if it is in use.
pub fn partition(start: &[u8], index: usize) -> Option<(u64, u64)> {
    let sector = [512usize, 4096]
        .into_iter()
        .find(|s| start.len() >= 2 * s && &start[*s..*s + 8] == SIGNATURE)?;
    let header = Header::parse(&start[sector..2 * sector])?;
    if index >= header.entries as usize || header.entry_size < 128 {
        return None;
    }
    // Every field comes from the image: checked arithmetic, so a hostile table cannot wrap an
    // offset around (found by fuzzing: src-tauri/fuzz/regressions/gpt).
    let at = usize::try_from(header.entries_lba)
        .ok()?
        .checked_mul(sector)?
        .checked_add(index.checked_mul(header.entry_size as usize)?)?;
    let entry = start.get(at..at.checked_add(128)?)?;
    if entry[..16] == [0u8; 16] {
        return None;
    }
    let first = u64::from_le_bytes(entry[32..40].try_into().ok()?);
    let last = u64::from_le_bytes(entry[40..48].try_into().ok()?);
    let sector = sector as u64;
    let offset = first.checked_mul(sector)?;
    let len = last
        .checked_sub(first)?
        .checked_add(1)?
        .checked_mul(sector)?;
    offset.checked_add(len)?;
    Some((offset, len))
}

/// The byte offset and length of the first partition of the GPT in `start` whose name (the
/// UTF-16LE partition label, what `/dev/disk/by-partlabel/` shows) is `name`.
pub fn partition_named(start: &[u8], name: &str) -> Option<(u64, u64)> {
    let sector = [512usize, 4096]
        .into_iter()
        .find(|s| start.len() >= 2 * s && &start[*s..*s + 8] == SIGNATURE)?;
    let header = Header::parse(&start[sector..2 * sector])?;
    if header.entry_size < 128 {
        return None;
    }
    let table = usize::try_from(header.entries_lba)
        .ok()?
        .checked_mul(sector)?;
    (0..header.entries.min(1024) as usize).find_map(|index| {
        let at = table.checked_add(index.checked_mul(header.entry_size as usize)?)?;
        let entry = start.get(at..at.checked_add(128)?)?;
        let units: Vec<u16> = entry[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        (String::from_utf16(&units).ok()? == name)
            .then(|| partition(start, index))
            .flatten()
    })
}

/// The config image as the GPT names it: its length and its SHA-256 (the partition's GUID).
#[derive(Clone, Copy, Debug)]
pub struct Cidata {
    pub len: u64,
    pub sha256: Sha256Digest,
}

/// Plans the one-stick layout. `image_start` holds at least the image's first 1 MiB,
/// `image_size` is its length, `cidata` the config image, `target_size` and `sector` the target's.
pub fn plan(
    image_start: &[u8],
    image_size: u64,
    cidata: &Cidata,
    target_size: u64,
    target_sector: u64,
) -> Result<OneStick> {
    let mut table = Table::read(image_start, target_sector)?;
    let sector = table.sector;
    let s = sector as usize;
    let total = target_size / sector;
    let last_usable = total.saturating_sub(1 + table.sectors + 1);
    let first = table.add_cidata(cidata, last_usable, target_size)?;
    let table_crc = crc32fast::hash(&table.bytes);

    let header_bytes = |my_lba: u64, alternate: u64, entries_lba: u64| {
        let mut h = image_start[s..s + 92].to_vec();
        h[16..20].fill(0);
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[88..92].copy_from_slice(&table_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h.resize(s, 0);
        h
    };

    let head_len = table.start + table.sectors as usize * s;
    let mut head = image_start[..head_len].to_vec();
    // The protective MBR covers the whole target now.
    let mbr_size = (total - 1).min(u32::MAX as u64) as u32;
    if head[510..512] == [0x55, 0xAA] && head[446 + 4] == 0xEE {
        head[446 + 12..446 + 16].copy_from_slice(&mbr_size.to_le_bytes());
    }
    head[s..2 * s].copy_from_slice(&header_bytes(1, total - 1, table.header.entries_lba));
    head[table.start..table.start + table.bytes.len()].copy_from_slice(&table.bytes);

    let backup_entries_lba = total - 1 - table.sectors;
    let mut backup = table.bytes.clone();
    backup.resize(table.sectors as usize * s, 0);
    backup.extend_from_slice(&header_bytes(total - 1, 1, backup_entries_lba));

    let header = &table.header;
    let old_backup_start = header
        .alternate_lba
        .saturating_sub(table.sectors)
        .max(header.last_usable.saturating_add(1));
    Ok(OneStick {
        sector,
        head,
        cidata_offset: first * sector,
        backup,
        backup_offset: backup_entries_lba * sector,
        stale_backup: old_backup_start.saturating_mul(sector).min(image_size)
            ..header
                .alternate_lba
                .saturating_add(1)
                .saturating_mul(sector)
                .min(image_size),
    })
}

/// A boot image's GPT as [`plan`] edits it: its header and a copy of its partition entries.
struct Table {
    sector: u64,
    header: Header,
    /// Byte offset of the entries in the image.
    start: usize,
    /// The entries: `header.entries` of `header.entry_size` bytes.
    bytes: Vec<u8>,
    /// Whole sectors the entries take.
    sectors: u64,
}

fn malformed() -> Error {
    Error::BadInput("the boot image's GPT header is malformed".into())
}

impl Table {
    /// Reads the GPT in the image's first sectors. Every number in it comes from the image:
    /// checked, so a hostile table is refused rather than wrapped around (found by fuzzing).
    fn read(image_start: &[u8], target_sector: u64) -> Result<Table> {
        let no_gpt = || {
            Error::BadInput(
                "the boot image has no GPT partition table, so no cidata partition can be added to it"
                    .into(),
            )
        };
        let sector = [512u64, 4096]
            .into_iter()
            .find(|s| {
                image_start.len() as u64 >= 2 * s
                    && &image_start[*s as usize..*s as usize + 8] == SIGNATURE
            })
            .ok_or_else(no_gpt)?;
        if sector != target_sector {
            return Err(Error::BadInput(format!(
                "the boot image's GPT uses {sector}-byte sectors but the target's are {target_sector} bytes"
            )));
        }
        let s = sector as usize;
        let header = Header::parse(&image_start[s..2 * s]).ok_or_else(no_gpt)?;
        if header.entry_size < 128
            || header.entry_size > 4096
            || header.entries == 0
            || header.entries > 1024
        {
            return Err(malformed());
        }
        let table_len = header.entries as usize * header.entry_size as usize;
        let sectors = (table_len as u64).div_ceil(sector);
        // The entries follow the header (LBA 2 on), whole sectors of them inside the first MiB.
        let start = Some(header.entries_lba)
            .filter(|lba| *lba >= 2)
            .and_then(|lba| lba.checked_mul(sector))
            .and_then(|start| usize::try_from(start).ok())
            .filter(|start| start.checked_add(table_len + s).is_some())
            .ok_or_else(malformed)?;
        if start + sectors as usize * s > image_start.len() {
            return Err(Error::BadInput(
                "the boot image's GPT entries lie outside its first MiB".into(),
            ));
        }
        Ok(Table {
            sector,
            bytes: image_start[start..start + table_len].to_vec(),
            header,
            start,
            sectors,
        })
    }

    fn entry(&self, i: usize) -> &[u8] {
        let size = self.header.entry_size as usize;
        &self.bytes[i * size..(i + 1) * size]
    }

    fn used(&self, i: usize) -> bool {
        self.entry(i)[..16] != [0u8; 16]
    }

    /// Adds the cidata partition after the last one, 1 MiB aligned, in the first free slot, and
    /// returns its first sector; refused when it would end past `last_usable`.
    fn add_cidata(&mut self, cidata: &Cidata, last_usable: u64, target_size: u64) -> Result<u64> {
        let sector = self.sector;
        let entries = self.header.entries as usize;
        let last_end = (0..entries)
            .filter(|i| self.used(*i))
            .map(|i| u64::from_le_bytes(self.entry(i)[40..48].try_into().unwrap()))
            .max()
            .unwrap_or(self.header.entries_lba + self.sectors - 1);
        // Past its last partition an image holds only free space and its own backup GPT, which
        // the cidata partition may take.
        let partitions_end = last_end
            .checked_add(1)
            .and_then(|end| end.checked_mul(sector))
            .ok_or_else(malformed)?;
        let slot = (0..entries).find(|i| !self.used(*i)).ok_or_else(|| {
            Error::BadInput("the boot image's GPT has no free partition entry".into())
        })?;
        let align = ALIGN_BYTES / sector;
        let first = (partitions_end / sector).div_ceil(align) * align;
        let last = first + cidata.len.div_ceil(sector) - 1;
        if last > last_usable {
            let needed = (last.saturating_add(2) + self.sectors).saturating_mul(sector);
            let (needed, holds) = crate::io::drives::human_sizes(needed, target_size);
            return Err(Error::BadInput(format!(
                "the target has no room for the cidata partition: the boot image and the config need {needed}, the target holds {holds}"
            )));
        }
        self.write_entry(slot, first, last, cidata);
        Ok(first)
    }

    /// Fills entry `slot` with the cidata partition. Reproducible identifiers: the partition
    /// GUID comes from the config image's digest.
    fn write_entry(&mut self, slot: usize, first: u64, last: u64, cidata: &Cidata) {
        let mut unique = [0u8; 16];
        unique.copy_from_slice(&cidata.sha256.as_bytes()[..16]);
        unique[7] = (unique[7] & 0x0F) | 0x40; // version 4 (stored little-endian in field 3)
        unique[8] = (unique[8] & 0x3F) | 0x80; // RFC 4122 variant
        let size = self.header.entry_size as usize;
        let e = &mut self.bytes[slot * size..(slot + 1) * size];
        e.fill(0);
        e[..16].copy_from_slice(&BASIC_DATA);
        e[16..32].copy_from_slice(&unique);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (i, unit) in "cidata".encode_utf16().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config image of 4096 bytes of 7.
    fn sevens() -> Cidata {
        Cidata {
            len: 4096,
            sha256: Sha256Digest::of_bytes(&[7; 4096]),
        }
    }

    /// The inputs the fuzzer crashed `target` with (src-tauri/fuzz/regressions/<target>), by
    /// file name.
    fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions")
            .join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no regressions in {}", dir.display());
        inputs
    }

    /// Every image the fuzzer ever crashed `plan` with is refused, each for its own reason (one
    /// claimed a partition ending at LBA 2^64 - 1, which wrapped the cidata partition to LBA 0).
    /// A new regression needs its expected outcome here.
    #[test]
    fn fuzzer_found_images_are_refused_for_what_is_wrong_with_them() {
        const MALFORMED: &str = "the boot image's GPT header is malformed";
        const OUTSIDE: &str = "the boot image's GPT entries lie outside its first MiB";
        const SECTORS: &str =
            "the boot image's GPT uses 512-byte sectors but the target's are 4096 bytes";
        // The refusal for a 64 MiB and a 2^64-byte target of 512-byte sectors; every one of
        // these images has 512-byte sectors, so a 4096-byte target refuses them all for that.
        let expected = |name: &str| match name {
            // 41 entries of 128 bytes end 6656 bytes in; the input holds 6606.
            "entries-end-mid-sector" => OUTSIDE,
            // The entries at LBA 2^55: 2^64 bytes in.
            "entries-lba-times-sector" => MALFORMED,
            // A partition ending at LBA 2^64 - 1: the end of the partitions wraps.
            "entry-last-lba-max" => MALFORMED,
            // A partition ending at LBA 2^60: its end in bytes passes 2^64.
            "needed-bytes-times-sector" => MALFORMED,
            other => panic!("fuzz/regressions/gpt_plan/{other}: say what plan() must answer"),
        };
        for (name, bytes) in regressions("gpt_plan") {
            let cases = [
                (64u64 << 20, 512u64, expected(&name)),
                (u64::MAX, 512, expected(&name)),
                (1 << 40, 4096, SECTORS),
            ];
            for (target, sector, want) in cases {
                match plan(&bytes, bytes.len() as u64, &sevens(), target, sector) {
                    Ok(stick) => panic!(
                        "{name} on a {target}-byte target: laid out (cidata at {}), not refused",
                        stick.cidata_offset
                    ),
                    Err(Error::BadInput(why)) => {
                        assert_eq!(why, want, "{name} on a {target}-byte target")
                    }
                    Err(other) => panic!("{name} on a {target}-byte target: {other:?}"),
                }
            }
        }
    }

    /// Every input the fuzzer ever crashed `partition` with (tests/fuzz.sh) reads as no partition
    /// at any index instead of overflowing (a panic in this debug build, a wrapped offset in
    /// release): each one's table or entry points past 2^64 bytes.
    #[test]
    fn fuzzer_found_tables_have_no_partition() {
        let known = [
            "entries-lba-times-sector-overflows",
            "entry-offset-plus-128-overflows",
            "first-lba-times-sector-overflows",
            "length-plus-one-overflows",
            "length-times-sector-overflows",
            "libfuzzer-minimized-crash-0846a30f",
        ];
        for (name, bytes) in regressions("gpt") {
            assert!(
                known.contains(&name.as_str()),
                "fuzz/regressions/gpt/{name}: say what partition() must answer"
            );
            for index in [0, 1, 2, 127, usize::MAX / 2] {
                assert_eq!(partition(&bytes, index), None, "{name}, entry {index}");
            }
        }
    }

    /// The regressions above are refused for their numbers, not for failing to parse: the same
    /// table with sane numbers is read and laid out.
    #[test]
    fn a_sane_table_in_a_regression_s_shape_is_read_and_laid_out() {
        let (_, mut bytes) = regressions("gpt_plan")
            .into_iter()
            .find(|(name, _)| name == "needed-bytes-times-sector")
            .unwrap();
        // Its one partition: LBA 2048 to 2^60; make it end at LBA 4095 (1 MiB to 2 MiB).
        bytes[1024 + 40..1024 + 48].copy_from_slice(&4095u64.to_le_bytes());
        assert_eq!(partition(&bytes, 0), Some((1 << 20, 1 << 20)));
        assert_eq!(partition(&bytes, 1), None, "an empty slot");
        let stick = plan(&bytes, 2 << 20, &sevens(), 64 << 20, 512).unwrap();
        assert_eq!(
            stick.cidata_offset,
            2 << 20,
            "the next MiB after the partition"
        );
        assert_eq!(stick.backup_offset, (64 << 20) - 512 - 512);
    }
}
