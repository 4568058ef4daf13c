//! The cache folder on Windows. It lives under %LOCALAPPDATA%, which Windows' access lists keep
//! to this user, so the ownership rule Linux checks on every folder is Windows' own here. What
//! stays is never following a link (a symbolic link or junction) inside the cache: every step
//! and every file is looked at without following one, and one found is refused, not used.
//! Windows' ordinary API has no handle-relative opens, so folders are kept by path.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Opens (creating it and its missing parents) the folder at `path`, which may be reached
    /// through links of this user's (a cache moved to another disk).
    pub fn open_root(path: &Path) -> Result<Self> {
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        if !path.is_dir() {
            return Err(unsafe_cache(path, "it is not a folder"));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at `rel` (plain names only), each step checked; created where missing if
    /// `create`, else `None`.
    pub fn sub(&self, rel: &Path, create: bool) -> Result<Option<PrivateDir>> {
        let mut path = self.path.clone();
        for name in crate::io::private_dir::plain_names(rel, &self.path)? {
            path.push(name);
            match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match fs::create_dir(&path) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                            return Err(Error::io(&path, e))
                        }
                        _ => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(&path, e)),
                Ok(_) => {}
            }
            self.check(&path)?;
        }
        Ok(Some(PrivateDir { path }))
    }

    /// An existing regular file, for reading; `None` if there is none.
    pub fn open_file(&self, name: &OsStr) -> Result<Option<File>> {
        let path = self.path.join(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
            Ok(m) if !m.is_file() => {
                return Err(Error::BadInput(format!(
                    "{} is not a regular file; labflash will not read it as a cache file",
                    path.display()
                )))
            }
            Ok(_) => {}
        }
        File::open(&path).map(Some).map_err(|e| Error::io(&path, e))
    }

    /// Opens, creating it if missing, a file that is never read: a lock.
    pub fn open_lock(&self, name: &OsStr) -> Result<File> {
        let path = self.path.join(name);
        self.not_a_link(&path)?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))
    }

    /// Creates `name`, failing if anything, a link included, has that name.
    pub fn create_new(&self, name: &OsStr) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path.join(name))
    }

    /// Renames `from` to `to` within this folder (replacing `to`).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        fs::rename(self.path.join(from), self.path.join(to))
            .map_err(|e| Error::io(self.path.join(to), e))
    }

    /// Gives the file `from` the name `to` too (a hard link within this folder), failing with
    /// `AlreadyExists` if anything has that name (it is never replaced).
    pub fn link_new(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        fs::hard_link(self.path.join(from), self.path.join(to))
    }

    /// Removes the file `name` (a link is removed, not followed); a missing one is no error.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        let path = self.path.join(name);
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir(&path),
            _ => fs::remove_file(&path),
        };
        match removed {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }

    /// The names in this folder.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let entries = fs::read_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(entries.flatten().map(|e| e.file_name()).collect())
    }

    /// Removes `name` and, for a folder, everything in it, never following a link.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        let path = self.path.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && !m.is_symlink() => {
                fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))
            }
            _ => self.remove(name),
        }
    }

    /// Bytes the files under `name` hold (links and what they point to not counted).
    pub fn tree_size(&self, name: &OsStr) -> u64 {
        let path = self.path.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(m) if m.is_dir() && !m.is_symlink() => {
                crate::io::private_dir::folder_size(self.sub(Path::new(name), false))
            }
            _ => 0,
        }
    }

    /// A folder inside the cache must be a real folder, not a link to one elsewhere.
    fn check(&self, path: &Path) -> Result<()> {
        self.not_a_link(path)?;
        if !path.is_dir() {
            return Err(unsafe_cache(path, "it is not a folder"));
        }
        Ok(())
    }

    fn not_a_link(&self, path: &Path) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => Err(unsafe_cache(
                path,
                "it is a symbolic link or junction, and labflash follows no link inside its cache",
            )),
            _ => Ok(()),
        }
    }
}

fn unsafe_cache(path: &Path, why: &str) -> Error {
    Error::UnsafeCache {
        path: path.to_path_buf(),
        why: why.into(),
    }
}
