//! Opening flash targets on Linux and reading them back as block devices want: exclusive
//! (O_EXCL), direct I/O (O_DIRECT), never through a symbolic link, through UDisks2 where this
//! user may not open a drive itself.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::block::{drop_cache, logical_block_size, size_of};
use crate::io::device::{folder_of, open_file_for_write, Access, PathKind, Target, TargetKind};
use crate::io::identity::{self, Identity};

/// What `path` names, following links.
pub fn kind_of(path: &Path) -> io::Result<PathKind> {
    let meta = std::fs::metadata(path)?;
    Ok(if meta.is_file() {
        PathKind::File
    } else if meta.file_type().is_block_device() {
        PathKind::Drive
    } else {
        PathKind::Other
    })
}

/// The privileged helper's rule for the drives on its command line: each by its own name in
/// /dev, never through a link or another folder. (A missing /dev/NAME passes here: the rules
/// then say it does not exist.)
pub fn check_own_name(path: &Path) -> Result<()> {
    let canonical = path.parent().map(Path::as_os_str) == Some("/dev".as_ref())
        && std::fs::canonicalize(path).map_or(true, |real| real.as_os_str() == path.as_os_str());
    if !canonical {
        return Err(Error::Refused {
            target: path.display().to_string(),
            reason: "the helper takes a drive only by its own name in /dev (as /dev/sdb), never through a link or another folder".into(),
        });
    }
    Ok(())
}

/// The privileged helper's rule: `target` is a block device itself, not a link to one.
pub fn check_names_a_drive(target: &Path) -> Result<()> {
    let refused = |reason: &str| Error::Refused {
        target: target.display().to_string(),
        reason: reason.into(),
    };
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_block_device() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            Err(refused("it is a symbolic link; name the drive itself"))
        }
        Ok(_) => Err(refused("it is not a drive")),
        Err(_) => Err(refused("it does not exist")),
    }
}

/// An existing image file target as it will be opened: every link on the way (its own name
/// included) resolved only where root or this user owns it, so the path returned names the file
/// itself through folders [`Folder`] accepts. Root must never write, through another user's
/// link, a file that user could not.
pub fn resolve_file_target(path: &Path) -> Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let (folder, name) = Folder::of(&at)?;
        match folder.link_at(name, path)? {
            None => return Ok(at),
            Some(to) => at = folder_of(&at).join(to),
        }
    }
    Err(Error::io(path, io::Error::from_raw_os_error(libc::ELOOP)))
}

/// Opens `path` for writing and reading back, never following a symlink, and refuses it unless
/// the descriptor is what `identity` recorded: a block device `O_RDWR|O_EXCL|O_DIRECT|O_CLOEXEC`
/// (EBUSY is a refusal; O_DIRECT is dropped only where the device rejects it), directly or
/// through UDisks2; a regular file as it is (or created).
pub fn open_for_write(path: &Path, identity: &Identity) -> Result<Target> {
    if !matches!(identity, Identity::Drive(_)) {
        return open_file_for_write(path, identity, open_error);
    }
    let ((file, access), direct) = match open_block(path, true, libc::O_EXCL | libc::O_DIRECT) {
        Ok(f) => (f, true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %path.display(), "the device rejects O_DIRECT; writing through the page cache");
            (open_block(path, true, libc::O_EXCL)?, false)
        }
        Err(e) => return Err(e),
    };
    identity::check(&file, path, identity)?;
    let logical_block_size = logical_block_size(&file).map_err(|e| Error::io(path, e))?;
    let capacity = Some(size_of(&file).map_err(|e| Error::io(path, e))?);
    Ok(Target {
        medium: Box::new(file),
        capacity,
        file_len: None,
        path: path.to_path_buf(),
        kind: TargetKind::BlockDevice,
        logical_block_size,
        direct,
        created: None,
        access,
    })
}

/// The folder a new image file is created in, resolved once and held open: the file is created
/// relative to it, so a link swapped into the path afterwards changes nothing. Links are followed
/// only where root or this user owns them: root following another user's link would create the
/// file wherever that user points it by then (during the confirmation, say).
pub struct Folder {
    fd: OwnedFd,
}

impl Folder {
    /// The folder holding the file `path` names, and the file's name in it.
    pub fn of(path: &Path) -> Result<(Folder, &OsStr)> {
        let refuse = |reason: &str| Error::Refused {
            target: path.display().to_string(),
            reason: reason.into(),
        };
        let name = path.file_name().ok_or_else(|| refuse("it names no file"))?;
        Ok((Folder::open(folder_of(path), path)?, name))
    }

    /// Opens `folder` one component at a time (`O_PATH|O_NOFOLLOW`), following a link only if root
    /// or this user owns it; `target` is what a refusal names.
    fn open(folder: &Path, target: &Path) -> Result<Folder> {
        enum Step {
            Root,
            Up,
            Into(OsString),
        }
        let steps = |p: &Path| -> Vec<Step> {
            p.components()
                .filter_map(|c| match c {
                    Component::RootDir => Some(Step::Root),
                    Component::ParentDir => Some(Step::Up),
                    Component::Normal(n) => Some(Step::Into(n.to_owned())),
                    Component::CurDir | Component::Prefix(_) => None,
                })
                .collect()
        };
        let failed = |e: io::Error| Error::io(folder, e);
        // SAFETY: a plain syscall.
        let me = unsafe { libc::geteuid() };
        let mut at = open_path(None, ".".as_ref()).map_err(failed)?;
        let mut todo: VecDeque<Step> = steps(folder).into();
        let mut links = 0;
        while let Some(step) = todo.pop_front() {
            let name: &OsStr = match &step {
                Step::Root => {
                    at = open_path(None, "/".as_ref()).map_err(failed)?;
                    continue;
                }
                Step::Up => "..".as_ref(),
                Step::Into(name) => name,
            };
            let next = open_path(Some(&at), name).map_err(failed)?;
            // SAFETY: fstat fills the struct it is given, from an open descriptor.
            let mut meta: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(next.as_raw_fd(), &mut meta) } != 0 {
                return Err(failed(io::Error::last_os_error()));
            }
            let kind = meta.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK {
                if meta.st_uid != 0 && meta.st_uid != me {
                    return Err(Error::Refused {
                        target: target.display().to_string(),
                        reason: format!(
                            "its folder is reached through a symbolic link of another user (uid {}), who could point it anywhere; name the folder itself",
                            meta.st_uid
                        ),
                    });
                }
                links += 1;
                if links > 40 {
                    return Err(failed(io::Error::from_raw_os_error(libc::ELOOP)));
                }
                let to = read_link(&next).map_err(failed)?;
                for step in steps(&to).into_iter().rev() {
                    todo.push_front(step);
                }
            } else if kind == libc::S_IFDIR {
                at = next;
            } else {
                return Err(failed(io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
        }
        Ok(Folder { fd: at })
    }

    /// Creates `name` in the folder, never over an existing file or link
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`).
    pub fn create(&self, name: &OsStr) -> io::Result<File> {
        let name = c_name(name)?;
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid NUL-terminated name relative to an open folder descriptor.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags, 0o666) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just opened, owned by nothing else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens the existing file `name` in the folder, never through a link (`O_NOFOLLOW`).
    pub fn open_existing(&self, name: &OsStr, write: bool) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
        // NONBLOCK: a FIFO swapped in must not hang the open; it fails the identity check.
        let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())?;
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok(File::from(fd))
    }

    /// Where the link `name` in the folder points, if it is a link; refused when another user
    /// owns it (they could point it anywhere by the time root opens it).
    fn link_at(&self, name: &OsStr, target: &Path) -> Result<Option<PathBuf>> {
        use rustix::fs::{statat, AtFlags, FileType};
        let failed = |e: rustix::io::Errno| Error::io(target, e.into());
        let stat = statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(failed)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            return Ok(None);
        }
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != 0 && stat.st_uid != me {
            return Err(Error::Refused {
                target: target.display().to_string(),
                reason: format!(
                    "it is a symbolic link of another user (uid {}), who could point it anywhere; name the file itself",
                    stat.st_uid
                ),
            });
        }
        let to = rustix::fs::readlinkat(&self.fd, name, Vec::new()).map_err(failed)?;
        Ok(Some(PathBuf::from(OsString::from_vec(to.into_bytes()))))
    }

    /// Removes `name` from the folder (best effort): what [`create`](Self::create) made.
    pub fn remove(&self, name: &OsStr) {
        if let Ok(name) = c_name(name) {
            // SAFETY: as in `create`.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) };
        }
    }
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat(at, name, O_PATH|O_NOFOLLOW)`: a handle on the entry itself, a link included.
fn open_path(at: Option<&OwnedFd>, name: &OsStr) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let dir = at.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: a valid NUL-terminated path relative to an open descriptor (or the working folder).
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where the link opened as `link` (`O_PATH|O_NOFOLLOW`) points.
fn read_link(link: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: an empty path reads the link the descriptor itself is; `buf` is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// Opens a block device directly where this user may (root, the disk group), else through UDisks2,
/// which asks polkit.
fn open_block(path: &Path, write: bool, flags: libc::c_int) -> Result<(File, Access)> {
    let direct = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(flags | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path);
    match direct {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            tracing::info!(path = %path.display(), "no direct access; asking UDisks2 to open it");
            let file = super::udisks::open(path, write, flags | libc::O_CLOEXEC)?;
            Ok((file, Access::Udisks2))
        }
        other => other
            .map(|f| (f, Access::Direct))
            .map_err(|e| open_error(path, e)),
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Refused {
            target: path.display().to_string(),
            reason: "it became a symbolic link since it was chosen".into(),
        },
        Some(libc::EEXIST) => Error::Refused {
            target: path.display().to_string(),
            reason: "a file appeared at its path since it was chosen".into(),
        },
        Some(libc::EBUSY) => Error::Refused {
            target: path.display().to_string(),
            reason: "it is busy: a filesystem on it is mounted or another program has it open"
                .into(),
        },
        _ => Error::io(path, e),
    }
}

/// Opens `path` for reading back without the page cache: O_DIRECT where possible, and the
/// kernel told to drop what it cached of the file either way (Etcher #1523, Imager #414 verified
/// from the cache).
pub fn open_for_read(path: &Path) -> Result<(File, bool)> {
    let is_block = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let open = |flags: libc::c_int| {
        if is_block {
            open_block(path, false, flags).map(|(f, _)| f)
        } else {
            OpenOptions::new()
                .read(true)
                .custom_flags(flags | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io(path, e))
        }
    };
    let (file, direct) = match open(libc::O_DIRECT) {
        Ok(f) => (f, true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            tracing::info!(path = %path.display(), "O_DIRECT is not supported here; reading after dropping the cache");
            (open(0)?, false)
        }
        Err(e) => return Err(e),
    };
    drop_cache(&file);
    Ok((file, direct))
}

/// Whether this process may open `path` for writing itself (access(2) with the real ids).
pub fn writable_by_me(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review's race made deterministic: the folder is resolved, a link in its path is then
    /// pointed elsewhere (as during the confirmation), and only then is the file created.
    #[test]
    fn a_new_file_is_created_in_the_folder_resolved_before_a_swap() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("chosen");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(chosen.join("sub")).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        let link = dir.path().join("vms");
        // Relative, with `..`, as links often are.
        symlink("chosen/sub/..", &link).unwrap();
        let target = link.join("disk.img");
        let (folder, name) = Folder::of(&target).unwrap();
        std::fs::remove_file(&link).unwrap();
        symlink(&elsewhere, &link).unwrap();
        folder.create(name).unwrap();
        assert!(chosen.join("disk.img").is_file());
        assert!(!elsewhere.join("disk.img").exists());
        let again = folder.create(name).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
        folder.remove(name);
        assert!(!chosen.join("disk.img").exists());
        // A file where a folder should be, and a link that loops, are errors, not followed.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        assert!(Folder::of(&dir.path().join("file/disk.img")).is_err());
        symlink("loop", dir.path().join("loop")).unwrap();
        assert!(Folder::of(&dir.path().join("loop/disk.img")).is_err());
    }

    /// A failed flash removes the file it created from the folder it created it in, never
    /// whatever the path names by then (a link swapped in would send root's unlink elsewhere).
    #[test]
    fn a_created_file_is_removed_from_its_own_folder() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (chosen, elsewhere) = (dir.path().join("chosen"), dir.path().join("elsewhere"));
        std::fs::create_dir(&chosen).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("disk.img"), b"keep").unwrap();
        let link = dir.path().join("vms");
        symlink(&chosen, &link).unwrap();
        let target = open_for_write(&link.join("disk.img"), &Identity::NewFile).unwrap();
        std::fs::remove_file(&link).unwrap();
        symlink(&elsewhere, &link).unwrap();
        target.remove_created();
        assert!(!chosen.join("disk.img").exists(), "the created file stayed");
        assert_eq!(std::fs::read(elsewhere.join("disk.img")).unwrap(), b"keep");
    }
}
