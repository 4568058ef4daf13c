//! The mount table and swap list (from a configurable /proc), and unmounting a drive's filesystems.

use std::fs;
use std::path::Path;

use crate::error::{io_at, Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device, which matches sysfs' `dev` files exactly (names in
    /// the source column can be symlinks or mapper names).
    pub devnum: String,
    pub mountpoint: String,
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
    Some(Mount { devnum, mountpoint })
}

/// Active swap devices from `<proc>/swaps`, as names under /dev (`sda2`, `dm-1`, `mapper/vg-swap`).
/// Swap files are skipped: the filesystem holding them is mounted and judged by its mount point.
pub fn read_swaps(proc: &Path) -> Result<Vec<String>> {
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
            let (name, kind) = (cols.next()?, cols.next()?);
            (kind == "partition").then(|| unescape(name))
        })
        .filter_map(|n| n.strip_prefix("/dev/").map(str::to_owned))
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

/// Unmounts every mount point (deepest first), escalating to a lazy unmount where a plain one
/// fails. The caller re-reads the mount table to check nothing stayed.
pub fn unmount_all(mountpoints: &[String]) -> Vec<(String, std::io::Error)> {
    let mut ordered: Vec<&String> = mountpoints.iter().collect();
    ordered.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut failures = Vec::new();
    for mp in ordered {
        if let Err(e) = umount(mp, 0) {
            tracing::warn!(mountpoint = %mp, "unmount failed ({e}); trying a lazy unmount");
            if let Err(e) = umount(mp, libc::MNT_DETACH) {
                failures.push((mp.clone(), e));
            }
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
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn swaps_list_partitions_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p3 partition 8388604 0 -2\n/swapfile file 1024 0 -3\n/dev/mapper/vg-swap partition 1024 0 -4\n",
        )
        .unwrap();
        assert_eq!(
            read_swaps(dir.path()).unwrap(),
            vec!["nvme0n1p3", "mapper/vg-swap"]
        );
    }
}
