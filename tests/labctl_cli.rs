//! `labflash talos build` as faithful to labctl (GilmanLab/platform `tools/labctl`) as its users
//! need: values labctl's CUE schema types as strings must be YAML strings, and labctl's download
//! cache is left holding what labctl leaves there, the archive and nothing else.

mod common;

use std::path::{Path, PathBuf};

use common::factory::{answer_like, labctl_folder, Edition};
use common::server::Server;
use common::*;

const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const ASSET: &str = "nocloud-amd64.raw.xz";

fn asset_path() -> String {
    format!("/image/{SCHEMATIC}/v1.13.0/{ASSET}")
}

/// A stand-in Enterprise factory (sidecars served) holding `image` as labctl's asset.
fn factory(image: &[u8]) -> Server {
    let server = Server::start();
    answer_like(&server, Edition::Enterprise);
    server.put_with_sidecar(&asset_path(), xz_single(image));
    server
}

/// `labflash talos build ARGS` run in `dir`, with labflash's own cache in `cache`.
fn build(dir: &Path, cache: &Path, args: &[&str]) -> Run {
    let mut all = vec!["talos", "build"];
    all.extend_from_slice(args);
    labflash(&all)
        .current_dir(dir)
        .env("LABFLASH_CACHE_DIR", cache)
        .output()
        .unwrap()
        .into()
}

/// Every file and folder under `dir`, relative to it, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// labctl's schema (GilmanLab/platform `schemas/lab/talos/schema.cue`) types every value of an
/// ImageBuild as a string (`#NonEmptyString`, `#HTTPURL`, `#TalosVersion`, `#SchematicID`,
/// `#Platform`, `#Architecture`, `#SourceArtifact`, `#ConfigDelivery`, `#RelativePath`,
/// `#DNSLabel`, `#OutputFormat`, `#ArtifactName`) or a struct; labctl decodes the YAML with CUE,
/// which keeps YAML's types (cuelang.org/go v0.16.1 `internal/encoding/yaml/decode.go`), so a
/// number, boolean or null there fails `value.Validate` (labctl's `talosconfig/validator.go`).
/// labctl's testdata has no such case; each one here is `talos-valid.yaml` (labctl's
/// `main_test.go` validConfig) with one line edited or, for a field it leaves to its default, one
/// line added after `version:`, the way labctl's own `validator_test.go` builds its
/// "unsupported platform" case (`version: v1.13.0` -> `version: v1.13.0\n  platform: metal`).
#[test]
fn values_labctls_schema_types_as_strings_must_be_strings() {
    let server = factory(b"never served");
    let added = |line: &str| {
        (
            "  version: v1.13.0\n".to_string(),
            format!("  version: v1.13.0\n{line}\n"),
        )
    };
    let edited = |from: &str, to: &str| (format!("{from}\n"), format!("{to}\n"));
    let cases: Vec<((String, String), &str, &str)> = vec![
        // The three of issue 26.
        (edited("name: talos-test", "name: 123"), "name", "number"),
        (
            edited(
                "    localHostname: bootstrap-controlplane-1",
                "    localHostname: 123",
            ),
            "config.metaData.localHostname",
            "number",
        ),
        (
            edited(
                "    localHostname: bootstrap-controlplane-1",
                "    localHostname: bootstrap-controlplane-1\n    instanceID: null",
            ),
            "config.metaData.instanceID",
            "null",
        ),
        // Every other string of the schema.
        (
            edited("  version: v1.13.0", "  version: 1.13"),
            "source.version",
            "number",
        ),
        (
            edited(
                &format!("  factoryURL: {}", server.url("")),
                "  factoryURL: 443",
            ),
            "source.factoryURL",
            "number",
        ),
        (added("  schematicID: ~"), "source.schematicID", "null"),
        (added("  platform: null"), "source.platform", "null"),
        (added("  arch: 64"), "source.arch", "number"),
        (added("  artifact: true"), "source.artifact", "boolean"),
        (
            edited("  metaData:", "  delivery: false\n  metaData:"),
            "config.delivery",
            "boolean",
        ),
        (
            edited("    path: controlplane.yaml", "    path: 7"),
            "config.userData.path",
            "number",
        ),
        (
            edited("    path: network-config.yaml", "    path: null"),
            "config.networkConfig.path",
            "null",
        ),
        (
            edited("  dir: .state/images", "  dir: 0.5"),
            "output.dir",
            "number",
        ),
        (
            edited("  format: img", "  format: 1"),
            "output.format",
            "number",
        ),
        (
            edited(
                "  bootArtifactName: talos-boot.img",
                "  bootArtifactName: 1e3",
            ),
            "output.bootArtifactName",
            "number",
        ),
        (
            edited(
                "  configArtifactName: talos-cidata.img",
                "  configArtifactName: 0x1f",
            ),
            "output.configArtifactName",
            "number",
        ),
        // And the structs: null (an empty value) is not one.
        (
            edited(
                "  networkConfig:\n    path: network-config.yaml",
                "  networkConfig:",
            ),
            "config.networkConfig",
            "null",
        ),
    ];
    let dir = labctl_folder(&server);
    let cache = tempfile::tempdir().unwrap();
    let config = dir.path().join("talos-valid.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    for ((from, to), field, what) in cases {
        assert_eq!(good.matches(&from).count(), 1, "{from}");
        let text = good.replace(&from, &to);
        std::fs::write(&config, &text).unwrap();
        let r = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
        assert_eq!(r.code, 2, "{field}: {}{}", r.stdout, r.stderr);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains(&format!("{field} is ")) && error.contains(what),
            "{field}: {error}"
        );
        // The line of the field's key in the edited text.
        let leaf = field.rsplit('.').next().unwrap();
        let line = 1
            + text[..text.find(&to).unwrap()].matches('\n').count()
            + to.lines()
                .position(|l| l.trim_start().starts_with(&format!("{leaf}:")))
                .unwrap();
        assert!(
            error.contains(&format!("line {line} ")),
            "{field}: the line ({line}) is named: {error}"
        );
        assert_eq!(error.lines().count(), 1, "one sentence: {error}");
    }
    // `output:` with nothing after it is null, not the defaults.
    let (head, _) = good.split_once("output:\n").unwrap();
    std::fs::write(&config, format!("{head}output:\n")).unwrap();
    let r = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("output is null"));

    assert!(server.requests().is_empty(), "nothing is fetched");
    assert!(!dir.path().join(".state").exists(), "nothing is written");
}

/// The same values written as YAML strings are what labctl accepts: quoted digits for a
/// hostname and a name, and `on`, which go-yaml v3 (CUE's YAML reader) does not read as a boolean.
#[test]
fn the_same_values_quoted_are_accepted() {
    let image = image_like(1 << 20, 95);
    let server = factory(&image);
    let dir = labctl_folder(&server);
    let cache = tempfile::tempdir().unwrap();
    let config = dir.path().join("talos-valid.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("name: talos-test\n", "name: \"123\"\n")
        .replace(
            "    localHostname: bootstrap-controlplane-1\n",
            "    localHostname: '123'\n    instanceID: on\n",
        );
    std::fs::write(&config, text).unwrap();
    let r = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["name"], "123");
}

/// labctl keeps one file in its download cache, `<schematic>/<version>/<platform>-<arch>.<artifact>`
/// under `<output dir's parent>/downloads/talos`, written as a temp file beside it and renamed
/// (GilmanLab/platform `tools/labctl/internal/app/talosimage/service.go`: `resolvePaths`, `Build`,
/// `downloadArchive`); the boot image is decoded straight to the output folder. labflash keeps the
/// archive there too, so either tool reuses the other's download, and everything else of its own
/// (the decoded image, the locks) in its own cache.
#[test]
fn labctls_download_cache_holds_the_archive_and_nothing_else() {
    let image = image_like(2 << 20, 96);
    let server = factory(&image);
    let dir = labctl_folder(&server);
    let cache = tempfile::tempdir().unwrap();
    let downloads = dir.path().join(".state/downloads/talos");
    let expected = vec![
        format!("{SCHEMATIC}/"),
        format!("{SCHEMATIC}/v1.13.0/"),
        format!("{SCHEMATIC}/v1.13.0/{ASSET}"),
    ];

    let first = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(listing(&downloads), expected);
    assert_eq!(
        listing(&dir.path().join(".state")),
        [
            "downloads/".to_string(),
            "downloads/talos/".into(),
            format!("downloads/talos/{SCHEMATIC}/"),
            format!("downloads/talos/{SCHEMATIC}/v1.13.0/"),
            format!("downloads/talos/{SCHEMATIC}/v1.13.0/{ASSET}"),
            "images/".into(),
            "images/talos-boot.img".into(),
            "images/talos-cidata.img".into(),
        ],
        "labctl's .state, exactly"
    );
    assert_eq!(
        std::fs::read(downloads.join(format!("{SCHEMATIC}/v1.13.0/{ASSET}"))).unwrap(),
        xz_single(&image),
        "the archive as served"
    );
    // The decoded image and the locks are in labflash's cache.
    let own: Vec<PathBuf> = files_under(cache.path());
    assert!(
        own.iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| b == image)),
        "the decoded image is in labflash's cache: {own:?}"
    );
    assert!(
        own.iter()
            .any(|p| p.extension().is_some_and(|e| e == "lock")),
        "{own:?}"
    );
    assert_eq!(server.body_gets(&asset_path()), 1);

    // Again: labctl's archive is reused (no second download) and its cache is unchanged.
    server.clear_log();
    let second = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(server.body_gets(&asset_path()), 0, "no second download");
    assert_eq!(listing(&downloads), expected);
    assert_eq!(
        second.json()["bootArtifactSHA256"],
        first.json()["bootArtifactSHA256"]
    );

    // With another labflash cache (--cache-dir), the archive labctl's cache holds is still the
    // one used, and still the only file there.
    server.clear_log();
    let other = tempfile::tempdir().unwrap();
    let third = build(
        dir.path(),
        cache.path(),
        &[
            "--json",
            "--cache-dir",
            other.path().to_str().unwrap(),
            "talos-valid.yaml",
        ],
    );
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(server.body_gets(&asset_path()), 0, "no second download");
    assert_eq!(listing(&downloads), expected);
    assert!(files_under(other.path())
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|b| b == image)));
}

/// labctl's folder is opened as labflash's cache is: walked by descriptor, no link followed. A
/// link planted where labctl's `<schematic>` folder goes is refused, and nothing is written
/// where it points.
#[test]
fn a_link_in_labctls_download_cache_is_not_followed() {
    let image = image_like(1 << 20, 97);
    let server = factory(&image);
    let dir = labctl_folder(&server);
    let cache = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let downloads = dir.path().join(".state/downloads/talos");
    std::fs::create_dir_all(&downloads).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), downloads.join(SCHEMATIC)).unwrap();
    let r = build(dir.path(), cache.path(), &["--json", "talos-valid.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("symbolic link"), "{error}");
    assert_eq!(listing(elsewhere.path()), Vec::<String>::new());
}
