//! What an image is, from its decoded bytes: a disk (MBR or GPT), an ISO 9660 image (hybrid, so
//! it boots from USB, or plain), or something that is not a disk image at all and must not be
//! written raw (a virtual-machine disk, an EFI executable, a filesystem, an archive: a tar or zip
//! is classified here, but one holding a disk image is unwrapped first by `fetch::unwrap`, so its
//! refusal applies only where that did not happen: a tar or zip nested inside one). Pure: it
//! reads the bytes it is given ([`HEAD`] bytes from the start and, for a fixed VHD, the last
//! 512), never a file or a device of its own.
//!
//! Every layout below is read from the format's own specification, named where it is used.

use std::io::Read;

/// How many bytes from the image's start [`classify`] looks at: up to ECMA-119's first volume
/// descriptor (logical sector 16 of 2048 bytes) with room to spare.
pub const HEAD: usize = 64 << 10;

/// How many bytes from the image's end a fixed VHD's footer takes (see [`vhd_footer_at_end`]).
pub const TAIL: usize = 512;

/// What an image is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// A disk with a GUID partition table.
    Gpt,
    /// A disk with an MBR partition table (and no GPT).
    Mbr,
    /// An ISO 9660 image that also carries an MBR or GPT, so it boots from a USB stick.
    #[serde(rename = "iso9660-hybrid")]
    Iso9660Hybrid,
    /// An ISO 9660 image with no MBR or GPT: it boots as a CD, not from a stick.
    Iso9660,
    /// A FAT filesystem with no partition table (a "superfloppy"): a cidata config volume, or
    /// a UEFI boot volume, which firmware reads from removable media as it is.
    Fat,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    /// A PE/COFF executable: an EFI application (a Talos `…-uki.efi`) or a Windows program.
    PeExecutable,
    Squashfs,
    /// A tar or zip archive: the decoded stream of one holding a disk image is unwrapped before
    /// it is classified (`fetch::unwrap`), so these kinds are those of an archive inside it.
    Tar,
    Zip,
    /// No partition table and no layout known here.
    Unknown,
}

impl ImageKind {
    /// The name `--json` and the app use (`"gpt"`, `"iso9660-hybrid"`, …).
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Gpt => "gpt",
            ImageKind::Mbr => "mbr",
            ImageKind::Iso9660Hybrid => "iso9660-hybrid",
            ImageKind::Iso9660 => "iso9660",
            ImageKind::Fat => "fat",
            ImageKind::Qcow2 => "qcow2",
            ImageKind::Vmdk => "vmdk",
            ImageKind::Vhd => "vhd",
            ImageKind::Vhdx => "vhdx",
            ImageKind::PeExecutable => "pe-executable",
            ImageKind::Squashfs => "squashfs",
            ImageKind::Tar => "tar",
            ImageKind::Zip => "zip",
            ImageKind::Unknown => "unknown",
        }
    }

    /// Why an image of this kind is not written, and what to do instead: one sentence naming
    /// `what` (the image as the operator named it). `None` for what can be written. A tar or zip
    /// reaches this only when it was not unwrapped (an archive inside the one that was).
    pub fn refusal(self, what: &str) -> Option<String> {
        let vm = |name: &str, qemu: &str| {
            format!(
                "{what} is a {name} virtual-machine disk, not a raw disk image, and is not written to a drive: use the publisher's raw image (from the Talos Image Factory the metal-… or nocloud-…raw.xz asset), or convert it with `qemu-img convert -f {qemu} -O raw IMAGE disk.raw` and flash disk.raw"
            )
        };
        Some(match self {
            ImageKind::Gpt
            | ImageKind::Mbr
            | ImageKind::Iso9660Hybrid
            | ImageKind::Iso9660
            | ImageKind::Fat
            | ImageKind::Unknown => return None,
            ImageKind::Qcow2 => vm("qcow2", "qcow2"),
            ImageKind::Vmdk => vm("VMDK (VMware)", "vmdk"),
            ImageKind::Vhd => vm("VHD (Virtual PC, Hyper-V, Azure)", "vpc"),
            ImageKind::Vhdx => vm("VHDX (Hyper-V)", "vhdx"),
            ImageKind::PeExecutable => format!(
                "{what} is a PE executable (an EFI application such as Talos's …-uki.efi, or a Windows program), not a disk image, and is not written to a drive: firmware starts it from a FAT EFI system partition; flash the publisher's disk image instead (for Talos the metal-… or nocloud-…raw.xz, or the .iso)"
            ),
            ImageKind::Squashfs => format!(
                "{what} is a squashfs filesystem, not a disk image, and is not written to a drive: no firmware boots it from a drive; flash the publisher's disk image (raw or iso) instead"
            ),
            ImageKind::Tar => format!(
                "{what} is a tar archive, not a disk image, and is not written to a drive as it is: extract the image from it (`tar -xf ARCHIVE`) and flash that file"
            ),
            ImageKind::Zip => format!(
                "{what} is a zip archive, not a disk image, and is not written to a drive as it is: extract the image from it (`unzip ARCHIVE`) and flash that file"
            ),
        })
    }

    /// What the operator should know before writing an image of this kind, if anything.
    pub fn warning(self) -> Option<String> {
        match self {
            ImageKind::Unknown => Some(
                "the image has no partition table (no MBR or GPT) and no layout labflash knows: the drive will most likely not boot, and may not be recognised; make sure this is the image you meant".into(),
            ),
            ImageKind::Iso9660 => Some(
                "the image is an ISO 9660 (CD) image without an MBR or GPT: a drive written with it will not boot from USB; use the publisher's hybrid (USB) image if it has one".into(),
            ),
            _ => None,
        }
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies an image from its first bytes (`head`, [`HEAD`] of them or the whole image if it
/// is shorter). A fixed VHD is told only by its end: see [`vhd_footer_at_end`].
pub fn classify(head: &[u8]) -> ImageKind {
    let at = |offset: usize, magic: &[u8]| {
        head.get(offset..offset + magic.len())
            .is_some_and(|b| b == magic)
    };
    // QEMU, docs/interop/qcow2.txt, "Header": bytes 0-3 `magic: QCOW magic string ("QFI\xfb")`.
    if at(0, b"QFI\xfb") {
        return ImageKind::Qcow2;
    }
    // VMware, "Virtual Disk Format 1.1": a hosted sparse extent starts with its header, whose
    // `magicNumber` is SPARSE_MAGICNUMBER 0x564d444b, "KDMV" in the file's little-endian bytes
    // (streamOptimized too); an ESXi sparse extent with "COWD"; a descriptor file with the
    // line `# Disk DescriptorFile`.
    if at(0, b"KDMV") || at(0, b"COWD") || at(0, b"# Disk DescriptorFile") {
        return ImageKind::Vmdk;
    }
    // MS-VHDX 2.2.1 "File Type Identifier": `Signature` (8 bytes) at offset 0 is "vhdxfile".
    if at(0, b"vhdxfile") {
        return ImageKind::Vhdx;
    }
    // Microsoft, "Virtual Hard Disk Image Format Specification" 1.0, "Hard Disk Footer Format":
    // the footer's `Cookie` is "conectix"; a dynamic or differencing disk keeps "a copy of the
    // hard disk footer" at the file's start.
    if at(0, b"conectix") {
        return ImageKind::Vhd;
    }
    // squashfs (Linux fs/squashfs/squashfs_fs.h, squashfs-tools): `SQUASHFS_MAGIC` 0x73717368
    // as the superblock's first field, little-endian "hsqs" (big-endian images: "sqsh").
    if at(0, b"hsqs") || at(0, b"sqsh") {
        return ImageKind::Squashfs;
    }
    // Microsoft, "PE Format" (the PE/COFF specification UEFI images follow, UEFI 2.10 section
    // 2.1.1): an MS-DOS stub starting "MZ" whose offset 0x3c holds the file offset of the
    // signature "PE\0\0".
    if at(0, b"MZ") {
        if let Some(pe) = head.get(0x3c..0x40) {
            let pe = u32::from_le_bytes(pe.try_into().expect("4 bytes")) as usize;
            if at(pe, b"PE\0\0") {
                return ImageKind::PeExecutable;
            }
        }
    }
    // PKWARE, APPNOTE.TXT 4.3.7: a local file header starts with the signature 0x04034b50
    // ("PK\x03\x04"); an empty archive is only its end of central directory, 0x06054b50
    // (4.3.16).
    if at(0, b"PK\x03\x04") || at(0, b"PK\x05\x06") {
        return ImageKind::Zip;
    }
    // POSIX (pax, "ustar Interchange Format"): the header's `magic` field at offset 257 is
    // "ustar" followed by NUL (then `version` "00"); GNU tar writes "ustar  \0" there.
    if at(257, b"ustar") {
        return ImageKind::Tar;
    }
    let table = partition_table(head);
    // ECMA-119 (ISO 9660) 6.2.1 and 8.1: the volume descriptor set starts at logical sector 16
    // (2048-byte sectors, byte 32768); each descriptor's bytes 2-6 (1-based) are the standard
    // identifier "CD001", so at byte 0x8001.
    if at(0x8001, b"CD001") {
        return match table {
            Some(_) => ImageKind::Iso9660Hybrid,
            None => ImageKind::Iso9660,
        };
    }
    match table {
        Some(kind) => kind,
        None if fat_boot_sector(head) => ImageKind::Fat,
        None => ImageKind::Unknown,
    }
}

/// Whether `head` starts with a FAT boot sector. Microsoft, "FAT: General Overview of On-Disk
/// Format" 1.03, section 3.1: `BS_jmpBoot` is EB ?? 90 or E9 ?? ??; `BPB_BytsPerSec` (offset 11,
/// little-endian) 512, 1024, 2048 or 4096; `BPB_SecPerClus` (offset 13) a power of two up to
/// 128; `BPB_NumFATs` (offset 16) at least 1; and 0x55 0xAA at bytes 510 and 511.
fn fat_boot_sector(head: &[u8]) -> bool {
    let Some(sector) = head.get(..512) else {
        return false;
    };
    let jump = (sector[0] == 0xEB && sector[2] == 0x90) || sector[0] == 0xE9;
    let bytes_per_sector = u16::from_le_bytes([sector[11], sector[12]]);
    let per_cluster = sector[13];
    jump && matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && per_cluster.is_power_of_two()
        && sector[16] >= 1
        && sector[510..512] == [0x55, 0xAA]
}

/// A GPT or an MBR partition table at the start of `head`, if it has one.
fn partition_table(head: &[u8]) -> Option<ImageKind> {
    // UEFI 2.10, 5.3.2 "GPT Header": at LBA 1, `Signature` "EFI PART"; LBA 1 is byte 512 on a
    // disk of 512-byte sectors, 4096 on a 4Kn one.
    if [512, 4096]
        .iter()
        .any(|&lba1| head.get(lba1..lba1 + 8) == Some(b"EFI PART"))
    {
        return Some(ImageKind::Gpt);
    }
    // UEFI 2.10, 5.2.1 "Legacy Master Boot Record": `Signature` 0xAA55 at byte 510 (bytes 0x55,
    // 0xAA) and four 16-byte partition records at byte 446, each with a `BootIndicator` of
    // 0x00 or 0x80 and `OSType` 0 for an unused record. A FAT or NTFS boot sector ends with
    // 0xAA55 too, but holds boot code where the records are: at least one used record and only
    // valid boot indicators tell an MBR.
    if head.get(510..512) != Some(&[0x55, 0xAA]) {
        return None;
    }
    let records: Vec<&[u8]> = head[446..510].chunks(16).collect();
    let valid = records.iter().all(|r| r[0] == 0x00 || r[0] == 0x80);
    let used = records.iter().any(|r| r[4] != 0);
    (valid && used).then_some(ImageKind::Mbr)
}

/// Whether `tail` (an image's last [`TAIL`] bytes) is a VHD footer: a fixed VHD is a raw disk
/// followed by it, with nothing at its start to tell. Microsoft, "Virtual Hard Disk Image
/// Format Specification" 1.0: the footer is the file's last 512 bytes, its `Cookie`
/// "conectix"; images made before Virtual PC 2004 have a 511-byte footer.
pub fn vhd_footer_at_end(tail: &[u8]) -> bool {
    let n = tail.len();
    [512, 511]
        .iter()
        .any(|&len| n >= len && tail[n - len..].starts_with(b"conectix"))
}

/// Reads up to [`HEAD`] bytes from `source` (fewer only at its end).
pub fn read_head(source: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD);
    source.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Classifies an image file: its first [`HEAD`] bytes and its last [`TAIL`] (a fixed VHD).
pub fn of_file(path: &std::path::Path) -> std::io::Result<ImageKind> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let kind = classify(&read_head(&mut file)?);
    let len = file.metadata()?.len();
    if len >= TAIL as u64 {
        file.seek(SeekFrom::Start(len - TAIL as u64))?;
        let mut tail = [0u8; TAIL];
        file.read_exact(&mut tail)?;
        if vhd_footer_at_end(&tail) {
            return Ok(ImageKind::Vhd);
        }
    }
    Ok(kind)
}

/// A reader that passes `inner` through and, at its end, fails with `refusal` if its last
/// [`TAIL`] bytes are a VHD footer: a fixed VHD streamed is told only once it has been read,
/// before the writers learn that the image is complete (so no target is finished).
pub struct VhdFooterCheck<R> {
    inner: R,
    /// The last bytes read, at most [`TAIL`].
    last: Vec<u8>,
    refusal: Box<dyn Fn() -> std::io::Error + Send>,
}

impl<R: Read> VhdFooterCheck<R> {
    pub fn new(inner: R, refusal: Box<dyn Fn() -> std::io::Error + Send>) -> Self {
        Self {
            inner,
            last: Vec::with_capacity(2 * TAIL),
            refusal,
        }
    }
}

impl<R: Read> Read for VhdFooterCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if vhd_footer_at_end(&self.last) {
                return Err((self.refusal)());
            }
            return Ok(0);
        }
        let fresh = &buf[..n];
        if fresh.len() >= TAIL {
            self.last.clear();
            self.last.extend_from_slice(&fresh[fresh.len() - TAIL..]);
        } else {
            self.last.extend_from_slice(fresh);
            let excess = self.last.len().saturating_sub(TAIL);
            self.last.drain(..excess);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        for (offset, magic) in parts {
            bytes[*offset..offset + magic.len()].copy_from_slice(magic);
        }
        bytes
    }

    /// A protective MBR as UEFI 2.10 table 5-4 describes it: one record of OSType 0xEE.
    fn protective_mbr() -> Vec<(usize, &'static [u8])> {
        vec![
            (
                446,
                &[0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0][..],
            ),
            (510, &[0x55, 0xAA][..]),
        ]
    }

    #[test]
    fn image_kind_disks() {
        let mut gpt = protective_mbr();
        gpt.push((512, b"EFI PART"));
        assert_eq!(classify(&image(HEAD, &gpt)), ImageKind::Gpt);
        // 4Kn: the GPT header at byte 4096.
        let mut gpt4k = protective_mbr();
        gpt4k.push((4096, b"EFI PART"));
        assert_eq!(classify(&image(HEAD, &gpt4k)), ImageKind::Gpt);
        // An MBR with one FAT32 (LBA) partition, bootable.
        let mbr = [
            (
                446,
                &[0x80, 0x20, 0x21, 0x00, 0x0C, 0xFE, 0xFF, 0xFF, 0, 8, 0, 0][..],
            ),
            (510, &[0x55, 0xAA][..]),
        ];
        assert_eq!(classify(&image(4096, &mbr)), ImageKind::Mbr);
        // The boot signature alone (a FAT boot sector: code where the records are) is no MBR.
        let vbr = image(
            4096,
            &[(446, &[0x0E, 0x1F, 0xBE][..]), (510, &[0x55, 0xAA])],
        );
        assert_eq!(classify(&vbr), ImageKind::Unknown);
        assert_eq!(classify(&[0u8; 0]), ImageKind::Unknown);
        assert_eq!(classify(&vec![0u8; HEAD]), ImageKind::Unknown);
        assert_eq!(
            classify(&image(600, &[(510, &[0x55, 0xAA])])),
            ImageKind::Unknown
        );
    }

    #[test]
    fn image_kind_iso9660() {
        // ECMA-119: a primary volume descriptor (type 1) at byte 32768, "CD001" after the type.
        let pvd = (0x8000, &b"\x01CD001\x01"[..]);
        assert_eq!(classify(&image(HEAD, &[pvd])), ImageKind::Iso9660);
        let mut hybrid = protective_mbr();
        hybrid.push((512, b"EFI PART"));
        hybrid.push(pvd);
        assert_eq!(classify(&image(HEAD, &hybrid)), ImageKind::Iso9660Hybrid);
        // isohybrid's MBR only (no GPT).
        let mbr_hybrid = [
            (446, &[0x80, 0, 1, 0, 0x17, 0x3F, 0x20, 0, 0, 0, 0, 0][..]),
            (510, &[0x55, 0xAA][..]),
            pvd,
        ];
        assert_eq!(
            classify(&image(HEAD, &mbr_hybrid)),
            ImageKind::Iso9660Hybrid
        );
        assert!(ImageKind::Iso9660.warning().is_some());
        assert!(ImageKind::Iso9660Hybrid.warning().is_none());
    }

    #[test]
    fn image_kind_refused_by_magic() {
        let cases: [(&[u8], usize, ImageKind); 12] = [
            (b"QFI\xfb\x00\x00\x00\x03", 0, ImageKind::Qcow2),
            (b"KDMV\x01\x00\x00\x00", 0, ImageKind::Vmdk),
            (b"COWD", 0, ImageKind::Vmdk),
            (b"# Disk DescriptorFile\nversion=1\n", 0, ImageKind::Vmdk),
            (b"vhdxfile", 0, ImageKind::Vhdx),
            (b"conectix\x00\x00\x00\x02", 0, ImageKind::Vhd),
            (b"hsqs", 0, ImageKind::Squashfs),
            (b"sqsh", 0, ImageKind::Squashfs),
            (b"PK\x03\x04\x14\x00", 0, ImageKind::Zip),
            (b"PK\x05\x06", 0, ImageKind::Zip),
            (b"ustar\x0000", 257, ImageKind::Tar),
            (b"ustar  \x00", 257, ImageKind::Tar),
        ];
        for (magic, offset, kind) in cases {
            // On a disk-looking image, so the magic alone decides.
            let mut parts = protective_mbr();
            parts.push((512, b"EFI PART"));
            parts.push((offset, magic));
            let bytes = image(HEAD, &parts);
            assert_eq!(classify(&bytes), kind, "{magic:?}");
            let sentence = kind.refusal("x.img").expect("refused");
            assert!(sentence.starts_with("x.img is a "), "{sentence}");
        }
    }

    #[test]
    fn image_kind_pe_needs_its_pe_signature() {
        // An MS-DOS stub pointing at "PE\0\0" at 0x80 (what EFI stubs and UKIs have).
        let pe = image(
            4096,
            &[(0, b"MZ"), (0x3c, &[0x80, 0, 0, 0]), (0x80, b"PE\0\0")],
        );
        assert_eq!(classify(&pe), ImageKind::PeExecutable);
        // "MZ" alone (it is also x86 code: `dec bp; pop dx`) is not a PE.
        let mz = image(4096, &[(0, b"MZ"), (0x3c, &[0x80, 0, 0, 0])]);
        assert_eq!(classify(&mz), ImageKind::Unknown);
        // A pointer past the head does not panic.
        let far = image(4096, &[(0, b"MZ"), (0x3c, &[0xff, 0xff, 0xff, 0xff])]);
        assert_eq!(classify(&far), ImageKind::Unknown);
    }

    #[test]
    fn image_kind_fixed_vhd_by_its_footer() {
        let mut tail = vec![0u8; TAIL];
        tail[..8].copy_from_slice(b"conectix");
        assert!(vhd_footer_at_end(&tail));
        // A 511-byte footer (before Virtual PC 2004).
        let mut old = vec![0u8; TAIL];
        old[1..9].copy_from_slice(b"conectix");
        assert!(vhd_footer_at_end(&old));
        assert!(!vhd_footer_at_end(&[0u8; TAIL]));
        assert!(!vhd_footer_at_end(b"conectix"));
    }

    #[test]
    fn image_kind_fixed_vhd_streamed_fails_at_its_end() {
        let mut bytes = vec![7u8; 3 * TAIL + 100];
        let n = bytes.len();
        bytes[n - TAIL..n - TAIL + 8].copy_from_slice(b"conectix");
        for piece in [1, 100, 511, 512, 513, 4096] {
            let mut reader = VhdFooterCheck::new(
                PieceReader(&bytes, piece),
                Box::new(|| std::io::Error::other("vhd")),
            );
            let mut out = Vec::new();
            let err = reader.read_to_end(&mut out).unwrap_err();
            assert_eq!(err.to_string(), "vhd", "pieces of {piece}");
        }
        bytes[n - TAIL] = b'C';
        let mut reader = VhdFooterCheck::new(&bytes[..], Box::new(|| std::io::Error::other("vhd")));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    /// Reads at most `.1` bytes at a time.
    struct PieceReader<'a>(&'a [u8], usize);

    impl Read for PieceReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Real files from the formats' own tools (CI installs them: `src-tauri/scripts/setup.sh
    /// --tests`): qemu-img (qemu-utils), mksquashfs (squashfs-tools), xorriso, zip, systemd's
    /// UKI stub (systemd-boot-efi), and a tar written by the `tar` crate.
    #[test]
    fn image_kind_of_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{program} (setup.sh --tests installs it): {e}"));
            assert!(status.success(), "{program} {args:?}");
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        // A GPT disk, then the same disk converted by qemu-img to each VM format.
        let raw = p("disk.raw");
        let mut disk = vec![0u8; 4 << 20];
        let mut gpt = protective_mbr();
        gpt.push((512, b"EFI PART"));
        for (offset, magic) in gpt {
            disk[offset..offset + magic.len()].copy_from_slice(magic);
        }
        std::fs::write(&raw, &disk).unwrap();
        assert_eq!(of_file(&raw).unwrap(), ImageKind::Gpt);
        for (format, options, kind) in [
            ("qcow2", "", ImageKind::Qcow2),
            ("vmdk", "", ImageKind::Vmdk),
            ("vmdk", "subformat=streamOptimized", ImageKind::Vmdk),
            ("vpc", "", ImageKind::Vhd),
            ("vpc", "subformat=fixed,force_size=on", ImageKind::Vhd),
            ("vhdx", "", ImageKind::Vhdx),
        ] {
            let out = p(&format!("disk-{format}-{}", options.len()));
            let mut args = vec![os("convert"), os("-f"), os("raw"), os("-O"), os(format)];
            if !options.is_empty() {
                args.extend([os("-o"), os(options)]);
            }
            args.extend([raw.clone().into_os_string(), out.clone().into_os_string()]);
            let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            run("qemu-img", &args);
            assert_eq!(of_file(&out).unwrap(), kind, "{format} {options}");
        }
        // squashfs-tools.
        std::fs::create_dir(p("tree")).unwrap();
        std::fs::write(p("tree/hello"), b"hello").unwrap();
        let sqfs = p("tree.sqfs");
        run(
            "mksquashfs",
            &[p("tree").as_os_str(), sqfs.as_os_str(), "-quiet".as_ref()],
        );
        assert_eq!(of_file(&sqfs).unwrap(), ImageKind::Squashfs);
        // xorriso: a plain ISO 9660 image.
        let iso = p("tree.iso");
        run(
            "xorriso",
            &[
                "-as".as_ref(),
                "mkisofs".as_ref(),
                "-o".as_ref(),
                iso.as_os_str(),
                p("tree").as_os_str(),
            ],
        );
        assert_eq!(of_file(&iso).unwrap(), ImageKind::Iso9660);
        // The same tree as a hybrid: xorriso's GPT beside the ISO (as `-append_partition` does
        // for EFI images).
        let hybrid = p("hybrid.iso");
        run(
            "xorriso",
            &[
                "-as".as_ref(),
                "mkisofs".as_ref(),
                "-o".as_ref(),
                hybrid.as_os_str(),
                "-append_partition".as_ref(),
                "2".as_ref(),
                "0xef".as_ref(),
                p("tree/hello").as_os_str(),
                "-appended_part_as_gpt".as_ref(),
                p("tree").as_os_str(),
            ],
        );
        assert_eq!(of_file(&hybrid).unwrap(), ImageKind::Iso9660Hybrid);
        // dosfstools' mkfs.fat: FAT12, FAT16 and FAT32 volumes with no partition table.
        for (bits, size) in [("12", 4u64 << 20), ("16", 32 << 20), ("32", 64 << 20)] {
            let fat = p(&format!("fat{bits}.img"));
            std::fs::File::create(&fat).unwrap().set_len(size).unwrap();
            run("mkfs.fat", &["-F".as_ref(), bits.as_ref(), fat.as_os_str()]);
            assert_eq!(of_file(&fat).unwrap(), ImageKind::Fat, "FAT{bits}");
        }
        // A tar written by the tar crate (POSIX ustar headers).
        let tar_path = p("disk.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        builder.append_path_with_name(&raw, "disk.raw").unwrap();
        builder.into_inner().unwrap();
        assert_eq!(of_file(&tar_path).unwrap(), ImageKind::Tar);
        // Info-ZIP's zip.
        let zip = p("disk.zip");
        run(
            "zip",
            &[
                "-q".as_ref(),
                "-j".as_ref(),
                zip.as_os_str(),
                raw.as_os_str(),
            ],
        );
        assert_eq!(of_file(&zip).unwrap(), ImageKind::Zip);
        // systemd's UKI stub (systemd-boot-efi): the PE a Talos `…-uki.efi` is built on.
        let stub = std::path::Path::new("/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
        assert_eq!(of_file(stub).unwrap(), ImageKind::PeExecutable);
    }
}
