//! Real firmware: the two-stick layout booted in QEMU (TCG) with OVMF. tests/boot/two_sticks.sh
//! builds a UKI from Debian's kernel, writes it and `labflash cidata`'s config image onto two stick
//! files with `labflash flash`, boots both sticks and checks that the kernel finds CIDATA on the
//! second stick with the user-data's SHA-256, then boots the first stick alone and checks that it
//! finds none. The script says what it checks; this test runs it with the `labflash` built beside
//! the tests, and records a skip when QEMU, OVMF, the kernel or busybox-static are missing
//! (setup.sh --tests installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn two_sticks_boot_in_ovmf_and_the_kernel_finds_cidata_on_the_second_stick() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boot/two_sticks.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(labflash_bin())
        // Each boot takes about 10 s here; nextest ends a test after 2 minutes.
        .env("BOOT_TEST_QEMU_TIMEOUT", "50")
        .env_remove("LABFLASH_CACHE_DIR")
        .env_remove("BOOT_TEST_KEEP")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(77) => {
            let reason = stderr
                .lines()
                .find_map(|l| l.strip_prefix("boot: two sticks: SKIPPED: "))
                .unwrap_or("a tool the boot test needs is missing");
            skip(reason);
        }
        Some(0) => assert!(
            stdout.contains("boot: two sticks: PASSED"),
            "the script exited 0 without saying PASSED:\n{stdout}\n{stderr}"
        ),
        code => panic!("tests/boot/two_sticks.sh exited with {code:?}:\n{stdout}\n{stderr}"),
    }
}
