//! The download cache: a folder a person can read, where every file appears only complete.
//!
//! ```text
//! <cache>/downloads/<host>/<url path>       archives as served, verified before they got their name
//! <cache>/images/<host>/<url path minus .xz|.gz|.zst>       decompressed images
//! <cache>/locks/<hash>.lock                 one per asset, held while it is fetched
//! ```
//! Files are written as `.<name>.<random>.part` beside their final name (a name too long for that
//! is shortened and tagged with its hash), locked while they are written, fsynced, and renamed into
//! place; a temp file left by a killed process is swept the next time the same file is written,
//! and only then: never another file's, never one a live process holds.
//!
//! Nothing in the cache is reached by path: the cache folder is opened once and everything in it
//! relative to that descriptor, no link followed, every folder checked to be this user's alone
//! ([`PrivateDir`]). A file that was proven is used through the descriptor that read it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use url::Url;

use crate::error::{io_at, Error, Result};
use crate::io::device::folder_of;
use crate::io::private_dir::PrivateDir;
use crate::CancellationToken;

/// The environment variable that picks the cache folder when no flag does.
pub const CACHE_DIR_ENV: &str = "LABFLASH_CACHE_DIR";

pub struct Cache {
    root: PathBuf,
    dir: PrivateDir,
}

impl Cache {
    /// The cache folder: the caller's choice, else `$LABFLASH_CACHE_DIR`, else the platform's
    /// cache folder (`$XDG_CACHE_HOME/labflash` or `~/.cache/labflash` on Linux).
    pub fn resolve_dir(chosen: Option<&Path>) -> Result<PathBuf> {
        if let Some(dir) = chosen {
            return Ok(dir.to_path_buf());
        }
        if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        dirs::cache_dir()
            .map(|d| d.join("labflash"))
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "no cache folder: set {CACHE_DIR_ENV} or choose one explicitly"
                ))
            })
    }

    /// Opens the cache folder, creating it (0700) if missing; refused unless it is this user's
    /// alone (see [`PrivateDir`]).
    pub fn open(root: PathBuf) -> Result<Self> {
        let dir = PrivateDir::open_root(&root)?;
        Ok(Self { root, dir })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes the cache holds (downloads and images).
    pub fn size(&self) -> u64 {
        ["downloads", "images"]
            .iter()
            .map(|sub| self.dir.tree_size(OsStr::new(sub)))
            .sum()
    }

    /// Removes every download and image (not the folder itself), through the cache folder's
    /// descriptor: whatever its path names by now, and no link inside, is followed.
    pub fn clear(&self) -> Result<()> {
        for sub in ["downloads", "images"] {
            self.dir.remove_tree(OsStr::new(sub))?;
        }
        Ok(())
    }

    /// Where the archive served at `url` is kept.
    pub fn archive_path(&self, url: &Url) -> PathBuf {
        self.root.join("downloads").join(url_relative_path(url))
    }

    /// Where the image decompressed from the archive at `url` is kept.
    pub fn image_path(&self, url: &Url) -> PathBuf {
        let rel = url_relative_path(url);
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let stem = [".xz", ".gz", ".zst"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{name}.img"));
        self.root.join("images").join(rel.with_file_name(stem))
    }

    /// Where the image decompressed from a local archive is kept, by the archive's digest.
    pub fn local_image_path(&self, archive_sha256: &crate::fetch::digest::Sha256Digest) -> PathBuf {
        self.root
            .join("images/local")
            .join(format!("{archive_sha256}.img"))
    }

    /// The folder holding `path` (a path inside the cache), opened step by step from the cache
    /// folder (created if `create`; `None` if missing otherwise), and the file's name in it.
    fn locate(&self, path: &Path, create: bool) -> Result<Option<(PrivateDir, OsString)>> {
        let rel = path.strip_prefix(&self.root).ok();
        let (Some(parent), Some(name)) = (rel.and_then(Path::parent), path.file_name()) else {
            return Err(Error::BadInput(format!(
                "{} is not a file inside the cache {}",
                path.display(),
                self.root.display()
            )));
        };
        Ok(self
            .dir
            .sub(parent, create)?
            .map(|dir| (dir, name.to_owned())))
    }

    /// The regular file at `path` in the cache, opened without following a link, or `None`.
    pub fn open_file(&self, path: &Path) -> Result<Option<File>> {
        match self.locate(path, false)? {
            Some((dir, name)) => dir.open_file(&name),
            None => Ok(None),
        }
    }

    /// Removes a cache file that failed verification (a link there is removed, not followed).
    pub fn discard(&self, path: &Path) -> Result<()> {
        match self.locate(path, false)? {
            Some((dir, name)) => dir.remove(&name),
            None => Ok(()),
        }
    }

    /// Takes the asset's lock, waiting (cancellably) while another process holds it.
    pub async fn lock(&self, asset: &Path, cancel: &CancellationToken) -> Result<AssetLock> {
        let dir = self.dir.sub(Path::new("locks"), true)?.expect("created");
        let key = Sha256::digest(asset.to_string_lossy().as_bytes());
        let name = format!("{}.lock", hex::encode(&key[..12]));
        let path = dir.path().join(&name);
        let file = dir.open_lock(OsStr::new(&name))?;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(AssetLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {
                    if !told {
                        tracing::info!(asset = %asset.display(), "another labflash is fetching this asset; waiting for it");
                        told = true;
                    }
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
    }

    /// A fresh temp file beside `final_path` (inside the cache), removed on drop unless
    /// committed. Leftovers of earlier, killed runs for the same file are removed first.
    pub fn temp_beside(&self, final_path: &Path) -> Result<CacheTemp> {
        let (dir, final_name) = self.locate(final_path, true)?.expect("created");
        let prefix = temp_prefix(final_path);
        for name in dir.names()? {
            if is_temp_of(&name.to_string_lossy(), &prefix) {
                remove_if_abandoned(&dir, &name);
            }
        }
        let (file, name) = loop {
            let name = format!("{prefix}{}.part", random_chars());
            match dir.create_new(OsStr::new(&name)) {
                Ok(file) => break (file, OsString::from(name)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(dir.path().join(&name), e)),
            }
        };
        let path = dir.path().join(&name);
        file.lock().map_err(io_at(&path))?;
        Ok(CacheTemp {
            file: Some(file),
            dir,
            name,
            final_name,
            path,
            final_path: final_path.to_path_buf(),
        })
    }
}

/// A temp file in the cache, written through its descriptor and given its final name by a rename
/// in the folder it was created in; removed on drop unless committed.
pub struct CacheTemp {
    file: Option<File>,
    dir: PrivateDir,
    name: OsString,
    final_name: OsString,
    path: PathBuf,
    final_path: PathBuf,
}

impl CacheTemp {
    /// The temp file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it goes when committed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    pub fn as_file(&self) -> &File {
        self.file.as_ref().expect("open until committed")
    }

    pub fn as_file_mut(&mut self) -> &mut File {
        self.file.as_mut().expect("open until committed")
    }

    /// fsyncs the file and renames it to its final name (the folder is synced too, so the name
    /// survives a crash); returns the descriptor, so what was written is what is used next.
    pub fn commit(mut self) -> Result<File> {
        let file = self.file.take().expect("open until committed");
        file.sync_all().map_err(io_at(&self.path))?;
        if let Err(e) = self.dir.rename(&self.name, &self.final_name) {
            self.file = Some(file);
            return Err(e);
        }
        Ok(file)
    }
}

impl CacheTemp {
    /// fsyncs the file and gives it its final name only if nothing has that name yet (never
    /// replacing what is there); `false` when something did. The temp file is removed either way.
    pub fn commit_new(self) -> Result<bool> {
        let file = self.file.as_ref().expect("open until committed");
        file.sync_all().map_err(io_at(&self.path))?;
        match self.dir.link_new(&self.name, &self.final_name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(&self.final_path, e)),
        }
        // Dropped here: the temp name goes, the final one (if made) stays.
    }
}

impl Write for CacheTemp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.as_file_mut().flush()
    }
}

impl Drop for CacheTemp {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = self.dir.remove(&self.name);
        }
    }
}

fn random_chars() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(TEMP_RANDOM)
        .collect()
}

/// Whether `name` is a temp file `temp_file_beside` made for the file whose prefix is `prefix`:
/// `<prefix><6 random characters>.part` exactly, so `.os.raw.` never matches `.os.raw.xz.…`.
fn is_temp_of(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(".part"))
        .is_some_and(|random| {
            random.len() == TEMP_RANDOM && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes a temp file unless a live process holds its lock (every temp file is locked by the
/// process writing it until it is renamed or removed).
fn remove_if_abandoned(dir: &PrivateDir, name: &OsStr) {
    let path = dir.path().join(name);
    let Ok(Some(file)) = dir.open_file(name) else {
        return;
    };
    match file.try_lock() {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removing a temp file left by an interrupted run");
            let _ = dir.remove(name);
        }
        Err(_) => {
            tracing::debug!(path = %path.display(), "a live process is writing this temp file")
        }
    }
}

/// Random characters in a temp file's name.
const TEMP_RANDOM: usize = 6;

/// A temp file `.<name>.<random>.part` beside `final_path`: created O_EXCL with mode 0600 (never
/// readable by others, not even briefly), locked for as long as it is open, removed on drop
/// unless committed.
pub fn temp_file_beside(final_path: &Path) -> Result<NamedTempFile> {
    let dir = folder_of(final_path);
    let tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(final_path))
        .rand_bytes(TEMP_RANDOM)
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    tmp.as_file().lock().map_err(io_at(tmp.path()))?;
    Ok(tmp)
}

/// Copies `src` to `dst` atomically (0600 temp, fsync, rename), with `overlay` bytes written over
/// the copy at their offset, and returns the copy's SHA-256 and size.
pub fn copy_with_overlay(
    src: &Path,
    dst: &Path,
    overlay: Option<(u64, &[u8])>,
    cancel: &CancellationToken,
) -> Result<(crate::fetch::digest::Sha256Digest, u64)> {
    use std::io::Read;
    let mut tmp = temp_file_beside(dst)?;
    let mut input = File::open(src).map_err(io_at(src))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; crate::IO_CHUNK];
    let mut pos = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = input.read(&mut buf).map_err(io_at(src))?;
        if n == 0 {
            break;
        }
        if let Some((offset, bytes)) = overlay {
            let (from, to) = (
                pos.max(offset),
                (pos + n as u64).min(offset + bytes.len() as u64),
            );
            if from < to {
                buf[(from - pos) as usize..(to - pos) as usize]
                    .copy_from_slice(&bytes[(from - offset) as usize..(to - offset) as usize]);
            }
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io_at(tmp.path()))?;
        pos += n as u64;
    }
    commit(tmp, dst)?;
    Ok((crate::fetch::digest::Sha256Digest::of_hasher(hasher), pos))
}

/// Held while an asset is fetched; released on drop (or when the process dies).
pub struct AssetLock {
    _file: File,
}

/// fsyncs `tmp` and renames it to `final_path`, then fsyncs the folder so the name survives a crash.
pub fn commit(tmp: NamedTempFile, final_path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
    tmp.persist(final_path)
        .map_err(|e| Error::io(final_path, e.error))?;
    let dir = folder_of(final_path);
    crate::io::block::sync_folder(dir).map_err(io_at(dir))
}

/// Removes a file that failed verification (an output outside the cache).
pub fn discard(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Longest file name most filesystems take (ext4, xfs, btrfs, FAT's long names, NTFS).
const NAME_MAX: usize = 255;

/// `.<name>.`; a name too long to take the temp file's 13 extra bytes is cut (at a character
/// boundary) and tagged with a hash of the whole name, so it stays unique to its file.
fn temp_prefix(final_path: &Path) -> String {
    let name = final_path.file_name().unwrap_or_default().to_string_lossy();
    let extra = ".".len() + ".".len() + TEMP_RANDOM + ".part".len();
    if name.len() + extra <= NAME_MAX {
        return format!(".{name}.");
    }
    let tag = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
    let mut keep = NAME_MAX - extra - tag.len() - 1;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!(".{}~{tag}.", &name[..keep])
}

/// `https://factory.talos.dev:8443/image/abc/v1.13.0/nocloud-amd64.raw.xz?x=1` →
/// `factory.talos.dev_8443/image/abc/v1.13.0/nocloud-amd64.raw.xz_q<hash>`. Every segment is
/// reduced to safe characters, so no URL can name a path outside the cache.
fn url_relative_path(url: &Url) -> PathBuf {
    let mut host = sanitize(url.host_str().unwrap_or("local"));
    if let Some(port) = url.port() {
        host.push_str(&format!("_{port}"));
    }
    let mut rel = PathBuf::from(host);
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(sanitize).collect())
        .unwrap_or_default();
    let mut segments = if segments.is_empty() {
        vec!["index".to_string()]
    } else {
        segments
    };
    if let Some(query) = url.query() {
        let tag = hex::encode(&Sha256::digest(query.as_bytes())[..6]);
        let last = segments.last_mut().expect("non-empty");
        last.push_str(&format!("_q{tag}"));
    }
    for segment in segments {
        rel.push(segment);
    }
    rel
}

fn sanitize(segment: &str) -> String {
    let cleaned: String = segment
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '+' | '@' => c,
            _ => '_',
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "_".repeat(cleaned.len().max(1)),
        _ if cleaned.starts_with('.') => format!("_{cleaned}"),
        _ => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths the layout gives, relative to the cache folder.
    fn layout(url: &str) -> (PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let url = Url::parse(url).unwrap();
        let rel = |p: PathBuf| p.strip_prefix(cache.root()).unwrap().to_path_buf();
        (rel(cache.archive_path(&url)), rel(cache.image_path(&url)))
    }

    #[test]
    fn temp_files_of_one_name_never_match_another_name() {
        assert!(is_temp_of(".os.raw.aB3x9Z.part", ".os.raw."));
        assert!(!is_temp_of(".os.raw.xz.aB3x9Z.part", ".os.raw."));
        assert!(!is_temp_of(".os.raw.aB3x9.part", ".os.raw."));
        assert!(!is_temp_of(".os.raw.aB3x9Z.part.x", ".os.raw."));
    }

    #[test]
    fn a_long_name_gets_a_shortened_hashed_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("é".repeat(60) + &"x".repeat(133));
        assert_eq!(long.file_name().unwrap().len(), 253);
        let other = dir.path().join("é".repeat(60) + &"x".repeat(132) + "y");
        let tmp = temp_file_beside(&long).unwrap();
        let name = tmp.path().file_name().unwrap().len();
        assert!(name <= NAME_MAX, "{name}");
        assert_ne!(temp_prefix(&long), temp_prefix(&other));
        commit(tmp, &long).unwrap();
        assert!(long.is_file());
    }

    #[test]
    fn a_live_temp_file_is_never_swept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();
        let target = dir.path().join("os.raw");
        let live = cache.temp_beside(&target).unwrap();
        // A killed run's leftover: same name pattern, nobody holds it.
        let dead = dir.path().join(".os.raw.Zz9Zz9.part");
        std::fs::write(&dead, b"old").unwrap();
        let _second = cache.temp_beside(&target).unwrap();
        assert!(live.path().exists(), "the live temp file was removed");
        assert!(!dead.exists(), "the abandoned one was kept");
    }

    #[test]
    fn layout_mirrors_the_url() {
        let (archive, image) =
            layout("https://factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw.xz");
        assert_eq!(
            archive,
            Path::new("downloads/factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw.xz")
        );
        assert_eq!(
            image,
            Path::new("images/factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw")
        );
    }

    #[test]
    fn ports_queries_and_odd_names_stay_inside_the_cache() {
        let (path, _) = layout("http://127.0.0.1:8080/a/%2E%2E/b%20c/.hidden/os.img?tok=1");
        assert!(
            path.starts_with("downloads/127.0.0.1_8080/b_20c/"),
            "{path:?}"
        );
        assert!(
            !path.components().any(|c| c.as_os_str() == ".."),
            "{path:?}"
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("os.img_q"), "{name}");
        assert!(path.to_string_lossy().contains("/_.hidden/"), "{path:?}");
        assert_eq!(
            layout("http://h/x/disk.raw").1,
            Path::new("images/h/x/disk.raw.img")
        );
    }

    #[test]
    fn a_link_planted_as_a_lock_or_a_folder_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let asset = cache.root().join("downloads/h/os.raw.xz");
        let outside = dir.path().join("nologin");
        std::fs::create_dir_all(cache.root().join("locks")).unwrap();
        let key = Sha256::digest(asset.to_string_lossy().as_bytes());
        let lock = cache
            .root()
            .join(format!("locks/{}.lock", hex::encode(&key[..12])));
        crate::io::testing::symlink(&outside, &lock).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let err = rt
            .block_on(cache.lock(&asset, &CancellationToken::new()))
            .err()
            .expect("a planted lock link was followed");
        assert!(matches!(err, Error::UnsafeCache { .. }), "{err}");
        assert!(
            !outside.exists(),
            "root created the file the link points at"
        );

        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        crate::io::testing::symlink(&elsewhere, cache.root().join("downloads")).unwrap();
        assert!(cache.temp_beside(&asset).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn clearing_removes_links_never_what_they_point_to() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep.img"), b"not the cache's").unwrap();
        std::fs::create_dir_all(cache.root().join("downloads/h")).unwrap();
        std::fs::write(cache.root().join("downloads/h/os.raw.xz"), b"12345").unwrap();
        crate::io::testing::symlink(&outside, cache.root().join("downloads/h/link")).unwrap();
        crate::io::testing::symlink(&outside, cache.root().join("images")).unwrap();
        assert_eq!(cache.size(), 5, "links are not followed when counting");
        cache.clear().unwrap();
        assert_eq!(std::fs::read_dir(cache.root()).unwrap().count(), 0);
        assert!(outside.join("keep.img").is_file());
    }
}
