use std::collections::BTreeMap;

use super::*;
use crate::fetch::credentials::Secret;

/// GilmanLab/platform `tools/labctl/internal/adapters/incusosconfig/validator_test.go`,
/// `validConfigYAML()`, byte for byte.
const VALID: &str = include_str!("../../../../../../tests/fixtures/labctl/incus-valid.yaml");
/// GilmanLab/platform `tools/labctl/cmd/labctl/testdata/script/incusos_image_build.txtar`, its
/// `invalid.yaml`, byte for byte.
const INVALID: &str = include_str!("../../../../../../tests/fixtures/labctl/incus-invalid.yaml");
/// A PEM X.509 certificate (the test root of tests/fixtures/incus/signed) standing in for the
/// operator's client certificate.
const CERT: &str = include_str!("../../../../../../tests/fixtures/incus/signed/root-E1.crt");

const PATH: &str = "compute/incusos/bootstrap-client.sops.yaml";
const POINTER: &str = "/client_crt_pem";

/// Secrets held in memory: the port a build asks through, as labctl's own tests fill it.
struct InMemory(BTreeMap<(String, String), String>);

impl InMemory {
    fn with(value: &str) -> Self {
        Self(BTreeMap::from([(
            (PATH.to_string(), POINTER.to_string()),
            value.to_string(),
        )]))
    }
}

impl SecretResolver for InMemory {
    fn resolve(&self, path: &str, pointer: &str) -> Result<Secret> {
        self.0
            .get(&(path.to_string(), pointer.to_string()))
            .map(Secret::new)
            .ok_or_else(|| Error::BadInput(format!("no secret at {path}{pointer}")))
    }
}

fn error(text: &str) -> String {
    parse("invalid.yaml", text).unwrap_err().to_string()
}

/// validator_test.go, TestValidatorAppliesSchemaDefaults.
#[test]
fn labctl_valid_config_gets_labctl_defaults() {
    let b = parse("valid.yaml", VALID).unwrap();
    assert_eq!(b.source.channel, "stable");
    assert_eq!(b.source.arch, "x86_64");
    assert_eq!(b.source.version, "latest");
    assert_eq!(b.output.format, "img.gz");
    assert_eq!(b.seed.applications.version, "1");
    assert_eq!(b.seed.incus.version, "1");
    assert!(b.seed.incus.apply_defaults);
    assert_eq!(b.seed.incus.preseed.certificates[0].kind, "client");
    assert!(b.seed.incus.preseed.config.is_empty());
    assert_eq!(b.seed.offset, 4096);
}

/// validator_test.go, TestValidatorRejectsInvalidInput: each case, edited as upstream edits it,
/// refused with upstream's words.
#[test]
fn labctl_invalid_inputs_are_refused_with_labctl_words() {
    let cases = [
        (format!("{VALID}\nunexpected: true\n"), "field not allowed"),
        (
            VALID.replace(
                "artifactName: incusos.img.gz",
                "artifactName: incusos.iso\n  format: iso",
            ),
            "format must be img.gz",
        ),
        (
            VALID.replace("name: incusos-test\n", ""),
            "field is required but not present",
        ),
        (
            VALID.replace("              pointer: /client_crt_pem\n", ""),
            "field is required but not present",
        ),
        (
            VALID.replace("pointer: /client_crt_pem", "pointer: client_crt_pem"),
            "secret string pointer must be an RFC 6901 JSON Pointer",
        ),
        (
            VALID.replace(
                "path: compute/incusos/bootstrap-client.sops.yaml",
                "path: /compute/incusos/bootstrap-client.sops.yaml",
            ),
            "secret path must be repository-relative",
        ),
    ];
    for (text, message) in cases {
        assert_ne!(text, VALID);
        let err = error(&text);
        assert!(err.contains(message), "{message}: {err}");
        assert!(err.starts_with("validate invalid.yaml: "), "{err}");
    }
    let err = error(INVALID);
    assert!(err.contains("format must be img.gz"), "{err}");
}

/// Every other rule of schema.cue, in its words.
#[test]
fn every_schema_rule_is_labctl_s() {
    let cases = [
        (
            "size: 1G",
            "size: 1g",
            "size must be a positive whole number",
        ),
        (
            "size: 1G",
            "size: 01G",
            "size must be a positive whole number",
        ),
        (
            "size: 1G",
            "size: 1.5G",
            "size must be a positive whole number",
        ),
        (
            "offset: 4096",
            "offset: 0",
            "seed offset must be a positive integer",
        ),
        (
            "offset: 4096",
            "offset: -1",
            "seed offset must be a positive integer",
        ),
        (
            "offset: 4096",
            "offset: \"4096\"",
            "seed offset must be a positive integer",
        ),
        (
            "offset: 4096",
            "offset: 4096.5",
            "seed offset must be a positive integer",
        ),
        (
            "  baseURL: https://images.example.test/os",
            "  baseURL: ftp://images.example.test/os",
            "source.baseURL: must be an HTTP or HTTPS URL",
        ),
        (
            "  baseURL: https://images.example.test/os",
            "  baseURL: https://images.example.test/os\n  channel: \"\"",
            "channel must be stable or a non-empty channel name",
        ),
        (
            "  baseURL: https://images.example.test/os",
            "  baseURL: https://images.example.test/os\n  arch: \"\"",
            "architecture must be x86_64 or a non-empty architecture name",
        ),
        (
            "  baseURL: https://images.example.test/os",
            "  baseURL: https://images.example.test/os\n  version: \"\"",
            "version must be latest or a non-empty version string",
        ),
        (
            "    applications:\n      - name: incus",
            "    version: \"2\"\n    applications:\n      - name: incus",
            "applications seed version must be 1",
        ),
        (
            "    applications:\n      - name: incus",
            "    applications: []",
            "seed.applications.applications: must list at least one application",
        ),
        (
            "    preseed:",
            "    version: \"2\"\n    preseed:",
            "Incus seed version must be 1",
        ),
        (
            "    preseed:",
            "    apply_defaults: yes\n    preseed:",
            "seed.incus.apply_defaults is the string \"yes\"",
        ),
        (
            "        - name: bootstrap-client\n",
            "        - name: bootstrap-client\n          type: server\n",
            "trusted certificate type must be client",
        ),
        (
            "path: compute/incusos/bootstrap-client.sops.yaml",
            "path: compute/../bootstrap-client.sops.yaml",
            "secret path must be repository-relative",
        ),
        (
            "path: compute/incusos/bootstrap-client.sops.yaml",
            "path: compute\\incusos.sops.yaml",
            "secret path must be repository-relative",
        ),
        ("name: incusos-test", "name: 123", "name is the number 123"),
        (
            "artifactName: incusos.img.gz",
            "artifactName: sub/incusos.img.gz",
            "without a path separator",
        ),
        (
            "artifactName: incusos.img.gz",
            "artifactName: incusos.img",
            "must be a file name ending in .gz",
        ),
        (
            "artifactName: incusos.img.gz",
            "artifactName: ..gz",
            "must be a file name ending in .gz",
        ),
        (
            "    preseed:\n",
            "    preseed:\n      config:\n        core.https_address: 8443\n",
            "seed.incus.preseed.config is the number 8443",
        ),
    ];
    for (from, to, message) in cases {
        assert_eq!(VALID.matches(from).count(), 1, "{from}");
        let err = error(&VALID.replace(from, to));
        assert!(err.contains(message), "{to}: {err}");
        assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    }
}

#[test]
fn what_labctl_accepts_is_accepted() {
    let text = VALID
        .replace("size: 1G", "size: 50G")
        .replace("dir: .state/images", "dir: /abs/images")
        .replace(
            "    preseed:\n",
            "    apply_defaults: false\n    preseed:\n      config:\n        core.https_address: \":8443\"\n",
        );
    let b = parse("x.yaml", &text).unwrap();
    assert!(!b.seed.incus.apply_defaults);
    assert_eq!(b.seed.incus.preseed.config["core.https_address"], ":8443");
    assert_eq!(parse_size(&b.output.size), Some(50 << 30));
}

#[test]
fn sizes_are_labctl_s() {
    assert_eq!(parse_size("8K"), Some(8192));
    assert_eq!(parse_size("1M"), Some(1 << 20));
    assert_eq!(parse_size("3T"), Some(3 << 40));
    for bad in ["", "K", "0K", "1", "1KB", "-1K", "99999999999T"] {
        assert_eq!(parse_size(bad), None, "{bad}");
    }
}

#[test]
fn the_signed_index_is_read_beside_index_url() {
    let b = parse("valid.yaml", VALID).unwrap();
    assert_eq!(
        b.index_to_read(false).unwrap(),
        "https://images.example.test/os/index.sjson"
    );
    assert_eq!(
        b.index_to_read(true).unwrap(),
        "https://images.example.test/os/index.json"
    );
}

#[test]
fn labctl_paths() {
    let req = BuildRequest {
        build: parse("valid.yaml", VALID).unwrap(),
        base_dir: PathBuf::from("/w/cfg/./"),
        trust_root: None,
        unsigned_index: false,
    };
    let p = req.paths().unwrap();
    assert_eq!(p.out_dir, Path::new("/w/cfg/.state/images"));
    assert_eq!(p.artifact, Path::new("/w/cfg/.state/images/incusos.img.gz"));
    assert_eq!(p.raw, Path::new("/w/cfg/.state/images/incusos.img"));
    assert_eq!(p.downloads, Path::new("/w/cfg/.state/downloads"));
}

/// The seed labctl writes (seed.go): applications.yaml then incus.yaml, ustar, mode 0644, time
/// 0; each file passes incus-osd's seed types and holds the config's values.
#[test]
fn the_seed_is_labctl_s_and_incus_osd_reads_it() {
    let text = VALID.replace(
        "    preseed:\n",
        "    preseed:\n      config:\n        core.https_address: \":8443\"\n        \"odd: key\": \"yes\"\n",
    );
    let b = parse("valid.yaml", &text).unwrap();
    let seed = seed::archive(&b.seed, &InMemory::with(CERT)).unwrap();
    let mut archive = tar::Archive::new(seed.tar.as_slice());
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert!(header.as_ustar().is_some());
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.mtime().unwrap(), 0);
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut body = String::new();
        entry.read_to_string(&mut body).unwrap();
        crate::sources::incus_seed::check_file(&name, body.as_bytes()).unwrap();
        files.push((name, body));
    }
    assert_eq!(files[0].0, "applications.yaml");
    assert_eq!(files[1].0, "incus.yaml");
    let apps: serde_json::Value = serde_saphyr::from_str(&files[0].1).unwrap();
    assert_eq!(
        apps,
        serde_json::json!({"version": "1", "applications": [{"name": "incus"}]})
    );
    let incus: serde_json::Value = serde_saphyr::from_str(&files[1].1).unwrap();
    assert_eq!(
        incus,
        serde_json::json!({
            "version": "1",
            "apply_defaults": true,
            "preseed": {
                "config": {"core.https_address": ":8443", "odd: key": "yes"},
                "certificates": [
                    {"name": "bootstrap-client", "type": "client", "certificate": CERT}
                ]
            }
        })
    );
    assert!(
        seed.warnings[0].contains("no install file"),
        "{:?}",
        seed.warnings
    );
}

#[test]
fn a_secret_that_is_not_a_certificate_is_refused_without_being_shown() {
    let b = parse("valid.yaml", VALID).unwrap();
    let not_pem = "hunter2-not-a-certificate";
    let err = seed::archive(&b.seed, &InMemory::with(not_pem))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not a PEM X.509 certificate"), "{err}");
    assert!(!err.contains(not_pem), "{err}");
    let broken = CERT.replace("MII", "MIJ");
    let err = seed::archive(&b.seed, &InMemory::with(&broken))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not a PEM X.509 certificate"), "{err}");
    let err = seed::archive(&b.seed, &InMemory(BTreeMap::new()))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("no secret at"), "{err}");
}
