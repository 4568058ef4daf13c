//! The mount table and swap list (from a configurable /proc), and unmounting a drive's filesystems.

use std::fs;
use std::path::Path;

use crate::error::{io_at, Error, Result};
use crate::io::drives::{self, Drive, SystemRoots};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device, which matches sysfs' `dev` files exactly (names in
    /// the source column can be symlinks or mapper names). Major 0 is an anonymous device
    /// (btrfs, overlay): then only `source` says which drive it is on.
    pub devnum: String,
    pub mountpoint: String,
    pub fstype: String,
    /// The mount source: `/dev/sda2`, `/dev/mapper/vg-root`, or a name (`tmpfs`).
    pub source: String,
}

/// A use of swap: a device (`sda2`, `mapper/vg-swap`), or a swap file on the device `major:minor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swap {
    Device(String),
    FileOn(String),
}

/// Parses `<proc>/self/mountinfo`.
pub fn read_mountinfo(proc: &Path) -> Result<Vec<Mount>> {
    let path = proc.join("self/mountinfo");
    let text = fs::read_to_string(&path).map_err(io_at(&path))?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    // id parent major:minor root mountpoint options [optional…] - fstype source superoptions
    let mut fields = line.split(' ');
    let devnum = fields.nth(2)?.to_string();
    let mountpoint = unescape(fields.nth(1)?);
    let mut rest = fields.skip_while(|f| *f != "-").skip(1);
    let fstype = rest.next().unwrap_or_default().to_string();
    let source = unescape(rest.next().unwrap_or_default());
    Some(Mount {
        devnum,
        mountpoint,
        fstype,
        source,
    })
}

/// Active swap from `<proc>/swaps`: devices by their names under /dev (`sda2`, `dm-1`,
/// `mapper/vg-swap`), swap files by the device they live on.
pub fn read_swaps(proc: &Path) -> Result<Vec<Swap>> {
    let path = proc.join("swaps");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let (name, kind) = (unescape(cols.next()?), cols.next()?);
            if kind == "file" {
                use std::os::unix::fs::MetadataExt;
                let dev = fs::metadata(&name).ok()?.dev();
                return Some(Swap::FileOn(format!(
                    "{}:{}",
                    libc::major(dev),
                    libc::minor(dev)
                )));
            }
            name.strip_prefix("/dev/")
                .map(|n| Swap::Device(n.to_owned()))
        })
        .collect())
}

/// mountinfo and swaps escape space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `mountpoints` of `drive` (the flash target `target`), never lazily: directly as root,
/// else each mounted partition through UDisks2 (polkit); refused if anything stays mounted.
pub fn unmount_drive(
    drive: &Drive,
    mountpoints: &[String],
    target: &Path,
    roots: &SystemRoots,
) -> Result<()> {
    let mut failures = unmount_all(mountpoints);
    if failures
        .iter()
        .any(|(_, e)| e.raw_os_error() == Some(libc::EPERM))
    {
        // Not root: ask UDisks2 (polkit) to unmount each mounted partition.
        let mounted = drive
            .partitions
            .iter()
            .filter(|p| !p.mountpoints.is_empty());
        let mut devices: Vec<&str> = mounted.map(|p| p.path.as_str()).collect();
        if devices.is_empty() {
            devices.push(&drive.path);
        }
        for device in devices {
            if let Err(e) = super::udisks::unmount(Path::new(device)) {
                failures.push((device.to_string(), std::io::Error::other(e.to_string())));
            }
        }
    }
    let still: Vec<String> = drives::list(roots)?
        .into_iter()
        .find(|d| d.name == drive.name)
        .map(|d| d.mountpoints)
        .unwrap_or_default();
    if !still.is_empty() {
        let why = failures
            .iter()
            .map(|(mp, e)| format!("{mp}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Refused {
            target: target.display().to_string(),
            reason: format!(
                "{} stayed mounted after unmounting ({why})",
                still.join(", ")
            ),
        });
    }
    Ok(())
}

/// Unmounts every mount point (deepest first). Never lazily: a detached filesystem that stays
/// busy is gone from the mount table but still written to, and the flash would be refused anyway.
/// The caller re-reads the mount table to check nothing stayed.
fn unmount_all(mountpoints: &[String]) -> Vec<(String, std::io::Error)> {
    let mut ordered: Vec<&String> = mountpoints.iter().collect();
    ordered.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut failures = Vec::new();
    for mp in ordered {
        if let Err(e) = umount(mp, 0) {
            failures.push((mp.clone(), e));
        }
    }
    failures
}

fn umount(mountpoint: &str, flags: libc::c_int) -> std::io::Result<()> {
    let c = std::ffi::CString::new(mountpoint)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path; umount2 has no other memory effects.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo_line(
            "36 35 8:17 / /media/me/My\\040Stick rw,nosuid shared:1 - vfat /dev/sdb1 rw",
        )
        .unwrap();
        assert_eq!(m.devnum, "8:17");
        assert_eq!(m.mountpoint, "/media/me/My Stick");
        assert_eq!(
            (m.fstype.as_str(), m.source.as_str()),
            ("vfat", "/dev/sdb1")
        );
        let btrfs = parse_mountinfo_line(
            "29 1 0:26 /@ / rw,relatime shared:1 - btrfs /dev/nvme0n1p2 rw,ssd,subvol=/@",
        )
        .unwrap();
        assert_eq!(
            (btrfs.devnum.as_str(), btrfs.source.as_str()),
            ("0:26", "/dev/nvme0n1p2")
        );
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn swaps_name_devices_and_the_device_of_a_swap_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let swapfile = dir.path().join("swapfile");
        fs::write(&swapfile, b"").unwrap();
        let dev = fs::metadata(&swapfile).unwrap().dev();
        fs::write(
            dir.path().join("swaps"),
            format!("Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p3 partition 8388604 0 -2\n{} file 1024 0 -3\n/dev/mapper/vg-swap partition 1024 0 -4\n", swapfile.display()),
        )
        .unwrap();
        assert_eq!(
            read_swaps(dir.path()).unwrap(),
            vec![
                Swap::Device("nvme0n1p3".into()),
                Swap::FileOn(format!("{}:{}", libc::major(dev), libc::minor(dev))),
                Swap::Device("mapper/vg-swap".into())
            ]
        );
    }
}
