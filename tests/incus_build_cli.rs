//! `labflash incus build`: labctl's IncusOS image build (GilmanLab/platform `tools/labctl`,
//! `bootstrap incusos image build`) against a stand-in IncusOS image server on 127.0.0.1: a
//! signed index (tests/fixtures/incus/signed, made as lxc/incus-os makes its test ones) naming a
//! gzipped IncusOS-shaped disk (a GPT with an ESP and a `seed-data` partition, made by sfdisk).
//!
//! labctl's own files, unchanged: tests/fixtures/labctl/incus-invalid.yaml is the `invalid.yaml`
//! of `tools/labctl/cmd/labctl/testdata/script/incusos_image_build.txtar`, incus-valid.yaml is
//! `validConfigYAML()` of `tools/labctl/internal/adapters/incusosconfig/validator_test.go`
//! (GilmanLab/platform d2d036db9fdd20b9347d29d61dc4a9b774dc0618). A build points the valid one's
//! URLs at the stand-in and its size and offset at the stand-in's disk, as labctl's
//! `service_test.go` sets its own (8K, 1024) for its fake image.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::server::{Reply, Serve, Server};
use common::*;
use labflash_core::fetch::credentials::Secret;
use labflash_core::fetch::http::{Http, HttpPolicy};
use labflash_core::progress::{Progress, ProgressSink, Stage};
use labflash_core::secrets::SecretResolver;
use labflash_core::sources::incus_build::{self, BuildRequest, Built};
use labflash_core::sources::incus_seed;
use labflash_core::{CancellationToken, Error, ErrorKind};

const STABLE: &str = "202608190802";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/labctl");
/// The stand-in disk's size, and where its seed-data partition starts (sector 6144).
const DISK: u64 = 8 << 20;
const SEED_DATA: u64 = 6144 * 512;
/// A PEM X.509 certificate (the test root of tests/fixtures/incus/signed) as the client
/// certificate the secrets hold.
const CERT: &str = include_str!("fixtures/incus/signed/root-E1.crt");

/// labctl's JSON fields in its order (`imageBuildOutput` in `tools/labctl/internal/cli/
/// bootstrap.go`), then labflash's.
const KEYS: [&str; 8] = [
    "name",
    "artifactPath",
    "sourceVersion",
    "sourceURL",
    "sourceSHA256",
    "indexSignedBy",
    "clientCertificates",
    "warnings",
];

/// The SHA-256 of the DER certificate in the PEM file `pem`, as openssl computes it, in
/// lowercase hex without colons.
fn openssl_fingerprint(pem: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", pem])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, hex) = text.trim().split_once('=').unwrap();
    let hex = hex.replace(':', "").to_ascii_lowercase();
    assert_eq!(hex.len(), 64, "{text}");
    hex
}

/// Each `"key":` appears in `json`'s text, in this order.
fn assert_in_order(json: &str, keys: &[&str]) {
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            json.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k}: {json}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
}

fn filename() -> String {
    format!("x86_64/IncusOS_{STABLE}.img.gz")
}

/// An IncusOS-shaped disk: a GPT (sfdisk) with the ESP, the `seed-data` partition incus-osd
/// reads its seed from (lxc/incus-os `mkosi.repart/00-esp.conf`, `01-seed-data.conf`) and a usr
/// partition holding noise, so the image is not all zeros.
fn incus_disk(dir: &Path) -> Vec<u8> {
    disk_with_seed_sectors(dir, 2048)
}

/// [`incus_disk`] with a `seed-data` partition of `sectors` sectors.
fn disk_with_seed_sectors(dir: &Path, sectors: u64) -> Vec<u8> {
    let path = dir.join("incus.raw");
    std::fs::File::create(&path).unwrap().set_len(DISK).unwrap();
    let table = format!(
        "label: gpt\n\
        start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"esp\"\n\
        start=6144, size={sectors}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"seed-data\"\n\
        start=8192, size=4096, type=8484680C-9521-48C6-9C11-B0720656F69E, name=\"IncusOS_202608190802\"\n"
    );
    let mut child = std::process::Command::new("sfdisk")
        .arg("--quiet")
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sfdisk");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), table.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let mut disk = std::fs::read(&path).unwrap();
    disk[8192 * 512..12288 * 512].copy_from_slice(&noise(4096 * 512, 29));
    disk
}

/// The stand-in server: `served` at the stable x86_64 image's URL, the index naming `listed`'s
/// digest, signed as `index.sjson` and unsigned as `index.json`.
fn server(listed: &[u8], served: Vec<u8>) -> Server {
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(&mut index, STABLE, &filename(), listed);
    let index = serde_json::to_vec(&index).unwrap();
    let server = Server::start();
    server.put(&format!("/os/{STABLE}/{}", filename()), served);
    server.put("/os/index.sjson", signed_index(&index));
    server.put("/os/index.json", index);
    server
}

/// labctl's valid config in a fresh folder, pointed at `server`, for the stand-in's disk.
fn config_folder(server: &Server, size: &str, offset: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{FIXTURES}/incus-valid.yaml"))
        .unwrap()
        .replace(
            "https://images.example.test/os/index.json",
            &server.url("/os/index.json"),
        )
        .replace("https://images.example.test/os", &server.url("/os"))
        .replace("size: 1G", &format!("size: {size}"))
        .replace("offset: 4096", &format!("offset: {offset}"));
    assert!(text.contains(&server.url("/os/index.json")));
    std::fs::write(dir.path().join("incus.yaml"), text).unwrap();
    dir
}

/// Secrets held in memory, as labctl's service_test.go fills its resolver.
struct InMemory(BTreeMap<(String, String), String>);

impl SecretResolver for InMemory {
    fn resolve(&self, path: &str, pointer: &str) -> labflash_core::Result<Secret> {
        self.0
            .get(&(path.into(), pointer.into()))
            .map(Secret::new)
            .ok_or_else(|| Error::BadInput(format!("no secret at {path}{pointer}")))
    }
}

fn secrets() -> InMemory {
    secrets_holding(CERT)
}

/// The config's one secretRef holding `value`.
fn secrets_holding(value: &str) -> InMemory {
    InMemory(BTreeMap::from([(
        (
            "compute/incusos/bootstrap-client.sops.yaml".to_string(),
            "/client_crt_pem".to_string(),
        ),
        value.to_string(),
    )]))
}

/// The engine's build of `dir/incus.yaml`, as the app would call it; progress recorded.
fn build(dir: &Path, unsigned: bool, http: &Http) -> (labflash_core::Result<Built>, Vec<Stage>) {
    build_with(dir, unsigned, http, &secrets(), CancellationToken::new())
}

/// [`build`] with these secrets and this cancel token.
fn build_with(
    dir: &Path,
    unsigned: bool,
    http: &Http,
    secrets: &dyn SecretResolver,
    cancel: CancellationToken,
) -> (labflash_core::Result<Built>, Vec<Stage>) {
    let text = std::fs::read_to_string(dir.join("incus.yaml")).unwrap();
    let req = BuildRequest {
        build: incus_build::parse("incus.yaml", &text).unwrap(),
        base_dir: dir.to_path_buf(),
        trust_root: (!unsigned).then(incus_trust_root),
        unsigned_index: unsigned,
    };
    let stages = Arc::new(Mutex::new(Vec::new()));
    let seen = stages.clone();
    let progress: Arc<dyn ProgressSink> = Arc::new(move |p: Progress| {
        let mut seen = seen.lock().unwrap();
        if seen.last() != Some(&p.stage) {
            seen.push(p.stage);
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(incus_build::build(&req, secrets, http, &cancel, &progress));
    let stages = stages.lock().unwrap().clone();
    (result, stages)
}

fn plain_http() -> Http {
    Http::new(HttpPolicy::default()).unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every file under `dir`, relative to it, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn images(dir: &Path) -> PathBuf {
    dir.join(".state/images")
}

fn downloads(dir: &Path) -> PathBuf {
    dir.join(".state/downloads")
}

#[test]
fn a_build_is_labctl_s_artifact_with_the_seed_where_incus_osd_reads_it() {
    let work = tempfile::tempdir().unwrap();
    let disk = incus_disk(work.path());
    let gz = gzip(&disk);
    let server = server(&gz, gz.clone());
    let dir = config_folder(&server, "16M", SEED_DATA);

    let (built, stages) = build(dir.path(), false, &plain_http());
    let built = built.unwrap();
    assert!(stages.contains(&Stage::Download), "{stages:?}");
    let text = serde_json::to_string(&built).unwrap();
    assert_in_order(&text, &KEYS);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json.as_object().unwrap().len(), KEYS.len(), "{text}");
    assert_eq!(json["name"], "incusos-test");
    assert_eq!(json["sourceVersion"], STABLE);
    assert_eq!(
        json["sourceURL"],
        server.url(&format!("/os/{STABLE}/{}", filename()))
    );
    assert_eq!(json["sourceSHA256"], sha256_hex(&gz));
    assert!(json["indexSignedBy"]
        .as_str()
        .unwrap()
        .contains("Update Test Cert E1"));
    assert!(json["warnings"][0]
        .as_str()
        .unwrap()
        .contains("no install file"));
    // The seeded certificate, named by its fingerprint for the operator to check.
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/incus/signed/root-E1.crt"
    );
    assert_eq!(
        json["clientCertificates"],
        serde_json::json!([{
            "name": "bootstrap-client",
            "sha256": openssl_fingerprint(pem),
            "subject": "CN=TestOS - Root E1, O=TestOS",
        }])
    );

    // labctl's files: the artifact, the raw image beside it, the archive under downloads/.
    let artifact = images(dir.path()).join("incusos.img.gz");
    assert_eq!(built.artifact_path, artifact);
    assert_eq!(
        listing(&dir.path().join(".state")),
        [
            format!("downloads/{}", filename()),
            "images/incusos.img".into(),
            "images/incusos.img.gz".into(),
        ]
    );
    assert_eq!(
        std::fs::read(downloads(dir.path()).join(filename())).unwrap(),
        gz
    );
    let image = gunzip(&artifact);
    assert_eq!(image.len() as u64, 16 << 20, "grown to output.size");
    assert_eq!(
        image,
        std::fs::read(images(dir.path()).join("incusos.img")).unwrap()
    );
    // The published disk, unchanged but for the seed.
    let seed_end = SEED_DATA as usize + 1024 * 512;
    assert_eq!(image[..SEED_DATA as usize], disk[..SEED_DATA as usize]);
    assert_eq!(image[seed_end..disk.len()], disk[seed_end..]);
    assert!(image[disk.len()..].iter().all(|b| *b == 0));

    // The seed-data partition starts with a ustar archive of the two files, which incus-osd's
    // seed types read, and which tar lists as labctl writes them (0644, time 0).
    let part = &image[SEED_DATA as usize..seed_end];
    assert_eq!(&part[257..263], b"ustar\0");
    let tar_path = work.path().join("seed.tar");
    std::fs::write(&tar_path, part).unwrap();
    let tar = |args: &[&str]| {
        let out = std::process::Command::new("tar")
            .args(args)
            .arg(&tar_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = tar(&["tvf"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    for (line, name) in lines.iter().zip(["applications.yaml", "incus.yaml"]) {
        assert!(line.starts_with("-rw-r--r-- 0/0"), "{line}");
        assert!(
            line.contains("1970-01-01 00:00") && line.ends_with(name),
            "{line}"
        );
        let body = tar(&["-xO", name, "-f"]);
        incus_seed::check_file(name, body.as_bytes()).unwrap();
    }
    let incus = tar(&["-xO", "incus.yaml", "-f"]);
    let quoted = serde_json::to_string(CERT).unwrap();
    assert!(
        incus.contains(&format!("certificate: {quoted}\n")),
        "{incus}"
    );
}

#[test]
fn a_seed_offset_that_is_not_the_seed_partition_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    // labctl's service_test.go offset, which only its fake image takes.
    let dir = config_folder(&server, "16M", 1024);
    let (built, _) = build(dir.path(), false, &plain_http());
    let err = built.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    let message = err.to_string();
    assert!(
        message.contains(&format!("seed.offset: {SEED_DATA}")),
        "{message}"
    );
    assert!(listing(&images(dir.path())).is_empty(), "nothing written");
}

/// A secret that is not a certificate is refused before the index is asked for, without being
/// shown.
#[test]
fn a_client_certificate_that_is_not_one_is_refused_before_anything_is_fetched() {
    let server = server(b"x", b"x".to_vec());
    let dir = config_folder(&server, "16M", SEED_DATA);
    let not_a_cert = "hunter2, not a certificate";
    let (built, _) = build_with(
        dir.path(),
        false,
        &plain_http(),
        &secrets_holding(not_a_cert),
        CancellationToken::new(),
    );
    let err = built.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    let message = err.to_string();
    assert!(message.contains("not a PEM X.509 certificate"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(server.requests().is_empty(), "nothing is fetched");
    assert!(!dir.path().join(".state").exists());
}

/// Cancelling stops the download promptly; nothing is kept in downloads/ or the output folder.
#[test]
fn a_cancelled_download_stops_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    server.script(
        &format!("/os/{STABLE}/{}", filename()),
        vec![Reply::Body(Serve {
            stall_after: Some(gz.len() / 2),
            ..Serve::default()
        })],
    );
    let dir = config_folder(&server, "16M", SEED_DATA);
    let cancel = CancellationToken::new();
    let trip = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(800));
        trip.cancel();
    });
    let started = std::time::Instant::now();
    let (built, stages) = build_with(dir.path(), false, &plain_http(), &secrets(), cancel);
    assert_eq!(built.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(stages.contains(&Stage::Download), "{stages:?}");
    assert!(
        listing(&dir.path().join(".state")).is_empty(),
        "nothing kept"
    );
}

#[test]
fn a_seed_larger_than_its_partition_is_refused() {
    let work = tempfile::tempdir().unwrap();
    // One sector: the two files' archive takes more.
    let gz = gzip(&disk_with_seed_sectors(work.path(), 1));
    let server = server(&gz, gz.clone());
    let dir = config_folder(&server, "16M", SEED_DATA);
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.to_string().contains("does not fit"), "{err}");
    assert!(listing(&images(dir.path())).is_empty(), "nothing written");
}

/// The publisher's file name is a path under labctl's downloads folder: one that climbs out of
/// it is refused before anything is downloaded (as `incus fetch` refuses it, exit 3).
#[test]
fn an_index_file_name_with_dot_dot_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(&mut index, STABLE, &filename(), &gz);
    let text = serde_json::to_string(&index)
        .unwrap()
        .replace(&filename(), "x86_64/../../../escaped.img.gz");
    let server = Server::start();
    server.put("/os/index.sjson", signed_index(text.as_bytes()));
    let dir = config_folder(&server, "16M", SEED_DATA);
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert!(err.to_string().contains("unsafe file name"), "{err}");
    assert_eq!(server.requests().len(), 1, "only the index was asked for");
    assert!(!dir.path().join(".state").exists());
}

#[test]
fn an_output_size_smaller_than_the_image_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    let dir = config_folder(&server, "4M", SEED_DATA);
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.to_string().contains("output.size 4M"), "{err}");
    assert!(listing(&images(dir.path())).is_empty(), "nothing written");
}

#[test]
fn a_tampered_download_is_refused_and_nothing_is_kept() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let mut tampered = gz.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 1;
    let server = server(&gz, tampered);
    let dir = config_folder(&server, "16M", SEED_DATA);
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(
        listing(&dir.path().join(".state")).is_empty(),
        "nothing kept"
    );
}

#[test]
fn a_cached_download_is_reused_and_a_corrupted_one_refused_and_removed() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    let dir = config_folder(&server, "16M", SEED_DATA);
    let image_path = format!("/os/{STABLE}/{}", filename());
    build(dir.path(), false, &plain_http()).0.unwrap();
    assert_eq!(server.body_gets(&image_path), 1);

    server.clear_log();
    let (again, stages) = build(dir.path(), false, &plain_http());
    again.unwrap();
    assert_eq!(
        server.body_gets(&image_path),
        0,
        "the cached download is used"
    );
    assert!(stages.contains(&Stage::CheckCache), "{stages:?}");

    let cached = downloads(dir.path()).join(filename());
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&cached, bytes).unwrap();
    let before = listing(&images(dir.path()));
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.to_string().contains("cached download"), "{err}");
    assert!(!cached.exists(), "the corrupted download is removed");
    assert_eq!(
        listing(&images(dir.path())),
        before,
        "the output is untouched"
    );
}

#[test]
fn an_unsigned_index_is_read_only_when_asked_and_only_over_https() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));

    // Signed: an index.sjson that is not signed is refused.
    let unsigned_only = server(&gz, gz.clone());
    unsigned_only.put(
        "/os/index.sjson",
        std::fs::read(format!(
            "{}/tests/fixtures/incus/index.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    );
    let dir = config_folder(&unsigned_only, "16M", SEED_DATA);
    let err = build(dir.path(), false, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    // Asked for, over plain http: refused.
    let err = build(dir.path(), true, &plain_http()).0.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
    assert!(err.to_string().contains("only over https"), "{err}");
    assert!(!dir.path().join(".state").exists(), "nothing written");

    // Asked for, over https: labctl's reading, and the result says unsigned.
    let ca = tls::TestCa::new("incus build");
    let https = Server::start_tls(ca.server(&["127.0.0.1"], (-1, 30)));
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(&mut index, STABLE, &filename(), &gz);
    https.put("/os/index.json", serde_json::to_vec(&index).unwrap());
    https.put(&format!("/os/{STABLE}/{}", filename()), gz.clone());
    let dir = config_folder(&https, "16M", SEED_DATA);
    let ca_file = work.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let http = Http::new(HttpPolicy {
        ca_certs: vec![ca_file],
        ..HttpPolicy::default()
    })
    .unwrap();
    let built = build(dir.path(), true, &http).0.unwrap();
    assert_eq!(built.index_signed_by, None);
    assert_eq!(
        serde_json::to_value(&built).unwrap()["indexSignedBy"],
        serde_json::Value::Null
    );
}

/// labctl's txtar: `build invalid.yaml` fails naming the file and the rule, nothing on stdout;
/// the same through `-` names `stdin.yaml`.
#[test]
fn labctl_invalid_yaml_is_refused_as_labctl_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{FIXTURES}/incus-invalid.yaml"),
        dir.path().join("invalid.yaml"),
    )
    .unwrap();
    let r: Run = labflash(&["incus", "build", "invalid.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("validate invalid.yaml"), "{}", r.stderr);
    assert!(r.stderr.contains("format must be img.gz"), "{}", r.stderr);
    assert_eq!(r.stdout, "");

    let mut child = labflash(&["incus", "build", "-"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(dir.path().join("invalid.yaml")).unwrap(),
    )
    .unwrap();
    let r: Run = child.wait_with_output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("validate stdin.yaml"), "{}", r.stderr);
    assert!(r.stderr.contains("format must be img.gz"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(!dir.path().join(".state").exists());

    // With --json: exactly one object, the error.
    let r: Run = labflash(&["incus", "build", "--json", "invalid.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("format must be img.gz"));
}

#[test]
fn labctl_s_github_secret_source_is_refused() {
    let server = server(b"x", b"x".to_vec());
    let dir = config_folder(&server, "16M", SEED_DATA);
    let r: Run = labflash(&[
        "incus",
        "build",
        "--json",
        "--secrets-source",
        "github",
        "incus.yaml",
    ])
    .current_dir(dir.path())
    .output()
    .unwrap()
    .into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not supported"));
    assert!(server.requests().is_empty());
}

/// labctl's test age key (GilmanLab/platform `tools/labctl/cmd/labctl/testdata/script/
/// secrets_get.txtar`), which tests/fixtures/sops is encrypted to.
const AGE_KEY: &str = "AGE-SECRET-KEY-1NK7RF4CDV8HQXZZYJKRR3T3K6Z3QXRYF6F5WZW3Q2FC5FZ8FKDQQVVTSEG";
const SOPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sops");

/// `labflash incus build ARGS` in `dir`, with the secrets checkout of tests/fixtures/sops and
/// labctl's test age key in the environment, as sops reads it; no other key source.
fn cli_build(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["incus", "build", "--trust-root"];
    let root = incus_trust_root();
    all.push(root.to_str().unwrap());
    all.extend_from_slice(args);
    labflash(&all)
        .current_dir(dir)
        .env("SOPS_AGE_KEY", AGE_KEY)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .env("GLAB_SECRETS_DIR", format!("{SOPS}/repo"))
        .output()
        .unwrap()
        .into()
}

#[test]
fn the_cli_builds_with_secrets_from_the_sops_checkout_and_never_shows_them() {
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    let dir = config_folder(&server, "16M", SEED_DATA);
    let cert = std::fs::read_to_string(format!("{SOPS}/expected/bootstrap-client.crt")).unwrap();
    // The certificate's body, without its armour lines (which any PEM has).
    let body: String = cert
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");

    let r = cli_build(dir.path(), &["--json", "-vv", "incus.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one compact line: {}",
        r.stdout
    );
    assert_in_order(&r.stdout, &KEYS);
    assert_eq!(r.json().as_object().unwrap().len(), KEYS.len());
    assert!(r.stderr.contains("no install file"), "{}", r.stderr);
    // The certificate the SOPS document holds, by its fingerprint and subject.
    let fingerprint = openssl_fingerprint(&format!("{SOPS}/expected/bootstrap-client.crt"));
    assert_eq!(
        fingerprint,
        "c6699babb37590c9c4c79d98b0e05a5afe6a673a21baa8d4a7fdabd842800281"
    );
    assert_eq!(
        r.json()["clientCertificates"],
        serde_json::json!([{
            "name": "bootstrap-client",
            "sha256": fingerprint,
            "subject": "CN=bootstrap-client",
        }])
    );
    for line in body.lines() {
        assert!(
            !r.stdout.contains(line) && !r.stderr.contains(line),
            "the certificate is shown"
        );
    }
    // The seed holds the certificate the SOPS document holds.
    let image = gunzip(&images(dir.path()).join("incusos.img.gz"));
    let seed = String::from_utf8_lossy(&image[SEED_DATA as usize..SEED_DATA as usize + 8192]);
    assert!(
        seed.contains(&serde_json::to_string(&cert).unwrap()),
        "{seed}"
    );

    // Without --json: the artifact's path, as labctl prints it, and the certificate's
    // fingerprint on stderr for the person.
    let r = cli_build(dir.path(), &["incus.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("{}\n", images(dir.path()).join("incusos.img.gz").display())
    );
    assert!(
        r.stderr.contains(&format!(
            "labflash: trusted client certificate \"bootstrap-client\": sha256 {fingerprint}, subject CN=bootstrap-client\n"
        )),
        "{}",
        r.stderr
    );

    // A wrong key: refused, nothing shown, nothing written.
    let other = tempfile::tempdir().unwrap();
    let dir2 = config_folder(&server, "16M", SEED_DATA);
    let r: Run = labflash(&[
        "incus",
        "build",
        "--json",
        "--secrets-repo-dir",
        &format!("{SOPS}/repo"),
        "incus.yaml",
    ])
    .current_dir(dir2.path())
    .env_remove("SOPS_AGE_KEY")
    .env_remove("SOPS_AGE_KEY_FILE")
    .env("XDG_CONFIG_HOME", other.path())
    .output()
    .unwrap()
    .into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!dir2.path().join(".state").exists());
}

/// The README's `incus build` example, run as written from a fresh folder (the config at
/// incusos/image.yaml, the secrets checkout at ./secrets).
#[test]
fn readme_incus_build_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let example = "labflash incus build incusos/image.yaml --secrets-repo-dir secrets --json";
    assert!(readme.contains(example));
    let work = tempfile::tempdir().unwrap();
    let gz = gzip(&incus_disk(work.path()));
    let server = server(&gz, gz.clone());
    let config = config_folder(&server, "16M", SEED_DATA);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("incusos")).unwrap();
    std::fs::copy(
        config.path().join("incus.yaml"),
        dir.path().join("incusos/image.yaml"),
    )
    .unwrap();
    let copy = std::process::Command::new("cp")
        .args(["-r", &format!("{SOPS}/repo")])
        .arg(dir.path().join("secrets"))
        .status()
        .unwrap();
    assert!(copy.success());
    let mut args: Vec<&str> = example.split(' ').skip(1).collect();
    // The stand-in's index is signed by the test root, not IncusOS's.
    let root = incus_trust_root();
    args.extend(["--trust-root", root.to_str().unwrap()]);
    let r: Run = labflash(&args)
        .current_dir(dir.path())
        .env("SOPS_AGE_KEY", AGE_KEY)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("GLAB_SECRETS_DIR")
        .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir
        .path()
        .join("incusos/.state/images/incusos.img.gz")
        .is_file());
}
