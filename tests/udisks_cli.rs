//! The unprivileged path for real: a user who may not open a drive gets it through UDisks2 once
//! polkit allows it, and is refused (nothing written) while it does not; one authorization per
//! drive through UDisks2 and one per flash through pkexec (the polkit rule logs every request);
//! UDisks2 installed but not running is started by the bus. Starts the system bus, udev, polkit
//! and UDisks2 if they are not running, and stops what it started (by pid).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::loopdev::LoopDev;
use common::*;

const USER: &str = "labflash-test";
const RULE: &str = "/etc/polkit-1/rules.d/49-labflash-test.rules";
/// Every authorization polkit is asked for, one action id a line (written by the rule).
const ASKED: &str = "/tmp/labflash-test-polkit.log";
/// The bus starts UDisks2 from this file when someone asks for it.
const ACTIVATION: &str = "/usr/share/dbus-1/system-services/org.freedesktop.UDisks2.service";
/// The helper as the package installs it: root's, in a folder only root may write.
const HELPER_DIR: &str = "/run/labflash-test-helper";
const MIB: u64 = 1 << 20;

/// The daemons this test started, stopped on drop along with the rule and the user.
struct Desktop {
    children: Vec<Child>,
    /// UDisks2, when this test started it (and so may stop it).
    udisks: Option<Child>,
    dbus_pid: Option<i32>,
    created_user: bool,
}

impl Desktop {
    fn start() -> Desktop {
        let mut d = Desktop {
            children: Vec::new(),
            udisks: None,
            dbus_pid: None,
            created_user: false,
        };
        if !Path::new("/run/dbus/system_bus_socket").exists() {
            std::fs::create_dir_all("/run/dbus").unwrap();
            let out = Command::new("dbus-daemon")
                .args(["--system", "--fork", "--print-pid"])
                .output()
                .expect("dbus-daemon (package dbus)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            d.dbus_pid = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        }
        if !bus_has_owner("org.freedesktop.UDisks2") {
            d.spawn("/lib/systemd/systemd-udevd", &[]);
            std::thread::sleep(Duration::from_millis(300));
            run_ok(
                "udevadm",
                &["trigger", "--subsystem-match=block", "--action=add"],
            );
            run_ok("udevadm", &["settle", "-t", "10"]);
            d.spawn("/usr/lib/polkit-1/polkitd", &["--no-debug"]);
            d.spawn("/usr/libexec/udisks2/udisksd", &[]);
            d.udisks = d.children.pop();
            wait_until("UDisks2 on the system bus", || {
                bus_has_owner("org.freedesktop.UDisks2")
            });
        }
        if Command::new("id").arg(USER).output().unwrap().status.code() != Some(0) {
            run_ok(
                "useradd",
                &[
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ],
            );
            d.created_user = true;
        }
        d
    }

    fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (packages udisks2 polkitd udev)"));
        self.children.push(child);
    }

    /// Stops UDisks2 if this test started it; false when it belongs to the machine.
    fn stop_udisks(&mut self) -> bool {
        let Some(mut child) = self.udisks.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        wait_until("UDisks2 to leave the bus", || {
            !bus_has_owner("org.freedesktop.UDisks2")
        });
        true
    }

    /// Leaves nobody to ask for UDisks2 (stopped if this test started it, its activation file
    /// hidden until drop), so a flash goes to the pkexec helper; false when UDisks2 is the
    /// machine's and keeps running.
    fn without_udisks(&mut self) -> bool {
        self.stop_udisks();
        if bus_has_owner("org.freedesktop.UDisks2") {
            return false;
        }
        if Path::new(ACTIVATION).exists() {
            std::fs::rename(ACTIVATION, format!("{ACTIVATION}.labflash-test")).unwrap();
            run_ok(
                "dbus-send",
                &[
                    "--system",
                    "--type=method_call",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig",
                ],
            );
        }
        true
    }

    fn allow(&self, allowed: bool) {
        if allowed {
            std::fs::write(
                RULE,
                format!(
                    "polkit.addRule(function(action, subject) {{\n  if (subject.user == \"{USER}\") {{\n    polkit.spawn([\"/bin/sh\", \"-c\", \"echo \" + action.id + \" >> {ASKED}\"]);\n  }}\n  if ((action.id.indexOf(\"org.freedesktop.udisks2.open-device\") == 0 || action.id == \"org.freedesktop.udisks2.filesystem-unmount-others\" || action.id == \"org.freedesktop.udisks2.loop-setup\" || action.id == \"org.freedesktop.policykit.exec\") && subject.user == \"{USER}\") {{\n    return polkit.Result.YES;\n  }}\n}});\n"
                ),
            )
            .unwrap();
        } else {
            let _ = std::fs::remove_file(RULE);
        }
        // polkitd reloads its rules when the folder changes.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// The authorizations polkit was asked for since the log was last taken, by action id.
fn asked() -> Vec<String> {
    let text = std::fs::read_to_string(ASKED).unwrap_or_default();
    std::fs::write(ASKED, "").unwrap();
    text.lines().map(str::to_owned).collect()
}

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(RULE);
        let _ = std::fs::remove_file(ASKED);
        let _ = std::fs::remove_dir_all(HELPER_DIR);
        let hidden = format!("{ACTIVATION}.labflash-test");
        if Path::new(&hidden).exists() {
            let _ = std::fs::rename(&hidden, ACTIVATION);
        }
        self.stop_udisks();
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.dbus_pid {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_file("/run/dbus/pid");
            let _ = std::fs::remove_file("/run/dbus/system_bus_socket");
        }
        if self.created_user {
            let _ = Command::new("userdel").arg(USER).status();
        }
    }
}

fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A UDisks2 property of `object` as dbus-send prints it, or `None` while UDisks2 lacks it.
fn udisks_property(object: &str, interface: &str, property: &str) -> Option<String> {
    let out = Command::new("dbus-send")
        .args([
            "--system",
            "--print-reply",
            "--dest=org.freedesktop.UDisks2",
            object,
            "org.freedesktop.DBus.Properties.Get",
            &format!("string:org.freedesktop.UDisks2.{interface}"),
            &format!("string:{property}"),
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs labflash as the unprivileged test user.
fn as_user(bin: &Path, args: &[&str]) -> Run {
    as_user_env(bin, args, &format!("{HELPER_DIR}/labflash"))
}

#[test]
fn an_unprivileged_user_flashes_through_udisks2_only_when_polkit_allows() {
    require_root!();
    let mut desktop = Desktop::start();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Everything the user needs, where the user can reach it.
    let bin: PathBuf = dir.path().join("labflash");
    std::fs::copy(labflash_bin(), &bin).unwrap();
    let bytes = image_like(3 * MIB as usize + 99, 21);
    let img = dir.path().join("os.img");
    std::fs::write(&img, &bytes).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    run_ok("chown", &[USER, cache.to_str().unwrap()]);
    let dev = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    let second = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    run_ok("udevadm", &["settle", "-t", "10"]);
    std::fs::write(ASKED, "").unwrap();
    std::fs::set_permissions(ASKED, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::create_dir_all(HELPER_DIR).unwrap();
    std::fs::copy(labflash_bin(), format!("{HELPER_DIR}/labflash")).unwrap();
    let object = format!(
        "/org/freedesktop/UDisks2/block_devices/{}",
        dev.path.file_name().unwrap().to_string_lossy()
    );
    wait_until("UDisks2 to see the loop device", || {
        udisks_property(&object, "Block", "Size").is_some()
    });
    let flash = |bin: &Path| {
        as_user(
            bin,
            &[
                "flash",
                img.to_str().unwrap(),
                "--to",
                dev.path_str(),
                "--yes",
                "--json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
        )
    };

    desktop.allow(false);
    let refused = flash(&bin);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    let error = refused.json()["error"].as_str().unwrap().to_string();
    // No rule, no agent, no session here: the next step, in one sentence.
    assert_eq!(
        error,
        format!("permission denied for {}: polkit did not authorize opening it: no polkit authentication agent is running, so nobody could be asked for the password; log in to a desktop session (which runs one), or run labflash as root", dev.path_str())
    );
    assert!(
        dev.read(0, 8 * MIB as usize).iter().all(|b| *b == 0xAA),
        "a refused user wrote"
    );

    desktop.allow(true);
    asked();
    let flashed = flash(&bin);
    assert_eq!(flashed.code, 0, "{}", flashed.stderr);
    assert_eq!(
        flashed.json()["targets"][0]["verifiedSHA256"],
        sha256_hex(&bytes)
    );
    assert_eq!(flashed.json()["targets"][0]["access"], "udisks2");
    assert_eq!(dev.read(0, bytes.len()), bytes);

    // Flashed and ejected as the app does (its Eject calls the same engine function): one
    // authorization for the drive. The loop device root set up stays attached: detaching it
    // would ask polkit again (loop-delete-others).
    asked();
    let ejected = flash_eject(&bin, &[&dev]);
    let asked_for = asked();
    assert!(
        opening_only(&asked_for, 1),
        "one authorization for one drive, eject included: {asked_for:?} {}",
        ejected.stdout
    );
    assert_eq!(ejected.code, 0, "{}", ejected.stdout);
    assert_eq!(
        ejected.json()["ejected"],
        serde_json::json!([{"path": dev.path_str(), "kind": "kept", "why": format!("the loop device {} stays attached; its file holds the image", dev.path_str())}])
    );
    assert!(dev.path.exists() && dev.read(0, bytes.len()) == bytes);

    let flash_both = || {
        as_user(
            &bin,
            &[
                "flash",
                img.to_str().unwrap(),
                "--to",
                dev.path_str(),
                "--to",
                second.path_str(),
                "--yes",
                "--json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
        )
    };
    // Two drives: one authorization each (written and read back through one descriptor).
    let second_object = format!(
        "/org/freedesktop/UDisks2/block_devices/{}",
        second.path.file_name().unwrap().to_string_lossy()
    );
    wait_until("UDisks2 to see the second loop device", || {
        udisks_property(&second_object, "Block", "Size").is_some()
    });
    asked();
    let both = flash_both();
    assert_eq!(both.code, 0, "{}", both.stderr);
    let opens: Vec<String> = asked()
        .into_iter()
        .filter(|a| a.starts_with("org.freedesktop.udisks2.open-device"))
        .collect();
    assert_eq!(opens.len(), 2, "one authorization per drive: {opens:?}");
    assert_eq!(second.read(0, bytes.len()), bytes);
    let both_ejected = flash_eject(&bin, &[&dev, &second]);
    assert_eq!(both_ejected.code, 0, "{}", both_ejected.stdout);
    let asked_for = asked();
    assert!(
        opening_only(&asked_for, 2),
        "one authorization per drive, eject included: {asked_for:?}"
    );

    // A loop device the user set up through UDisks2 (loop-setup, allowed by the rule) is the
    // user's to detach: ejected without another authorization.
    let own = dir.path().join("own.img");
    std::fs::write(&own, vec![0xAAu8; 8 * MIB as usize]).unwrap();
    run_ok("chown", &[USER, own.to_str().unwrap()]);
    let set_up = Command::new("runuser")
        .args([
            "-u",
            USER,
            "--",
            "udisksctl",
            "loop-setup",
            "--no-user-interaction",
            "-f",
        ])
        .arg(&own)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&set_up.stdout).to_string();
    let own_dev = said
        .split_whitespace()
        .find(|w| w.starts_with("/dev/loop"))
        .unwrap_or_else(|| panic!("udisksctl loop-setup: {said} {set_up:?}"))
        .trim_end_matches('.')
        .to_string();
    let own_object = format!(
        "/org/freedesktop/UDisks2/block_devices/{}",
        own_dev.trim_start_matches("/dev/")
    );
    wait_until("UDisks2 to see the user's loop device", || {
        udisks_property(&own_object, "Loop", "SetupByUID").is_some_and(|r| !r.contains("uint32 0"))
    });
    asked();
    let detached = as_user(
        &bin,
        &[
            "flash",
            img.to_str().unwrap(),
            "--to",
            &own_dev,
            "--eject",
            "--yes",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    let own_back = std::fs::read(&own).unwrap();
    let still_attached = Path::new(&format!(
        "/sys/block/{}/loop",
        own_dev.trim_start_matches("/dev/")
    ))
    .exists();
    if still_attached {
        let _ = Command::new("losetup").args(["-d", &own_dev]).status();
    }
    assert_eq!(detached.code, 0, "{} {}", detached.stdout, detached.stderr);
    let asked_for = asked();
    assert!(
        opening_only(&asked_for, 1),
        "detaching the user's own loop device asks nothing more: {asked_for:?}"
    );
    assert_eq!(detached.json()["ejected"][0]["kind"], "detached");
    assert!(!still_attached);
    assert_eq!(
        own_back[..bytes.len()],
        bytes[..],
        "its file holds the image"
    );

    let verified = as_user(
        &bin,
        &[
            "verify",
            dev.path_str(),
            "--image",
            img.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert_eq!(verified.json()["match"], true);

    // A filesystem root mounted on the drive: the user cannot umount(2) it, UDisks2 can.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run_ok("mkfs.ext4", &["-q", "-F", dev.path_str()]);
    run_ok("udevadm", &["settle", "-t", "10"]);
    run_ok("mount", &[dev.path_str(), mnt.to_str().unwrap()]);
    wait_until("UDisks2 to see the mount", || {
        udisks_property(&object, "Filesystem", "MountPoints")
            .is_some_and(|reply| reply.contains("array of bytes"))
    });
    let unmounted = as_user(
        &bin,
        &[
            "flash",
            img.to_str().unwrap(),
            "--to",
            dev.path_str(),
            "--yes",
            "--unmount",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    let still_mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(mnt.to_str().unwrap());
    if still_mounted {
        let _ = Command::new("umount").arg(&mnt).status();
    }
    assert_eq!(unmounted.code, 0, "{}", unmounted.stderr);
    assert!(!still_mounted);
    assert_eq!(dev.read(0, bytes.len()), bytes);

    // UDisks2 installed but not running: the bus starts it when labflash asks for it.
    if !desktop.stop_udisks() {
        skip("UDisks2 ran before this test (the machine's, not stopped here): its bus activation and the pkexec helper went untested");
        return;
    }
    if !Path::new(ACTIVATION).exists() {
        skip("UDisks2 has no bus activation file here: starting it through the bus went untested");
    } else {
        let started = flash(&bin);
        assert_eq!(started.code, 0, "{}", started.stderr);
        assert_eq!(
            started.json()["targets"][0]["access"],
            "udisks2",
            "not the helper"
        );
        assert!(bus_has_owner("org.freedesktop.UDisks2"));
        let _ = Command::new("pkill").args(["-x", "udisksd"]).status();
        wait_until("the activated UDisks2 to stop", || {
            !bus_has_owner("org.freedesktop.UDisks2")
        });
    }

    // Without UDisks2 at all, the flash goes to `pkexec <installed helper> helper`, which polkit
    // allows here: one authorization for the whole flash.
    if !desktop.without_udisks() {
        skip("UDisks2 came back on the bus: the pkexec helper went untested");
    } else {
        let other = image_like(2 * MIB as usize + 5, 22);
        std::fs::write(&img, &other).unwrap();
        asked();
        let helped = flash_both();
        assert_eq!(helped.code, 0, "{}", helped.stderr);
        assert_eq!(
            helped.json()["targets"][0]["verifiedSHA256"],
            sha256_hex(&other)
        );
        assert_eq!(helped.json()["targets"][1]["access"], "helper");
        let execs: Vec<String> = asked()
            .into_iter()
            .filter(|a| a == "org.freedesktop.policykit.exec")
            .collect();
        assert_eq!(execs.len(), 1, "one pkexec for the flash");
        assert_eq!(dev.read(0, other.len()), other);
        assert_eq!(second.read(0, other.len()), other);

        // A helper that is not root's alone is never run: no password is asked for it.
        let unsafe_helper = as_user_env(
            &bin,
            &[
                "flash",
                img.to_str().unwrap(),
                "--to",
                dev.path_str(),
                "--yes",
                "--json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            bin.to_str().unwrap(),
        );
        assert_eq!(unsafe_helper.code, 3);
        assert!(
            unsafe_helper.json()["error"]
                .as_str()
                .unwrap()
                .contains("install the labflash package"),
            "{}",
            unsafe_helper.stdout
        );
        assert!(asked().is_empty(), "nothing was asked of polkit");

        // No rule allows it and no authentication agent runs here: pkexec cannot ask anyone.
        desktop.allow(false);
        let denied = flash(&bin);
        assert_eq!(denied.code, 3, "{}", denied.stderr);
        let error = denied.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("no polkit authentication agent is running")
                && error.contains("log in to a desktop session")
                && error.contains("(pkexec: "),
            "one sentence saying what to do, pkexec's words after it: {error}"
        );
        assert_eq!(dev.read(0, other.len()), other, "a denied helper wrote");
    }
    drop(dev);
    drop(second);
    drop(desktop);
    assert!(!Path::new(RULE).exists());
    assert!(
        Path::new(ACTIVATION).exists()
            || !Path::new(&format!("{ACTIVATION}.labflash-test")).exists()
    );
}

/// Whether polkit was asked `drives` times, each to open a drive (`open-device`, or
/// `open-device-system` for what UDisks2 counts as a system device, as a loop device root set
/// up), and for nothing else.
fn opening_only(asked: &[String], drives: usize) -> bool {
    asked.len() == drives
        && asked
            .iter()
            .all(|a| a.starts_with("org.freedesktop.udisks2.open-device"))
}

/// `labflash flash IMG --to DEV… --eject` as the test user: the drives written, then ejected as
/// the app's Eject ejects them.
fn flash_eject(bin: &Path, devs: &[&LoopDev]) -> Run {
    let dir = bin.parent().unwrap();
    let (img, cache) = (dir.join("os.img"), dir.join("cache"));
    let mut args = vec!["flash", img.to_str().unwrap()];
    for dev in devs {
        args.extend(["--to", dev.path_str()]);
    }
    args.extend([
        "--eject",
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    as_user(bin, &args)
}

/// `as_user` with another helper path (one the user could have replaced).
fn as_user_env(bin: &Path, args: &[&str], helper: &str) -> Run {
    Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(bin)
        .args(args)
        .env_remove("LABFLASH_CACHE_DIR")
        .env("LABFLASH_HELPER", helper)
        .output()
        .unwrap()
        .into()
}

/// A hostile user and the helper pkexec runs as root. Run by the user directly on a path through
/// the user's folder linked to /dev (which polkit's prompt would show), it refuses. Installed from
/// another labflash (here: a helper that sees the app's request as a newer app would write it),
/// it refuses the request before writing, and the app shows the helper's own sentence naming both
/// versions, never a polkit refusal.
#[test]
fn the_helper_refuses_other_spellings_and_other_labflashes_and_the_app_says_so() {
    require_root!();
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut desktop = Desktop::start();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let bin: PathBuf = dir.path().join("labflash");
    std::fs::copy(labflash_bin(), &bin).unwrap();
    let bytes = image_like(2 * MIB as usize + 7, 23);
    let img = dir.path().join("os.img");
    std::fs::write(&img, &bytes).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    run_ok("chown", &[USER, cache.to_str().unwrap()]);
    let home = dir.path().join("u");
    std::fs::create_dir(&home).unwrap();
    run_ok("chown", &[USER, home.to_str().unwrap()]);
    let dev = LoopDev::new(dir.path(), 8 * MIB, 512, 0xAA);
    std::fs::write(ASKED, "").unwrap();
    std::fs::set_permissions(ASKED, PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::create_dir_all(HELPER_DIR).unwrap();
    let helper = format!("{HELPER_DIR}/labflash");
    std::fs::copy(labflash_bin(), &helper).unwrap();
    desktop.allow(true);
    let unwritten = || dev.read(0, 8 * MIB as usize).iter().all(|b| *b == 0xAA);

    // The user's folder `d` → /dev: the drive under another name.
    let linked = home.join("d");
    let out = Command::new("runuser")
        .args(["-u", USER, "--", "ln", "-s", "/dev"])
        .arg(&linked)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let spelled = linked.join(dev.path.file_name().unwrap());
    let drives = labflash(&["drives", "--all", "--json"]).output().unwrap();
    let drives: serde_json::Value = serde_json::from_slice(&drives.stdout).unwrap();
    let identity = drives
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev.path_str())
        .expect("the loop device is listed")["identity"]
        .clone();
    let request = serde_json::json!({
        "protocol": labflash_core::flash::helper::PROTOCOL,
        "version": labflash_core::flash::helper::VERSION,
        "sha256": sha256_hex(&bytes), "size": bytes.len(),
        "targets": [{"path": spelled, "identity": identity}], "protected": [], "unmount": false,
        "allowFixed": false, "verify": true, "skipEqual": false
    });
    let mut child = Command::new("runuser")
        .args(["-u", USER, "--", "pkexec", &helper, "helper", "--target"])
        .arg(&spelled)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = bytes.clone();
    let feeder = std::thread::spawn(move || {
        let _ = writeln!(stdin, "{request}");
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(answer.lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {answer} {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(last["type"], "failed", "{answer}");
    assert_eq!(
        last["message"],
        format!(
            "refusing to write to {}: the helper takes a drive only by its own name in /dev (as /dev/sdb), never through a link or another folder",
            spelled.display()
        )
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(unwritten(), "the helper wrote through the user's link");

    // The app's own flash, through the installed helper of another labflash.
    if !desktop.without_udisks() {
        skip("UDisks2 ran before this test (the machine's, not stopped here): the app's side of the helper went untested");
        return;
    }
    std::fs::rename(&helper, format!("{helper}-real")).unwrap();
    let ours = labflash_core::flash::helper::VERSION;
    let protocol = labflash_core::flash::helper::PROTOCOL;
    let other_labflash = [
        (
            r#"s/^{/{"eraseAfter":true,/"#.to_string(),
            format!(r#"the app is labflash {ours} (helper protocol {protocol}) and the helper is labflash {ours} (protocol {protocol}), which does not know the request's field "eraseAfter""#),
        ),
        (
            format!(r#"s/"protocol":{protocol},/"protocol":{},/"#, protocol + 1),
            format!("the app is labflash {ours} (helper protocol {}) and the helper is labflash {ours} (protocol {protocol});", protocol + 1),
        ),
    ];
    for (edit, says) in other_labflash {
        std::fs::write(
            &helper,
            format!("#!/bin/sh\nIFS= read -r request\n{{ printf '%s\\n' \"$request\" | sed '{edit}'; exec cat; }} | exec {helper}-real \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&helper, PermissionsExt::from_mode(0o755)).unwrap();
        let flashed = as_user(
            &bin,
            &[
                "flash",
                img.to_str().unwrap(),
                "--to",
                dev.path_str(),
                "--yes",
                "--json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
        );
        let error = flashed.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.starts_with("the app and the installed helper disagree: ")
                && error.contains(&says)
                && error.ends_with("install the same labflash version for both"),
            "{edit}: {error} {}",
            flashed.stderr
        );
        assert_eq!(flashed.code, 2, "{}", flashed.stderr);
        assert!(
            unwritten(),
            "{edit}: the helper wrote on a request it did not understand"
        );
    }
}
