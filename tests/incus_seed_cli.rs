//! IncusOS install seeds checked as incus-osd reads them (issue 26, item 6), through
//! `labflash incus fetch --seed DIR` against a stand-in image server on 127.0.0.1: a seed file
//! incus-osd would refuse is refused before anything is fetched or cached, a seed without an
//! install file is warned about, and the seed goes into the partition named `seed-data`
//! wherever the table puts it.
//!
//! The seed files here are upstream's own (tests/fixtures/incus/seeds, whose README names the
//! lxc/incus-os file each comes from), or upstream's with one field misspelt.

mod common;

use std::path::Path;

use common::server::Server;
use common::*;

const STABLE: &str = "202608190802";
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/incus/seeds");

/// Serves `image` gzipped as the stable x86_64 OS image, with its digest and size in the index.
fn server(image: &[u8]) -> Server {
    let gz = gzip(image);
    let filename = format!("x86_64/IncusOS_{STABLE}.img.gz");
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(&mut index, STABLE, &filename, &gz);
    let server = Server::start();
    server.put(&format!("/os/{STABLE}/{filename}"), gz);
    server.put(
        "/os/index.sjson",
        signed_index(&serde_json::to_vec(&index).unwrap()),
    );
    server
}

fn fetch(server: &Server, cache: &Path, seed: &Path) -> Run {
    run(&[
        "incus",
        "fetch",
        "--index-url",
        &server.url("/os/index.sjson"),
        "--trust-root",
        incus_trust_root().to_str().unwrap(),
        "--base-url",
        &server.url("/os"),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--seed",
        seed.to_str().unwrap(),
        "--json",
    ])
}

/// An 8 MiB disk laid out with sgdisk: 2 MiB ESP from 1 MiB, then `parts` (name, GPT type
/// code, size in MiB) one after another.
fn disk(dir: &Path, parts: &[(&str, &str, u64)]) -> Vec<u8> {
    let path = dir.join("disk.raw");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let mut args: Vec<String> = ["-o", "-n", "1:2048:+2M", "-t", "1:ef00", "-c", "1:esp"]
        .map(String::from)
        .to_vec();
    for (i, (name, kind, mib)) in parts.iter().enumerate() {
        let n = i + 2;
        args.extend([
            "-n".into(),
            format!("{n}:0:+{mib}M"),
            "-t".into(),
            format!("{n}:{kind}"),
            "-c".into(),
            format!("{n}:{name}"),
        ]);
    }
    let out = std::process::Command::new("sgdisk")
        .args(&args)
        .arg(&path)
        .output()
        .expect("sgdisk (package gdisk)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

/// systemd's GPT type of a /usr partition on x86-64: what IncusOS's `IncusOS_<version>`
/// partition is (lxc/incus-os `mkosi.repart/12-usr.conf`: `Type=usr`, `Label=%M_%A`).
const USR_X86_64: &str = "8484680C-9521-48C6-9C11-B0720656F69E";

/// A folder holding the named upstream fixtures under the names incus-osd reads.
fn seed_dir(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    for (name, fixture) in files {
        std::fs::copy(format!("{SEEDS}/{fixture}"), seed.join(name)).unwrap();
    }
    seed
}

fn tar_listing(bytes: &[u8], dir: &Path) -> String {
    let path = dir.join("part.tar");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_seed_incus_osd_would_refuse_is_refused_before_anything_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk(dir.path(), &[("seed-data", "8300", 1)]);
    let server = server(&image);

    // Upstream's install seed (test/seed.install.tar) with a misspelt field added on line 2.
    let seed = seed_dir(dir.path(), &[("install.yaml", "good/install.yaml")]);
    let good = std::fs::read_to_string(seed.join("install.yaml")).unwrap();
    std::fs::write(
        seed.join("install.yaml"),
        format!("{good}targte:\n  id: nvme\n"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = fetch(&server, cache.path(), &seed);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("install.yaml") && error.contains("line 2") && error.contains("`targte`"),
        "{error}"
    );
    assert!(
        cached_files(cache.path()).is_empty(),
        "{:?}",
        cached_files(cache.path())
    );
    assert!(
        server.requests().is_empty(),
        "nothing was asked of the server"
    );

    // Upstream's own bad seeds (incus-osd/internal/seed/testdata.tar), and broken YAML.
    for (name, fixture, line, field) in [
        ("install.yaml", "bad/install.yaml", 3, "disable_everything"),
        ("network.json", "bad/network.json", 2, "config"),
    ] {
        let seed = seed_dir(&dir.path().join(name), &[(name, fixture)]);
        let r = fetch(&server, cache.path(), &seed);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains(name)
                && error.contains(&format!("line {line}"))
                && error.contains(&format!("`{field}`")),
            "{error}"
        );
    }
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("install.yaml"), "target:\n  id: [nvme\n").unwrap();
    let r = fetch(&server, cache.path(), &broken);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"].as_str().unwrap().contains("install.yaml"));
    // A wrong type: a struct given a string.
    std::fs::write(
        broken.join("install.yaml"),
        "force_reboot: true\ntarget: nvme\n",
    )
    .unwrap();
    let r = fetch(&server, cache.path(), &broken);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("line 2") && error.contains("`target`"),
        "{error}"
    );

    assert!(
        cached_files(cache.path()).is_empty(),
        "{:?}",
        cached_files(cache.path())
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_seed_without_an_install_file_is_written_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk(dir.path(), &[("seed-data", "8300", 1)]);
    let server = server(&image);
    let seed = seed_dir(
        dir.path(),
        &[
            ("applications.json", "good/applications.json"),
            ("kernel.yaml", "good/kernel.yaml"),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let r = fetch(&server, cache.path(), &seed);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = r.json()["warnings"].clone();
    assert_eq!(warnings.as_array().map(Vec::len), Some(1), "{}", r.stdout);
    assert!(
        warnings[0].as_str().unwrap().contains("will not install"),
        "{warnings}"
    );
    assert!(
        r.stderr.contains("warning:") && r.stderr.contains("will not install"),
        "{}",
        r.stderr
    );

    // With upstream's install seed, no warning, and the JSON keeps its keys.
    std::fs::copy(
        format!("{SEEDS}/good/install.yaml"),
        seed.join("install.yaml"),
    )
    .unwrap();
    let r = fetch(&server, cache.path(), &seed);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json().get("warnings").is_none(), "{}", r.stdout);
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
}

#[test]
fn the_seed_goes_into_the_partition_named_seed_data_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // IncusOS's names (mkosi.repart/): esp, then the /usr partition IncusOS_<version>, and
    // seed-data third. Partition 2 is 3-5 MiB, seed-data 5-6 MiB.
    let mut image = disk(
        dir.path(),
        &[
            (&format!("IncusOS_{STABLE}"), USR_X86_64, 2),
            ("seed-data", "8300", 1),
        ],
    );
    image[3 << 20..5 << 20].copy_from_slice(&noise(2 << 20, 7));
    let server = server(&image);
    let seed = seed_dir(
        dir.path(),
        &[
            ("install.yaml", "good/install.yaml"),
            ("services.yaml", "good/services.yaml"),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let r = fetch(&server, cache.path(), &seed);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let seeded = std::fs::read(r.json()["imagePath"].as_str().unwrap()).unwrap();
    assert_eq!(
        tar_listing(&seeded[5 << 20..6 << 20], dir.path()),
        "install.yaml\nservices.yaml\n"
    );
    assert_eq!(
        &seeded[..5 << 20],
        &image[..5 << 20],
        "IncusOS_{STABLE} untouched"
    );
    assert_eq!(&seeded[6 << 20..], &image[6 << 20..]);

    // No partition named seed-data: refused in one sentence, nothing seeded left behind.
    let other = tempfile::tempdir().unwrap();
    let image = disk(
        other.path(),
        &[
            (&format!("IncusOS_{STABLE}"), USR_X86_64, 2),
            ("data", "8300", 1),
        ],
    );
    let server = self::server(&image);
    let cache = tempfile::tempdir().unwrap();
    let r = fetch(&server, cache.path(), &seed);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("no GPT partition named seed-data"),
        "{error}"
    );
    assert!(
        !cached_files(cache.path())
            .iter()
            .any(|p| p.to_string_lossy().contains(".seed-")),
        "{:?}",
        cached_files(cache.path())
    );
}

/// The app checks an IncusOS source through `sources::prepare_source`: the warning reaches what
/// the window receives (`warnings` of its Prepared, shown on the digest card).
#[test]
fn the_warning_reaches_what_the_app_receives() {
    use labflash_core::fetch::cache::Cache;
    use labflash_core::fetch::http::{Http, HttpPolicy};
    use labflash_core::progress::{NoProgress, ProgressSink};
    use labflash_core::sources;
    let dir = tempfile::tempdir().unwrap();
    let image = disk(dir.path(), &[("seed-data", "8300", 1)]);
    let server = server(&image);
    let seed = seed_dir(dir.path(), &[("kernel.yaml", "good/kernel.yaml")]);
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let source = stable_source(&server, Some(seed));
    let progress: std::sync::Arc<dyn ProgressSink> = std::sync::Arc::new(NoProgress);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prepared = rt
        .block_on(sources::prepare_source(
            &source,
            &Http::new(HttpPolicy::default()).unwrap(),
            &cache,
            &labflash_core::CancellationToken::new(),
            &progress,
        ))
        .unwrap();
    let view = serde_json::to_value(&prepared).unwrap();
    let warnings = view["warnings"].to_string();
    assert!(warnings.contains("will not install"), "{view}");
    // And who signed the index, shown beside the digest.
    assert_eq!(
        view["signedBy"],
        "CN=TestOS - Update Test Cert E1, O=TestOS"
    );
}

/// A flash of an IncusOS image (streamed, no seed) says in its confirmation who signed the index
/// that vouches for the download.
#[test]
fn the_confirmation_names_the_index_signer() {
    use labflash_core::fetch::cache::Cache;
    use labflash_core::fetch::http::{Http, HttpPolicy};
    use labflash_core::flash::{self, rules::Chosen};
    use labflash_core::progress::{NoProgress, ProgressSink};
    use labflash_core::sources;
    let dir = tempfile::tempdir().unwrap();
    let server = server(&disk(dir.path(), &[("seed-data", "8300", 1)]));
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let http = Http::new(HttpPolicy::default()).unwrap();
    let cancel = labflash_core::CancellationToken::new();
    let source = stable_source(&server, None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt
        .block_on(sources::locate(&source, &http, &cancel))
        .unwrap()
        .expect("it streams")
        .image;
    let request = flash::Request {
        image,
        targets: vec![Chosen::path(dir.path().join("stick.img"))],
        config: None,
        config_to: None,
        options: Default::default(),
        verify: true,
        skip_equal: false,
        prepared: None,
    };
    let progress: std::sync::Arc<dyn ProgressSink> = std::sync::Arc::new(NoProgress);
    let plan = rt
        .block_on(flash::plan(&request, &http, &cache, &cancel, &progress))
        .unwrap();
    let lines = plan.describe().join("\n");
    assert!(
        lines.contains(
            "(from the publisher's index, signed by CN=TestOS - Update Test Cert E1, O=TestOS)"
        ),
        "{lines}"
    );
}

/// The stable x86_64 image `server` serves, as the app asks for it, checked against the test root.
fn stable_source(
    server: &Server,
    seed: Option<std::path::PathBuf>,
) -> labflash_core::sources::Source {
    labflash_core::sources::Source::Incus(labflash_core::sources::incus::IncusRequest {
        index_url: server.url("/os/index.sjson"),
        base_url: server.url("/os"),
        channel: "stable".into(),
        arch: "x86_64".into(),
        version: None,
        max_image_size: 1 << 30,
        seed,
        trust_root: Some(incus_trust_root()),
        unsigned: false,
    })
}
