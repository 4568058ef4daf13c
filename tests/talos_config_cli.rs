//! A Talos config only where the chosen image reads it (issue 26, items 2, 3 and 5): `cidata`
//! takes what Talos's nocloud platform loads and refuses what it skips or cannot read; a config
//! beside an image of a platform that never reads cidata (metal) is refused before anything is
//! fetched or written. Fixtures: siderolabs/talos's own test files (tests/fixtures/talos/README.md).

mod common;

use std::path::Path;
use std::process::Command;

use common::loopdev::LoopDev;
use common::server::Server;
use common::*;

const MIB: u64 = 1 << 20;

/// siderolabs/talos pkg/machinery/config/configloader/testdata/controlplane.test.
const CONTROLPLANE: &str = include_str!("fixtures/talos/configloader-controlplane.yaml");
/// siderolabs/talos pkg/machinery/config/configloader/testdata/worker.test.
const WORKER: &str = include_str!("fixtures/talos/configloader-worker.yaml");
/// siderolabs/talos internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/testdata/in-v2-cloud-init.yaml.
const NETWORK_V2: &str = include_str!("fixtures/talos/nocloud-in-v2-cloud-init.yaml");

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
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

fn cidata(dir: &Path, user_data: &str, network_config: Option<&str>) -> (Run, String) {
    let out = dir.join("cidata.img").to_str().unwrap().to_string();
    let mut args = vec![
        "cidata",
        "--user-data",
        user_data,
        "--hostname",
        "cp-1",
        "-o",
        &out,
        "--json",
    ];
    if let Some(n) = network_config {
        args.extend_from_slice(&["--network-config", n]);
    }
    (run(&args), out)
}

fn assert_refused(r: &Run, out: &str, expected: &[&str]) {
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    for e in expected {
        assert!(error.contains(e), "{e:?} not in: {error}");
    }
    assert!(!Path::new(out).exists(), "no config image is left");
}

#[test]
fn a_real_talos_controlplane_config_and_network_config_make_a_cidata() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "controlplane.yaml", CONTROLPLANE);
    let net = write(dir.path(), "network-config.yaml", NETWORK_V2);
    let (r, out) = cidata(dir.path(), &ud, Some(&net));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mread(&out, "user-data"), CONTROLPLANE.as_bytes());
    assert_eq!(mread(&out, "network-config"), NETWORK_V2.as_bytes());
}

#[test]
fn cloud_config_user_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(
        dir.path(),
        "user-data",
        "#cloud-config\nhostname: cp-1\nusers:\n  - name: admin\n",
    );
    let (r, out) = cidata(dir.path(), &ud, None);
    assert_refused(
        &r,
        &out,
        &["user-data", "#cloud-config", "nocloud platform skips"],
    );
    // Talos's own config after a #cloud-config line is skipped just the same.
    let ud = write(
        dir.path(),
        "user-data2",
        &format!("#cloud-config\n{CONTROLPLANE}"),
    );
    let (r, out) = cidata(dir.path(), &ud, None);
    assert_refused(&r, &out, &["#cloud-config"]);
}

#[test]
fn empty_user_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "empty.yaml", "");
    let (r, out) = cidata(dir.path(), &ud, None);
    assert_refused(&r, &out, &["empty.yaml is empty", "no machine config"]);
    let ud = write(dir.path(), "comments.yaml", "# machine: later\n");
    let (r, out) = cidata(dir.path(), &ud, None);
    assert_refused(&r, &out, &["no YAML document"]);
}

#[test]
fn user_data_that_is_not_a_talos_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "cloud.yaml", "hostname: cp-1\nusers: []\n");
    let (r, out) = cidata(dir.path(), &ud, None);
    assert_refused(&r, &out, &["not a Talos machine config", "document 1"]);
}

#[test]
fn network_config_version_3_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "controlplane.yaml", CONTROLPLANE);
    let net = write(
        dir.path(),
        "net.yaml",
        "version: 3\nethernets:\n  eth0:\n    dhcp4: true\n",
    );
    let (r, out) = cidata(dir.path(), &ud, Some(&net));
    assert_refused(&r, &out, &["network-config", "version 3", "1 and 2"]);
    let net = write(
        dir.path(),
        "net2.yaml",
        "ethernets:\n  eth0:\n    dhcp4: true\n",
    );
    let (r, out) = cidata(dir.path(), &ud, Some(&net));
    assert_refused(&r, &out, &["no `version`"]);
}

/// Talos refuses a hostname over 63 characters (hostname_spec.go `Validate`) and then applies
/// neither it nor the network-config.
#[test]
fn a_hostname_over_63_characters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ud = write(dir.path(), "controlplane.yaml", CONTROLPLANE);
    let out = dir.path().join("cidata.img").to_str().unwrap().to_string();
    let long = "n".repeat(64);
    let r = run(&[
        "cidata",
        "--user-data",
        &ud,
        "--hostname",
        &long,
        "-o",
        &out,
        "--json",
    ]);
    assert_refused(&r, &out, &["64 characters long", "over 63"]);
}

/// A Talos-like GPT image (EFI, BIOS, BOOT, META) named `name`.
fn boot_image(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(16 * MIB).unwrap();
    drop(f);
    talos_like_gpt(&path, "4:0:+1M");
    path.to_str().unwrap().to_string()
}

fn config_image(dir: &Path) -> String {
    let ud = write(dir, "worker.yaml", WORKER);
    let (r, out) = cidata(dir, &ud, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

fn flash_with_config(dir: &Path, image: &str, config: &str, target: &str) -> Run {
    let cache = dir.join("cache");
    run(&[
        "flash",
        image,
        "--config",
        config,
        "--to",
        target,
        "--yes",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
}

#[test]
fn a_metal_image_with_a_config_is_refused_and_the_stick_left_alone() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path(), "metal-amd64.raw");
    let config = config_image(dir.path());
    let dev = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);

    let r = flash_with_config(dir.path(), &image, &config, dev.path_str());
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("metal-amd64.raw is a Talos metal image")
            && error.contains("never reads a cidata config")
            && error.contains("nocloud"),
        "{error}"
    );
    assert!(
        dev.read(0, 64 * MIB as usize).iter().all(|b| *b == 0xAA),
        "the stick is unchanged"
    );

    // The same bytes named as a nocloud image are written with their config.
    let nocloud = dir.path().join("nocloud-amd64.raw");
    std::fs::copy(&image, &nocloud).unwrap();
    let r = flash_with_config(
        dir.path(),
        nocloud.to_str().unwrap(),
        &config,
        dev.path_str(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Nothing about its platform; its name says no release, which only the one-stick layout's
    // release check (siderolabs/talos issue 12098) has to say.
    let warnings = r.json()["warnings"].to_string();
    assert!(!warnings.contains("platform"), "{warnings}");
    assert!(warnings.contains("12098"), "{warnings}");
}

/// A factory URL naming the metal platform is refused before it is downloaded.
#[test]
fn a_metal_url_with_a_config_is_refused_before_any_download() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let config = config_image(dir.path());
    let server = Server::start();
    let asset = "/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.0/metal-amd64.raw.xz";
    server.put_with_sidecar(asset, xz_single(&image_like(MIB as usize, 7)));
    let dev = LoopDev::new(dir.path(), 32 * MIB, 512, 0xAA);
    let r = flash_with_config(dir.path(), &server.url(asset), &config, dev.path_str());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("never reads a cidata config"),
        "{}",
        r.stdout
    );
    assert!(server.requests().is_empty(), "nothing was fetched");
    assert!(dev.read(0, 32 * MIB as usize).iter().all(|b| *b == 0xAA));
}

/// An image whose name says no platform is written with the config, and the plan says that only
/// a nocloud image reads it; a v1.13.0-alpha.0 image is warned about its FAT cidata bug.
#[test]
fn a_nameless_image_is_said_and_a_v1_13_0_alpha_0_is_warned() {
    require_root!();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = boot_image(dir.path(), "talos-boot.img");
    let config = config_image(dir.path());
    let dev = LoopDev::new(dir.path(), 64 * MIB, 512, 0xAA);
    let r = flash_with_config(dir.path(), &image, &config, dev.path_str());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains("talos-boot.img: its name does not say its Talos platform"),
        "{warnings}"
    );

    let release = dir.path().join("v1.13.0-alpha.0");
    std::fs::create_dir(&release).unwrap();
    let named = release.join("nocloud-amd64.raw");
    std::fs::copy(&image, &named).unwrap();
    let r = flash_with_config(dir.path(), named.to_str().unwrap(), &config, dev.path_str());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains("v1.13.0-alpha.0 cannot mount a FAT cidata volume"),
        "{warnings}"
    );
}

/// `talos fetch` without `--platform` fetches the nocloud image, the one a cidata config works
/// with (labctl's default too).
#[test]
fn talos_fetch_defaults_to_nocloud() {
    let server = Server::start();
    let schematic = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    let image = image_like(MIB as usize, 8);
    server.put_with_sidecar(
        &format!("/image/{schematic}/v1.13.0/nocloud-amd64.raw.xz"),
        xz_single(&image),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = run(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--schematic",
        schematic,
        "--factory-url",
        &server.url("/"),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["imageSHA256"], sha256_hex(&image));
}
