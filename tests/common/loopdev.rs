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
        let lock = LoopLock::take();
        let out = Command::new("losetup")
            .args(["-f", "--show", "--sector-size", &sector_size.to_string()])
            .arg(&backing)
            .output()
            .expect("losetup");
        drop(lock);
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

    /// Detaches it and attaches its node to `backing`: the node's number stays, the kernel gives
    /// it a new diskseq. Loop setups of other tests wait meanwhile (see `LoopLock`).
    pub fn reattach(&self, backing: &Path) -> LoopDev {
        let _lock = LoopLock::take();
        let detach = Command::new("losetup").arg("-d").arg(&self.path).output();
        assert!(detach.is_ok_and(|o| o.status.success()), "losetup -d");
        // A detach while another process has the node open (udev's blkid, when the UDisks2 test
        // runs udevd) only takes effect at its close: the attach is refused as busy until then.
        let mut tries = 0;
        loop {
            let attach = Command::new("losetup")
                .arg(&self.path)
                .arg(backing)
                .output()
                .expect("losetup");
            if attach.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 50,
                "losetup {}: {}",
                self.path.display(),
                String::from_utf8_lossy(&attach.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        LoopDev {
            path: self.path.clone(),
            backing: backing.to_path_buf(),
            size: std::fs::metadata(backing).unwrap().len(),
        }
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

/// Held by every loop setup of these tests, which run in parallel processes: `losetup -f` takes
/// the lowest free node, so without it a test that detaches a node to attach it anew can see
/// another test take the node in between.
pub struct LoopLock(File);

impl LoopLock {
    pub fn take() -> LoopLock {
        let f = File::create("/tmp/labflash-tests-losetup.lock").expect("the loop lock file");
        use std::os::fd::AsRawFd;
        // Released when the file is closed (dropped).
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        LoopLock(f)
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
