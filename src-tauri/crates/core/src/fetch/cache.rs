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

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use url::Url;

use crate::error::{io_at, Error, Result};
use crate::CancellationToken;

/// The environment variable that picks the cache folder when no flag does.
pub const CACHE_DIR_ENV: &str = "LABFLASH_CACHE_DIR";

pub struct Cache {
    root: PathBuf,
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

    pub fn open(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(&root).map_err(io_at(&root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes the cache holds (downloads and images).
    pub fn size(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root.join("downloads")) + walk(&self.root.join("images"))
    }

    /// Removes every download and image (not the folder itself).
    pub fn clear(&self) -> Result<()> {
        for sub in ["downloads", "images"] {
            let dir = self.root.join(sub);
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir, e)),
            }
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

    /// Takes the asset's lock, waiting (cancellably) while another process holds it.
    pub async fn lock(&self, asset: &Path, cancel: &CancellationToken) -> Result<AssetLock> {
        let dir = self.root.join("locks");
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let key = Sha256::digest(asset.to_string_lossy().as_bytes());
        let path = dir.join(format!("{}.lock", hex::encode(&key[..12])));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
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

    /// A fresh temp file beside `final_path`, removed on drop unless committed. Leftovers of
    /// earlier, killed runs for the same file are removed first.
    pub fn temp_beside(&self, final_path: &Path) -> Result<NamedTempFile> {
        let dir = folder_of(final_path);
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let prefix = temp_prefix(final_path);
        for entry in fs::read_dir(dir).map_err(io_at(dir))?.flatten() {
            let name = entry.file_name();
            if is_temp_of(&name.to_string_lossy(), &prefix) {
                remove_if_abandoned(&entry.path());
            }
        }
        temp_file_beside(final_path)
    }
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
fn remove_if_abandoned(path: &Path) {
    let Ok(file) = File::options().write(true).open(path) else {
        return;
    };
    match file.try_lock() {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removing a temp file left by an interrupted run");
            let _ = fs::remove_file(path);
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
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok(())
}

/// The folder a file is in; `.` for a bare file name (whose `parent()` is the empty path).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a small file atomically (temp, fsync, rename).
pub fn write_atomic(cache: &Cache, final_path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = cache.temp_beside(final_path)?;
    tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
    commit(tmp, final_path)
}

/// Removes a cache file that failed verification.
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

    fn cache() -> Cache {
        Cache {
            root: PathBuf::from("/c"),
        }
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
        let url = Url::parse("https://factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw.xz")
            .unwrap();
        assert_eq!(
            cache().archive_path(&url),
            Path::new("/c/downloads/factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw.xz")
        );
        assert_eq!(
            cache().image_path(&url),
            Path::new("/c/images/factory.talos.dev/image/376567/v1.13.0/nocloud-amd64.raw")
        );
    }

    #[test]
    fn ports_queries_and_odd_names_stay_inside_the_cache() {
        let url = Url::parse("http://127.0.0.1:8080/a/%2E%2E/b%20c/.hidden/os.img?tok=1").unwrap();
        let path = cache().archive_path(&url);
        assert!(
            path.starts_with("/c/downloads/127.0.0.1_8080/b_20c/"),
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
            cache().image_path(&Url::parse("http://h/x/disk.raw").unwrap()),
            Path::new("/c/images/h/x/disk.raw.img")
        );
    }
}
