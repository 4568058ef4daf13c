//! `labflash cidata` and `labflash talos build`: FAT images checked with the real fsck.fat and
//! mtools (not our own reader), reproducible digests, 0600 files, and labctl's JSON.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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
        &format!("# {}\n", "x".repeat(61 << 20)),
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
                "a b",
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
    let r: Run = labflash(&["talos", "build", config.to_str().unwrap(), "--json"])
        .current_dir("/")
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
    // labctl's download cache layout.
    let cached = files_under(&lab.dir.path().join("talos/.state/downloads/talos"));
    assert!(
        cached.iter().any(|p| p
            .to_string_lossy()
            .ends_with("v1.13.0/nocloud-amd64.raw.xz")),
        "{cached:?}"
    );

    // Again, from standard input in the config's folder: the same config digest, no download.
    lab.server.clear_log();
    let text = std::fs::read(&config).unwrap();
    let mut child = labflash(&["talos", "build", "-"])
        .current_dir(lab.dir.path().join("talos"))
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
        let r = run(&["talos", "build", config.to_str().unwrap(), "--json"]);
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
