//! HTTPS end to end: a stand-in server on 127.0.0.1 whose certificate comes from a CA made in the
//! test, as a lab's internal factory or mirror would have. labflash trusts what the machine trusts
//! (system store, SSL_CERT_FILE, SSL_CERT_DIR) plus `--ca-cert`, never retries a refused
//! certificate, and says why it refused it.

mod common;

use std::path::Path;

use common::server::{Reply, Serve, Server};
use common::tls::TestCa;
use common::*;

const ASSET: &str = "/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.0/metal-amd64.raw.xz";

struct Lab {
    ca: TestCa,
    server: Server,
    dir: tempfile::TempDir,
    image: Vec<u8>,
    archive: Vec<u8>,
}

/// An HTTPS factory stand-in with a certificate for `names`, valid `days` relative to now.
fn lab(names: &[&str], days: (i64, i64)) -> Lab {
    let ca = TestCa::new("labflash test lab CA");
    let server = Server::start_tls(ca.server(names, days));
    let image = image_like(2 << 20, 19);
    let archive = xz_blocks(&image, 1 << 20);
    server.put_with_sidecar(ASSET, archive.clone());
    server.put("/versions", br#"["v1.12.3","v1.13.0"]"#.to_vec());
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(&dir.path().join("lab-ca.pem"));
    Lab {
        ca,
        server,
        dir,
        image,
        archive,
    }
}

impl Lab {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn fetch(&self, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let url = self.server.url(ASSET);
        let cache = self.path("cache");
        let mut args = vec!["fetch", url.as_str(), "--cache-dir", &cache, "--json"];
        args.extend_from_slice(extra);
        let mut cmd = labflash(&args);
        // The machine's own store must not decide these tests; each names its store.
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    }

    fn assert_fetched(&self, run: &Run) {
        assert_eq!(run.code, 0, "stdout {} stderr {}", run.stdout, run.stderr);
        let json = run.json();
        assert_eq!(json["archiveSHA256"], sha256_hex(&self.archive));
        assert_eq!(json["imageSHA256"], sha256_hex(&self.image));
        assert_eq!(json["digestSource"], "sidecar");
    }

    fn error_of(&self, run: &Run) -> String {
        run.json()["error"].as_str().unwrap().to_string()
    }
}

#[test]
fn an_untrusted_ca_is_refused_once_with_its_name_and_what_to_do() {
    let lab = lab(&["127.0.0.1"], (-1, 30));
    let run = lab.fetch(&[], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let error = lab.error_of(&run);
    assert!(error.contains("is not trusted"), "{error}");
    assert!(error.contains("labflash test lab CA"), "{error}");
    assert!(error.contains("--ca-cert"), "{error}");
    assert_eq!(
        failed_handshakes(&lab.server),
        1,
        "a refused certificate is not retried"
    );
    assert!(lab.server.requests().is_empty());
    assert!(cached_files(Path::new(&lab.path("cache"))).is_empty());
}

#[test]
fn ca_cert_is_trusted_for_sidecar_and_archive_with_range_resume() {
    let lab = lab(&["127.0.0.1"], (-1, 30));
    let cut = lab.archive.len() / 3;
    lab.server.set_default_serve(Serve {
        ranges: true,
        ..Serve::default()
    });
    lab.server.script(
        ASSET,
        vec![Reply::Body(Serve {
            ranges: true,
            cut_after: Some(cut),
            ..Serve::default()
        })],
    );
    let run = lab.fetch(&["--ca-cert", &lab.path("lab-ca.pem")], &[]);
    lab.assert_fetched(&run);
    let gets = lab.server.gets(ASSET);
    assert_eq!(gets.len(), 2, "cut once, resumed once");
    assert_eq!(
        gets[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(lab.server.gets(&format!("{ASSET}.sha256")).len(), 1);
}

#[test]
fn ssl_cert_file_and_ssl_cert_dir_are_honoured() {
    let lab = lab(&["127.0.0.1"], (-1, 30));
    lab.assert_fetched(&lab.fetch(&[], &[("SSL_CERT_FILE", &lab.path("lab-ca.pem"))]));

    // A system-style store: a folder of PEM files, as /etc/ssl/certs is.
    let store = lab.dir.path().join("certs");
    std::fs::create_dir(&store).unwrap();
    lab.ca.write_pem(&store.join("lab-ca.pem"));
    std::fs::remove_dir_all(lab.path("cache")).unwrap();
    lab.assert_fetched(&lab.fetch(&[], &[("SSL_CERT_DIR", store.to_str().unwrap())]));
}

#[test]
fn a_ca_in_the_system_store_is_trusted_without_any_option() {
    if !is_root() || !Path::new("/usr/sbin/update-ca-certificates").exists() {
        skip("needs root and update-ca-certificates to add a CA to the system store");
        return;
    }
    let lab = lab(&["127.0.0.1"], (-1, 30));
    let installed = SystemCa::install(&lab.ca);
    lab.assert_fetched(&lab.fetch(&[], &[]));
    drop(installed);
    std::fs::remove_dir_all(lab.path("cache")).unwrap();
    let run = lab.fetch(&[], &[]);
    assert_eq!(run.code, 3, "removed from the store, no longer trusted");
}

#[test]
fn an_expired_certificate_says_when_it_expired() {
    let lab = lab(&["127.0.0.1"], (-60, -2));
    let run = lab.fetch(&["--ca-cert", &lab.path("lab-ca.pem")], &[]);
    assert_eq!(run.code, 3);
    let error = lab.error_of(&run);
    assert!(error.contains("expired on 20"), "{error}");
    assert!(error.contains("UTC"), "{error}");
    assert_eq!(failed_handshakes(&lab.server), 1);
}

#[test]
fn a_certificate_for_other_names_lists_them() {
    let lab = lab(&["factory.lab", "mirror.lab"], (-1, 30));
    let run = lab.fetch(&["--ca-cert", &lab.path("lab-ca.pem")], &[]);
    assert_eq!(run.code, 3);
    let error = lab.error_of(&run);
    assert!(
        error.contains("is for factory.lab, mirror.lab only, not 127.0.0.1"),
        "{error}"
    );
    assert_eq!(failed_handshakes(&lab.server), 1);
}

#[test]
fn an_unreadable_or_empty_ca_file_is_bad_input() {
    let lab = lab(&["127.0.0.1"], (-1, 30));
    let run = lab.fetch(&["--ca-cert", &lab.path("missing.pem")], &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(lab.error_of(&run).contains("cannot be read"));
    std::fs::write(lab.path("empty.pem"), "").unwrap();
    let run = lab.fetch(&["--ca-cert", &lab.path("empty.pem")], &[]);
    assert_eq!(run.code, 2);
    assert!(lab.error_of(&run).contains("holds no certificate"));
    assert!(lab.server.requests().is_empty());
}

#[test]
fn every_downloading_command_takes_ca_cert() {
    let lab = lab(&["127.0.0.1"], (-1, 30));
    let ca = lab.path("lab-ca.pem");
    let factory = lab.server.url("");
    let sidecar = lab.server.url(&format!("{ASSET}.sha256"));
    let url = lab.server.url(ASSET);
    let image = lab.path("image.raw");
    std::fs::write(&image, &lab.image).unwrap();
    let target = lab.path("target.img");
    let cache = lab.path("cache");
    let commands: Vec<Vec<&str>> = vec![
        vec!["talos", "versions", "--factory-url", &factory],
        vec!["verify", &image, "--sidecar", &sidecar],
        vec![
            "flash",
            &url,
            "--to",
            &target,
            "--yes",
            "--cache-dir",
            &cache,
        ],
    ];
    for command in commands {
        let mut without = command.clone();
        without.push("--json");
        let run = run(&without);
        assert_eq!(run.code, 3, "{command:?} without the CA: {}", run.stdout);
        assert!(run.stdout.contains("is not trusted"), "{}", run.stdout);

        let mut with = without.clone();
        with.extend(["--ca-cert", &ca]);
        let run = common::run(&with);
        // verify compares the raw image with the archive's sidecar: a mismatch (exit 1) still
        // proves the sidecar was fetched over the trusted connection.
        assert!(
            run.code == 0 || (command[0] == "verify" && run.code == 1),
            "{command:?} with --ca-cert: {} {}",
            run.stdout,
            run.stderr
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), lab.image);
}

/// The server's count of refused handshakes, once the refusal has reached its thread.
fn failed_handshakes(server: &Server) -> usize {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.handshakes_failed() == 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Every attempt was made before the process exited; let their threads record them too.
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.handshakes_failed()
}

/// A CA added to the system store (Debian's `/usr/local/share/ca-certificates`), removed on drop.
struct SystemCa {
    path: std::path::PathBuf,
}

impl SystemCa {
    fn install(ca: &TestCa) -> SystemCa {
        let path = std::path::PathBuf::from(format!(
            "/usr/local/share/ca-certificates/labflash-test-{}.crt",
            std::process::id()
        ));
        std::fs::write(&path, ca.pem()).unwrap();
        update_ca_certificates();
        SystemCa { path }
    }
}

impl Drop for SystemCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        update_ca_certificates();
    }
}

/// Without `--fresh`: it then only adds and removes links and replaces the bundle by a rename, so
/// the tests running beside this one never see an empty store.
fn update_ca_certificates() {
    let status = std::process::Command::new("update-ca-certificates")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}
