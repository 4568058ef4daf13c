//! An Enterprise Image Factory's credentials against a stand-in on 127.0.0.1 that answers 401 to
//! any request without them: a download token (from --factory-token, $LABFLASH_FACTORY_TOKEN or
//! the URL's ?token=) and HTTP Basic (the URL's user:password@). Each run succeeds, so the secret
//! went out, and the secret is in none of what it left: stdout (--json), stderr (-vv), and every
//! file (name and bytes) under its folders.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::factory::{answer_like, Edition};
use common::server::{Reply, Request, Server};
use common::*;

const TOKEN: &str = "dl-t0ken-5ecret-7c1a";
const USER: &str = "op";
const PASSWORD: &str = "Pw-s3cret-basic-9f4e";
/// `Basic ` and base64 of `op:Pw-s3cret-basic-9f4e`.
const BASIC: &str = "Basic b3A6UHctczNjcmV0LWJhc2ljLTlmNGU=";
const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const MACHINE_CONFIG: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n";

/// A factory with one extension and one asset (of the schematic that extension makes, and of
/// the default one), behind `gate`.
fn factory(image: &[u8], gate: impl Fn(&Request) -> bool + Send + Sync + 'static) -> Server {
    let server = Server::start();
    server.put("/versions", br#"["v1.13.0"]"#.to_vec());
    server.put(
        "/version/v1.13.0/extensions/official",
        br#"[{"name":"siderolabs/iscsi-tools","ref":"r","digest":"d","author":"a","description":"iSCSI"}]"#.to_vec(),
    );
    server.on_post(
        "/schematics",
        Arc::new(|body: &[u8]| (201, format!("{{\"id\":\"{}\"}}", sha256_hex(body)))),
    );
    let body = r#"{"customization":{"systemExtensions":{"officialExtensions":["siderolabs/iscsi-tools"]}}}"#;
    for schematic in [sha256_hex(body.as_bytes()).as_str(), SCHEMATIC] {
        server.put_with_sidecar(
            &format!("/image/{schematic}/v1.13.0/nocloud-amd64.raw.xz"),
            xz_single(image),
        );
    }
    answer_like(&server, Edition::Enterprise);
    server.require(Arc::new(gate));
    server
}

fn token_gate(r: &Request) -> bool {
    r.path.contains(&format!("token={TOKEN}"))
}

fn basic_gate(r: &Request) -> bool {
    r.authorization.as_deref() == Some(BASIC)
}

/// The secret is nowhere in `texts` nor in any file under `dirs`: neither its name nor its bytes.
fn assert_nowhere(secret: &str, texts: &[&str], dirs: &[&Path]) {
    for text in texts {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    let mut files = 0;
    for dir in dirs {
        for file in files_under(dir) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !file.to_string_lossy().contains(secret),
                "{secret} in a file name: {}",
                file.display()
            );
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                file.display()
            );
            files += 1;
        }
    }
    assert!(
        dirs.is_empty() || files > 0,
        "the run wrote no file to check"
    );
}

/// `talos fetch` with an extension: extensions, schematics, the asset and its sidecar, each
/// behind the gate.
fn talos_fetch(factory_url: &str, cache: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--extension",
        "iscsi-tools",
        "--factory-url",
        factory_url,
        "--cache-dir",
        cache.to_str().unwrap(),
        "-vv",
        "--json",
    ];
    args.extend_from_slice(extra);
    labflash(&args)
}

fn check_fetched(r: &Run, f: &Server, image: &[u8]) {
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    assert_eq!(json["imageSHA256"], sha256_hex(image));
    assert_eq!(json["digestSource"], "sidecar");
    let source = json["sourceURL"].as_str().unwrap();
    assert!(
        source.starts_with(&f.url("/image/")) && !source.contains('?'),
        "{source}"
    );
    assert!(json.get("finalURL").is_none(), "{json}");
    let posts = f.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "the schematic was made behind the gate");
}

#[test]
fn a_download_token_from_the_flag_the_environment_or_the_url_is_sent_and_never_shown() {
    let image = image_like(1 << 20, 81);
    let ways: [(&str, &[&str], Option<&str>); 3] = [
        ("flag", &["--factory-token", TOKEN], None),
        ("environment", &[], Some(TOKEN)),
        ("url", &[], None),
    ];
    for (way, extra, env) in ways {
        let f = factory(&image, token_gate);
        let cache = tempfile::tempdir().unwrap();
        let url = match way {
            "url" => f.url(&format!("/?token={TOKEN}")),
            _ => f.url(""),
        };
        let mut cmd = talos_fetch(&url, cache.path(), extra);
        if let Some(token) = env {
            cmd.env("LABFLASH_FACTORY_TOKEN", token);
        }
        let r: Run = cmd.output().unwrap().into();
        assert_nowhere(TOKEN, &[&r.stdout, &r.stderr], &[cache.path()]);
        check_fetched(&r, &f, &image);
    }
}

#[test]
fn the_flag_wins_over_the_environment() {
    let image = image_like(1 << 20, 82);
    let f = factory(&image, token_gate);
    let cache = tempfile::tempdir().unwrap();
    let r: Run = talos_fetch(&f.url(""), cache.path(), &["--factory-token", TOKEN])
        .env("LABFLASH_FACTORY_TOKEN", "a-stale-token")
        .output()
        .unwrap()
        .into();
    check_fetched(&r, &f, &image);
}

#[test]
fn help_does_not_show_the_token_from_the_environment() {
    let r: Run = labflash(&["talos", "fetch", "--help"])
        .env("LABFLASH_FACTORY_TOKEN", TOKEN)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("LABFLASH_FACTORY_TOKEN"), "{}", r.stdout);
    assert_nowhere(TOKEN, &[&r.stdout, &r.stderr], &[]);
}

/// A factory may send the token back in the URL it redirects to (a real one builds asset URLs
/// with it): `finalURL` and the log show that URL without it.
#[test]
fn a_redirect_that_carries_the_token_is_shown_without_it() {
    let image = image_like(1 << 20, 86);
    let f = factory(&image, token_gate);
    f.put("/cdn/nocloud-amd64.raw.xz", xz_single(&image));
    f.script(
        &format!("/image/{SCHEMATIC}/v1.13.0/nocloud-amd64.raw.xz"),
        vec![Reply::Redirect(
            302,
            f.url(&format!("/cdn/nocloud-amd64.raw.xz?token={TOKEN}&sig=1")),
        )],
    );
    let cache = tempfile::tempdir().unwrap();
    let r: Run = labflash(&[
        "talos",
        "fetch",
        "--version",
        "v1.13.0",
        "--factory-url",
        &f.url(""),
        "--factory-token",
        TOKEN,
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "-vv",
        "--json",
    ])
    .output()
    .unwrap()
    .into();
    assert_nowhere(TOKEN, &[&r.stdout, &r.stderr], &[cache.path()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json()["finalURL"],
        f.url("/cdn/nocloud-amd64.raw.xz?sig=1")
    );
    assert!(r.stderr.contains("followed a redirect"), "{}", r.stderr);
}

#[test]
fn basic_auth_from_the_url_is_sent_as_a_header_and_never_shown() {
    let image = image_like(1 << 20, 83);
    let f = factory(&image, basic_gate);
    let cache = tempfile::tempdir().unwrap();
    let url = f.url("").replace("://", &format!("://{USER}:{PASSWORD}@"));
    let r: Run = talos_fetch(&url, cache.path(), &[])
        .output()
        .unwrap()
        .into();
    assert_nowhere(PASSWORD, &[&r.stdout, &r.stderr], &[cache.path()]);
    check_fetched(&r, &f, &image);
    assert!(
        f.requests().iter().all(|r| !r.path.contains(PASSWORD)),
        "the password travels in the header only"
    );

    let versions = run(&["talos", "versions", "--factory-url", &url, "-vv", "--json"]);
    assert_nowhere(PASSWORD, &[&versions.stdout, &versions.stderr], &[]);
    assert_eq!(
        versions.json()[0]["version"],
        "v1.13.0",
        "{}",
        versions.stderr
    );
}

/// `talos build` takes its factory from the config: a token there, or from the flag or the
/// environment, and Basic from the URL there.
#[test]
fn talos_build_sends_the_factory_its_credentials_and_shows_none() {
    let image = image_like(1 << 20, 84);
    let cases: [(&str, &str, &[&str], Option<&str>); 4] = [
        (TOKEN, "token-flag", &["--factory-token", TOKEN], None),
        (TOKEN, "token-env", &[], Some(TOKEN)),
        (TOKEN, "token-url", &[], None),
        (PASSWORD, "basic-url", &[], None),
    ];
    for (secret, way, extra, env) in cases {
        let f = match secret {
            TOKEN => factory(&image, token_gate),
            _ => factory(&image, basic_gate),
        };
        let url = match way {
            "token-url" => f.url(&format!("/?token={TOKEN}")),
            "basic-url" => f.url("").replace("://", &format!("://{USER}:{PASSWORD}@")),
            _ => f.url(""),
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cp-1.yaml"), MACHINE_CONFIG).unwrap();
        let config = format!(
            "name: cp-1\nsource:\n  factoryURL: \"{url}\"\n  version: v1.13.0\n  schematicID: {SCHEMATIC}\nconfig:\n  userData:\n    path: cp-1.yaml\n  metaData:\n    localHostname: cp-1\n    instanceID: cp-1\noutput:\n  dir: out/images\n  bootArtifactName: boot.img\n  configArtifactName: cidata.img\n"
        );
        std::fs::write(dir.path().join("image.yaml"), config).unwrap();
        let cache = dir.path().join("cache");
        let config_path = dir.path().join("image.yaml");
        let mut args = vec!["talos", "build", config_path.to_str().unwrap()];
        args.extend_from_slice(&["--cache-dir", cache.to_str().unwrap(), "-vv", "--json"]);
        args.extend_from_slice(extra);
        let mut cmd = labflash(&args);
        if let Some(token) = env {
            cmd.env("LABFLASH_FACTORY_TOKEN", token);
        }
        let r: Run = cmd.output().unwrap().into();
        assert_eq!(r.code, 0, "{way}: {}", r.stderr);
        let json = r.json();
        assert_eq!(json["bootArtifactSHA256"], sha256_hex(&image), "{way}");
        let source = json["sourceURL"].as_str().unwrap();
        assert!(source.starts_with(&f.url("/image/")), "{way}: {source}");
        // The config the test wrote holds the secret; everything labflash wrote must not.
        std::fs::remove_file(&config_path).unwrap();
        assert_nowhere(secret, &[&r.stdout, &r.stderr], &[dir.path()]);
    }
}

#[test]
fn refused_credentials_are_one_clear_sentence_and_exit_3() {
    let image = image_like(1 << 20, 85);
    let f = factory(&image, token_gate);
    let cache = tempfile::tempdir().unwrap();
    let wrong = "wr0ng-t0ken-5ecret";
    let r: Run = talos_fetch(&f.url(""), cache.path(), &["--factory-token", wrong])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.json()["error"],
        "the Image Factory refused the credentials (HTTP 401): give --factory-token or \
         user:password in --factory-url (in source.factoryURL for a build)"
    );
    assert_nowhere(wrong, &[&r.stdout, &r.stderr], &[]);

    let none: Run = talos_fetch(&f.url(""), cache.path(), &[])
        .output()
        .unwrap()
        .into();
    assert_eq!(none.code, 3, "{}", none.stderr);
    let error = none.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("the Image Factory wants credentials (HTTP 401)"),
        "{error}"
    );
}
