//! Redirects end to end, against stand-ins on 127.0.0.1: an HTTPS server (its CA trusted through
//! `--ca-cert`) and a plain-HTTP one. A redirect from https to http is refused, once, with one
//! sentence naming both URLs, for the image, its checksum file and an index; the plain server never
//! hears a request. Redirects that keep or gain TLS are followed, and the output names where they
//! led.

mod common;

use std::path::Path;

use common::server::{Reply, Server};
use common::tls::TestCa;
use common::*;

const ASSET: &str = "/image/v1.13.0/metal-amd64.raw.xz";

struct Lab {
    /// The server the operator named, over HTTPS.
    https: Server,
    /// Whoever answers on the plain-HTTP path.
    plain: Server,
    /// A second HTTPS server, as a CDN the first redirects to.
    cdn: Server,
    dir: tempfile::TempDir,
    image: Vec<u8>,
    archive: Vec<u8>,
}

fn lab() -> Lab {
    let ca = TestCa::new("labflash redirect test CA");
    let (https, cdn) = (
        Server::start_tls(ca.server(&["127.0.0.1"], (-1, 30))),
        Server::start_tls(ca.server(&["127.0.0.1"], (-1, 30))),
    );
    let plain = Server::start();
    let image = image_like(1 << 20, 41);
    let archive = xz_blocks(&image, 1 << 19);
    // The same archive and checksum everywhere: only the scheme that carried them differs.
    for server in [&https, &plain, &cdn] {
        server.put_with_sidecar(ASSET, archive.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(&dir.path().join("ca.pem"));
    Lab {
        https,
        plain,
        cdn,
        dir,
        image,
        archive,
    }
}

impl Lab {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `labflash ARGS --ca-cert CA --cache-dir CACHE`, trusting nothing else.
    fn run(&self, args: &[&str]) -> Run {
        let (ca, cache) = (self.path("ca.pem"), self.path("cache"));
        let mut cmd = labflash(args);
        cmd.args(["--ca-cert", &ca]);
        if args[0] != "talos" {
            cmd.args(["--cache-dir", &cache]);
        }
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        cmd.output().unwrap().into()
    }

    fn fetch(&self, url: &str) -> Run {
        self.run(&["fetch", url, "--json"])
    }

    /// Images and archives in the cache (not its locks or folders).
    fn cached(&self) -> Vec<std::path::PathBuf> {
        let cache = Path::new(&self.dir.path()).join("cache");
        let mut files = files_under(&cache.join("downloads"));
        files.extend(files_under(&cache.join("images")));
        files
    }

    /// Asserts the refusal: exit 3, the one sentence naming `from` and `to`, nothing cached, no
    /// request on the plain-HTTP path.
    fn assert_refused(&self, run: &Run, from: &str, to: &str) {
        assert_eq!(run.code, 3, "stdout {} stderr {}", run.stdout, run.stderr);
        let json = run.json();
        assert_eq!(json["exitCode"], 3);
        assert_eq!(
            json["error"].as_str().unwrap(),
            format!(
                "{from} redirected to {to}: labflash does not follow a redirect from https to \
                 plain http (whoever is on the plain-HTTP path could choose the image and its \
                 digest)"
            )
        );
        assert!(
            self.plain.requests().is_empty(),
            "the plain-HTTP server was asked: {:?}",
            self.plain.requests()
        );
        assert!(self.cached().is_empty(), "cached: {:?}", self.cached());
    }
}

/// Several redirects scripted, so a retry would be seen taking the second.
fn redirects_to(url: String) -> Vec<Reply> {
    vec![Reply::Redirect(302, url); 3]
}

#[test]
fn an_image_redirected_from_https_to_http_is_refused_once() {
    let lab = lab();
    let to = lab.plain.url(ASSET);
    lab.https.script(ASSET, redirects_to(to.clone()));

    let run = lab.fetch(&lab.https.url(ASSET));
    lab.assert_refused(&run, &lab.https.url(ASSET), &to);
    assert_eq!(
        lab.https.gets(ASSET).len(),
        1,
        "a refused redirect is final"
    );

    // With the digest given, no checksum file is read first: the image's own redirect is refused.
    lab.https.script(ASSET, redirects_to(to.clone()));
    let digest = sha256_hex(&lab.archive);
    let run = lab.run(&[
        "fetch",
        &lab.https.url(ASSET),
        "--sha256",
        &digest,
        "--json",
    ]);
    lab.assert_refused(&run, &lab.https.url(ASSET), &to);
}

#[test]
fn a_checksum_file_redirected_from_https_to_http_is_refused_before_the_image() {
    let lab = lab();
    let sidecar = format!("{ASSET}.sha256");
    let to = lab.plain.url(&sidecar);
    lab.https.script(&sidecar, redirects_to(to.clone()));

    let run = lab.fetch(&lab.https.url(ASSET));
    lab.assert_refused(&run, &lab.https.url(&sidecar), &to);
    assert_eq!(
        lab.https.gets(&sidecar).len(),
        1,
        "a refused redirect is final"
    );
    assert_eq!(
        lab.https.body_gets(ASSET),
        0,
        "no byte of the image is asked for"
    );
}

#[test]
fn a_downgrade_after_an_https_hop_names_the_hop() {
    let lab = lab();
    let hop = "/cdn/metal-amd64.raw.xz";
    lab.https
        .script(ASSET, vec![Reply::Redirect(307, lab.cdn.url(hop))]);
    lab.cdn
        .script(hop, vec![Reply::Redirect(308, lab.plain.url(ASSET))]);

    let run = lab.run(&[
        "fetch",
        &lab.https.url(ASSET),
        "--sha256",
        &sha256_hex(&lab.archive),
        "--json",
    ]);
    lab.assert_refused(&run, &lab.cdn.url(hop), &lab.plain.url(ASSET));
}

#[test]
fn an_image_factory_catalog_redirected_to_http_is_refused() {
    let lab = lab();
    lab.plain.put("/versions", br#"["v1.13.0"]"#.to_vec());
    lab.https
        .script("/versions", redirects_to(lab.plain.url("/versions")));

    let run = lab.run(&[
        "talos",
        "versions",
        "--factory-url",
        &lab.https.url(""),
        "--json",
    ]);
    lab.assert_refused(
        &run,
        &lab.https.url("/versions"),
        &lab.plain.url("/versions"),
    );
}

#[test]
fn an_incus_index_redirected_to_http_is_refused() {
    // What the plain-HTTP path would say: an index naming an image and its digest (tests/fixtures/
    // incus, lxc/incus-os's layout), and that image under the operator's HTTPS base.
    let version = "202608190802";
    let filename = format!("x86_64/IncusOS_{version}.img.gz");
    let gz = gzip(&image_like(1 << 20, 43));
    let mut index: serde_json::Value = serde_json::from_str(INCUS_INDEX).unwrap();
    serve_index_file(&mut index, version, &filename, &gz);
    let lab = lab();
    lab.plain
        .put("/os/index.json", serde_json::to_vec(&index).unwrap());
    lab.https.put(&format!("/os/{version}/{filename}"), gz);
    lab.https.script(
        "/os/index.json",
        redirects_to(lab.plain.url("/os/index.json")),
    );

    // An unsigned index (read only over https): the signature would not hold either way.
    let base = lab.https.url("/os");
    let unsigned = |index_url: &str| {
        lab.run(&[
            "incus",
            "fetch",
            "--unsigned-index",
            "--index-url",
            index_url,
            "--base-url",
            &base,
            "--json",
        ])
    };
    let index_url = lab.https.url("/os/index.json");
    let run = unsigned(&index_url);
    lab.assert_refused(&run, &index_url, &lab.plain.url("/os/index.json"));

    // Served over https itself, the unsigned index is read, and the result says it was unsigned.
    lab.https
        .put("/mirror/index.json", serde_json::to_vec(&index).unwrap());
    let run = unsigned(&lab.https.url("/mirror/index.json"));
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert_eq!(run.json()["indexSignedBy"], serde_json::Value::Null);
}

#[test]
fn redirects_that_keep_or_gain_tls_are_followed_and_named() {
    let lab = lab();
    let hop = "/cdn/metal-amd64.raw.xz";
    lab.cdn.put(hop, lab.archive.clone());
    lab.https
        .script(ASSET, vec![Reply::Redirect(302, lab.cdn.url(hop))]);

    let run = lab.fetch(&lab.https.url(ASSET));
    assert_eq!(run.code, 0, "stdout {} stderr {}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["sourceURL"], lab.https.url(ASSET));
    assert_eq!(json["finalURL"], lab.cdn.url(hop));
    assert_eq!(json["digestSource"], "sidecar");
    assert_eq!(json["archiveSHA256"], sha256_hex(&lab.archive));
    assert_eq!(json["imageSHA256"], sha256_hex(&lab.image));
    assert_eq!(lab.cdn.gets(hop).len(), 1);

    // The cached archive is reused: nothing is downloaded, nothing redirected, no finalURL.
    let again = lab.fetch(&lab.https.url(ASSET));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.json().get("finalURL").is_none(), "{}", again.stdout);

    // http → https is an upgrade: followed. The human summary names where it led.
    std::fs::remove_dir_all(lab.path("cache")).unwrap();
    lab.plain
        .script(ASSET, vec![Reply::Redirect(301, lab.https.url(ASSET))]);
    let human = lab.run(&[
        "fetch",
        &lab.plain.url(ASSET),
        "--sha256",
        &sha256_hex(&lab.archive),
    ]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human
            .stdout
            .contains(&format!("redirected to  {}\n", lab.https.url(ASSET))),
        "{}",
        human.stdout
    );
}

/// Credentials in the URL are no redirect: the response's URL lacks them, the asked one has them.
#[test]
fn a_url_with_credentials_that_is_not_redirected_names_no_final_url() {
    let l = lab();
    let url = l.plain.url(ASSET).replacen("http://", "http://bob:pw@", 1);
    let out = l.run(&["fetch", &url, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.json().get("finalURL").is_none(), "{}", out.stdout);
}
