//! Which processes use a drive: a descriptor open on the disk or one of its partitions, or a
//! file, working folder or root inside one of its mounted filesystems (`/proc/<pid>/fd`, `cwd`,
//! `root`). `O_EXCL` only keeps out other exclusive openers (mounts, other flashers); a plain
//! `open(O_RDWR)` would be written over, so the flash asks here first and names who to close.
//! Processes of other users are visible only to root.

use std::fs;
use std::path::Path;

use crate::io::drives::{Drive, SystemRoots};
use crate::io::openers::User;

/// The processes using `drive`: its disk, its partitions or its mounted filesystems.
pub fn users_of(drive: &Drive, roots: &SystemRoots) -> Vec<User> {
    let mut devices = vec![drive.path.clone()];
    devices.extend(drive.partitions.iter().map(|p| p.path.clone()));
    users(&roots.proc, &devices, &drive.mountpoints)
}

/// The processes (other than this one) that hold one of `devices` (`/dev/sdb`, `/dev/sdb1`) open,
/// or anything under one of `mountpoints`; at most one entry per process.
fn users(proc: &Path, devices: &[String], mountpoints: &[String]) -> Vec<User> {
    let me = std::process::id();
    let inside = |path: &str| {
        devices.iter().any(|d| d == path)
            || mountpoints
                .iter()
                .any(|m| path == m || path.starts_with(&format!("{}/", m.trim_end_matches('/'))))
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(proc).into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let links = ["cwd", "root"].iter().map(|l| dir.join(l)).chain(
            fs::read_dir(dir.join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|fd| fd.path()),
        );
        let held = links
            .filter_map(|link| fs::read_link(link).ok())
            .map(|target| target.to_string_lossy().into_owned())
            // "/" is every process's root: only a mount point deeper than it counts.
            .find(|target| (target != "/" || devices.contains(target)) && inside(target));
        if let Some(holds) = held {
            let name = fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            found.push(User { pid, name, holds });
        }
    }
    found.sort_by_key(|u| u.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A /proc with an editor holding a file on the stick, a shell in its mount point, a `dd`
    /// holding the disk itself, and a process elsewhere.
    #[test]
    fn finds_descriptor_folder_and_device_users() {
        let proc = tempfile::tempdir().unwrap();
        let process = |pid: u32, comm: &str, cwd: &str, fds: &[&str]| {
            let dir = proc.path().join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            symlink(cwd, dir.join("cwd")).unwrap();
            symlink("/", dir.join("root")).unwrap();
            for (i, fd) in fds.iter().enumerate() {
                symlink(fd, dir.join("fd").join(i.to_string())).unwrap();
            }
        };
        process(
            100,
            "vim",
            "/home/me",
            &["/media/me/STICK/notes.txt", "/dev/pts/0"],
        );
        process(200, "bash", "/media/me/STICK", &["/dev/pts/1"]);
        process(300, "dd", "/tmp", &["/dev/sdb"]);
        process(400, "sshd", "/", &["/dev/null", "/media/me/STICKY/x"]);
        fs::create_dir_all(proc.path().join("self")).unwrap();
        let devices = ["/dev/sdb".to_string(), "/dev/sdb1".to_string()];
        let mounts = ["/media/me/STICK".to_string()];
        let users = users(proc.path(), &devices, &mounts);
        let pids: Vec<u32> = users.iter().map(|u| u.pid).collect();
        assert_eq!(pids, [100, 200, 300]);
        assert_eq!(
            users[0].to_string(),
            "process 100 (vim) holds /media/me/STICK/notes.txt"
        );
        assert_eq!(users[2].holds, "/dev/sdb");
        assert!(super::users(proc.path(), &devices, &[])
            .iter()
            .all(|u| u.pid == 300));
    }
}
