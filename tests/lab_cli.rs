//! A lab in one run: `labflash lab lab.yaml` and `flash IMAGE --to A --config a.img --to B
//! --config b.img`, onto loop devices; each stick read back for its own hostname with mtools and
//! its cidata checked with fsck.fat.

mod common;

use std::path::Path;
use std::process::Command;

use common::loopdev::LoopDev;
use common::*;

const MIB: u64 = 1 << 20;
/// A real Talos worker config: siderolabs/talos
/// pkg/machinery/config/configloader/testdata/worker.test (tests/fixtures/talos/README.md).
const USER_DATA: &str = include_str!("fixtures/talos/configloader-worker.yaml");

/// A Talos-like GPT boot image (EFI, BIOS, BOOT, META) of 16 MiB at `dir/boot.raw`, its
/// partitions filled with recognisable bytes.
fn boot_image(dir: &Path) -> Vec<u8> {
    let path = dir.join("boot.raw");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    talos_like_gpt(&path, "4:0:+1M");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[MIB as usize..13 * MIB as usize].copy_from_slice(&noise(12 * MIB as usize, 61));
    std::fs::write(&path, &bytes).unwrap();
    bytes
}

/// `labflash ARGS` run in `dir` (relative paths, as an operator types them).
fn run_in(dir: &Path, args: &[&str]) -> Run {
    labflash(args)
        .current_dir(dir)
        .output()
        .expect("run labflash")
        .into()
}

/// The cidata filesystem at `offset` on `dev`: its meta-data, after fsck.fat found it clean.
fn cidata_on(dir: &Path, dev: &str, offset: u64, size: usize) -> String {
    let part = dir.join("part.img");
    let mut f = std::fs::File::open(dev).unwrap();
    use std::io::{Read, Seek};
    f.seek(std::io::SeekFrom::Start(offset)).unwrap();
    let mut bytes = vec![0u8; size];
    f.read_exact(&mut bytes).unwrap();
    std::fs::write(&part, &bytes).unwrap();
    let fsck = Command::new("fsck.fat")
        .args(["-n", part.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let meta = Command::new("mtype")
        .args(["-i", part.to_str().unwrap(), "::meta-data"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&meta.stdout).into_owned()
}

#[test]
fn a_lab_file_flashes_every_node_with_its_own_config_in_one_run() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path());
    std::fs::write(dir.path().join("boot.raw.xz"), xz_single(&image)).unwrap();
    std::fs::write(dir.path().join("worker.yaml"), USER_DATA).unwrap();
    let sticks: Vec<LoopDev> = (0..3)
        .map(|_| LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA))
        .collect();
    let config_stick = LoopDev::new(dir.path(), 16 * MIB, 512, 0xBB);
    // cp-3 names its drives in the file, with its config on a stick of its own; the others take
    // the command line's --to in order.
    std::fs::write(
        dir.path().join("lab.yaml"),
        format!(
            "source: boot.raw.xz\nallowUnverified: true\nnodes:\n  - hostname: cp-1\n    userData: worker.yaml\n  - hostname: cp-2\n    userData: worker.yaml\n  - hostname: cp-3\n    userData: worker.yaml\n    to: {}\n    configTo: {}\n",
            sticks[2].path_str(),
            config_stick.path_str()
        ),
    )
    .unwrap();

    let r = run_in(
        dir.path(),
        &[
            "lab",
            "lab.yaml",
            "--to",
            sticks[0].path_str(),
            "--to",
            sticks[1].path_str(),
            "--yes",
            "--json",
            "--cache-dir",
            "cache",
            "--record",
            "lab-record.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (i, node) in nodes.iter().enumerate() {
        let name = format!("cp-{}", i + 1);
        assert_eq!(node["node"], name.as_str());
        let flashed = &node["flashed"];
        assert_eq!(flashed["imageSHA256"], sha256_hex(&image));
        let target = &flashed["targets"][0];
        assert_eq!(target["path"], sticks[i].path_str());
        assert_eq!(target["ok"], true, "{node}");
        // The boot image's partitions, as published, on every stick.
        assert_eq!(
            sticks[i].read(MIB, 12 * MIB as usize),
            image[MIB as usize..13 * MIB as usize]
        );
        let meta = match flashed["cidataOffset"].as_u64() {
            // One stick: the cidata partition after the image's own, read back as a whole.
            Some(offset) => {
                assert_eq!(target["verifiedSHA256"], flashed["stickSHA256"]);
                cidata_on(dir.path(), sticks[i].path_str(), offset, 16 * MIB as usize)
            }
            // Two sticks: the config image whole on the config stick.
            None => {
                let config = &flashed["configStick"];
                assert_eq!(config["targets"][0]["path"], config_stick.path_str());
                assert_eq!(config["targets"][0]["ok"], true, "{config}");
                cidata_on(dir.path(), config_stick.path_str(), 0, 16 * MIB as usize)
            }
        };
        assert!(
            meta.contains(&format!("local-hostname: {name}")),
            "{name}: {meta}"
        );
    }
    assert!(nodes[2]["flashed"]["configStick"].is_object());
    // The record names every stick with its node; each stick verifies against its own line.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lab-record.json")).unwrap())
            .unwrap();
    let lines = record["sticks"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "three boot sticks and a config stick");
    for stick in sticks.iter().chain([&config_stick]) {
        let line = lines
            .iter()
            .find(|l| l["path"] == stick.path_str())
            .expect("a line per stick");
        assert!(line["node"].as_str().unwrap().starts_with("cp-"), "{line}");
        let v = run_in(
            dir.path(),
            &["verify", stick.path_str(), "--record", "lab-record.json"],
        );
        assert_eq!(v.code, 0, "{}: {}", stick.path_str(), v.stderr);
    }
    // The nodes' config images lived for the run only.
    assert!(!dir.path().join("cp-1-cidata.img").exists());
}

#[test]
fn flash_pairs_each_target_with_its_own_config() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path());
    std::fs::write(dir.path().join("worker.yaml"), USER_DATA).unwrap();
    for node in ["w-1", "w-2"] {
        let r = run_in(
            dir.path(),
            &[
                "cidata",
                "--user-data",
                "worker.yaml",
                "--hostname",
                node,
                "-o",
                &format!("{node}.img"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let sticks = [
        LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA),
        LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA),
    ];
    let r = run_in(
        dir.path(),
        &[
            "flash",
            "boot.raw",
            "--to",
            sticks[0].path_str(),
            "--config",
            "w-1.img",
            "--to",
            sticks[1].path_str(),
            "--config",
            "w-2.img",
            "--yes",
            "--json",
            "--cache-dir",
            "cache",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    for (i, node) in ["w-1", "w-2"].iter().enumerate() {
        let n = &json["nodes"][i];
        assert_eq!(n["node"], *node);
        let offset = n["flashed"]["cidataOffset"].as_u64().unwrap();
        let meta = cidata_on(dir.path(), sticks[i].path_str(), offset, 16 * MIB as usize);
        assert!(meta.contains(&format!("local-hostname: {node}")), "{meta}");
        assert_eq!(
            sticks[i].read(MIB, 12 * MIB as usize),
            image[MIB as usize..13 * MIB as usize]
        );
    }

    // Pairs that do not pair are refused before anything is read.
    let r = run_in(
        dir.path(),
        &[
            "flash",
            "boot.raw",
            "--to",
            sticks[0].path_str(),
            "--to",
            sticks[1].path_str(),
            "--config",
            "w-1.img",
            "--config",
            "w-2.img",
            "--config",
            "w-2.img",
            "--yes",
            "--cache-dir",
            "cache",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("each --to takes its own --config")
            && r.stderr.contains("2 --to, 3 --config"),
        "{}",
        r.stderr
    );
    // One config for two nodes would boot two machines as one.
    let r = run_in(
        dir.path(),
        &[
            "flash",
            "boot.raw",
            "--to",
            sticks[0].path_str(),
            "--config",
            "w-1.img",
            "--to",
            sticks[1].path_str(),
            "--config",
            "w-1.img",
            "--yes",
            "--cache-dir",
            "cache",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is given for two nodes"), "{}", r.stderr);
}

/// Two nodes on one drive, or a node without one: refused with the node named, nothing written.
#[test]
fn a_lab_that_shares_or_lacks_a_drive_is_refused_with_nothing_written() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    boot_image(dir.path());
    std::fs::write(dir.path().join("worker.yaml"), USER_DATA).unwrap();
    let stick = LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA);
    let lab = |extra: &str| {
        std::fs::write(
            dir.path().join("lab.yaml"),
            format!("source: boot.raw\nallowUnverified: true\nnodes:\n  - hostname: cp-1\n    userData: worker.yaml\n    to: {}\n  - hostname: cp-2\n    userData: worker.yaml\n{extra}", stick.path_str()),
        )
        .unwrap();
        run_in(
            dir.path(),
            &["lab", "lab.yaml", "--yes", "--cache-dir", "cache"],
        )
    };
    let shared = lab(&format!("    to: {}\n", stick.path_str()));
    assert_eq!(shared.code, 2, "{}", shared.stderr);
    assert!(
        shared
            .stderr
            .contains("named for node cp-1 and for node cp-2"),
        "{}",
        shared.stderr
    );
    // The same drive under another name (a link to it): one identity, refused as one drive.
    let link = dir.path().join("stick-link");
    std::os::unix::fs::symlink(stick.path_str(), &link).unwrap();
    let same = lab(&format!("    to: {}\n", link.display()));
    assert_eq!(same.code, 2, "{}", same.stderr);
    assert!(
        same.stderr
            .contains("the drive of node cp-1 and of node cp-2"),
        "{}",
        same.stderr
    );
    let lacking = lab("");
    assert_eq!(lacking.code, 2, "{}", lacking.stderr);
    assert!(
        lacking.stderr.contains("node cp-2 has no drive"),
        "{}",
        lacking.stderr
    );
    // A factory's key is for a lab of ImageBuild configs; a lab naming its image has none.
    let keyed = run_in(
        dir.path(),
        &["lab", "lab.yaml", "--yes", "--factory-key", "key.pem"],
    );
    assert_eq!(keyed.code, 2, "{}", keyed.stderr);
    assert!(
        keyed
            .stderr
            .contains("--factory-key is for a lab of labctl ImageBuild configs"),
        "{}",
        keyed.stderr
    );
    let typo = lab("    to: /dev/null\n    hostnme: x\n");
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("not a valid lab file"),
        "{}",
        typo.stderr
    );
    assert!(
        stick.read(0, 48 * MIB as usize).iter().all(|b| *b == 0xAA),
        "nothing written"
    );
}

/// The README's lab file and command, run as written from a fresh folder (the factory's host
/// served here, on 127.0.0.1; /dev/sdb… are loop devices).
#[test]
fn readme_lab_example_runs_as_written() {
    require_root!();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lab = readme
        .split("# lab.yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's lab.yaml");
    let command = "labflash lab lab.yaml --to /dev/sdb --to /dev/sdc --to /dev/sdd";
    assert!(readme.contains(command));
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path());
    let server = common::server::Server::start();
    let factory = "https://factory.talos.dev";
    let path = lab
        .lines()
        .find_map(|l| l.strip_prefix(&format!("source: {factory}")))
        .expect("the lab's source is on the factory");
    server.put_with_sidecar(path, xz_single(&image));
    std::fs::write(
        dir.path().join("lab.yaml"),
        lab.replace(factory, &server.url("")),
    )
    .unwrap();
    for (file, fixture) in [
        ("controlplane.yaml", "configloader-controlplane.yaml"),
        ("worker.yaml", "configloader-worker.yaml"),
        ("w-1-network.yaml", "nocloud-in-v2-nocloud.yaml"),
    ] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/talos")
                .join(fixture),
            dir.path().join(file),
        )
        .unwrap();
    }
    let sticks: Vec<LoopDev> = (0..3)
        .map(|_| LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA))
        .collect();
    let mut args: Vec<String> = command.split(' ').skip(1).map(String::from).collect();
    for (arg, stick) in args
        .iter_mut()
        .filter(|a| a.starts_with("/dev/sd"))
        .zip(&sticks)
    {
        *arg = stick.path_str().to_string();
    }
    args.extend(["--yes", "--json"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r: Run = labflash(&args)
        .current_dir(dir.path())
        .env("LABFLASH_CACHE_DIR", dir.path().join("labflash-cache"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    for (i, name) in ["cp-1", "cp-2", "w-1"].iter().enumerate() {
        let node = &json["nodes"][i];
        assert_eq!(node["node"], *name);
        assert_eq!(node["flashed"]["digestSource"], "sidecar");
        let offset = node["flashed"]["cidataOffset"].as_u64().unwrap();
        let meta = cidata_on(dir.path(), sticks[i].path_str(), offset, 16 * MIB as usize);
        assert!(meta.contains(&format!("local-hostname: {name}")), "{meta}");
    }
    assert_eq!(server.body_gets(path), 1, "the image is downloaded once");
}

/// A folder of labctl ImageBuild configs (labctl's own minimal config, tests/fixtures/labctl,
/// one per node with its own localHostname) is a lab: the image they all name is fetched once from
/// the factory, its signature checked with the factory's key as `talos build` checks it, every
/// node gets its own cidata; a bad signature, or configs naming different images, are refused,
/// nothing written.
#[test]
fn a_folder_of_labctl_configs_is_a_lab() {
    require_root!();
    const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path());
    let server = common::server::Server::start();
    let asset = format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz");
    let archive = xz_single(&image);
    server.put_with_sidecar(&asset, archive.clone());
    let key = common::factory::p256();
    let bundle = format!("{asset}.sigstore.json");
    server.put(&bundle, common::factory::bundle(&key, &key, &archive));
    server.put(
        "/oci/cosign/signing-key.pub",
        key.public_key_pem().into_bytes(),
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labctl");
    let talos = dir.path().join("talos");
    std::fs::create_dir(&talos).unwrap();
    std::fs::copy(
        fixtures.join("controlplane.yaml"),
        talos.join("controlplane.yaml"),
    )
    .unwrap();
    let minimal = std::fs::read_to_string(fixtures.join("talos-minimal.yaml")).unwrap();
    let config = |version: &str, host: &str| {
        minimal
            .replace(
                "  version: v1.13.0",
                &format!("  factoryURL: {}\n  version: {version}", server.url("")),
            )
            .replace("bootstrap-controlplane-1", host)
    };
    for host in ["cp-1", "cp-2"] {
        std::fs::write(talos.join(format!("{host}.yaml")), config("v1.13.0", host)).unwrap();
    }
    let sticks = [
        LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA),
        LoopDev::new(dir.path(), 48 * MIB, 512, 0xAA),
    ];
    let lab = |extra: &[&str]| {
        let mut args = vec![
            "lab",
            "talos",
            "--to",
            sticks[0].path_str(),
            "--to",
            sticks[1].path_str(),
            "--yes",
            "--json",
            "--cache-dir",
            "cache",
        ];
        args.extend_from_slice(extra);
        run_in(dir.path(), &args)
    };
    let r = lab(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    for (i, host) in ["cp-1", "cp-2"].iter().enumerate() {
        let node = &json["nodes"][i];
        assert_eq!(node["node"], *host);
        assert_eq!(node["flashed"]["digestSource"], "signature");
        let offset = node["flashed"]["cidataOffset"].as_u64().unwrap();
        let meta = cidata_on(dir.path(), sticks[i].path_str(), offset, 16 * MIB as usize);
        assert!(meta.contains(&format!("local-hostname: {host}")), "{meta}");
    }
    assert_eq!(server.body_gets(&asset), 1, "fetched once for both nodes");

    // A signature that is not the pinned key's: refused before the image is asked for.
    for stick in &sticks {
        stick.write(0, &vec![0xAA; MIB as usize]);
    }
    let other = common::factory::p256();
    server.put(&bundle, common::factory::bundle(&other, &key, &archive));
    let r = lab(&[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("signature"), "{}", r.stderr);
    assert_eq!(server.body_gets(&asset), 1, "not downloaded again");
    for stick in &sticks {
        assert!(stick.read(0, MIB as usize).iter().all(|b| *b == 0xAA));
    }
    server.put(&bundle, common::factory::bundle(&key, &key, &archive));

    // A third config naming another release: refused, both configs named, nothing written.
    for stick in &sticks {
        stick.write(0, &vec![0xAA; MIB as usize]);
    }
    std::fs::write(talos.join("w-1.yaml"), config("v1.12.4", "w-1")).unwrap();
    let r = lab(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("name different images") && r.stderr.contains("w-1.yaml"),
        "{}",
        r.stderr
    );
    for stick in &sticks {
        assert!(stick.read(0, MIB as usize).iter().all(|b| *b == 0xAA));
    }
}
