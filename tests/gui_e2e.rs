//! The real app in the real webview under Xvfb, driven over WebDriver (tauri-driver with
//! WebKitWebDriver): a local image flashed to a loop device and verified, verify mode reporting a
//! mismatch, and Cancel mid-flash leaving the first MiB wiped. Screenshots of each step are saved.
//!
//! Root (loop devices), as in CI. The app refuses root unless LABFLASH_GUI_ALLOW_ROOT is set,
//! which this test does for its sandbox; on a desktop the app runs as the user (drives through
//! UDisks2, tested in udisks_cli.rs).

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::loopdev::LoopDev;
use common::webdriver::Session;
use common::*;

const MIB: u64 = 1 << 20;

struct Gui {
    children: Vec<Child>,
    session: Option<Session>,
    shots: PathBuf,
}

impl Drop for Gui {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            s.quit();
        }
        // Each child leads its own process group: tauri-driver's WebKitWebDriver goes with it.
        for c in self.children.iter_mut().rev() {
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let candidates = [
        PathBuf::from(format!("{home}/.cargo/bin/tauri-driver")),
        PathBuf::from("/usr/local/bin/tauri-driver"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("tauri-driver is missing: cargo install tauri-driver --locked --version ^2 (tests/run does)")
}

impl Gui {
    fn start(cache: &Path) -> Gui {
        let display = (90..140)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display");
        let mut gui = Gui {
            children: Vec::new(),
            session: None,
            shots: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots"),
        };
        std::fs::create_dir_all(&gui.shots).unwrap();
        gui.children.push(
            Command::new("Xvfb")
                .process_group(0)
                .args([
                    &format!(":{display}"),
                    "-screen",
                    "0",
                    "1024x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (package xvfb)"),
        );
        let (port, native) = (free_port(), free_port());
        gui.children.push(
            Command::new(tauri_driver())
                .process_group(0)
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &native.to_string(),
                ])
                .env("DISPLAY", format!(":{display}"))
                .env("LABFLASH_GUI_ALLOW_ROOT", "1")
                .env("LABFLASH_CACHE_DIR", cache)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tauri-driver"),
        );
        let app = labflash_bin().with_file_name("labflash-gui");
        gui.session = Some(Session::new(port, app.to_str().unwrap()));
        gui
    }

    fn s(&self) -> &Session {
        self.session.as_ref().unwrap()
    }

    fn shot(&self, name: &str) {
        self.s().screenshot(&self.shots.join(format!("{name}.png")));
    }
}

#[test]
fn a_first_time_user_flashes_verifies_and_cancels_in_the_app() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = dir.path().join("cache");
    let bytes = image_like(6 * MIB as usize + 4096, 70);
    let image = dir.path().join("talos.raw");
    std::fs::write(&image, &bytes).unwrap();
    let digest = sha256_hex(&bytes);
    let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);

    let gui = Gui::start(&cache);
    let s = gui.s();
    gui.shot("0-start");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.text("#message"),
        "",
        "the window started without errors (drop listener, drive watch)"
    );

    // 1–2. Pick the image, prepare it, check the digest.
    s.type_into("#file-path", image.to_str().unwrap());
    s.click("#prepare");
    s.wait_text("#image-sha", 60, |t| t == digest);
    s.type_into("#paste-digest", &digest.to_uppercase());
    s.wait_text("#paste-result", 5, |t| t == "Match");
    assert!(
        s.text("#digest-source").contains("none"),
        "a local file without a typed digest is flagged"
    );
    gui.shot("1-prepared");
    s.click("#confirm-digests");

    // 3. The loop device shows once fixed disks and loop devices are shown.
    s.click("#show-all");
    let dev_path = dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(dev_path));
    s.click(&format!("#drives input[value=\"{dev_path}\"]"));
    gui.shot("2-drive");

    // 4. Flash, confirm, and see the read-back digest.
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 10, |t| !t.is_empty());
    assert!(
        question.contains(dev_path),
        "the confirmation names the drive: {question}"
    );
    gui.shot("3-confirm");
    s.click("#confirm-yes");
    let result = s.wait_text("#results", 120, |t| !t.is_empty());
    assert!(
        result.contains(&format!("{dev_path}: done, read back SHA-256 {digest}")),
        "{result}"
    );
    gui.shot("4-flashed");
    assert_eq!(dev.read(0, bytes.len()), bytes);

    // Verify mode: a wrong digest is a mismatch in large type; the right one a match.
    s.click("#tab-verify");
    s.type_into("#verify-path", dev_path);
    s.type_into("#verify-expected", &"0".repeat(64));
    s.type_into("#verify-size", &bytes.len().to_string());
    s.click("#verify-button");
    s.wait_text("#verify-result", 60, |t| t == "MISMATCH");
    gui.shot("5-verify-mismatch");
    s.type_into("#verify-expected", &digest);
    s.click("#verify-button");
    s.wait_text("#verify-result", 60, |t| t == "MATCH");

    // Cancel mid-flash: the first MiB stays wiped.
    let big = dir.path().join("big.raw");
    {
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(512 * MIB).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&noise(MIB as usize, 71), 0).unwrap();
    }
    let big_dev = LoopDev::new(dir.path(), 600 * MIB, 512, 0xAA);
    s.click("#tab-flash");
    s.type_into("#file-path", big.to_str().unwrap());
    s.click("#prepare");
    s.wait_text("#image-sha", 120, |t| t.len() == 64 && t != digest);
    s.click("#confirm-digests");
    let big_path = big_dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(big_path));
    s.click(&format!("#drives input[value=\"{big_path}\"]"));
    s.click("#flash-button");
    s.click("#confirm-yes");
    s.wait_text("#flash-progress", 60, |t| {
        t.contains("Writing") && !t.contains("Writing · 0 %")
    });
    gui.shot("6-writing");
    let asked = Instant::now();
    s.click("#cancel-button");
    let result = s.wait_text("#results", 30, |t| !t.is_empty());
    assert!(result.contains("failed — cancelled"), "{result}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    gui.shot("7-cancelled");
    assert!(
        big_dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is wiped"
    );
}
