//! A folder only this user can change, and everything under it opened relative to it, never through
//! a symbolic link. The cache lives in one: a path checked once can be swapped before it is opened
//! again (a rename over a proven archive, a planted link that sends root's write elsewhere), a
//! descriptor cannot.
//!
//! Every folder on the way (the root included) must belong to the effective user, root too, and be
//! writable by nobody else, as ssh demands of `~/.ssh`: otherwise another user could rename or link
//! files inside it between our checks. Folders this creates get mode 0700.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// An open folder checked as above; `path` is only for messages.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

impl PrivateDir {
    /// Opens (creating it and its missing parents with mode 0700) the folder at `path`. The path
    /// may pass through links (`~/.cache` on another disk), but only root's or this user's:
    /// another user's link could send the cache, and what it writes or clears, anywhere. What it
    /// names must pass the ownership rule.
    pub fn open_root(path: &Path) -> Result<Self> {
        let fd = walk_trusted(path)?;
        let dir = Self {
            fd,
            path: path.to_path_buf(),
        };
        dir.check()?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at `rel` (plain names only, no `..`), each step opened without following a
    /// link and checked; created (0700) where missing if `create`, else `None`.
    pub fn sub(&self, rel: &Path, create: bool) -> Result<Option<PrivateDir>> {
        let mut dir = self.dup()?;
        for name in crate::io::private_dir::plain_names(rel, &self.path)? {
            let path = dir.path.join(name);
            let fd = match rfs::openat(&dir.fd, name, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&dir.fd, name, Mode::RWXU) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Error::io(&path, e.into())),
                    }
                    rfs::openat(&dir.fd, name, DIR_FLAGS, Mode::empty())
                }
                Err(Errno::NOENT) => return Ok(None),
                other => other,
            }
            .map_err(|e| not_followed(&path, e))?;
            dir = PrivateDir { fd, path };
            dir.check()?;
        }
        Ok(Some(dir))
    }

    /// An existing regular file, for reading; `None` if there is none. A link, a FIFO or a
    /// device under that name is an error, not followed or opened.
    pub fn open_file(&self, name: &OsStr) -> Result<Option<File>> {
        let path = self.path.join(name);
        // NONBLOCK: opening a FIFO planted under the name must not hang; it is refused below.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let fd = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Err(Errno::NOENT) => return Ok(None),
            other => other.map_err(|e| not_followed(&path, e))?,
        };
        let stat = rfs::fstat(&fd).map_err(|e| Error::io(&path, e.into()))?;
        if rfs::FileType::from_raw_mode(stat.st_mode) != rfs::FileType::RegularFile {
            return Err(Error::BadInput(format!(
                "{} is not a regular file; labflash will not read it as a cache file",
                path.display()
            )));
        }
        rfs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| Error::io(&path, e.into()))?;
        Ok(Some(File::from(fd)))
    }

    /// Opens, creating it (0600) if missing, a file that is never read: a lock.
    pub fn open_lock(&self, name: &OsStr) -> Result<File> {
        let path = self.path.join(name);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rfs::openat(&self.fd, name, flags, Mode::RUSR | Mode::WUSR)
            .map_err(|e| not_followed(&path, e))?;
        Ok(File::from(fd))
    }

    /// Creates `name` (0600), failing if anything, a link included, has that name.
    pub fn create_new(&self, name: &OsStr) -> std::io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rfs::openat(&self.fd, name, flags, Mode::RUSR | Mode::WUSR)?;
        Ok(File::from(fd))
    }

    /// Renames `from` to `to` within this folder (a link named `to` is replaced, not followed),
    /// then syncs the folder so the new name survives a crash.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        rfs::renameat(&self.fd, from, &self.fd, to)
            .and_then(|()| rfs::fsync(&self.fd))
            .map_err(|e| Error::io(self.path.join(to), e.into()))
    }

    /// Gives the file `from` the name `to` too (a hard link within this folder), failing with
    /// `AlreadyExists` if anything has that name (it is never replaced); then syncs the folder.
    pub fn link_new(&self, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
        rfs::linkat(&self.fd, from, &self.fd, to, rfs::AtFlags::empty())?;
        rfs::fsync(&self.fd)?;
        Ok(())
    }

    /// Removes the file `name` (a link is removed, not followed); a missing one is no error.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        match rfs::unlinkat(&self.fd, name, rfs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(self.path.join(name), e.into())),
        }
    }

    /// The names in this folder.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fd = self.dup()?.fd;
        let dir = rfs::Dir::read_from(fd).map_err(|e| Error::io(&self.path, e.into()))?;
        Ok(dir
            .filter_map(|entry| entry.ok())
            .map(|entry| OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
            .filter(|name| name != "." && name != "..")
            .collect())
    }

    /// Removes `name` and, for a folder, everything in it, without following a link (a link is
    /// removed, not its target); a missing one is no error.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        if !self.is_folder(name)? {
            return self.remove(name);
        }
        let sub = self.sub(Path::new(name), false)?.expect("just seen");
        for entry in sub.names()? {
            sub.remove_tree(&entry)?;
        }
        match rfs::unlinkat(&self.fd, name, rfs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(self.path.join(name), e.into())),
        }
    }

    /// Bytes the files under `name` hold (links and what they point to not counted).
    pub fn tree_size(&self, name: &OsStr) -> u64 {
        let Ok(stat) = rfs::statat(&self.fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW) else {
            return 0;
        };
        match rfs::FileType::from_raw_mode(stat.st_mode) {
            rfs::FileType::RegularFile => stat.st_size as u64,
            rfs::FileType::Directory => {
                crate::io::private_dir::folder_size(self.sub(Path::new(name), false))
            }
            _ => 0,
        }
    }

    fn is_folder(&self, name: &OsStr) -> Result<bool> {
        match rfs::statat(&self.fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Directory),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io(self.path.join(name), e.into())),
        }
    }

    fn dup(&self) -> Result<PrivateDir> {
        Ok(PrivateDir {
            fd: self
                .fd
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io(&self.path, e))?,
            path: self.path.clone(),
        })
    }

    /// The ownership rule, on the open folder itself (not on a path that could be swapped).
    fn check(&self) -> Result<()> {
        let stat = rfs::fstat(&self.fd).map_err(|e| Error::io(&self.path, e.into()))?;
        let me = rustix::process::geteuid().as_raw();
        let why = if stat.st_uid != me {
            format!("it belongs to user {}, not to user {me}", stat.st_uid)
        } else if stat.st_mode & 0o022 != 0 {
            format!(
                "others may write in it (mode {:o}; `chmod go-w` it)",
                stat.st_mode & 0o7777
            )
        } else {
            return Ok(());
        };
        Err(Error::UnsafeCache {
            path: self.path.clone(),
            why,
        })
    }
}

/// Opens the folder `path` names, a step at a time as the kernel would, creating missing folders
/// (0700) and following a link only where root or this user owns it.
fn walk_trusted(path: &Path) -> Result<OwnedFd> {
    use std::collections::VecDeque;
    enum Step {
        Root,
        Up,
        Into(OsString),
    }
    fn steps(p: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
        p.components().filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::Normal(n) => Some(Step::Into(n.to_owned())),
            Component::CurDir | Component::Prefix(_) => None,
        })
    }
    let failed = |e: Errno| Error::io(path, e.into());
    let me = rustix::process::geteuid().as_raw();
    let mut at = rfs::open(".", DIR_FLAGS, Mode::empty()).map_err(failed)?;
    let mut todo: VecDeque<Step> = steps(path).collect();
    let mut links = 0;
    while let Some(step) = todo.pop_front() {
        let name = match step {
            Step::Root => {
                at = rfs::open("/", DIR_FLAGS, Mode::empty()).map_err(failed)?;
                continue;
            }
            Step::Up => OsString::from(".."),
            Step::Into(name) => name,
        };
        let stat_of = |at: &OwnedFd| rfs::statat(at, &name, rfs::AtFlags::SYMLINK_NOFOLLOW);
        let stat = match stat_of(&at) {
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&at, &name, Mode::RWXU) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(failed(e)),
                }
                stat_of(&at)
            }
            other => other,
        }
        .map_err(failed)?;
        if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Symlink {
            if stat.st_uid != 0 && stat.st_uid != me {
                return Err(Error::UnsafeCache {
                    path: path.to_path_buf(),
                    why: format!(
                        "it is reached through a symbolic link of another user (uid {}), who could point it anywhere",
                        stat.st_uid
                    ),
                });
            }
            links += 1;
            if links > 40 {
                return Err(failed(Errno::LOOP));
            }
            let to = rfs::readlinkat(&at, &name, Vec::new()).map_err(failed)?;
            let to = PathBuf::from(OsStr::from_bytes(to.as_bytes()));
            for step in steps(&to).rev() {
                todo.push_front(step);
            }
            continue;
        }
        at =
            rfs::openat(&at, &name, DIR_FLAGS, Mode::empty()).map_err(|e| not_followed(path, e))?;
    }
    Ok(at)
}

/// A link where a folder or file was expected is named as such: it is never followed.
fn not_followed(path: &Path, e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => Error::UnsafeCache {
            path: path.to_path_buf(),
            why: "it is a symbolic link or not a folder, and labflash follows no link inside its cache"
                .into(),
        },
        e => Error::io(path, e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_link_inside_is_never_followed() {
        let base = tempfile::tempdir().unwrap();
        let root = PrivateDir::open_root(&base.path().join("c")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), base.path().join("c/downloads")).unwrap();
        let err = root.sub(Path::new("downloads/h"), true).unwrap_err();
        assert!(matches!(err, Error::UnsafeCache { .. }), "{err}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        std::os::unix::fs::symlink("/etc/passwd", base.path().join("c/file")).unwrap();
        assert!(root.open_file(OsStr::new("file")).is_err());
        std::os::unix::fs::symlink("/nonexistent-x", base.path().join("c/l.lock")).unwrap();
        assert!(root.open_lock(OsStr::new("l.lock")).is_err());
        assert!(!Path::new("/nonexistent-x").exists());
    }

    #[test]
    fn a_folder_others_may_write_in_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let c = base.path().join("c");
        let root = PrivateDir::open_root(&c).unwrap();
        std::fs::create_dir(c.join("sub")).unwrap();
        std::fs::set_permissions(c.join("sub"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = root.sub(Path::new("sub"), false).unwrap_err().to_string();
        assert!(err.contains("others may write in it"), "{err}");
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(PrivateDir::open_root(&c).is_err());
    }

    #[test]
    fn a_folder_of_another_user_is_refused_even_for_root() {
        if !rustix::process::geteuid().is_root() {
            // tests/cache_cli.rs runs the same rule through the CLI and records its skip.
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let root = PrivateDir::open_root(base.path()).unwrap();
        std::fs::create_dir(base.path().join("theirs")).unwrap();
        std::os::unix::fs::chown(base.path().join("theirs"), Some(65534), None).unwrap();
        let err = root
            .sub(Path::new("theirs"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to user 65534"), "{err}");
    }

    #[test]
    fn the_cache_folder_is_reached_only_through_trusted_links() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink("real", base.path().join("mine")).unwrap();
        let dir = PrivateDir::open_root(&base.path().join("mine/a/../c")).unwrap();
        assert!(
            real.join("c").is_dir() && real.join("a").is_dir(),
            "created through my link"
        );
        drop(dir);
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let theirs = base.path().join("theirs");
        std::os::unix::fs::symlink(&real, &theirs).unwrap();
        std::os::unix::fs::lchown(&theirs, Some(4242), Some(4242)).unwrap();
        let err = PrivateDir::open_root(&theirs.join("cache"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("symbolic link of another user (uid 4242)"),
            "{err}"
        );
        assert!(
            !real.join("cache").exists(),
            "created through another user's link"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let base = tempfile::tempdir().unwrap();
        let root = PrivateDir::open_root(base.path()).unwrap();
        rfs::mknodat(
            &root.fd,
            "pipe",
            rfs::FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        assert!(root.open_file(OsStr::new("pipe")).is_err());
    }
}
