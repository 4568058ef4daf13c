//! Real loop devices (root only) over files in a temp folder, detached on drop.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Skips a block-device test on machines where it cannot run (not root).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::loopdev::is_root() {
            $crate::common::skip("loop devices need root");
            return;
        }
    };
}

pub struct LoopDev {
    pub path: PathBuf,
    pub backing: PathBuf,
    pub size: u64,
}

impl LoopDev {
    /// A loop device of `size` bytes, filled with `fill` so untouched bytes can be recognised.
    pub fn new(dir: &Path, size: u64, sector_size: u32, fill: u8) -> LoopDev {
        let backing = dir.join(format!("disk-{}.img", fastrand_name()));
        let f = File::create(&backing).unwrap();
        let block = vec![fill; 1 << 20];
        let mut at = 0;
        while at < size {
            let n = (size - at).min(block.len() as u64) as usize;
            f.write_all_at(&block[..n], at).unwrap();
            at += n as u64;
        }
        f.sync_all().unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show", "--sector-size", &sector_size.to_string()])
            .arg(&backing)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        LoopDev {
            path,
            backing,
            size,
        }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Reads `len` bytes at `offset` from the device itself (O_DIRECT, not the page cache).
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&self.path)
            .unwrap();
        // O_DIRECT wants aligned offsets and lengths: read the aligned span around the range.
        let start = offset / 4096 * 4096;
        let skip = (offset - start) as usize;
        let aligned_len = (skip + len).div_ceil(4096) * 4096;
        let mut storage = vec![0u8; aligned_len + 4096];
        let at = storage.as_ptr().align_offset(4096);
        let buf = &mut storage[at..at + aligned_len];
        let mut done = 0;
        while done < aligned_len {
            let n = f.read_at(&mut buf[done..], start + done as u64).unwrap();
            if n == 0 {
                break;
            }
            done += n;
        }
        buf[skip..skip + len].to_vec()
    }
}

impl LoopDev {
    /// Writes `bytes` at `offset` through the device and flushes them to it.
    pub fn write(&self, offset: u64, bytes: &[u8]) {
        let f = OpenOptions::new().write(true).open(&self.path).unwrap();
        f.write_all_at(bytes, offset).unwrap();
        f.sync_all().unwrap();
    }

    /// Reads `len` bytes at `offset` from the backing file (after the device was detached).
    pub fn read_backing(&self, offset: u64, len: usize) -> Vec<u8> {
        let f = File::open(&self.backing).unwrap();
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).unwrap();
        buf
    }

    /// Whether the device still is this loop device: ejecting detaches it, and its number may
    /// then be another test's device.
    pub fn attached(&self) -> bool {
        let name = self
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"));
        backing
            .is_ok_and(|b| Path::new(b.trim()) == self.backing.canonicalize().unwrap_or_default())
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if !self.attached() {
            return;
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `labflash ARGS`, sends it `signal` once it has written past the first MiB of `dev`
/// (whose fill byte is `fill`), and returns how it ended and how long it took to stop.
pub fn interrupt_while_writing(
    args: &[&str],
    dev: &LoopDev,
    fill: u8,
    signal: i32,
) -> (crate::common::Run, std::time::Duration) {
    use std::time::{Duration, Instant};
    let child = crate::common::labflash(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Writing has begun once bytes after the first MiB are no longer the fill pattern.
    let deadline = Instant::now() + Duration::from_secs(120);
    while dev.read(1 << 20, 4096).iter().all(|b| *b == fill) {
        assert!(Instant::now() < deadline, "writing never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = Instant::now();
    unsafe { libc::kill(child.id() as i32, signal) };
    let run = child.wait_with_output().unwrap().into();
    (run, interrupted.elapsed())
}
