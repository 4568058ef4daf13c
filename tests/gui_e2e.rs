//! The real app in the real webview under Xvfb at its 800x600 window, driven over WebDriver
//! (tauri-driver with WebKitWebDriver): a local image checked first, flashed to a loop device,
//! read back and ejected; errors in place and stale state after a source change; verify with an
//! archive's checksum; Cancel mid-flash (asked first) leaving the first MiB wiped; a URL
//! streamed to two drives by keyboard alone; Talos offline said in its dialog; a board overlay;
//! labs; one drive cancelled alone, Retry and an image that is not the published one; the window
//! from 640x480 to 1280x900; both colour schemes checked for contrast. Screenshots of each step
//! are saved (README shows them), and of the window when a test fails.
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
    display: u32,
}

impl Drop for Gui {
    fn drop(&mut self) {
        // A failed test leaves the window as it was for whoever reads the failure.
        if std::thread::panicking() {
            if let (Some(s), Some(name)) = (&self.session, std::thread::current().name()) {
                s.screenshot(&self.shots.join(format!("failed-{name}.png")));
            }
        }
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
        Self::start_as(cache, None, None)
    }

    /// The app in GTK's dark theme, which WebKitGTK answers `prefers-color-scheme` from.
    fn start_dark(cache: &Path) -> Gui {
        Self::start_as(cache, None, Some("Adwaita:dark"))
    }

    /// The app as `user` (its HOME and the helper given), or as root for the sandbox.
    fn start_as(cache: &Path, user: Option<&User>, gtk_theme: Option<&str>) -> Gui {
        let display = (90..140)
            .find(|n| x_display_free(*n))
            .expect("a free X display");
        let mut gui = Gui {
            children: Vec::new(),
            session: None,
            shots: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots"),
            display,
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
                // A first launch each time: the webview's storage (the window's settings) and the
                // app's settings live beside this test's cache, not in root's home.
                let home = cache.with_file_name("home");
                // Its temporary folders too (a lab's config images): the app is killed at the
                // end, not closed, so it cannot remove them itself.
                std::fs::create_dir_all(home.join("tmp")).unwrap();
                c.env("LABFLASH_GUI_ALLOW_ROOT", "1")
                    .env("XDG_DATA_HOME", home.join("data"))
                    .env("XDG_CONFIG_HOME", home.join("config"))
                    .env("TMPDIR", home.join("tmp"));
                c
            }
            Some(u) => {
                // runuser sets HOME from the password database: give it explicitly.
                let mut c = Command::new("runuser");
                c.args(["-u", &u.name, "--", "env"])
                    .arg(format!("HOME={}", u.home.display()))
                    .arg(format!("XDG_RUNTIME_DIR={}", u.home.display()))
                    .arg(format!("TMPDIR={}", u.home.display()))
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
                .env("GTK_THEME", gtk_theme.unwrap_or("Adwaita"))
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

    /// The icon the window shows the desktop (`_NET_WM_ICON`): its width, height and ARGB
    /// pixels, as the X server holds them (xwininfo and xprop, package x11-utils).
    fn window_icon(&self) -> (u64, u64, Vec<u64>) {
        let x = |program: &str, args: &[&str]| {
            let out = Command::new(program)
                .args(["-display", &format!(":{}", self.display)])
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{program}: {e} (package x11-utils)"));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let tree = x("xwininfo", &["-root", "-tree"]);
        let window = tree
            .lines()
            .find(|l| l.contains("\"labflash\":"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no window titled labflash: {tree}"))
            .to_string();
        let icon = x("xprop", &["-id", &window, "-notype", "32c", "_NET_WM_ICON"]);
        let numbers: Vec<u64> = icon
            .split_once('=')
            .map(|(_, v)| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_default();
        assert!(numbers.len() > 2, "the window has no icon: {icon}");
        (numbers[0], numbers[1], numbers[2..].to_vec())
    }

    fn shot(&self, name: &str) {
        self.s().screenshot(&self.shots.join(format!("{name}.png")));
    }
}

/// Whether the page fits the window: nothing to scroll in the main flow.
fn fits(s: &Session) -> bool {
    s.execute(
        "return document.documentElement.scrollHeight <= window.innerHeight \
         && document.documentElement.scrollWidth <= window.innerWidth;",
    )
    .as_bool()
    .unwrap_or(false)
}

/// The drive's row on the flashing page.
fn row(path: &str) -> String {
    format!("#flash-progress li[data-path=\"{path}\"]")
}

fn short(digest: &str) -> String {
    format!("{}…{}", &digest[..8], &digest[56..])
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
    std::thread::sleep(Duration::from_millis(500));
    gui.shot("start");
    assert!(fits(s), "the first screen fits 800x600");
    assert_eq!(
        s.text("#message"),
        "",
        "the window started without errors (drop listener, drive watch)"
    );
    assert!(!s.enabled("#flash-button"));
    assert_eq!(
        s.text("#flash-reason"),
        "Choose an image.",
        "a disabled Flash says why from the start"
    );

    // The operator's setting: check the image's digest before writing.
    s.click("#tab-settings");
    s.wait_text("#records-dir", 10, |t| t.contains("none kept"));
    assert!(fits(s), "Settings, with its records folder, fit 800x600");
    gui.shot("settings");
    s.click("#check-first");
    s.click("#tab-flash");

    // Type the image's path; checking starts by itself, and its digests are shown to compare.
    s.click("#source-file");
    s.type_into("#file-path", image.to_str().unwrap());
    s.click("#use-source");
    s.wait_text("#image-sha", 60, |t| t == digest);
    s.type_into("#paste-digest", &digest.to_uppercase());
    s.wait_text("#paste-result", 5, |t| t == "✓ Match");
    let badge = s.text("#digest-source");
    assert!(
        badge.contains("No checksum from its publisher"),
        "a local file without a typed digest is flagged: {badge}"
    );
    assert!(s.text("#flash-reason").contains("I compared these digests"));
    s.click("#confirm-digests");
    // A pasted digest that is none of those shown takes the tick back.
    s.type_into("#paste-digest", &"0".repeat(64));
    assert!(s
        .text("#paste-result")
        .contains("not one of the digests shown"));
    assert!(s.text("#flash-reason").contains("none of those shown"));
    s.type_into("#paste-digest", &digest);
    s.click("#confirm-digests");

    // The loop device shows once every drive is shown.
    s.click("#show-all");
    let dev_path = dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(dev_path));
    s.click(&format!("#drives input[value=\"{dev_path}\"]"));
    assert!(s.enabled("#flash-button"), "{}", s.text("#flash-reason"));
    assert!(fits(s), "tiles and digest card fit 800x600");
    gui.shot("checked");

    // Flash, confirm (image, digest, drive and its identity), and see the read-back digest.
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 10, |t| !t.is_empty());
    let devnum = std::fs::read_to_string(format!(
        "/sys/block/{}/dev",
        dev.path.file_name().unwrap().to_string_lossy()
    ))
    .unwrap();
    assert!(
        question.contains(dev_path) && question.contains(&format!("device {}", devnum.trim())),
        "the confirmation names the drive and its identity: {question}"
    );
    assert!(
        question.contains("Write talos.raw (6.3 MB) onto this drive.")
            && question.contains("Nothing its publisher published vouches")
            && !question.contains(&digest),
        "the confirmation says in plain words what is written, no digest: {question}"
    );
    assert_eq!(s.focused(), "confirm-no", "Enter alone never erases");
    s.click("#confirm-details summary");
    let details = s.text("#confirm-details");
    assert!(
        details.contains(&digest),
        "the digest is in the details: {details}"
    );
    gui.shot("confirm");
    s.click("#confirm-yes");
    let done = s.wait_text(&row(dev_path), 120, |t| {
        t.contains("Detached") || t.contains("Failed")
    });
    assert!(
        done.contains(&format!(
            "✓ Verified — read back matches {}",
            short(&digest)
        )),
        "{done}"
    );
    // Ejected: the loop device is detached, and its file holds the image.
    assert!(!dev.attached(), "the loop device was detached");
    assert_eq!(dev.read_backing(0, bytes.len()), bytes);
    assert_eq!(s.focused(), "run-title", "the outcome has the focus");
    assert!(fits(s));
    gui.shot("flashed");

    // The same image onto another drive: it stays checked; the detached drive is gone.
    s.click("#flash-another");
    assert_eq!(s.text("#image-sha"), digest);
    s.wait_text("#flash-reason", 10, |t| t == "Choose a drive.");

    // A new source forgets the old image at once (Flash is never armed with it); checking the
    // missing file fails inside the Image tile, and Change shows the error beside its field.
    s.click("#change-image");
    s.type_into("#file-path", "/nonexistent/other.raw");
    s.click("#use-source");
    assert!(
        !s.exists("#digest-card"),
        "the old digests went with the old source"
    );
    assert!(!s.enabled("#flash-button"));
    let error = s.wait_text("#error-step-image", 20, |t| !t.is_empty());
    assert!(error.contains("other.raw"), "{error}");
    assert!(
        error.starts_with(char::is_uppercase) && error.ends_with('.'),
        "{error}"
    );
    assert_eq!(s.text("#message"), "");
    gui.shot("error-in-place");
    s.click("#change-image");
    assert!(s.text("#error-source").contains("other.raw"));
    assert_eq!(
        s.attribute("#file-path", "aria-invalid").as_deref(),
        Some("true")
    );
    s.type_into("#file-path", image.to_str().unwrap());
    s.click("#use-source");
    assert!(
        !s.exists("#error-step-image:not(:empty)"),
        "the next action cleared it"
    );
    s.wait_text("#image-sha", 60, |t| t == digest);

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

    // Verify: the image against its archive's published checksum (the image inside it), and
    // against a wrong digest.
    let archive = xz_blocks(&bytes, MIB);
    let sidecar = dir.path().join("talos.raw.xz.sha256");
    std::fs::write(dir.path().join("talos.raw.xz"), &archive).unwrap();
    std::fs::write(
        &sidecar,
        format!("{}  talos.raw.xz\n", sha256_hex(&archive)),
    )
    .unwrap();
    s.click("#tab-verify");
    s.type_into("#verify-path", image.to_str().unwrap());
    s.click("#expected-sidecar");
    s.type_into("#verify-expected", sidecar.to_str().unwrap());
    s.click("#verify-button");
    s.wait_text("#verify-result", 60, |t| t == "✓ Matches");
    assert_eq!(s.text("#verify-sha"), digest);
    assert!(fits(s), "verify fits 800x600");
    // A changed question clears the last answer: no stale "✓ Matches" beside other inputs.
    s.click("#expected-digest");
    assert!(
        !s.exists("#verify-result"),
        "the answer went with its question"
    );
    s.type_into("#verify-expected", &"0".repeat(64));
    s.click("#verify-button");
    s.wait_text("#verify-result", 60, |t| t == "✗ Does not match");
    gui.shot("verify-mismatch");

    // Cancel mid-flash asks first; then the first MiB stays wiped.
    let big = dir.path().join("big.raw");
    {
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(512 * MIB).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&noise(MIB as usize, 71), 0).unwrap();
    }
    let big_dev = LoopDev::new(dir.path(), 600 * MIB, 512, 0xAA);
    s.click("#tab-flash");
    s.click("#change-image");
    s.type_into("#file-path", big.to_str().unwrap());
    s.click("#use-source");
    s.wait_text("#image-sha", 120, |t| t.len() == 64 && t != digest);
    s.click("#confirm-digests");
    let big_path = big_dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(big_path));
    s.click(&format!("#drives input[value=\"{big_path}\"]"));
    s.click("#flash-button");
    s.click("#confirm-yes");
    s.wait_text(&row(big_path), 60, |t| {
        t.contains("Writing") && !t.contains("Writing · 0 %")
    });
    gui.shot("writing");
    s.click("#cancel-button");
    assert_eq!(
        s.focused(),
        "cancel-no",
        "the question has the focus on its safe answer"
    );
    s.click("#cancel-no");
    assert_eq!(s.focused(), "cancel-button");
    assert!(
        s.text(&row(big_path)).contains("Writing"),
        "Keep flashing keeps flashing"
    );
    s.click("#cancel-button");
    let asked = Instant::now();
    s.click("#cancel-yes");
    let ended = s.wait_text(&row(big_path), 30, |t| t.contains("Cancelled"));
    assert!(!ended.contains("Writing"), "{ended}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(big_dev.attached(), "a cancelled drive is not ejected");
    assert!(s.text("#run-title").starts_with("Cancelled"));
    assert!(
        big_dev.read(0, MIB as usize).iter().all(|b| *b == 0),
        "the first MiB is wiped"
    );
}

/// The default, by keyboard alone: a URL flashed straight from the server to two drives, with
/// no check step. The confirmation shows the publisher's digest of the download and where it
/// came from; the result each drive's read-back and the image's digest. Then Talos offline: the
/// version is typed, and "Use this image" says in the dialog that the factory cannot be reached.
#[test]
fn a_url_streams_to_two_drives_from_the_keyboard() {
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
    // The second drive already holds the image: it is read back, not written again.
    devs[1].write(0, &image);

    let gui = Gui::start(&cache);
    let s = gui.s();
    let started = Instant::now();
    s.find("#source-url");
    s.tab_to("source-url");
    s.press("\u{E007}");
    s.wait_text("#source-title", 5, |t| !t.is_empty());
    assert_eq!(s.focused(), "url", "the dialog's first field has the focus");
    s.press(&server.url("/talos.raw.xz"));
    s.press("\u{E007}");
    // Asked for before the dialog closes: the tile says what the server and its archive told.
    s.wait_text("#image-found", 30, |t| !t.is_empty());
    // Its text as written (WebKitWebDriver reads a line its CSS could ellipsise as "").
    let found = s.content("#image-found");
    assert!(
        found.contains("the image's size is known once it is decoded")
            && found.contains("Will be checked against the publisher's .sha256 file"),
        "{found}"
    );
    assert_eq!(s.content("#image-name"), "talos.raw.xz");
    s.tab_to("show-all");
    s.press(" ");
    for dev in &devs {
        let path = dev.path_str();
        s.wait_text("#drives", 10, |t| t.contains(path));
        s.tab_to(&format!("drive-{}", path.replace('/', "-")));
        s.press(" ");
    }
    s.tab_to("flash-button");
    s.press("\u{E007}");
    let question = s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    assert!(
        question.contains("It must match the publisher's .sha256 file"),
        "the confirmation says what vouches for the download: {question}"
    );
    s.click("#confirm-details summary");
    let details = s.text("#confirm-details");
    assert!(details.contains(&sha256_hex(&archive)), "{details}");
    for dev in &devs {
        assert!(question.contains(dev.path_str()), "{question}");
    }
    gui.shot("stream-confirm");
    s.tab_to("confirm-yes");
    s.press("\u{E007}");
    let digest = sha256_hex(&image);
    for dev in &devs {
        let done = s.wait_text(&row(dev.path_str()), 60, |t| {
            t.contains("Detached") || t.contains("Failed")
        });
        assert!(
            done.contains(&format!(
                "✓ Verified — read back matches {}",
                short(&digest)
            )),
            "{done}"
        );
        assert_eq!(dev.read_backing(0, image.len()), image);
    }
    let held = s.content(&row(devs[1].path_str()));
    assert!(
        held.contains("4.2 MB already matched (not rewritten)"),
        "{held}"
    );
    assert!(!s.content(&row(devs[0].path_str())).contains("already"));
    let took = started.elapsed();
    assert_eq!(s.text("#run-title"), "Done — 2 drives verified");
    assert_eq!(s.text("#result-image-sha"), digest);
    assert!(s
        .text("#flash-result")
        .contains("The download matches the publisher's .sha256 file"));
    assert!(fits(s));
    gui.shot("streamed");
    assert_eq!(
        server.body_gets("/talos.raw.xz"),
        1,
        "downloaded once for both drives"
    );
    eprintln!("URL to two drives by keyboard: {:.1} s", took.as_secs_f64());

    // Start over: a new image, nothing of the last one kept.
    s.click("#start-over");
    s.wait_text("#flash-reason", 5, |t| t == "Choose an image.");
    assert!(s.exists("#choose-image"));

    // A labctl config the engine cannot read is refused in the Image tile the moment it is
    // chosen, in one sentence naming it.
    s.click("#source-talosBuild");
    s.type_into("#build-config", "/nonexistent/cp-1.yaml");
    s.click("#use-source");
    let error = s.wait_text("#error-step-image", 20, |t| !t.is_empty());
    assert!(error.contains("cp-1.yaml"), "{error}");

    // A local .xz to one stick, as a first-time user does it (the path typed where the file
    // chooser would give it): Path, Use this image, the drive, Flash, Erase and flash.
    let local = dir.path().join("local.raw.xz");
    std::fs::write(&local, &archive).unwrap();
    let stick = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    let started = Instant::now();
    s.click("#source-file");
    s.type_into("#file-path", local.to_str().unwrap());
    s.click("#use-source");
    let stick_path = stick.path_str();
    s.wait_text("#drives", 10, |t| t.contains(stick_path));
    s.click(&format!("#drives input[value=\"{stick_path}\"]"));
    s.click("#flash-button");
    s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    s.click("#confirm-yes");
    let done = s.wait_text(&row(stick_path), 60, |t| {
        t.contains("Detached") || t.contains("Failed")
    });
    assert!(done.contains("✓ Verified"), "{done}");
    eprintln!(
        "local .xz to one drive: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    s.click("#start-over");

    // Talos with no factory reachable: the versions fail to load (said in the dialog), a typed
    // version still makes a source, and Flash says why it failed, nothing written.
    let spare = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    s.click("#source-talos");
    s.type_into("#factory-url", "http://127.0.0.1:9/");
    s.click("#load-versions");
    let said = s.wait_text("#error-source", 30, |t| !t.is_empty());
    assert!(said.contains("You can still type a version"), "{said}");
    s.type_into("#talos-version", "v1.12.4");
    // The Enterprise factory's token field, opened, fits too.
    s.execute("document.querySelector('#source-dialog details').open = true; return true;");
    assert!(fits(s), "the Talos dialog fits the window");
    gui.shot("talos-dialog");
    // "Use this image" asks the factory now: offline is said in the dialog, which stays open
    // with what was typed; nothing was chosen, nothing can be flashed.
    s.click("#use-source");
    let error = s.wait_text("#error-source", 30, |t| t.contains("127.0.0.1"));
    assert!(!error.contains("client error (Connect)"), "{error}");
    assert!(s.exists("#source-dialog[open]"), "the dialog stays open");
    assert_eq!(
        s.execute("return document.querySelector('#talos-version').value;"),
        "v1.12.4"
    );
    assert!(fits(s), "a long error wraps inside the dialog");
    gui.shot("talos-offline");
    s.click("#close-source");
    assert!(!s.exists("#image-name"), "nothing was chosen");
    assert!(!s.enabled("#flash-button"));
    assert!(spare.read(0, 8 * MIB as usize).iter().all(|b| *b == 0xAA));
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

    let gui = Gui::start_as(&cache, Some(&user), None);
    let s = gui.s();
    s.click("#source-file");
    s.type_into("#file-path", image.to_str().unwrap());
    s.click("#use-source");
    s.click("#show-all");
    let dev_path = dev.path_str();
    s.wait_text("#drives", 10, |t| t.contains(dev_path));
    s.click(&format!("#drives input[value=\"{dev_path}\"]"));
    s.click("#flash-button");
    // Refused when the plan opens the drive, or after the confirmation when the flash does.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.exists("#error-step-flash:not(:empty)") {
        if s.exists("#confirm-dialog[open]") {
            s.click("#confirm-yes");
        }
        assert!(Instant::now() < deadline, "no error shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Said in the Flash tile or the flashing page, where the button was pressed.
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

/// labctl's own minimal config (tests/fixtures/labctl) for Talos `version` from a stand-in
/// Enterprise factory serving a Talos-like nocloud boot image (with its .sha256); its path.
fn labctl_config(dir: &Path, server: &common::server::Server, version: &str) -> PathBuf {
    const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    common::factory::answer_like(server, common::factory::Edition::Enterprise);
    let boot = dir.join("boot.raw");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(&boot, "4:0:+1M");
    server.put_with_sidecar(
        &format!("/image/{SCHEMATIC}/{version}/nocloud-amd64.raw.xz"),
        xz_single(&std::fs::read(&boot).unwrap()),
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labctl");
    let lab = dir.join("talos");
    std::fs::create_dir(&lab).unwrap();
    std::fs::copy(
        fixtures.join("controlplane.yaml"),
        lab.join("controlplane.yaml"),
    )
    .unwrap();
    let config = std::fs::read_to_string(fixtures.join("talos-minimal.yaml"))
        .unwrap()
        .replace(
            "  version: v1.13.0",
            &format!("  factoryURL: {}\n  version: {version}", server.url("")),
        );
    std::fs::write(lab.join("cp-1.yaml"), config).unwrap();
    lab.join("cp-1.yaml")
}

/// A labctl config for a release that reads cidata on its boot stick: one stick for both. The
/// confirmation says the stick also gets the config as a cidata partition (with its digest), and
/// the outcome names what was read back: the stick's digest (boot image and partition), beside
/// the boot image's and the partition's.
#[test]
fn a_labctl_build_on_one_stick_says_what_the_stick_holds() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let server = common::server::Server::start();
    let config = labctl_config(dir.path(), &server, "v1.13.0");
    let stick = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);
    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#source-talosBuild");
    s.type_into("#build-config", config.to_str().unwrap());
    s.click("#use-source");
    let image_sha = s.wait_text("#image-sha", 60, |t| t.len() == 64);
    let config_sha = s.text("#config-sha");
    assert!(s.enabled("#layout-one") && s.exists("#layout-one:checked"));
    let path = stick.path_str();
    s.click("#show-all");
    s.wait_text("#drives", 10, |t| t.contains(path));
    s.click(&format!("#drives input[value=\"{path}\"]"));
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    assert!(
        question.contains(&format!(
            "The stick also gets your config, as a partition named cidata (SHA-256 {}).",
            short(&config_sha)
        )),
        "the confirmation lists what goes on the stick: {question}"
    );
    s.click("#confirm-yes");
    let done = s.wait_text(&row(path), 60, |t| {
        t.contains("Detached") || t.contains("Failed")
    });
    let stick_sha = s.text("#result-stick-sha");
    assert!(
        done.contains(&format!("read back matches {}", short(&stick_sha))),
        "the digest read back is the stick's, named as such: {done}"
    );
    assert_ne!(stick_sha, image_sha);
    assert_eq!(s.text("#result-image-sha"), image_sha);
    assert_eq!(s.text("#result-config-partition-sha"), config_sha);
    assert!(s
        .content("#result-stick-what")
        .contains("boot image followed by a partition named cidata"));
    gui.shot("labctl-one-stick-done");
}

/// A labctl config for a Talos release that does not read cidata on its own boot stick
/// (siderolabs/talos issue 12098): the app's digest card says so, fitting 800x600, one stick is
/// not offered, and two ticked drives become the boot stick and the config stick in one run,
/// each read back.
#[test]
fn a_labctl_build_says_what_its_node_would_not_read() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let server = common::server::Server::start();
    let config = labctl_config(dir.path(), &server, "v1.11.2");
    let sticks = [
        LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA),
        LoopDev::new(dir.path(), 16 * MIB, 512, 0xBB),
    ];

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#source-talosBuild");
    s.type_into("#build-config", config.to_str().unwrap());
    s.click("#use-source");
    let warning = s.wait_text("#prepared-warning-0", 60, |t| !t.is_empty());
    assert!(
        warning.contains("v1.11.2") && warning.contains("12098"),
        "{warning}"
    );
    // One stick is not offered for this release; two are chosen for it.
    assert!(!s.enabled("#layout-one"), "one stick is refused here");
    let why = s.content("#layout-why");
    assert!(why.contains("not read there"), "{why}");
    s.click("#show-all");
    for stick in &sticks {
        let path = stick.path_str();
        s.wait_text("#drives", 10, |t| t.contains(path));
        s.click(&format!("#drives input[value=\"{path}\"]"));
    }
    assert!(
        !s.exists("#confirm-digests"),
        "the factory's checksum vouches: nothing to tick"
    );
    assert!(s.text("#flash-reason").contains("gets the config"));
    s.click(&format!(
        "#drive-{}-config",
        sticks[1].path_str().replace('/', "-")
    ));
    assert!(s.enabled("#flash-button"), "{}", s.text("#flash-reason"));
    assert!(fits(s), "the digest card with its warning fits 800x600");
    gui.shot("labctl-two-sticks");
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    assert!(
        question.contains(&format!(
            "The config image goes onto {}, a stick of its own.",
            sticks[1].path_str()
        )),
        "the confirmation says which drive gets the config: {question}"
    );
    s.click("#confirm-yes");
    for stick in &sticks {
        let done = s.wait_text(&row(stick.path_str()), 120, |t| {
            t.contains("Detached") || t.contains("Failed")
        });
        assert!(done.contains("✓ Verified"), "{done}");
    }
    assert!(s
        .text(&row(sticks[1].path_str()))
        .starts_with("Config stick"));
    assert_eq!(s.text("#run-title"), "Done — 2 drives verified");
    // labctl's artifacts, where it writes them (output.dir's default, .state/images).
    let lab = config.parent().unwrap();
    let artifact = |name: &str| std::fs::read(lab.join(".state/images").join(name)).unwrap();
    let (boot_img, config_img) = (artifact("talos-boot.img"), artifact("talos-cidata.img"));
    assert_eq!(sticks[0].read_backing(0, boot_img.len()), boot_img);
    assert_eq!(sticks[1].read_backing(0, config_img.len()), config_img);
    assert!(s
        .text("#result-config-sha")
        .contains(&sha256_hex(&config_img)));
    gui.shot("labctl-two-sticks-done");
}

/// A Raspberry Pi stick from the Talos dialog: the versions load from a stand-in factory, arm64
/// lists the version's official boards, the one chosen goes into the schematic the app asks the
/// factory for (the same one `talos fetch --overlay` asks for), and that image is flashed and read
/// back. Screenshot of the dialog with the board chosen.
#[test]
fn a_board_overlay_from_the_talos_dialog_reaches_the_factory() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let server = common::server::Server::start();
    common::factory::answer_like(&server, common::factory::Edition::Enterprise);
    server.put("/versions", br#"["v1.12.4","v1.13.0"]"#.to_vec());
    server.put("/version/v1.13.0/extensions/official", b"[]".to_vec());
    // As siderolabs/image-factory's README shows `GET /version/:version/overlays/official`.
    server.put(
        "/version/v1.13.0/overlays/official",
        br#"[{"name":"rpi_generic","image":"siderolabs/sbc-raspberrypi","ref":"ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0","digest":"sha256:849ace01b9af514d817b05a9c5963a35202e09a4807d12f8a3ea83657c76c863"}]"#
            .to_vec(),
    );
    server.on_post(
        "/schematics",
        std::sync::Arc::new(|body: &[u8]| (201, format!("{{\"id\":\"{}\"}}", sha256_hex(body)))),
    );
    // The CLI asks for the board's schematic first (its image is not there yet, so it stops):
    // the app must ask for the very same one.
    let cli = run(&[
        "talos",
        "fetch",
        "--factory-url",
        &server.url(""),
        "--version",
        "v1.13.0",
        "--arch",
        "arm64",
        "--overlay",
        "rpi_generic",
        "--cache-dir",
        dir.path().join("cli-cache").to_str().unwrap(),
    ]);
    assert_ne!(cli.code, 0, "no image is served yet");
    let posted = |server: &common::server::Server| -> Vec<Vec<u8>> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/schematics")
            .map(|r| r.body)
            .collect()
    };
    let schematic = posted(&server).pop().expect("the CLI posted its schematic");
    let text = String::from_utf8_lossy(&schematic).into_owned();
    assert!(
        text.contains("rpi_generic") && text.contains("siderolabs/sbc-raspberrypi"),
        "{text}"
    );
    let boot = dir.path().join("boot.raw");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(&boot, "4:0:+1M");
    let image = std::fs::read(&boot).unwrap();
    server.put_with_sidecar(
        &format!(
            "/image/{}/v1.13.0/nocloud-arm64.raw.xz",
            sha256_hex(&schematic)
        ),
        xz_single(&image),
    );
    let stick = LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA);

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#source-talos");
    s.type_into("#factory-url", &server.url(""));
    s.click("#load-versions");
    // The second of amd64, arm64 (the options carry no value attribute: their text is it).
    s.click("#talos-arch option:nth-child(2)");
    // The boards come with the newest version's extensions, once the versions are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .content("#talos-overlay")
        .contains("rpi_generic (siderolabs/sbc-raspberrypi)")
    {
        assert!(
            Instant::now() < deadline,
            "no boards listed: {}",
            s.text("#error-source")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let version = s.execute("return document.querySelector('#talos-version').value;");
    assert_eq!(version, "v1.13.0", "the newest release is filled in");
    s.click("#talos-overlay option[value=\"rpi_generic\"]");
    assert!(fits(s), "the Talos dialog with a board fits the window");
    gui.shot("talos-board");
    s.click("#use-source");
    s.wait_text("#image-found", 30, |t| !t.is_empty());
    assert!(s.content("#image-name").contains("v1.13.0"));
    let path = stick.path_str();
    s.click("#show-all");
    s.wait_text("#drives", 10, |t| t.contains(path));
    s.click(&format!("#drives input[value=\"{path}\"]"));
    s.click("#flash-button");
    s.wait_text("#confirm-text", 60, |t| !t.is_empty());
    s.click("#confirm-yes");
    let done = s.wait_text(&row(path), 120, |t| {
        t.contains("Detached") || t.contains("Failed")
    });
    assert!(done.contains("✓ Verified"), "{done}");
    let app_posts = posted(&server);
    // The app asks for its schematic when the image is chosen and again to flash it (the
    // factory answers the same ID for the same YAML).
    assert_eq!(
        app_posts.len(),
        3,
        "the CLI's schematic, then the app's twice"
    );
    assert_eq!(
        (&app_posts[1], &app_posts[2]),
        (&schematic, &schematic),
        "the app asked for the board's schematic"
    );
    assert_eq!(stick.read_backing(0, image.len()), image);
}

/// A lab from the window: a lab file of three nodes, each row given a loop device, one
/// confirmation naming every node, all three written at once and read back; each stick then
/// holds its own node's hostname in its cidata partition. Screenshots of the node table, the
/// confirmation and the result at 800x600.
#[test]
fn a_lab_of_three_nodes_from_the_window() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let names = ["cp-1", "cp-2", "w-1"];
    lab_files(dir.path(), "boot.raw", &names);
    let sticks: Vec<LoopDev> = (0..3)
        .map(|_| LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA))
        .collect();

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    open_lab(s, dir.path(), "3 nodes");
    for (i, stick) in sticks.iter().enumerate() {
        pick_drive(s, &format!("lab-drive-{i}"), stick);
    }
    assert!(s.enabled("#flash-button"), "{}", s.text("#flash-reason"));
    gui.shot("lab-nodes");
    assert!(fits(s), "the node table fits 800x600");
    s.click("#flash-button");
    let question = s.wait_text("#confirm-text", 60, |t| !t.is_empty());
    assert!(
        question.contains("one per node of the lab's 3"),
        "{question}"
    );
    s.click("#confirm-details summary");
    let details = s.text("#confirm-details");
    for (name, stick) in names.iter().zip(&sticks) {
        assert!(
            details.contains(&format!("Node {name}: {}", stick.path_str())),
            "the confirmation names every node with its drive: {details}"
        );
    }
    gui.shot("lab-confirm");
    s.click("#confirm-yes");
    for stick in &sticks {
        let done = s.wait_text(&row(stick.path_str()), 120, |t| {
            t.contains("Detached") || t.contains("Failed")
        });
        assert!(done.contains("✓ Verified"), "{done}");
    }
    assert_eq!(s.text("#run-title"), "Done — 3 drives verified");
    assert!(s.text(&row(sticks[1].path_str())).starts_with("cp-2: "));
    // The run's record, beside the lab file, named on the page.
    let said = s.content("#run-record");
    let record = said
        .strip_prefix("Record of this run: ")
        .unwrap_or_else(|| panic!("{said}"));
    assert_eq!(Path::new(record).parent(), Some(dir.path()));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    assert_eq!(record["sticks"].as_array().unwrap().len(), 3);
    assert!(fits(s));
    gui.shot("lab-done");
    // Each stick: its own node's hostname in the cidata partition (found by its GPT name).
    for (name, stick) in names.iter().zip(&sticks) {
        let table = Command::new("sfdisk")
            .arg("--json")
            .arg(&stick.backing)
            .output()
            .unwrap();
        let table: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
        let cidata = table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cidata")
            .expect("a cidata partition");
        let at = format!(
            "{}@@{}",
            stick.backing.display(),
            cidata["start"].as_u64().unwrap() * 512
        );
        let meta = Command::new("mtype")
            .args(["-i", &at, "::meta-data"])
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap();
        let meta = String::from_utf8_lossy(&meta.stdout);
        assert!(meta.contains(&format!("local-hostname: {name}")), "{meta}");
    }
}

/// A lab of a Talos v1.11 amd64 image (issue 12098): the node table asks for a config stick per
/// node, and the lab is written as two sticks per node, each config stick holding its node's
/// own config image.
#[test]
fn a_lab_that_needs_two_sticks_per_node_from_the_window() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    lab_files(dir.path(), "v1.11.2/nocloud-amd64.raw", &["w-1", "w-2"]);
    let boots: Vec<LoopDev> = (0..2)
        .map(|_| LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA))
        .collect();
    let configs: Vec<LoopDev> = (0..2)
        .map(|_| LoopDev::new(dir.path(), 16 * MIB, 512, 0xBB))
        .collect();

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    open_lab(s, dir.path(), "2 nodes");
    assert!(s.content("#lab-two-sticks").contains("config stick"));
    for (i, stick) in boots.iter().enumerate() {
        pick_drive(s, &format!("lab-drive-{i}"), stick);
    }
    assert!(s
        .text("#flash-reason")
        .contains("config stick for w-1, w-2"));
    for (i, stick) in configs.iter().enumerate() {
        pick_drive(s, &format!("lab-config-drive-{i}"), stick);
    }
    assert!(s.enabled("#flash-button"), "{}", s.text("#flash-reason"));
    assert!(fits(s));
    gui.shot("lab-two-sticks");
    s.click("#flash-button");
    s.wait_text("#confirm-text", 60, |t| !t.is_empty());
    s.click("#confirm-yes");
    for stick in boots.iter().chain(&configs) {
        let done = s.wait_text(&row(stick.path_str()), 120, |t| {
            t.contains("Detached") || t.contains("Failed")
        });
        assert!(done.contains("✓ Verified"), "{done}");
    }
    assert_eq!(s.text("#run-title"), "Done — 4 drives verified");
    assert!(s
        .text(&row(configs[1].path_str()))
        .starts_with("w-2: Config stick: "));
    for (name, stick) in ["w-1", "w-2"].iter().zip(&configs) {
        let at = format!("{}@@0", stick.backing.display());
        let meta = Command::new("mtype")
            .args(["-i", &at, "::meta-data"])
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap();
        let meta = String::from_utf8_lossy(&meta.stdout);
        assert!(meta.contains(&format!("local-hostname: {name}")), "{meta}");
    }
}

/// A lab in `dir`: a 16 MiB Talos-like GPT image at `image` (its path may name a release, as a
/// factory's does), a real Talos worker config (siderolabs/talos
/// pkg/machinery/config/configloader/testdata/worker.test, tests/fixtures/talos/README.md), and a
/// lab.yaml of one node per name, each booting that image with that config.
fn lab_files(dir: &Path, image: &str, names: &[&str]) {
    let boot = dir.join(image);
    std::fs::create_dir_all(boot.parent().unwrap()).unwrap();
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(&boot, "4:0:+1M");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/talos/configloader-worker.yaml"),
        dir.join("worker.yaml"),
    )
    .unwrap();
    let mut lab = format!("source: {image}\nallowUnverified: true\nnodes:\n");
    for name in names {
        lab.push_str(&format!(
            "  - hostname: {name}\n    userData: worker.yaml\n"
        ));
    }
    std::fs::write(dir.join("lab.yaml"), lab).unwrap();
}

/// Loads `dir/lab.yaml` through the Image tile's "Lab file", waits for its node table (its title
/// says `nodes`), and shows every drive.
fn open_lab(s: &Session, dir: &Path, nodes: &str) {
    s.click("#source-lab");
    s.type_into("#lab-file", dir.join("lab.yaml").to_str().unwrap());
    s.click("#use-source");
    s.wait_text("#lab-title", 30, |t| t.contains(nodes));
    s.click("#show-all");
}

/// Chooses `stick` in the node table's select `id`, as a person does: its value, then its change
/// event, once the drive is listed.
fn pick_drive(s: &Session, id: &str, stick: &LoopDev) {
    let path = stick.path_str();
    s.wait_text("#drives", 10, |t| t.contains(path));
    s.execute(&format!(
        "const e = document.getElementById('{id}'); e.value = '{path}'; e.dispatchEvent(new Event('change', {{ bubbles: true }}));"
    ));
}

/// Every visible text of `selectors` in the window, against the first opaque background behind
/// it: WCAG 2.1 contrast, 4.5:1 (3:1 for large text). Returns the ones below, with their ratio.
const CONTRAST: &str = r#"
const lum = (c) => {
  const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map((v) => {
    const s = Number(v) / 255;
    return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const opaque = (c) => { const m = c.match(/[\d.]+/g); return m && (m.length < 4 || Number(m[3]) > 0.9); };
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (opaque(bg)) return bg;
  }
  // Nothing opaque behind it: the page's canvas, as the colour scheme paints it.
  const probe = document.createElement("div");
  probe.style.backgroundColor = "Canvas";
  document.body.appendChild(probe);
  const canvas = getComputedStyle(probe).backgroundColor;
  probe.remove();
  return canvas;
};
const low = [];
let checked = 0;
for (const sel of arguments[0]) {
  for (const el of document.querySelectorAll(sel)) {
    if (!el.offsetParent && getComputedStyle(el).position !== "fixed" || !el.textContent.trim()) continue;
    const st = getComputedStyle(el);
    const [a, b] = [lum(st.color), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    checked++;
    if (ratio < (large ? 3 : 4.5)) low.push(`${sel} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1 (${st.color} on ${background(el)})`);
  }
}
return { checked, low };
"#;

/// What the window's texts and controls are checked for, in both themes.
const TEXTS: &[&str] = &[
    "h1",
    "h2",
    "nav button",
    ".step-number",
    "button",
    ".hint",
    ".reason",
    ".step-error",
    ".warning",
    ".badge",
    ".name",
    ".meta",
    ".size",
    ".percent",
    ".progress-text",
    ".held",
    ".eject",
    "label",
    "code.digest",
    "#confirm-text p",
    "summary",
];

fn low_contrast(s: &Session) -> (u64, Vec<String>) {
    let found = s.execute_with(CONTRAST, serde_json::json!([TEXTS]));
    let low = found["low"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (found["checked"].as_u64().unwrap(), low)
}

/// Dark mode as a first-time user on a dark desktop sees it: the first screen, an error in its
/// tile, drives with a badge, the digest card, the confirmation and the outcome, each
/// screenshot and each checked for contrast (WCAG AA) by the window's own computed colours.
#[test]
fn the_window_reads_in_dark_mode_as_in_light() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let bytes = image_like(6 * MIB as usize, 72);
    let image = dir.path().join("talos.raw");
    std::fs::write(&image, &bytes).unwrap();
    for (theme, dark) in [("light", false), ("dark", true)] {
        // Sticks of its own each: a flashed one is ejected (detached).
        let dev = LoopDev::new(dir.path(), 16 * MIB, 512, 0xAA);
        let small = LoopDev::new(dir.path(), 4 * MIB, 512, 0xAA);
        // A first launch each: the window's settings live beside the cache.
        let cache = dir.path().join(theme).join("cache");
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        let gui = if dark {
            Gui::start_dark(&cache)
        } else {
            Gui::start(&cache)
        };
        let s = gui.s();
        let scheme = s.execute("return matchMedia('(prefers-color-scheme: dark)').matches;");
        assert_eq!(
            scheme, dark,
            "GTK's {theme} theme gives the page its colour scheme"
        );
        let mut checked = 0;
        let mut check = |step: &str| {
            gui.shot(&format!("{theme}-{step}"));
            let (n, low) = low_contrast(s);
            checked += n;
            assert!(
                low.is_empty(),
                "{theme}, {step}: text below AA contrast: {low:#?}"
            );
        };
        std::thread::sleep(Duration::from_millis(500));
        check("start");
        // Check first, for the digest card.
        s.click("#tab-settings");
        s.click("#check-first");
        s.click("#tab-flash");
        // The window carries the app's own icon (icons/32x32.png: teal behind a white stick).
        let (w, h, argb) = gui.window_icon();
        assert_eq!((w, h), (32, 32), "the window's icon is icons/32x32.png");
        assert_eq!(
            argb[16 * 32 + 3],
            0xff0b6b6c,
            "its background is labflash's teal"
        );
        assert_eq!(argb[16 * 32 + 16], 0xffffffff, "its stick is white");

        // An error in its tile.
        s.click("#source-file");
        s.type_into(
            "#file-path",
            dir.path().join("missing.raw").to_str().unwrap(),
        );
        s.click("#use-source");
        s.wait_text("#error-step-image", 10, |t| !t.is_empty());
        check("error");

        // The image checked, its digest card; every drive shown, one too small for it.
        s.click("#change-image");
        s.type_into("#file-path", image.to_str().unwrap());
        s.click("#use-source");
        s.wait_text("#image-sha", 60, |t| t.len() == 64);
        s.click("#show-all");
        let (path, tiny) = (dev.path_str(), small.path_str());
        s.wait_text("#drives", 10, |t| t.contains(path) && t.contains(tiny));
        s.click("#confirm-digests");
        s.click(&format!("#drives input[value=\"{path}\"]"));
        check("checked");

        s.click("#flash-button");
        s.wait_text("#confirm-text", 30, |t| !t.is_empty());
        check("confirm");
        s.click("#confirm-yes");
        s.wait_text("#run-title", 60, |t| t.starts_with("Done"));
        check("done");
        assert!(checked > 40, "{theme}: only {checked} texts were checked");
        drop(gui);
    }
}

/// Where an element is in the viewport: its rectangle, and the viewport's size.
fn rect(s: &Session, css: &str) -> serde_json::Value {
    s.execute_with(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect(); \
         return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height, \
         vw: innerWidth, vh: innerHeight };",
        serde_json::json!([css]),
    )
}

/// The window from its smallest (640x480) to a large one: every step's button in view, nothing
/// wider than the window, and the drive list taking the height it is given (five drives all in
/// view at 800x600, no scrolling inside it; taller at 1280x900).
#[test]
fn the_window_uses_its_space_from_640x480_to_a_large_screen() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let sticks: Vec<LoopDev> = (0..5)
        .map(|_| LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA))
        .collect();
    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#show-all");
    for stick in &sticks {
        s.wait_text("#drives", 10, |t| t.contains(stick.path_str()));
    }
    let mut heights = Vec::new();
    for (w, h) in [(640, 480), (800, 600), (1280, 900)] {
        s.set_window_size(w, h);
        std::thread::sleep(Duration::from_millis(300));
        gui.shot(&format!("size-{w}x{h}"));
        let wide = s.execute("return document.documentElement.scrollWidth <= innerWidth;");
        assert_eq!(wide, true, "{w}x{h}: nothing is wider than the window");
        for button in ["#choose-image", "#flash-button", "#show-all"] {
            let r = rect(s, button);
            let inside = r["left"].as_f64() >= Some(0.0)
                && r["right"].as_f64() <= r["vw"].as_f64()
                && r["bottom"].as_f64() <= r["vh"].as_f64();
            assert!(inside, "{w}x{h}: {button} is out of view: {r}");
        }
        heights.push(rect(s, "#drives")["height"].as_f64().unwrap());
        if (w, h) == (800, 600) {
            let scrolls = s.execute(
                "const d = document.querySelector('#drives'); return d.scrollHeight > d.clientHeight;",
            );
            assert_eq!(scrolls, false, "800x600: five drives need no scrolling");
        }
    }
    assert!(
        heights[2] > heights[1] + 200.0,
        "a taller window gives the drives the height: {heights:?}"
    );
}

/// Two sticks from a URL; one is dropped with its own Cancel while the other goes on and is
/// verified. The page says what each holds, Retry writes the dropped one alone (asked first);
/// then an image whose bytes are not the ones its publisher published: every drive left blank
/// and "Choose another image" instead of Retry.
#[test]
fn one_drive_is_cancelled_alone_and_the_outcome_offers_the_next_step_that_fits() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = image_like(16 * MIB as usize, 81);
    let xz = xz_blocks(&image, MIB);
    let server = common::server::Server::start();
    server.put_with_sidecar("/node.raw.xz", xz.clone());
    // Published digest of other bytes: the download cannot match it.
    server.put("/bad.raw.xz", xz.clone());
    server.put(
        "/bad.raw.xz.sha256",
        format!("{}  bad.raw.xz\n", sha256_hex(b"other bytes")).into_bytes(),
    );
    // Slow enough (about 6 s for its 5.6 MB) to press a drive's Cancel while it writes, even on
    // a machine busy with other tests. With ranges: the xz index at the end says the image's
    // size before it is downloaded.
    server.set_default_serve(common::server::Serve {
        rate: Some(1_000_000),
        ranges: true,
        ..Default::default()
    });
    let sticks = [
        LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA),
        LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA),
    ];
    let (kept, dropped) = (sticks[0].path_str(), sticks[1].path_str());

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#tab-settings");
    s.click("#eject-after");
    s.click("#tab-flash");
    s.click("#source-url");
    s.type_into("#url", &server.url("/node.raw.xz"));
    s.click("#use-source");
    s.wait_text("#image-found", 30, |t| !t.is_empty());
    // Its text as written (WebKitWebDriver reads a line its CSS could ellipsise as "").
    let found = s.content("#image-found");
    assert!(
        found.contains("16.8 MB image"),
        "the xz index's size: {found}"
    );
    s.click("#show-all");
    for path in [kept, dropped] {
        s.wait_text("#drives", 10, |t| t.contains(path));
        s.click(&format!("#drives input[value=\"{path}\"]"));
    }
    s.click("#flash-button");
    s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    s.click("#confirm-yes");
    // Writing, with a percentage: the archive's index says how big the image is.
    s.wait_text(&row(dropped), 30, |t| {
        t.contains("Writing") && !t.contains("Writing · 0 %") && t.contains(" %")
    });
    gui.shot("writing-two");
    s.click(&format!("{} .cancel-drive", row(dropped)));
    let title = s.wait_text("#run-title", 60, |t| !t.starts_with("Flashing"));
    assert_eq!(title, "1 drive done, 1 cancelled of 2");
    assert!(
        s.text(&row(kept)).contains("✓ Verified"),
        "{}",
        s.text(&row(kept))
    );
    let held = s.text(&row(dropped));
    assert!(
        held.contains("Cancelled") && held.contains("Left blank: not bootable."),
        "{held}"
    );
    assert_eq!(
        sticks[1].read(0, MIB as usize),
        vec![0; MIB as usize],
        "the dropped drive's first MiB is wiped"
    );
    assert_eq!(
        sticks[0].read(0, image.len()),
        image,
        "the other one holds the image"
    );
    gui.shot("cancelled-one");

    // Retry: the dropped drive alone, asked first.
    s.click("#retry");
    let question = s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    assert!(
        question.contains(dropped) && !question.contains(kept),
        "{question}"
    );
    s.click("#confirm-yes");
    let title = s.wait_text("#run-title", 60, |t| t.starts_with("Done"));
    assert_eq!(title, "Done — 1 drive verified");
    assert_eq!(sticks[1].read(0, image.len()), image);

    // Verify picks the drive from the list (no path to type).
    s.click("#tab-verify");
    s.click(&format!("#verify-drive option[value=\"{kept}\"]"));
    assert_eq!(
        s.execute("return document.querySelector('#verify-path').value;"),
        kept
    );
    s.click("#expected-digest");
    s.type_into("#verify-expected", &sha256_hex(&image));
    s.type_into("#verify-size", &image.len().to_string());
    s.click("#verify-button");
    s.wait_text("#verify-result", 60, |t| t == "✓ Matches");
    s.click("#tab-flash");

    // An image that is not the published one: nothing to retry.
    s.click("#start-over");
    s.click("#source-url");
    s.type_into("#url", &server.url("/bad.raw.xz"));
    s.click("#use-source");
    s.wait_text("#image-found", 30, |t| !t.is_empty());
    for path in [kept, dropped] {
        s.wait_text("#drives", 10, |t| t.contains(path));
        s.click(&format!("#drives input[value=\"{path}\"]"));
    }
    s.click("#flash-button");
    s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    s.click("#confirm-yes");
    let title = s.wait_text("#run-title", 60, |t| !t.starts_with("Flashing"));
    assert!(
        title.contains("not the one its publisher published"),
        "{title}"
    );
    for path in [kept, dropped] {
        assert!(s.text(&row(path)).contains("Left blank: not bootable."));
    }
    assert!(!s.exists("#retry") && !s.exists("#flash-another"));
    assert!(s.exists("#other-image"));
    gui.shot("mismatch");
    s.click("#other-image");
    assert!(s.exists("#choose-image"), "back to choosing an image");
}

/// An Enterprise Image Factory that answers nothing without its download token: the token typed
/// in the Talos dialog goes with every request the app makes of it (the choice's probe, the
/// checksum, the streamed download), so the image is chosen, flashed and read back.
#[test]
fn an_enterprise_factory_s_token_goes_with_every_request_of_the_app_s_flash() {
    require_root!();
    let _one_at_a_time = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    const TOKEN: &str = "s3cret-d0wnload";
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let boot = dir.path().join("boot.raw");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(&boot, "4:0:+1M");
    let image = std::fs::read(&boot).unwrap();
    let server = common::server::Server::start();
    common::factory::answer_like(&server, common::factory::Edition::Enterprise);
    server.put_with_sidecar(
        &format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"),
        xz_single(&image),
    );
    server.require(std::sync::Arc::new(|r: &common::server::Request| {
        r.path.contains(&format!("token={TOKEN}"))
    }));
    let stick = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);

    let gui = Gui::start(&dir.path().join("cache"));
    let s = gui.s();
    s.click("#source-talos");
    s.type_into("#factory-url", &server.url(""));
    s.execute("document.querySelector('#source-dialog details').open = true; return true;");
    s.type_into("#factory-token", TOKEN);
    s.type_into("#talos-version", "v1.13.0");
    s.click("#use-source");
    s.wait_text("#image-found", 30, |t| !t.is_empty());
    // Its text as written (WebKitWebDriver reads a line its CSS could ellipsise as "").
    let found = s.content("#image-found");
    assert!(found.contains("Will be checked against"), "{found}");
    let path = stick.path_str();
    s.click("#show-all");
    s.wait_text("#drives", 10, |t| t.contains(path));
    s.click(&format!("#drives input[value=\"{path}\"]"));
    s.click("#flash-button");
    s.wait_text("#confirm-text", 30, |t| !t.is_empty());
    s.click("#confirm-yes");
    let done = s.wait_text(&row(path), 60, |t| {
        t.contains("Detached") || t.contains("Failed")
    });
    assert!(done.contains("✓ Verified"), "{done}");
    let asset = format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz");
    let downloads = server
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path.starts_with(&format!("{asset}?")) && r.range.is_none()
        })
        .count();
    assert!(downloads >= 1, "the asset was downloaded, with the token");
    assert_eq!(stick.read_backing(0, image.len()), image);
}
