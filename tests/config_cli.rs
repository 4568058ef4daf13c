//! `labflash cidata` and `labflash talos build`: FAT images checked with the real fsck.fat and
//! mtools (not our own reader), reproducible digests, 0600 files, and labctl's JSON.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::factory::{answer_like, Edition};
use common::server::Server;
use common::*;

const MACHINE_CONFIG: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n  token: secret-token\ncluster:\n  secretboxEncryptionSecret: c2VjcmV0\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: cp-1\n";
const NETWORK: &str = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn fsck(image: &str) {
    let out = Command::new("fsck.fat")
        .args(["-n", image])
        .output()
        .expect("fsck.fat (dosfstools)");
    assert!(
        out.status.success(),
        "fsck.fat: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file read back out of the FAT image by mtools.
fn mread(image: &str, name: &str) -> Vec<u8> {
    let out = Command::new("mtype")
        .args(["-i", image, &format!("::{name}")])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("mtype (mtools)");
    assert!(
        out.status.success(),
        "mtype {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn blkid(image: &str) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", image])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn cidata_is_a_valid_fat_volume_labelled_cidata_with_the_files_at_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "cp.yaml", MACHINE_CONFIG);
    let net = write(dir.path(), "net.yaml", NETWORK);
    let out = dir.path().join("cidata.img");
    let out = out.to_str().unwrap();
    let run = run(&[
        "cidata",
        "--user-data",
        &ud,
        "--hostname",
        "cp-1",
        "--network-config",
        &net,
        "-o",
        out,
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    let bytes = std::fs::read(out).unwrap();
    assert_eq!(json["path"], out);
    assert_eq!(json["sha256"], sha256_hex(&bytes));
    assert_eq!(json["size"], 16 << 20);
    assert_eq!(bytes.len(), 16 << 20);

    fsck(out);
    let id = blkid(out);
    assert!(
        id.contains("TYPE=vfat") && id.contains("LABEL=CIDATA") && id.contains("VERSION=FAT16"),
        "{id}"
    );
    assert_eq!(mread(out, "user-data"), MACHINE_CONFIG.as_bytes());
    assert_eq!(
        mread(out, "meta-data"),
        b"instance-id: cp-1\nlocal-hostname: cp-1\n"
    );
    assert_eq!(mread(out, "network-config"), NETWORK.as_bytes());
    assert_eq!(mode(out), 0o600);

    let with_id = dir.path().join("b.img");
    let second = common::run(&[
        "cidata",
        "--user-data",
        &ud,
        "--hostname",
        "cp-1",
        "--instance-id",
        "node-0001",
        "-o",
        with_id.to_str().unwrap(),
    ]);
    assert_eq!(second.code, 0);
    let b = with_id.to_str().unwrap();
    assert_eq!(
        mread(b, "meta-data"),
        b"instance-id: node-0001\nlocal-hostname: cp-1\n"
    );
    let listing = Command::new("mdir")
        .args(["-b", "-i", b, "::"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listing.stdout).contains("network-config"));
}

#[test]
fn cidata_rebuilds_are_byte_identical_and_content_changes_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "cp.yaml", MACHINE_CONFIG);
    let build = |name: &str, host: &str| {
        let out = dir.path().join(name);
        let r = run(&[
            "cidata",
            "--user-data",
            &ud,
            "--hostname",
            host,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        (
            r.json()["sha256"].as_str().unwrap().to_string(),
            std::fs::read(out).unwrap(),
        )
    };
    let (a, bytes_a) = build("a.img", "cp-1");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a clock that leaked in would show
    let (b, bytes_b) = build("b.img", "cp-1");
    assert_eq!(a, b);
    assert!(bytes_a == bytes_b);
    let (c, _) = build("c.img", "cp-2");
    assert_ne!(a, c);
}

#[test]
fn cidata_is_0600_even_under_a_permissive_umask_and_never_visible_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    // A large payload makes the write long enough for the watcher to see the temp file.
    let big = format!("{MACHINE_CONFIG}# {}\n", "x".repeat(50 << 20));
    let ud = write(dir.path(), "big.yaml", &big);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("cidata.img");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watch_dir, stop_watch) = (out.clone(), stop.clone());
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop_watch.load(std::sync::atomic::Ordering::Relaxed) {
            for entry in std::fs::read_dir(&watch_dir).unwrap().flatten() {
                if let Ok(m) = entry.metadata() {
                    seen.push((entry.file_name(), m.permissions().mode() & 0o777));
                }
            }
        }
        seen
    });
    let cmd = format!(
        "umask 000; exec {} cidata --user-data {ud} --hostname cp-1 -o {}",
        labflash_bin().display(),
        target.display()
    );
    let status = Command::new("sh")
        .args(["-c", &cmd])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(status.success());
    assert_eq!(mode(target.to_str().unwrap()), 0o600);
    assert!(!seen.is_empty(), "the watcher saw nothing");
    for (name, mode) in seen {
        assert_eq!(mode, 0o600, "{name:?} was {mode:o}");
    }
}

#[test]
fn cidata_bad_inputs_exit_2_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "cp.yaml", MACHINE_CONFIG);
    let not_yaml = write(
        dir.path(),
        "bad.yaml",
        "machine:\n  type: [controlplane\n  token: x\n",
    );
    let big = write(
        dir.path(),
        "huge.yaml",
        &format!("{MACHINE_CONFIG}# {}\n", "x".repeat(61 << 20)),
    );
    let out = dir.path().join("out.img");
    let out = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--user-data", &ud, "--hostname", "CP-1"],
            "not a lowercase DNS label",
        ),
        (
            vec!["--user-data", &ud, "--hostname", "cp.lab"],
            "not a lowercase DNS label",
        ),
        (
            vec!["--user-data", &not_yaml, "--hostname", "cp-1"],
            "user-data",
        ),
        (
            vec![
                "--user-data",
                &ud,
                "--hostname",
                "cp-1",
                "--network-config",
                &not_yaml,
            ],
            "network-config",
        ),
        (
            vec!["--user-data", "/nonexistent/cp.yaml", "--hostname", "cp-1"],
            "cannot read",
        ),
        (
            vec!["--user-data", &big, "--hostname", "cp-1"],
            "do not fit",
        ),
        (
            vec![
                "--user-data",
                &ud,
                "--hostname",
                "cp-1",
                "--instance-id",
                "",
            ],
            "instance id",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["cidata", "-o", out, "--json"];
        all.extend(args.iter().copied());
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
        if expected == "user-data" {
            assert!(
                error.contains("line 3 column 8"),
                "the YAML error has a line: {error}"
            );
        }
        assert!(!Path::new(out).exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(left.is_empty());
    }
}

const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

/// A lab repository: an ImageBuild config beside its machine config, and a stand-in factory.
struct Lab {
    dir: tempfile::TempDir,
    server: Server,
    image: Vec<u8>,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let image = image_like(4 << 20, 40);
    let server = Server::start();
    server.put_with_sidecar(
        &format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"),
        xz_blocks(&image, 1 << 20),
    );
    std::fs::create_dir_all(dir.path().join("talos/configs")).unwrap();
    write(
        &dir.path().join("talos/configs"),
        "cp-1.yaml",
        MACHINE_CONFIG,
    );
    write(&dir.path().join("talos/configs"), "net.yaml", NETWORK);
    let config = format!(
        "name: cp-1\nsource:\n  factoryURL: {}\n  version: v1.13.0\n  schematicID: {SCHEMATIC}\n  platform: nocloud\n  arch: amd64\n  artifact: raw.xz\nconfig:\n  delivery: nocloud-cidata\n  userData:\n    path: configs/cp-1.yaml\n  metaData:\n    localHostname: cp-1\n    instanceID: cp-1\n  networkConfig:\n    path: configs/net.yaml\noutput:\n  dir: .state/images\n  format: img\n  bootArtifactName: talos-boot.img\n  configArtifactName: talos-cidata.img\n",
        server.url("")
    );
    write(&dir.path().join("talos"), "image.yaml", &config);
    Lab { dir, server, image }
}

#[test]
fn talos_build_makes_labctls_artifacts_and_json() {
    let lab = lab();
    let config = lab.dir.path().join("talos/image.yaml");
    // Run from elsewhere: paths are relative to the config's folder.
    // labflash's own cache (the decoded image, the locks) kept in the test's folder.
    let own_cache = lab.dir.path().join("labflash-cache");
    let r: Run = labflash(&["talos", "build", config.to_str().unwrap(), "--json"])
        .current_dir("/")
        .env("LABFLASH_CACHE_DIR", &own_cache)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "arch",
            "bootArtifactPath",
            "bootArtifactSHA256",
            "configArtifactPath",
            "configArtifactSHA256",
            "format",
            "name",
            "platform",
            "sourceSchematicID",
            "sourceURL",
            "sourceVersion"
        ]
    );
    let out_dir = lab.dir.path().join("talos/.state/images");
    let boot = out_dir.join("talos-boot.img");
    let cfg = out_dir.join("talos-cidata.img");
    assert_eq!(json["bootArtifactPath"], boot.to_str().unwrap());
    assert_eq!(json["configArtifactPath"], cfg.to_str().unwrap());
    assert_eq!(std::fs::read(&boot).unwrap(), lab.image);
    assert_eq!(json["bootArtifactSHA256"], sha256_hex(&lab.image));
    assert_eq!(
        json["configArtifactSHA256"],
        sha256_hex(&std::fs::read(&cfg).unwrap())
    );
    assert_eq!(json["sourceVersion"], "v1.13.0");
    assert_eq!(json["sourceSchematicID"], SCHEMATIC);
    assert_eq!(
        json["sourceURL"],
        lab.server
            .url(&format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"))
    );
    assert_eq!(
        (
            json["platform"].as_str(),
            json["arch"].as_str(),
            json["format"].as_str()
        ),
        (Some("nocloud"), Some("amd64"), Some("img"))
    );
    for p in [&boot, &cfg] {
        assert_eq!(mode(p.to_str().unwrap()), 0o600, "{p:?}");
    }
    let cfg_s = cfg.to_str().unwrap();
    fsck(cfg_s);
    assert_eq!(mread(cfg_s, "user-data"), MACHINE_CONFIG.as_bytes());
    assert_eq!(mread(cfg_s, "network-config"), NETWORK.as_bytes());
    // labctl's download cache layout, exactly.
    let cached = lab.dir.path().join(format!(
        "talos/.state/downloads/talos/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"
    ));
    assert!(cached.is_file(), "{cached:?}");

    // Again, from standard input in the config's folder: the same config digest, no download.
    lab.server.clear_log();
    let text = std::fs::read(&config).unwrap();
    let mut child = labflash(&["talos", "build", "-"])
        .current_dir(lab.dir.path().join("talos"))
        .env("LABFLASH_CACHE_DIR", &own_cache)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text).unwrap();
    let again: Run = child.wait_with_output().unwrap().into();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout,
        format!("{}\n{}\n", boot.display(), cfg.display()),
        "two paths on two lines"
    );
    assert_eq!(
        sha256_hex(&std::fs::read(&cfg).unwrap()),
        json["configArtifactSHA256"].as_str().unwrap()
    );
    assert!(lab
        .server
        .gets(&format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"))
        .is_empty());
}

#[test]
fn talos_build_refuses_bad_configs_naming_the_field() {
    let lab = lab();
    let config = lab.dir.path().join("talos/image.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let cases = [
        (
            good.replace("version: v1.13.0", "version: latest"),
            "source.version",
        ),
        (
            good.replace("  arch: amd64\n", "  arch: amd64\n  extra: true\n"),
            "extra",
        ),
        (
            good.replace("localHostname: cp-1", "localHostname: Control_Plane"),
            "config.metaData.localHostname",
        ),
        (
            good.replace("configs/cp-1.yaml", "configs/missing.yaml"),
            "cannot read",
        ),
        (
            good.replace("dir: .state/images", "dir: /etc"),
            "output.dir",
        ),
    ];
    for (text, field) in cases {
        std::fs::write(&config, &text).unwrap();
        let r: Run = labflash(&["talos", "build", config.to_str().unwrap(), "--json"])
            .env("LABFLASH_CACHE_DIR", lab.dir.path().join("labflash-cache"))
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 2, "{field}: {}", r.stderr);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(field), "{field}: {error}");
    }
    assert!(
        lab.server.requests().is_empty(),
        "nothing is downloaded for a bad config"
    );
    assert!(!lab.dir.path().join("talos/.state/images").exists());
    let _: PathBuf = config;
}

/// labctl's own configs and files (tests/fixtures/labctl, taken from GilmanLab/platform's tests;
/// each file names its source), copied into a fresh folder with the factory URL pointed at a
/// stand-in Enterprise factory, the way labctl's `talos_image_build.txtar` runs them.
fn labctl_folder(server: &Server, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labctl");
    for entry in std::fs::read_dir(&fixtures).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(fixtures.join(config)).unwrap();
    let factory = server.url("");
    let text = match text.find("  factoryURL: ") {
        Some(at) => {
            let end = at + text[at..].find('\n').unwrap();
            format!("{}  factoryURL: {factory}{}", &text[..at], &text[end..])
        }
        None => text.replace(
            "  version: ",
            &format!("  factoryURL: {factory}\n  version: "),
        ),
    };
    std::fs::write(dir.path().join(config), text).unwrap();
    dir
}

fn labctl_factory(image: &[u8]) -> Server {
    let server = Server::start();
    answer_like(&server, Edition::Enterprise);
    server.put_with_sidecar(
        &format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"),
        xz_single(image),
    );
    server
}

fn build_in(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["talos", "build"];
    all.extend_from_slice(args);
    labflash(&all)
        .current_dir(dir)
        .env("LABFLASH_CACHE_DIR", dir.join(".labflash-cache"))
        .output()
        .unwrap()
        .into()
}

#[test]
fn labctls_own_configs_build_and_print_what_its_tests_expect() {
    let image = image_like(2 << 20, 91);
    let server = labctl_factory(&image);
    let dir = labctl_folder(&server, "talos-valid.yaml");
    let r = build_in(dir.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "", "labctl's test wants nothing on stderr");
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one compact line: {}",
        r.stdout
    );
    let json = r.json();
    // Every stdout pattern of talos_image_build.txtar (literal ones verbatim; the digest ones
    // are `"…SHA256":"[0-9a-f]{64}"`).
    let patterns =
        std::fs::read_to_string(dir.path().join("talos-valid.json-stdout-patterns.txt")).unwrap();
    for pattern in patterns.lines().filter(|l| !l.starts_with('#')) {
        if let Some(key) = pattern.strip_suffix(r#":"[0-9a-f]{64}""#) {
            let key = key.trim_matches('"');
            let digest = json[key].as_str().unwrap();
            assert!(
                digest.len() == 64
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{key}"
            );
        } else {
            assert!(r.stdout.contains(pattern), "{pattern} in {}", r.stdout);
        }
    }
    let order = [
        "name",
        "bootArtifactPath",
        "bootArtifactSHA256",
        "configArtifactPath",
        "configArtifactSHA256",
        "sourceVersion",
        "sourceURL",
        "sourceSchematicID",
        "platform",
        "arch",
        "format",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|k| {
            r.stdout
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "labctl's keys in labctl's order: {}",
        r.stdout
    );
    assert_eq!(json.as_object().unwrap().len(), order.len());
    assert_eq!(json["bootArtifactSHA256"], sha256_hex(&image));
    let here = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        json["bootArtifactPath"],
        here.join(".state/images/talos-boot.img").to_str().unwrap()
    );
    let cidata = here.join(".state/images/talos-cidata.img");
    let cidata = cidata.to_str().unwrap();
    fsck(cidata);
    assert_eq!(
        mread(cidata, "user-data"),
        std::fs::read(dir.path().join("controlplane.yaml")).unwrap()
    );
    assert_eq!(
        mread(cidata, "network-config"),
        std::fs::read(dir.path().join("network-config.yaml")).unwrap()
    );
    // instance-id defaults to the hostname (labctl's schema), in labctl's key order.
    assert_eq!(
        mread(cidata, "meta-data"),
        b"instance-id: bootstrap-controlplane-1\nlocal-hostname: bootstrap-controlplane-1\n"
    );
    // The txtar's `exists` for labctl's download cache.
    assert!(here
        .join(format!(
            ".state/downloads/talos/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"
        ))
        .is_file());

    // The full config (service_test.go's testConfig: every field set).
    let full = labctl_folder(&server, "talos-full.yaml");
    let r = build_in(full.path(), &["--json", "talos-full.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cidata = std::fs::canonicalize(full.path())
        .unwrap()
        .join(".state/images/talos-cidata.img");
    let cidata = cidata.to_str().unwrap();
    assert_eq!(
        mread(cidata, "meta-data"),
        b"instance-id: bootstrap-instance-1\nlocal-hostname: bootstrap-controlplane-1\n"
    );
    assert_eq!(
        mread(cidata, "network-config"),
        std::fs::read(full.path().join("network.yaml")).unwrap()
    );
}

#[test]
fn labctls_invalid_configs_are_refused_before_any_download() {
    let server = labctl_factory(b"unused");
    for (config, reason) in [
        ("talos-invalid-format.yaml", "format"),
        (
            "talos-invalid-version-latest.yaml",
            "exact release like v1.13.0",
        ),
        ("talos-invalid-platform-metal.yaml", "platform"),
        ("talos-invalid-parent-path.yaml", "path must be relative"),
    ] {
        let dir = labctl_folder(&server, config);
        let r = build_in(dir.path(), &["--json", config]);
        assert_eq!(r.code, 2, "{config}: {}", r.stdout);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(reason), "{config}: {error}");
        assert!(
            !dir.path().join(".state").exists(),
            "{config}: nothing written"
        );
    }
    assert!(server.requests().is_empty());
}

/// An operator moving between labctl and labflash downloads nothing twice: an archive labctl left
/// in its cache is verified against the sidecar and used.
#[test]
fn an_archive_labctl_downloaded_is_reused() {
    let image = image_like(1 << 20, 92);
    let server = labctl_factory(&image);
    let dir = labctl_folder(&server, "talos-valid.yaml");
    let labctl_cache = dir
        .path()
        .join(format!(".state/downloads/talos/{SCHEMATIC}/v1.13.0"));
    std::fs::create_dir_all(&labctl_cache).unwrap();
    std::fs::write(labctl_cache.join("nocloud-amd64.raw.xz"), xz_single(&image)).unwrap();
    let r = build_in(dir.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(server
        .gets(&format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"))
        .is_empty());
    assert_eq!(r.json()["bootArtifactSHA256"], sha256_hex(&image));
}

#[test]
fn talos_1_12_0_to_1_12_2_warn_that_they_cannot_read_a_fat_cidata() {
    let image = image_like(1 << 20, 93);
    let server = Server::start();
    server.put_with_sidecar(
        &format!("/image/{SCHEMATIC}/v1.12.1/nocloud-amd64.raw.xz"),
        xz_single(&image),
    );
    let dir = labctl_folder(&server, "talos-valid.yaml");
    let config = dir.path().join("talos-valid.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("v1.13.0", "v1.12.1");
    std::fs::write(&config, text).unwrap();
    let r = build_in(dir.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("12647"),
        "{}",
        r.stderr
    );
    let warnings = r.json()["warnings"].as_array().unwrap().clone();
    assert!(
        warnings[0].as_str().unwrap().contains("v1.12.3"),
        "{warnings:?}"
    );
}

/// The README's examples in "Talos config", run as written from a fresh folder.
#[test]
fn readme_talos_config_examples_run_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let image = image_like(1 << 20, 94);
    let server = labctl_factory(&image);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("controlplane.yaml"), MACHINE_CONFIG).unwrap();
    let cidata = "labflash cidata --user-data controlplane.yaml --hostname cp-1 -o cidata.img";
    assert!(
        readme.contains(cidata.split(" -o").next().unwrap()) && readme.contains("-o cidata.img")
    );
    let args: Vec<&str> = cidata.split(' ').skip(1).collect();
    let r: Run = labflash(&args)
        .current_dir(dir.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "a bare output name works: {}", r.stderr);
    fsck(dir.path().join("cidata.img").to_str().unwrap());

    let build = "labflash talos build talos/image.yaml --json";
    assert!(readme.contains(build));
    let talos = labctl_folder(&server, "talos-valid.yaml");
    std::fs::rename(talos.path(), dir.path().join("talos")).unwrap();
    std::fs::rename(
        dir.path().join("talos/talos-valid.yaml"),
        dir.path().join("talos/image.yaml"),
    )
    .unwrap();
    let args: Vec<&str> = build.split(' ').skip(1).collect();
    let r: Run = labflash(&args)
        .current_dir(dir.path())
        .env("LABFLASH_CACHE_DIR", dir.path().join("labflash-cache"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir
        .path()
        .join("talos/.state/images/talos-boot.img")
        .is_file());
}

/// `meta-data` is YAML: a hostname such as `123` (a valid DNS label) must reach the node as the
/// string "123", not the number, and an instance ID as written.
#[test]
fn meta_data_values_read_back_as_the_strings_given() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "cp.yaml", MACHINE_CONFIG);
    let out = dir.path().join("c.img");
    let r = run(&[
        "cidata",
        "--user-data",
        &ud,
        "--hostname",
        "123",
        "--instance-id",
        "null",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        mread(out.to_str().unwrap(), "meta-data"),
        b"instance-id: \"null\"\nlocal-hostname: \"123\"\n"
    );
}
