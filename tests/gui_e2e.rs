//! The real app in the real webview under Xvfb, driven over WebDriver (tauri-driver with
//! WebKitWebDriver): a local image flashed to a loop device and verified, verify mode reporting a
//! mismatch, and Cancel mid-flash leaving the first MiB wiped. Screenshots of each step are saved.
//! And the app as an unprivileged user whose only way to the drive is pkexec, with no
//! authentication agent: the sentence that says what to do.
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

/// One app at a time: the no-agent test starts and stops a system bus the other app would use.
static ONE_APP: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// Whether display `n` is free: no lock, or the lock of an X server that is gone (one killed
/// with its test leaves its lock and socket; Xvfb takes such a display over).
fn x_display_free(n: u32) -> bool {
    let lock = format!("/tmp/.X{n}-lock");
    match std::fs::read_to_string(&lock) {
        // A socket without a lock is a dead server's too: X servers lock before they listen.
        Err(_) => true,
        Ok(pid) => {
            let alive = pid
                .trim()
                .parse::<u32>()
                .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
            }
            !alive
        }
    }
}

impl Gui {
    fn start(cache: &Path) -> Gui {
        Self::start_as(cache, None)
    }

    /// The app as `user` (its HOME and the helper given), or as root for the sandbox.
    fn start_as(cache: &Path, user: Option<&User>) -> Gui {
        let display = (90..140)
            .find(|n| x_display_free(*n))
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
        let mut driver = match user {
            None => {
                let mut c = Command::new(tauri_driver());
                c.env("LABFLASH_GUI_ALLOW_ROOT", "1");
                c
            }
            Some(u) => {
                // runuser sets HOME from the password database: give it explicitly.
                let mut c = Command::new("runuser");
                c.args(["-u", &u.name, "--", "env"])
                    .arg(format!("HOME={}", u.home.display()))
                    .arg(format!("XDG_RUNTIME_DIR={}", u.home.display()))
                    .arg(format!("LABFLASH_HELPER={}", u.helper.display()))
                    .arg(u.bin.join("tauri-driver"));
                c
            }
        };
        gui.children.push(
            driver
                .process_group(0)
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &native.to_string(),
                ])
                .env("DISPLAY", format!(":{display}"))
                .env("LABFLASH_CACHE_DIR", cache)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tauri-driver"),
        );
        let app = match user {
            Some(u) => u.bin.join("labflash-gui"),
            None => labflash_bin().with_file_name("labflash-gui"),
        };
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
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
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
    assert!(!s.enabled("#flash-button"));
    assert!(
        s.text("#flash-reason") == "Choose an image.",
        "a disabled Flash says why from the start"
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
    let short = format!("{}…{}", &digest[..8], &digest[56..]);
    assert!(
        question.contains(dev_path),
        "the confirmation names the drive: {question}"
    );
    assert!(
        question.contains("talos.raw") && question.contains(&short),
        "the confirmation names the image and its digest: {question}"
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
    // The drive's row ends as what happened, not "Writing · 100 %".
    let rows = s.text("#flash-progress");
    assert!(
        rows.contains(&format!(
            "{dev_path}: ✓ Verified — read back matches {short}"
        )),
        "{rows}"
    );

    // Another source forgets the old image at once (its digests and results go), and Flash
    // now means the new source: here a file that does not exist, which Flash then names.
    s.type_into("#file-path", "/nonexistent/other.raw");
    assert_eq!(s.text("#image-sha"), "");
    assert_eq!(s.text("#results"), "");
    s.click("#flash-button");
    let error = s.wait_text("#error-step-flash", 20, |t| !t.is_empty());
    assert!(
        error.contains("other.raw"),
        "Flash was armed with the old image: {error}"
    );
    // A failing Prepare says why inside the image step (not below the window), and the next
    // action clears it.
    s.click("#prepare");
    let error = s.wait_text("#error-step-image", 20, |t| !t.is_empty());
    assert!(error.contains("other.raw"), "{error}");
    assert_eq!(s.text("#message"), "");
    assert_eq!(
        s.text("#error-step-flash"),
        "",
        "the new action cleared the old error"
    );
    assert_eq!(
        s.attribute("#file-path", "aria-invalid").as_deref(),
        Some("true")
    );
    gui.shot("4b-error-in-place");
    s.type_into("#file-path", image.to_str().unwrap());
    assert_eq!(s.text("#error-step-image"), "");
    assert_eq!(s.attribute("#file-path", "aria-invalid"), None);

    // The tabs are one Tab stop; the arrow keys move between them.
    s.keys("#tab-flash", "\u{E014}");
    assert_eq!(
        s.attribute("#tab-verify", "aria-selected").as_deref(),
        Some("true")
    );
    assert_eq!(s.attribute("#tab-verify", "tabindex").as_deref(), Some("0"));
    s.keys("#tab-verify", "\u{E012}");
    assert_eq!(
        s.attribute("#tab-flash", "aria-selected").as_deref(),
        Some("true")
    );

    // Every command the window uses is granted to it: Settings' CA choice reaches the app (an
    // unreadable file is the app's own refusal, not the permission system's).
    let answer = s.execute_async(
        "window.__TAURI_INTERNALS__.invoke('set_ca_cert', { path: '/nonexistent/lab-ca.pem' })\
         .then(() => done('accepted'), (e) => done(JSON.stringify(e)));",
    );
    let answer = answer.as_str().unwrap_or_default().to_string();
    assert!(
        answer.contains("lab-ca.pem") && !answer.contains("not allowed"),
        "{answer}"
    );

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
    let rows = s.text("#flash-progress");
    assert!(rows.contains(&format!("{big_path}: Cancelled")), "{rows}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    gui.shot("7-cancelled");
    assert!(
        big_dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is wiped"
    );
}

/// The default: a URL flashed straight from the server to two drives, with no Prepare step. The
/// confirmation shows the publisher's digest of the download and where it came from; the result
/// each drive's read-back digest and the image's.
#[test]
fn a_url_streams_to_two_drives_from_the_app() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = dir.path().join("cache");
    let image = image_like(5 * MIB as usize + 512, 73);
    let archive = xz_blocks(&image, MIB);
    let server = common::server::Server::start();
    server.put_with_sidecar("/talos.raw.xz", archive.clone());
    let devs = [
        LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA),
        LoopDev::new(dir.path(), 8 * MIB, 4096, 0xAA),
    ];

    let gui = Gui::start(&cache);
    let s = gui.s();
    s.click("input[name=\"kind\"][value=\"url\"]");
    s.type_into("#url", &server.url("/talos.raw.xz"));
    s.click("#show-all");
    for dev in &devs {
        let path = dev.path_str();
        s.wait_text("#drives", 10, |t| t.contains(path));
        s.click(&format!("#drives input[value=\"{path}\"]"));
    }
    assert!(s.enabled("#flash-button"), "{}", s.text("#flash-reason"));
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    assert!(
        question.contains(&sha256_hex(&archive))
            && question.contains("the publisher's .sha256 file"),
        "the confirmation shows the digest that vouches for the download: {question}"
    );
    for dev in &devs {
        assert!(question.contains(dev.path_str()), "{question}");
    }
    gui.shot("9-stream-confirm");
    s.click("#confirm-yes");
    let results = s.wait_text("#results", 60, |t| {
        t.matches("read back SHA-256").count() == 2 || t.contains("failed")
    });
    let digest = sha256_hex(&image);
    for dev in &devs {
        assert!(
            results.contains(&format!(
                "{}: done, read back SHA-256 {digest}",
                dev.path_str()
            )),
            "{results}"
        );
        assert_eq!(dev.read(0, image.len()), image);
    }
    assert!(s.text("#stream-result").contains(&digest));
    assert_eq!(s.text("#image-sha"), "", "no Prepare step was needed");
    gui.shot("10-streamed");
    assert_eq!(
        server.body_gets("/talos.raw.xz"),
        1,
        "downloaded once for both drives"
    );

    // Next: the same image onto other drives (the ticks go, the image stays), or a new start.
    s.click("#flash-another");
    assert_eq!(s.text("#results"), "");
    assert_eq!(s.text("#flash-reason"), "Choose a drive.");
    s.click("#start-over");
    let reason = s.text("#flash-reason");
    assert!(reason.starts_with("Choose an image"), "{reason}");
}

/// An unprivileged desktop user with no polkit authentication agent, on a machine where only the
/// privileged helper can reach the drive (no UDisks2): the app says what happened and what to do
/// in one sentence, keeping pkexec's own words after it. (No screenshots: WebKit run as another
/// user under this Xvfb paints only the first frame, though the page itself works.)
#[test]
fn without_an_authentication_agent_the_app_says_what_to_do() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let bus = SystemBus::start();
    let user = User::create("labflash-gui-test");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    Command::new("chown")
        .arg(&user.name)
        .arg(&cache)
        .status()
        .unwrap();
    let bytes = image_like(2 * MIB as usize, 72);
    let image = dir.path().join("talos.raw");
    std::fs::write(&image, &bytes).unwrap();
    let dev = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);

    let gui = Gui::start_as(&cache, Some(&user));
    let s = gui.s();
    s.type_into("#file-path", image.to_str().unwrap());
    s.click("#prepare");
    s.wait_text("#image-sha", 60, |t| t.len() == 64);
    s.click("#confirm-digests");
    s.click("#show-all");
    let dev_path = dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(dev_path));
    s.click(&format!("#drives input[value=\"{dev_path}\"]"));
    s.click("#flash-button");
    s.wait_text("#confirm-text", 10, |t| !t.is_empty());
    s.click("#confirm-yes");
    // Said in the Flash step, where the button was pressed.
    let said = s.wait_text("#error-step-flash", 60, |t| !t.is_empty());
    assert!(
        said.contains("no polkit authentication agent is running")
            && said.contains("log in to a desktop session, or run labflash as root"),
        "{said}"
    );
    assert!(
        said.contains("(pkexec: "),
        "pkexec's own words follow: {said}"
    );
    assert!(
        dev.read(0, 8 * MIB as usize).iter().all(|b| *b == 0xAA),
        "nothing written"
    );
    drop(gui);
    drop(bus);
}

/// A system bus with polkit and without UDisks2 (its activation file hidden), stopped and
/// restored on drop.
struct SystemBus {
    dbus_pid: Option<i32>,
    polkitd: Option<Child>,
    hidden: Option<PathBuf>,
}

const UDISKS_ACTIVATION: &str = "/usr/share/dbus-1/system-services/org.freedesktop.UDisks2.service";

impl SystemBus {
    fn start() -> SystemBus {
        let mut bus = SystemBus {
            dbus_pid: None,
            polkitd: None,
            hidden: None,
        };
        if Path::new(UDISKS_ACTIVATION).exists() {
            let hidden = PathBuf::from(format!("{UDISKS_ACTIVATION}.labflash-gui-test"));
            std::fs::rename(UDISKS_ACTIVATION, &hidden).unwrap();
            bus.hidden = Some(hidden);
        }
        if !Path::new("/run/dbus/system_bus_socket").exists() {
            std::fs::create_dir_all("/run/dbus").unwrap();
            let out = Command::new("dbus-daemon")
                .args(["--system", "--fork", "--print-pid"])
                .output()
                .unwrap();
            assert!(out.status.success());
            bus.dbus_pid = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        } else {
            let _ = Command::new("dbus-send")
                .args([
                    "--system",
                    "--type=method_call",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig",
                ])
                .status();
        }
        let running = bus_has_owner;
        assert!(
            !running("org.freedesktop.UDisks2"),
            "this test needs a machine without UDisks2 running"
        );
        if !running("org.freedesktop.PolicyKit1") {
            bus.polkitd = Some(
                Command::new("/usr/lib/polkit-1/polkitd")
                    .arg("--no-debug")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("polkitd (package polkitd)"),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while !running("org.freedesktop.PolicyKit1") {
                assert!(Instant::now() < deadline, "polkitd did not start");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        bus
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        if let Some(mut p) = self.polkitd.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        if let Some(pid) = self.dbus_pid {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_file("/run/dbus/pid");
            let _ = std::fs::remove_file("/run/dbus/system_bus_socket");
        }
        if let Some(hidden) = self.hidden.take() {
            let _ = std::fs::rename(hidden, UDISKS_ACTIVATION);
        }
    }
}

/// An unprivileged user with a home, copies of the app and tauri-driver it may run, and the
/// helper where the package would put it (root's alone); removed on drop.
struct User {
    name: String,
    home: PathBuf,
    bin: PathBuf,
    helper: PathBuf,
    created: bool,
}

impl User {
    fn create(name: &str) -> User {
        let exists = Command::new("id")
            .arg(name)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let ok = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let id = std::process::id();
        let home = PathBuf::from(format!("/tmp/labflash-gui-home-{id}"));
        std::fs::create_dir_all(&home).unwrap();
        Command::new("chown").arg(name).arg(&home).status().unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let bin = PathBuf::from(format!("/tmp/labflash-gui-bin-{id}"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::copy(tauri_driver(), bin.join("tauri-driver")).unwrap();
        std::fs::copy(
            labflash_bin().with_file_name("labflash-gui"),
            bin.join("labflash-gui"),
        )
        .unwrap();
        let helper_dir = PathBuf::from(format!("/run/labflash-gui-helper-{id}"));
        std::fs::create_dir_all(&helper_dir).unwrap();
        std::fs::set_permissions(
            &helper_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let helper = helper_dir.join("labflash");
        std::fs::copy(labflash_bin(), &helper).unwrap();
        User {
            name: name.into(),
            home,
            bin,
            helper,
            created: !exists,
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
        let _ = std::fs::remove_dir_all(&self.bin);
        if let Some(dir) = self.helper.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if self.created {
            let _ = Command::new("userdel").arg(&self.name).status();
        }
    }
}
