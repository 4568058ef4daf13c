//! Shared test support: the scripted HTTP server, the `labflash` binary, archives of every format.
#![allow(dead_code)] // each test file uses its own part of this module

pub mod factory;
pub mod loopdev;
pub mod server;
pub mod tls;
pub mod webdriver;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

#[allow(unused_imports)] // not every test file checks for root
pub use loopdev::is_root;

/// Marks the calling test as not run here, where the run shows it: on stderr, and in the record
/// `$LABFLASH_SKIPPED` (else `skipped.txt` in the tests' temp folder), which tests/run counts and
/// prints at the end: a test that returns early passes in the harness's eyes, never in ours. CI
/// must run every test, so under `CI=true` a skip fails the test instead.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} cannot run here ({reason}), and CI must run every test"
    );
    eprintln!("skipped: {test}: {reason}");
    // tests/run names the record; a test binary run alone uses the build's temp folder.
    let record = std::env::var_os("LABFLASH_SKIPPED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt"));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
    {
        // One write per line: concurrent tests append to the same record.
        let _ = f.write_all(format!("{test}: {reason}\n").as_bytes());
    }
}

/// Whether `name` has an owner on the system bus (dbus-send: no client library in the tests).
pub fn bus_has_owner(name: &str) -> bool {
    Command::new("dbus-send")
        .args([
            "--system",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        .unwrap_or(false)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that compress poorly (xorshift), so sizes on the wire are realistic.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A disk-image-like mix: noise, text and zeros.
pub fn image_like(len: usize, seed: u64) -> Vec<u8> {
    let mut out = noise(len / 3, seed);
    let text = b"talos machine config: cluster endpoint https://10.0.0.1:6443\n";
    while out.len() < 2 * len / 3 {
        out.extend_from_slice(text);
    }
    out.resize(len, 0);
    out
}

/// One xz stream, written in blocks of `block_size` so the decoder can use threads.
pub fn xz_blocks(data: &[u8], block_size: u64) -> Vec<u8> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(2)
        .block_size(block_size)
        .preset(1)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .unwrap();
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// One xz stream in a single block, as `xz` without threads writes it.
pub fn xz_single(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// The `labflash` binary, built by `cargo build` beside this test executable.
pub fn labflash_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("labflash");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace), as tests/run does",
        bin.display()
    );
    bin
}

/// A `labflash` command with a clean environment: no proxy, no cache variable, no factory token,
/// no colours.
pub fn labflash(args: &[&str]) -> Command {
    let mut cmd = Command::new(labflash_bin());
    cmd.args(args)
        .env_remove("LABFLASH_CACHE_DIR")
        .env_remove("LABFLASH_FACTORY_TOKEN")
        .env_remove("RUST_LOG")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as the one JSON value `--json` promises.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON value ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn run(args: &[&str]) -> Run {
    labflash(args).output().expect("run labflash").into()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Temp files (`.<name>.<random>.part`) under `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

/// Files under `dir` other than lock files.
pub fn cached_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect()
}

/// Partitions the file at `path` (already of its final size) as Talos's amd64 dual-boot images are
/// laid out (EFI, BIOS, BOOT, META; installer `install.go` at v1.10.0), with sgdisk. `last` is
/// META's sgdisk extent: `4:0:+1M`, or `4:0:0` to reach the end.
pub fn talos_like_gpt(path: &Path, last: &str) {
    let out = Command::new("sgdisk")
        .args([
            "-o",
            "-n",
            "1:2048:+4M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI",
            "-n",
            "2:0:+1M",
            "-t",
            "2:ef02",
            "-c",
            "2:BIOS",
            "-n",
            "3:0:+6M",
            "-c",
            "3:BOOT",
            "-n",
            last,
            "-c",
            "4:META",
        ])
        .arg(path)
        .output()
        .expect("sgdisk (gdisk)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// IncusOS's `index.json` in its publisher's layout: tests/fixtures/incus, whose README names the
/// lxc/incus-os sources it follows. Its digests are placeholders: see [`serve_index_file`].
pub const INCUS_INDEX: &str = include_str!("../fixtures/incus/index.json");

/// A file of tests/fixtures/incus/signed: the test certificates its make.sh made the way
/// lxc/incus-os makes its own (scripts/test/generate-test-certificates.sh).
pub fn incus_signed_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/incus/signed")
        .join(name)
}

/// The root the test signer chains to: what `--trust-root` names in the tests.
pub fn incus_trust_root() -> std::path::PathBuf {
    incus_signed_fixture("root-E1.crt")
}

/// `index` signed as IncusOS's publisher signs `index.sjson` (`openssl smime -text -sign`, the
/// signer's "Update E1" carried in the message), by the test signer.
pub fn signed_index(index: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["smime", "-text", "-sign", "-signer"])
        .arg(incus_signed_fixture("update-signer.crt"))
        .arg("-inkey")
        .arg(incus_signed_fixture("update-signer.key"))
        .arg("-certfile")
        .arg(incus_signed_fixture("update-E1.crt"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(index).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl smime -sign failed");
    out.stdout
}

/// Gives the index entry of `filename` in `version` the digest and size of `bytes`.
pub fn serve_index_file(
    index: &mut serde_json::Value,
    version: &str,
    filename: &str,
    bytes: &[u8],
) {
    let update = index["updates"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["version"] == version)
        .expect("the fixture has the version");
    let file = update["files"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["filename"] == filename)
        .expect("the fixture has the file");
    file["sha256"] = sha256_hex(bytes).into();
    file["size"] = bytes.len().into();
}
